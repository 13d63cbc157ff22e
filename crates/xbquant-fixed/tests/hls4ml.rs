//! The dense layer against hls4ml's C++ (`nnet::dense_latency` compiled with `g++` and the
//! `ap_types` headers of the hls4ml 1.3.0 wheel; `scripts/hls4ml-reference.py` made the data):
//! every result's bits, for wrapping and saturating accumulators, every rounding of the result,
//! signed and unsigned types, words up to 64 bits and a layer of 512 inputs.

use std::io::Read;

use serde_json::Value;
use xbquant_fixed::{dense, dense_codes, dense_with_overflows, DenseTypes};

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/hls4ml_dense.json.gz"
    );
    let file = std::fs::File::open(path).expect("the reference data");
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .expect("gzip");
    serde_json::from_str(&text).expect("json")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|a| a.as_f64().expect("a number"))
        .collect()
}

#[test]
fn every_result_equals_hls4mls_bit_for_bit() {
    let data = reference();
    let cases = data["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 24);
    let (mut results, mut overflowed) = (0, 0);
    for (c, case) in cases.iter().enumerate() {
        let t: Vec<&str> = case["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let types = DenseTypes::parse(t[0], t[1], t[2], t[3], t[4]).expect("types");
        let (n, out, rows) = (
            case["n"].as_u64().unwrap() as usize,
            case["out"].as_u64().unwrap() as usize,
            case["rows"].as_u64().unwrap() as usize,
        );
        let (x, w, b) = (floats(&case["x"]), floats(&case["w"]), floats(&case["b"]));
        let (codes, overflows) =
            dense_with_overflows(&x, rows, n, &w, out, Some(&b), &types).expect("dense");
        // The fast path (a wrapping accumulator's dot products) gives the same codes.
        let fast = dense_codes(&x, rows, n, &w, out, Some(&b), &types).expect("dense");
        assert_eq!(fast, codes, "case {c}");
        // And the values, where they are exact in f64.
        if types.result.width() <= 53 {
            let step = 2f64.powi(-types.result.frac());
            let values = dense(&x, rows, n, &w, out, Some(&b), &types).expect("dense");
            let from_codes: Vec<f64> = codes.iter().map(|&c| c as f64 * step).collect();
            assert_eq!(values, from_codes, "case {c}");
        }
        let width = types.result.width();
        let mask = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        let theirs: Vec<u128> = case["result_bits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| u128::from(v.as_u64().unwrap()))
            .collect();
        for (i, (&ours, &bits)) in codes.iter().zip(&theirs).enumerate() {
            assert_eq!(
                (ours as u128) & mask,
                bits,
                "case {c} ({t:?}), row {}, output {}: our code {ours}",
                i / out,
                i % out
            );
        }
        results += codes.len();
        overflowed += usize::from(overflows.accumulator() > 0);
    }
    assert_eq!(results, 425);
    // The table exercises the accumulator's overflow, not only its range.
    assert!(overflowed >= 8, "{overflowed} cases overflowed");
}
