//! hls4ml's accumulator precision against hls4ml 1.3.0's own inference (`_infer_dense_precision`,
//! run by `scripts/hls4ml-precision-reference.py` on a table of input, weight and bias types
//! and layer sizes), and the inferred width never overflowing.

use serde_json::Value;
use xbquant_fixed::{accum_type, dense_with_overflows, DenseTypes, FixedType};

fn ty(v: &Value) -> FixedType {
    let a = v.as_array().expect("[width, integer, signed]");
    let (w, i, s) = (
        a[0].as_i64().unwrap(),
        a[1].as_i64().unwrap(),
        a[2].as_bool().unwrap(),
    );
    FixedType::parse(&format!(
        "{}<{w},{i}>",
        if s { "ap_fixed" } else { "ap_ufixed" }
    ))
    .unwrap()
}

#[test]
fn accumulators_equal_hls4mls_inference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hls4ml_accum.json");
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 840);
    for case in cases {
        let (x, w) = (ty(&case["input"]), ty(&case["weight"]));
        let b = (!case["bias"].is_null()).then(|| ty(&case["bias"]));
        let n = case["n"].as_u64().unwrap() as usize;
        let ours = accum_type(&x, &w, n, b.as_ref()).unwrap();
        assert_eq!(ours, ty(&case["accum"]), "{case}");
    }
}

#[test]
fn the_inferred_accumulator_never_overflows() {
    // The extremes of the input and weight ranges, every product at its largest magnitude:
    // hls4ml's width holds the sum (and needs no rounding), so nothing overflows.
    for (xt, wt, n) in [
        ("ap_fixed<8,3>", "ap_fixed<6,1>", 100),
        ("ap_ufixed<8,3>", "ap_fixed<6,1>", 33),
        ("ap_fixed<12,12>", "ap_ufixed<4,4>", 7),
    ] {
        let (x, w) = (FixedType::parse(xt).unwrap(), FixedType::parse(wt).unwrap());
        let acc = accum_type(&x, &w, n, Some(&w)).unwrap();
        let types = DenseTypes {
            input: x,
            weight: w,
            bias: w,
            accum: acc,
            result: acc,
        };
        let value = |t: &FixedType, code: i128| code as f64 * 2f64.powi(-t.frac());
        let (xlo, xhi) = x.word_codes();
        let (wlo, whi) = w.word_codes();
        for (xc, wc) in [(xlo, wlo), (xhi, whi), (xlo, whi), (xhi, wlo)] {
            let xs = vec![value(&x, xc); n];
            let ws = vec![value(&w, wc); 2 * n];
            let bs = [value(&w, wlo), value(&w, whi)];
            let (_, overflows) =
                dense_with_overflows(&xs, 1, n, &ws, 2, Some(&bs), &types).unwrap();
            assert_eq!(overflows.accumulator(), 0, "{xt} {wt} {n} {}", acc.hls());
            assert_eq!(overflows.results.iter().sum::<u64>(), 0);
        }
    }
}
