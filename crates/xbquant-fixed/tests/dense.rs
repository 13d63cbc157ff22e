//! The dense layer's own properties: a wrapping accumulator's result is the exact sum wrapped
//! once (whatever the order), a saturating one's depends on the order as hls4ml's does, the
//! overflows are counted where they happen, and bad shapes and values are clear errors.

use xbquant_fixed::{dense, dense_codes, dense_with_overflows, DenseTypes, Error, FixedType};

mod common;
use common::data;

#[test]
fn a_wrapping_accumulator_is_the_exact_sum_wrapped_once() {
    let types = DenseTypes::parse(
        "ap_fixed<10,4>",
        "ap_fixed<8,2>",
        "ap_fixed<8,2>",
        "ap_fixed<12,5>",
        "ap_fixed<12,5>",
    )
    .unwrap();
    let (rows, n, out) = (5, 40, 3);
    let (x, w, b) = (
        data(rows * n, 8.0, 1),
        data(out * n, 2.0, 2),
        data(out, 2.0, 3),
    );
    let (codes, overflows) = dense_with_overflows(&x, rows, n, &w, out, Some(&b), &types).unwrap();
    assert_eq!(
        dense_codes(&x, rows, n, &w, out, Some(&b), &types).unwrap(),
        codes
    );
    assert!(
        overflows.accumulations.iter().sum::<u64>() > 0,
        "the sums must wrap"
    );
    let code = |t: &FixedType, v: f64| t.cast_f64(v).unwrap().0;
    for r in 0..rows {
        for j in 0..out {
            // Products at 12 fractional bits; the accumulator has 7: each product rounds
            // (floor) on its own, then the exact sum wraps to 12 bits.
            let mut sum = code(
                &types.accum,
                types.bias.cast_f64(b[j]).unwrap().0 as f64 / 64.0,
            );
            for i in 0..n {
                let p = code(&types.input, x[r * n + i]) * code(&types.weight, w[j * n + i]);
                sum += p >> 5;
            }
            let wrapped = ((sum + 2048).rem_euclid(4096)) - 2048;
            assert_eq!(codes[r * out + j], wrapped, "row {r} output {j}");
        }
    }
}

#[test]
fn a_saturating_accumulator_depends_on_the_order() {
    // +7, +7, -7 in an accumulator of [-8, 8): saturates at 7.9375 after the second product,
    // then 0.9375; in the other order it would be 7.
    let types = DenseTypes::parse(
        "ap_fixed<8,4>",
        "ap_fixed<8,4>",
        "ap_fixed<8,4>",
        "ap_fixed<8,4,AP_TRN,AP_SAT>",
        "ap_fixed<8,4>",
    )
    .unwrap();
    let (codes, overflows) =
        dense_with_overflows(&[7.0f64, 7.0, -7.0], 1, 3, &[1.0; 3], 1, None, &types).unwrap();
    assert_eq!(codes, [15]);
    assert_eq!(overflows.accumulations, [1]);
    let y = dense(&[-7.0f64, 7.0, 7.0], 1, 3, &[1.0; 3], 1, None, &types).unwrap();
    assert_eq!(y, [7.0]);
}

#[test]
fn overflows_are_counted_per_channel() {
    let types = DenseTypes::parse(
        "ap_fixed<6,3,AP_TRN,AP_SAT>",
        "ap_fixed<6,2,AP_TRN,AP_SAT>",
        "ap_fixed<4,2,AP_TRN,AP_SAT>",
        "ap_fixed<8,3,AP_TRN,AP_SAT>",
        "ap_fixed<6,2,AP_TRN,AP_SAT>",
    )
    .unwrap();
    // The input 9.0 saturates at 3.875, the weight 3.0 at 1.9375, the bias 5.0 at 1.75.
    // Channel 0: the product 7.5078125 saturates in the accumulator at 3.96875, and so do the
    // two sums (1.75 + 3.96875, then + 1.0); the result saturates at 1.9375. Channel 1:
    // 3.875 * 0.5 + 0.25 = 2.1875 fits the accumulator, not the result.
    let x = [9.0f64, 1.0];
    let w = [3.0, 1.0, 0.5, 0.25];
    let (codes, o) = dense_with_overflows(&x, 1, 2, &w, 2, Some(&[5.0, 0.0]), &types).unwrap();
    assert_eq!(codes, [31, 31]);
    assert_eq!(o.inputs, 1);
    assert_eq!(o.weights, [1, 0]);
    assert_eq!(o.biases, [1, 0]);
    assert_eq!(o.products, [1, 0]);
    assert_eq!(o.accumulations, [2, 0]);
    assert_eq!(o.results, [1, 1]);
    assert_eq!(o.accumulator(), 3);
}

#[test]
fn bad_shapes_values_and_types_are_clear_errors() {
    let t = DenseTypes::parse(
        "ap_fixed<8,3>",
        "ap_fixed<8,3>",
        "ap_fixed<8,3>",
        "ap_fixed<16,6>",
        "ap_fixed<8,3>",
    )
    .unwrap();
    let ok = dense(&[1.0f64; 6], 2, 3, &[1.0; 6], 2, Some(&[0.0; 2]), &t);
    assert!(ok.is_ok());
    for (x, rows, n, w, out, b) in [
        (5usize, 2usize, 3usize, 6usize, 2usize, 2usize),
        (6, 2, 3, 5, 2, 2),
        (6, 2, 3, 6, 2, 3),
        (6, usize::MAX, 3, 6, 2, 2),
        (6, 2, 3, 6, usize::MAX, 2),
    ] {
        let r = dense(
            &vec![1.0f64; x],
            rows,
            n,
            &vec![1.0; w],
            out,
            Some(&vec![0.0; b]),
            &t,
        );
        assert!(
            matches!(r, Err(Error::ShapeMismatch(_))),
            "{x} {rows} {n} {w} {out} {b}"
        );
    }
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let r = dense(&[1.0f64, bad], 1, 2, &[1.0; 2], 1, None, &t);
        assert!(matches!(r, Err(Error::NotFinite("x"))));
        let r = dense(&[1.0f64; 2], 1, 2, &[1.0, bad], 1, None, &t);
        assert!(matches!(r, Err(Error::NotFinite("w"))));
        let r = dense(&[1.0f64; 2], 1, 2, &[1.0; 2], 1, Some(&[bad]), &t);
        assert!(matches!(r, Err(Error::NotFinite("b"))));
    }
    // Empty layers: no rows, no outputs, no inputs (the bias alone).
    let empty: [f64; 0] = [];
    assert_eq!(dense(&empty, 0, 3, &[1.0; 6], 2, None, &t).unwrap(), empty);
    assert_eq!(dense(&[1.0f64; 3], 1, 3, &[], 0, None, &t).unwrap(), empty);
    let bias_alone = dense(&empty, 2, 0, &[], 2, Some(&[0.5, -1.0]), &t).unwrap();
    assert_eq!(bias_alone, [0.5, -1.0, 0.5, -1.0]);
    // Shapes with no inputs that ask for more results than any buffer holds: an error, not an
    // overflowing size.
    for (rows, out) in [(1usize << 40, 1usize << 40), (usize::MAX, 2), (1 << 60, 1)] {
        for result in [
            dense(&empty, rows, 0, &[], out, None, &t).map(|_| ()),
            dense_codes(&empty, rows, 0, &[], out, None, &t).map(|_| ()),
            dense_with_overflows(&empty, rows, 0, &[], out, None, &t).map(|_| ()),
        ] {
            assert!(
                matches!(&result, Err(Error::ShapeMismatch(m)) if m.contains("larger than any buffer")),
                "{rows} x {out}: {result:?}"
            );
        }
    }
    // Huge finite values saturate or wrap as the types say; f32 data.
    let (_, o) = dense_with_overflows(&[f32::MAX, 1.0], 1, 2, &[1.0f32; 2], 1, None, &t).unwrap();
    assert_eq!(o.inputs, 1);
    assert!(dense(&[f32::MAX, 1.0], 1, 2, &[1.0f32; 2], 1, None, &t).unwrap()[0].is_finite());
    let wide = DenseTypes::parse(
        "ap_ufixed<64,10>",
        "ap_ufixed<64,10>",
        "ap_fixed<8,3>",
        "ap_fixed<64,20>",
        "ap_fixed<8,3>",
    )
    .unwrap();
    assert!(matches!(
        dense(&[1.0f64], 1, 1, &[1.0], 1, None, &wide),
        Err(Error::InvalidType(..))
    ));
}

#[test]
fn the_fast_path_equals_each_step_for_wrapping_accumulators() {
    // Every lane choice of the fast path: 16-bit codes into a 32-bit-or-less accumulator, into a
    // wider one in exact chunks, and 64-bit codes; products shifted left into the accumulator;
    // unsigned types; row counts around the blocks of 4.
    for (xt, wt, acc, rows, n) in [
        ("ap_fixed<16,6>", "ap_fixed<8,3>", "ap_fixed<24,9>", 9, 70),
        (
            "ap_fixed<16,6>",
            "ap_fixed<8,3>",
            "ap_fixed<34,19>",
            6,
            1100,
        ),
        ("ap_fixed<16,6>", "ap_fixed<16,3>", "ap_fixed<40,12>", 5, 33),
        ("ap_ufixed<12,4>", "ap_fixed<8,3>", "ap_fixed<22,7>", 4, 50),
        ("ap_fixed<24,8>", "ap_fixed<20,2>", "ap_fixed<64,30>", 3, 40),
        ("ap_fixed<8,3>", "ap_fixed<8,3>", "ap_fixed<20,6>", 7, 64),
        ("ap_ufixed<64,32>", "ap_fixed<8,3>", "ap_fixed<64,30>", 2, 9),
    ] {
        let types =
            DenseTypes::parse(xt, wt, wt, acc, "ap_fixed<24,10,AP_RND_CONV,AP_SAT>").unwrap();
        let out = 5;
        let x = data(rows * n, 40.0, 7);
        let w = data(out * n, 6.0, 8);
        let b = data(out, 3.0, 9);
        let (slow, _) = dense_with_overflows(&x, rows, n, &w, out, Some(&b), &types).unwrap();
        let fast = dense_codes(&x, rows, n, &w, out, Some(&b), &types).unwrap();
        assert_eq!(fast, slow, "{xt} {wt} {acc}");
        let thirty_two: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
        assert_eq!(
            dense_codes(&thirty_two, rows, n, &w32, out, Some(&b32), &types).unwrap(),
            dense_with_overflows(&thirty_two, rows, n, &w32, out, Some(&b32), &types)
                .unwrap()
                .0
        );
    }
}

/// hls4ml's steps one cast at a time with `FixedType::cast` (the test's own reference): the
/// result codes and the accumulator's overflows per output.
fn one_by_one(
    x: &[f64],
    rows: usize,
    n: usize,
    w: &[f64],
    out: usize,
    b: &[f64],
    t: &DenseTypes,
) -> (Vec<i128>, Vec<u64>, Vec<u64>) {
    let code = |ty: &FixedType, v: f64| ty.cast_f64(v).unwrap().0;
    let (mut codes, mut products, mut sums) = (vec![], vec![0; out], vec![0; out]);
    for r in 0..rows {
        for j in 0..out {
            let mut acc = t.accum.cast(code(&t.bias, b[j]), t.bias.frac()).0;
            for i in 0..n {
                let p = code(&t.input, x[r * n + i]) * code(&t.weight, w[j * n + i]);
                let (p, over) = t.accum.cast(p, t.input.frac() + t.weight.frac());
                products[j] += u64::from(over);
                let (s, over) = t.accum.cast(acc + p, t.accum.frac());
                sums[j] += u64::from(over);
                acc = s;
            }
            codes.push(t.result.cast(acc, t.accum.frac()).0);
        }
    }
    (codes, products, sums)
}

#[test]
fn every_path_equals_the_casts_one_by_one() {
    // Accumulators of every overflow mode the vectorized steps take (saturate, symmetric, to
    // zero, wrap; signed and unsigned; products shifted left, floored or rounded up), and some
    // they leave to the general path (other roundings, saturation bits, wider words).
    let mut accumulators = vec![];
    for o in ["AP_SAT", "AP_SAT_SYM", "AP_SAT_ZERO", "AP_WRAP"] {
        for q in ["AP_TRN", "AP_RND", "AP_RND_CONV"] {
            accumulators.push(format!("ap_fixed<12,5,{q},{o}>")); // fewer fractional bits
            accumulators.push(format!("ap_fixed<16,4,{q},{o}>")); // more
        }
        accumulators.push(format!("ap_ufixed<12,6,AP_TRN,{o}>"));
    }
    // Words that hold every product (the steps skip the products' checks), and still overflow
    // in the sums.
    for o in ["AP_SAT", "AP_SAT_ZERO", "AP_WRAP"] {
        accumulators.push(format!("ap_fixed<16,6,AP_TRN,{o}>"));
        accumulators.push(format!("ap_fixed<14,6,AP_RND,{o}>"));
    }
    accumulators.push("ap_fixed<12,5,AP_TRN,AP_WRAP,2>".into());
    accumulators.push("ap_fixed<40,16,AP_RND,AP_SAT>".into());
    let (rows, n, out) = (7, 37, 70);
    let x = data(rows * n, 6.0, 11);
    let w = data(out * n, 1.5, 12);
    let b = data(out, 4.0, 13);
    let mut overflowed = 0;
    for acc in &accumulators {
        let t = DenseTypes::parse(
            "ap_fixed<10,4>",
            "ap_fixed<7,2>",
            "ap_fixed<7,2>",
            acc,
            "ap_fixed<12,6,AP_RND_CONV,AP_SAT>",
        )
        .unwrap();
        let (codes, products, sums) = one_by_one(&x, rows, n, &w, out, &b, &t);
        let (ours, o) = dense_with_overflows(&x, rows, n, &w, out, Some(&b), &t).unwrap();
        assert_eq!(ours, codes, "{acc}");
        overflowed += usize::from(o.accumulator() > 0);
        assert_eq!((o.products, o.accumulations), (products, sums), "{acc}");
        assert_eq!(
            dense_codes(&x, rows, n, &w, out, Some(&b), &t).unwrap(),
            codes,
            "{acc}"
        );
    }
    // The data overflows most of these accumulators (the narrow ones all).
    assert!(overflowed >= 26, "{overflowed} of {}", accumulators.len());
}

#[test]
fn every_instruction_set_gives_the_same_codes() {
    use xbquant::{set_max_instruction_set, InstructionSet};
    let (rows, n, out) = (9, 300, 70);
    let (x, w, b) = (
        data(rows * n, 20.0, 21),
        data(out * n, 3.0, 22),
        data(out, 3.0, 23),
    );
    for acc in [
        "ap_fixed<34,19>",
        "ap_fixed<20,8>",
        "ap_fixed<24,12,AP_RND,AP_SAT>",
    ] {
        let t = DenseTypes::parse(
            "ap_fixed<16,6>",
            "ap_fixed<8,3>",
            "ap_fixed<8,3>",
            acc,
            "ap_fixed<16,6>",
        )
        .unwrap();
        let run = |set| {
            set_max_instruction_set(set);
            let codes = dense_codes(&x, rows, n, &w, out, Some(&b), &t).unwrap();
            set_max_instruction_set(InstructionSet::Avx512);
            codes
        };
        let best = run(InstructionSet::Avx512);
        assert_eq!(best, run(InstructionSet::Avx2), "{acc}");
        assert_eq!(best, run(InstructionSet::Baseline), "{acc}");
    }
}
