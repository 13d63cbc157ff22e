//! hls4ml's accumulator precision against hls4ml 1.3.0's own inference (`_infer_dense_precision`,
//! run by `scripts/hls4ml-precision-reference.py` on a table of input, weight and bias types
//! and layer sizes), and the inferred width never overflowing.

use serde_json::Value;

mod common;
use common::codes;
use xbquant_fixed::{
    accum_bits, accum_bits_used, accum_type, dense_with_overflows, DenseTypes, Error, FixedType,
};

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

#[test]
fn accum_bits_is_never_exceeded_and_tight() {
    use xbquant_fixed::{accum_bits, accum_bits_used, dense_with_overflows};
    for (xt, n, span) in [
        ("ap_fixed<8,8>", 40, 100),
        ("ap_ufixed<6,6>", 25, 30),
        ("ap_fixed<12,12>", 300, 7),
    ] {
        let input = FixedType::parse(xt).unwrap();
        let out = 6;
        let w = codes(out * n, span, n as u64);
        let need = accum_bits(&w, out, n, &input).unwrap();
        let (lo, hi) = input.word_codes();
        let (lo, hi) = (lo as i64, hi as i64);
        // Random inputs never need more, and the worst input for each channel needs exactly it.
        let rows = 50;
        let x = codes(rows * n, hi.max(-lo), 3)
            .into_iter()
            .map(|v| v.clamp(lo, hi))
            .collect::<Vec<_>>();
        let used = accum_bits_used(&x, rows, n, &w, out).unwrap();
        for j in 0..out {
            assert!(used[j] <= need[j], "{xt} channel {j}");
            let wj = &w[j * n..(j + 1) * n];
            let top: Vec<i64> = wj.iter().map(|&c| if c > 0 { hi } else { lo }).collect();
            let bottom: Vec<i64> = wj.iter().map(|&c| if c > 0 { lo } else { hi }).collect();
            let worst = accum_bits_used(&top, 1, n, wj, 1).unwrap()[0]
                .max(accum_bits_used(&bottom, 1, n, wj, 1).unwrap()[0]);
            assert_eq!(worst, need[j], "{xt} channel {j}");
            // As hls4ml's layer: an accumulator of `need` bits never overflows on the worst
            // input, one of `need - 1` bits does.
            let acc = |bits: u32| {
                let f = input.frac();
                let t = |s: &str| FixedType::parse(s).unwrap();
                DenseTypes {
                    input,
                    weight: t("ap_fixed<20,20>"),
                    bias: t("ap_fixed<20,20>"),
                    accum: t(&format!(
                        "ap_fixed<{bits},{},AP_TRN,AP_SAT>",
                        bits as i32 - f
                    )),
                    result: t(&format!(
                        "ap_fixed<{bits},{},AP_TRN,AP_SAT>",
                        bits as i32 - f
                    )),
                }
            };
            let value = |codes: &[i64], frac: i32| {
                codes
                    .iter()
                    .map(|&c| c as f64 * 2f64.powi(-frac))
                    .collect::<Vec<f64>>()
            };
            for worst_x in [&top, &bottom] {
                let xs = value(worst_x, input.frac());
                let ws = value(wj, 0);
                let (_, o) = dense_with_overflows(&xs, 1, n, &ws, 1, None, &acc(need[j])).unwrap();
                assert_eq!(o.accumulator(), 0, "{xt} channel {j}");
            }
            let narrow: u64 = [&top, &bottom]
                .iter()
                .map(|worst_x| {
                    let (_, o) = dense_with_overflows(
                        &value(worst_x, input.frac()),
                        1,
                        n,
                        &value(wj, 0),
                        1,
                        None,
                        &acc(need[j] - 1),
                    )
                    .unwrap();
                    o.accumulator()
                })
                .sum();
            assert!(
                narrow > 0,
                "{xt} channel {j}: {} bits do not overflow",
                need[j] - 1
            );
        }
    }
}

#[test]
fn sums_beyond_128_bits_are_errors_not_wrapped_widths() {
    // 64-bit inputs and weight codes of 2^62: each worst-case product is 2^125, eight of them
    // 2^128, beyond i128. The widths were once computed from the wrapped sum (66 bits).
    let input = FixedType::parse("ap_fixed<64,64>").unwrap();
    let w = [1i64 << 62; 8];
    assert!(matches!(
        accum_bits(&w, 1, 8, &input),
        Err(Error::InvalidType(_, why)) if why.contains("more than 128 bits")
    ));
    // Four of them still fit: -2^127 needs all 128 bits.
    assert_eq!(accum_bits(&w[..4], 1, 4, &input).unwrap(), [128]);
    let x = [1i64 << 62; 8];
    assert!(matches!(
        accum_bits_used(&x, 1, 8, &w, 1),
        Err(Error::InvalidType(..))
    ));
}
