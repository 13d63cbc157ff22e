//! Low-precision floating point: the named formats against torch's casts (data from
//! `scripts/float-reference.py`), float16 and bfloat16 against the `half` crate's conversions on
//! a large share of all `f32` inputs, every format against a brute-force nearest search over its
//! values, overflow, and stochastic rounding's noise and bias.

use std::io::Read;

mod common;

use xbquant::half::{bf16, f16};
use xbquant::{noise, FloatEncoding, FloatFormat, FloatOverflow, Rounding};

/// The inputs and, per named format, torch's outputs, as `f32` bit patterns.
fn torch_reference() -> (Vec<u32>, Vec<Vec<u32>>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/float_casts.bin.gz");
    let file = std::fs::File::open(path).expect("reference data");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .expect("gzip");
    assert_eq!(&bytes[..4], b"XBQF");
    let n = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let words: Vec<u32> = bytes[8..]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(words.len(), 5 * n);
    let inputs = words[..n].to_vec();
    let outputs = (1..5).map(|k| words[k * n..(k + 1) * n].to_vec()).collect();
    (inputs, outputs)
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn named_formats_equal_torch_casts() {
    let (inputs, outputs) = torch_reference();
    let x: Vec<f32> = inputs.iter().map(|&b| f32::from_bits(b)).collect();
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let formats = [
        FloatFormat::FLOAT16,
        FloatFormat::BFLOAT16,
        FloatFormat::E5M2,
        FloatFormat::E4M3FN,
    ];
    for (format, want) in formats.iter().zip(&outputs) {
        let q = format.quantize(&x, Rounding::NearestEven).unwrap();
        let q64 = format.quantize(&x64, Rounding::NearestEven).unwrap();
        let mut wrong = 0;
        for i in 0..x.len() {
            let w = f32::from_bits(want[i]);
            #[allow(clippy::cast_possible_truncation)]
            let ok = same(q[i], w) && same(q64[i] as f32, w);
            if !ok {
                if wrong < 5 {
                    eprintln!("{format}: {:e} -> {:e}, torch {:e}", x[i], q[i], w);
                }
                wrong += 1;
            }
        }
        assert_eq!(wrong, 0, "{format}: {wrong} of {} differ", x.len());
    }
}

/// Every 13th `f32` bit pattern (330M inputs, every exponent and sign), against the `half`
/// crate's round-to-nearest-even conversions.
#[test]
fn float16_and_bfloat16_equal_the_half_crate() {
    let mut x = Vec::with_capacity(1 << 20);
    let mut q = vec![0f32; 1 << 20];
    let mut bits: u64 = 0;
    while bits < 1 << 32 {
        x.clear();
        while x.len() < 1 << 20 && bits < 1 << 32 {
            #[allow(clippy::cast_possible_truncation)]
            x.push(f32::from_bits(bits as u32));
            bits += 13;
        }
        let q = &mut q[..x.len()];
        FloatFormat::FLOAT16
            .quantize_into(&x, q, Rounding::NearestEven)
            .unwrap();
        for (a, b) in x.iter().zip(q.iter()) {
            assert!(same(*b, f16::from_f32(*a).to_f32()), "float16 of {a:e}");
        }
        FloatFormat::BFLOAT16
            .quantize_into(&x, q, Rounding::NearestEven)
            .unwrap();
        for (a, b) in x.iter().zip(q.iter()) {
            assert!(same(*b, bf16::from_f32(*a).to_f32()), "bfloat16 of {a:e}");
        }
    }
}

/// The positive finite values of a format, in order (index = bit pattern), from its definition,
/// and the next point of the grid past the largest.
fn values(e: u32, m: u32, encoding: FloatEncoding) -> (Vec<f64>, f64) {
    let bias = (1i32 << (e - 1)) - 1;
    let mut v = Vec::new();
    for pattern in 0u32..(1 << (e + m)) {
        let (field, mant) = (pattern >> m, pattern & ((1 << m) - 1));
        let top = field == (1 << e) - 1;
        let special = match encoding {
            FloatEncoding::Ieee => top,
            FloatEncoding::FiniteNan => top && mant == (1 << m) - 1,
            _ => false,
        };
        if special {
            break;
        }
        let frac = f64::from(mant) / f64::from(1u32 << m);
        v.push(if field == 0 {
            frac * 2f64.powi(1 - bias)
        } else {
            (1.0 + frac) * 2f64.powi(i32::try_from(field).unwrap() - bias)
        });
    }
    // The first reserved pattern, read as a number: the grid's next point.
    let first = u32::try_from(v.len()).unwrap();
    let (field, mant) = (first >> m, first & ((1 << m) - 1));
    let beyond = (1.0 + f64::from(mant) / f64::from(1u32 << m))
        * 2f64.powi(i32::try_from(field).unwrap() - bias);
    (v, beyond)
}

/// The nearest value by search, ties to the even bit pattern; past the largest, overflow.
fn brute_force(a: f64, grid: &(Vec<f64>, f64), overflow: f64) -> f64 {
    nearest_by_search(a, grid, overflow, false)
}

/// The nearest value by search, ties to the even bit pattern or (`away`) to the larger
/// magnitude; past the largest, overflow.
fn nearest_by_search(a: f64, grid: &(Vec<f64>, f64), overflow: f64, away: bool) -> f64 {
    let (v, beyond) = grid;
    let mut all = v.clone();
    all.push(*beyond);
    let i = all.partition_point(|&g| g <= a).max(1) - 1;
    let r = if i + 1 >= all.len() {
        all[i]
    } else {
        let (lo, hi) = (all[i], all[i + 1]);
        if a - lo < hi - a || (a - lo == hi - a && !away && i % 2 == 0) {
            lo
        } else {
            hi
        }
    };
    if r > v[v.len() - 1] {
        overflow
    } else {
        r
    }
}

#[test]
fn every_small_format_equals_a_brute_force_search() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for e in 2..=5 {
        for m in 1..=4 {
            for encoding in [
                FloatEncoding::Ieee,
                FloatEncoding::FiniteNan,
                FloatEncoding::AllFinite,
            ] {
                let plain = FloatFormat::new(e, m).unwrap();
                let format = match encoding {
                    FloatEncoding::FiniteNan => plain.without_infinities(),
                    FloatEncoding::AllFinite => plain.without_specials(),
                    _ => plain,
                };
                let fnz = encoding == FloatEncoding::FiniteNan;
                let grid = values(e, m, format.encoding());
                let max = grid.0[grid.0.len() - 1];
                assert_eq!(format.max(), max, "{format}");
                let overflow = if encoding == FloatEncoding::Ieee {
                    f64::INFINITY
                } else {
                    max
                };
                // Every value, every midpoint and its neighbours, and random magnitudes.
                let mut xs = Vec::new();
                let all: Vec<f64> = grid.0.iter().copied().chain([grid.1]).collect();
                for w in all.windows(2) {
                    let mid = (w[0] + w[1]) / 2.0;
                    xs.extend([w[0], mid, mid * (1.0 - 1e-12), mid * (1.0 + 1e-12)]);
                }
                for _ in 0..2000 {
                    #[allow(clippy::cast_precision_loss)]
                    let r = (next() >> 11) as f64 / (1u64 << 53) as f64;
                    xs.push(r * grid.1 * 1.5);
                }
                for &a in &xs {
                    for s in [1.0, -1.0] {
                        let x = s * a;
                        let q = format.quantize_value(x, Rounding::NearestEven).unwrap();
                        let want = s * brute_force(a, &grid, overflow);
                        assert!(
                            q.to_bits() == want.to_bits() || (q.is_nan() && want.is_nan()),
                            "{format}: {x:e} -> {q:e}, expected {want:e}"
                        );
                        let other = match format.overflow() {
                            FloatOverflow::Saturate => FloatOverflow::Infinity,
                            FloatOverflow::Infinity => FloatOverflow::Saturate,
                        };
                        let q = format
                            .with_overflow(other)
                            .quantize_value(x, Rounding::NearestEven)
                            .unwrap();
                        let beyond = brute_force(a, &grid, f64::INFINITY) > max;
                        let want = match (beyond, other, fnz) {
                            (false, ..) => want,
                            (true, FloatOverflow::Saturate, _) => s * max,
                            (true, FloatOverflow::Infinity, true) => f64::NAN,
                            (true, FloatOverflow::Infinity, false) => s * f64::INFINITY,
                        };

                        assert!(
                            q.to_bits() == want.to_bits() || (q.is_nan() && want.is_nan()),
                            "{} {x:e} -> {q:e}, expected {want:e}",
                            format.with_overflow(other)
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn specials_and_element_types() {
    let f = FloatFormat::E5M2;
    let q = f
        .quantize(
            &[f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -0.0, 0.0],
            Rounding::NearestEven,
        )
        .unwrap();
    assert_eq!(&q[..2], &[f32::INFINITY, f32::NEG_INFINITY]);
    assert!(q[2].is_nan());
    assert_eq!(q[3].to_bits(), (-0.0f32).to_bits());
    assert_eq!(q[4].to_bits(), 0);
    // e4m3fn saturates by default, as torch's cast; overflow to NaN on request.
    let q = FloatFormat::E4M3FN
        .quantize(&[f32::NEG_INFINITY, 1e10, f32::NAN], Rounding::NearestEven)
        .unwrap();
    assert_eq!(&q[..2], &[-448.0, 448.0]);
    assert!(q[2].is_nan());
    let q = FloatFormat::E4M3FN
        .with_overflow(FloatOverflow::Infinity)
        .quantize(&[f32::INFINITY, 470.0, 464.0], Rounding::NearestEven)
        .unwrap();
    assert!(
        q[0].is_nan() && q[1].is_nan(),
        "no infinities in e4m3fn: {q:?}"
    );
    assert_eq!(q[2], 448.0); // the tie goes to the even pattern, the largest value
                             // Half-precision data: the f32 result, exact in the type for formats inside it.
    let x: Vec<f32> = (0..5000)
        .map(|i| (i as f32 * 0.731).sin() * 300.0)
        .collect();
    let xh: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
    let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
    let from_h: Vec<f32> = xh.iter().map(|v| v.to_f32()).collect();
    let from_b: Vec<f32> = xb.iter().map(|v| v.to_f32()).collect();
    for format in [FloatFormat::E5M2, FloatFormat::E4M3FN] {
        let qh = format.quantize(&xh, Rounding::NearestEven).unwrap();
        let want = format.quantize(&from_h, Rounding::NearestEven).unwrap();
        assert!(qh.iter().zip(&want).all(|(a, b)| same(a.to_f32(), *b)));
        let qb = format.quantize(&xb, Rounding::NearestEven).unwrap();
        let want = format.quantize(&from_b, Rounding::NearestEven).unwrap();
        assert!(qb.iter().zip(&want).all(|(a, b)| same(a.to_f32(), *b)));
    }
}

#[test]
fn names_and_errors() {
    for (name, format) in [
        ("float16", FloatFormat::FLOAT16),
        ("fp16", FloatFormat::FLOAT16),
        ("bfloat16", FloatFormat::BFLOAT16),
        ("E5M2", FloatFormat::E5M2),
        ("float8_e4m3fn", FloatFormat::E4M3FN),
        ("e3m4", FloatFormat::new(3, 4).unwrap()),
        (
            "e3m4fn",
            FloatFormat::new(3, 4).unwrap().without_infinities(),
        ),
        ("e5m2nx", FloatFormat::new(5, 2).unwrap().without_specials()),
    ] {
        let parsed: FloatFormat = name.parse().unwrap();
        assert_eq!(parsed, format, "{name}");
        assert_eq!(parsed.to_string().parse::<FloatFormat>().unwrap(), format);
    }
    assert_eq!(FloatFormat::E4M3FN.to_string(), "e4m3fn");
    for bad in ["", "e9m2", "e4m24", "e4m0", "e4m0fn", "float32", "e4", "m3"] {
        assert!(bad.parse::<FloatFormat>().is_err(), "{bad:?}");
    }
    let err = FloatFormat::E5M2
        .quantize(&[1.0f32], Rounding::Floor)
        .unwrap_err();
    assert!(err.to_string().contains("floor"), "{err}");
    let mut out = [0f32; 2];
    assert!(FloatFormat::E5M2
        .quantize_into(&[1.0f32], &mut out, Rounding::NearestEven)
        .is_err());
}

/// Fractions set to each element's own draw never round up, and the next number above it always
/// does, in `f64` and `f32` lanes: the vector loops see only a draw's high bits, so these are
/// the elements they must leave undecided and settle with the exact draw. (In the formats'
/// subnormal range, where the scaled value keeps every bit of the fraction.)
#[test]
fn stochastic_rounding_settles_fractions_at_the_draws() {
    let seed = 4;
    let n = 3000;
    for (format, step) in [
        (FloatFormat::E4M3FN, 2f64.powi(-9)),
        (FloatFormat::E5M2, 2f64.powi(-16)),
    ] {
        let r = Rounding::Stochastic { seed };
        let sign = |i: usize| if i % 4 < 2 { 1.0 } else { -1.0 };
        let want: Vec<f64> = (0..n)
            .map(|i| if i % 2 == 1 { sign(i) * step } else { 0.0 })
            .collect();
        // f64 data: the fraction is the 52-bit draw itself, or the next f64 above it.
        let x: Vec<f64> = common::fractions_at_draws(seed, n)
            .iter()
            .enumerate()
            .map(|(i, &f)| sign(i) * f * step)
            .collect();
        let q = format.quantize(&x, r).unwrap();
        let mut in_place = x.clone();
        format.quantize_in_place(&mut in_place, r).unwrap();
        for i in 0..n {
            assert!(q[i] == want[i], "{format} f64 {i}: {} -> {}", x[i], q[i]);
            assert!(in_place[i] == want[i], "{format} f64 in place {i}");
        }
        // f32 data: the largest f32 at or below the draw, or the next f32 above it.
        let x32: Vec<f32> = common::fractions_at_draws_f32(seed, n)
            .iter()
            .enumerate()
            .map(|(i, &f)| (sign(i) * f64::from(f) * step) as f32)
            .collect();
        let q32 = format.quantize(&x32, r).unwrap();
        let mut in_place = x32.clone();
        format.quantize_in_place(&mut in_place, r).unwrap();
        for i in 0..n {
            assert!(
                f64::from(in_place[i]) == want[i],
                "{format} f32 in place {i}"
            );
            assert!(
                f64::from(q32[i]) == want[i],
                "{format} f32 {i}: {} -> {}",
                x32[i],
                q32[i]
            );
        }
    }
}

/// Element `i` rounds up exactly when its `(seed, i)` draw is below its distance from the
/// value below, in steps; the mean of many draws is the input (within 4 sigma); the result does
/// not depend on the thread count.
#[test]
fn stochastic_rounding_draws_the_published_noise() {
    let x: Vec<f64> = (0..300_000)
        .map(|i| (f64::from(i) * 0.618_033_988_7).sin() * 500.0)
        .collect();
    for (format, m, emin) in [(FloatFormat::E4M3FN, 3, -6), (FloatFormat::E5M2, 2, -14)] {
        let q = format
            .quantize(&x, Rounding::Stochastic { seed: 21 })
            .unwrap();
        for (i, (&v, &r)) in x.iter().zip(&q).enumerate() {
            // The grid around |v|: the step of its binade (or the subnormal step), the point at
            // or below it, and the distance in steps.
            let a = v.abs();
            let e = (a.log2().floor() as i32).max(emin);
            let step = 2f64.powi(e - m);
            let lo = (a / step).floor() * step;
            let frac = (a - lo) / step;
            let up = noise::draw(21, i as u64) < frac;
            let mut want = if up { lo + step } else { lo };
            if want > format.max() {
                want = match format.overflow() {
                    FloatOverflow::Saturate => format.max(),
                    FloatOverflow::Infinity => f64::INFINITY,
                };
            }
            let want = want.copysign(v);
            assert!(
                r.to_bits() == want.to_bits(),
                "{format} {i}: {v} -> {r}, expected {want}"
            );
        }
    }
    // Unbiased: the mean of 1/3 in e5m2 (between 0.3125 and 0.375).
    let n = 20_000;
    let third = vec![1.0f64 / 3.0; n];
    let q = FloatFormat::E5M2
        .quantize(&third, Rounding::Stochastic { seed: 5 })
        .unwrap();
    #[allow(clippy::cast_precision_loss)]
    let mean = q.iter().sum::<f64>() / n as f64;
    let p: f64 = (1.0 / 3.0 - 0.3125) / 0.0625;
    #[allow(clippy::cast_precision_loss)]
    let sigma = 0.0625 * (p * (1.0 - p) / n as f64).sqrt();
    assert!((mean - 1.0 / 3.0).abs() < 4.0 * sigma, "mean {mean}");
    // The thread count changes nothing.
    let big: Vec<f32> = (0..1_000_000)
        .map(|i| (i as f32 * 0.37).cos() * 3.0)
        .collect();
    let seeded = Rounding::Stochastic { seed: 9 };
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let four = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let a = one.install(|| FloatFormat::E5M2.quantize(&big, seeded).unwrap());
    let b = four.install(|| FloatFormat::E5M2.quantize(&big, seeded).unwrap());
    assert!(a == b);
}

/// QPyTorch 0.3.0's `float_quantize(x, exp, man, "nearest")` (data from
/// `scripts/qpytorch-float-reference.py`) against `without_specials`: ours is the nearest value
/// of the same grid, ties to even, by search; QPyTorch's equals the nearest with ties away from
/// zero (its rounding adds half a step to the bits), except where it is documented to be wrong:
/// below the normal range it rounds `x + 2^emin` in `f32` first (a second rounding, where that
/// sum is inexact) and turns a negative zero into `+0`, and NaN comes out as a number (the
/// largest value, or zero).
#[test]
fn qpytorch_float_quantize_differs_only_where_documented() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/qpytorch_float.bin.gz"
    );
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(&bytes[..4], b"XBQP");
    let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    let mut at = 8;
    let (mut ties, mut double_rounded, mut zero_signs) = (0, 0, 0);
    for _ in 0..word(4) {
        let (e, m, n) = (word(at), word(at + 4), word(at + 8) as usize);
        at += 12;
        let x: Vec<f32> = (0..n).map(|i| f32::from_bits(word(at + 4 * i))).collect();
        let theirs: Vec<f32> = (0..n)
            .map(|i| f32::from_bits(word(at + 4 * (n + i))))
            .collect();
        at += 8 * n;
        let format = FloatFormat::new(e, m).unwrap().without_specials();
        let grid = values(e, m, FloatEncoding::AllFinite);
        let max = format.max();
        let ours = format.quantize(&x, Rounding::NearestEven).unwrap();
        for i in 0..n {
            let (v, q, p) = (x[i], ours[i], theirs[i]);
            if v.is_nan() {
                // Ours stays NaN; QPyTorch's rounding of the NaN's bits gives the largest value,
                // or, where adding half a step carries out of the word, zero.
                assert!(q.is_nan());
                assert!(
                    p.is_nan() || f64::from(p).abs() == max || p == 0.0,
                    "e{e}m{m}: QPyTorch NaN -> {p}"
                );
                continue;
            }
            let a = f64::from(v).abs();
            let s = if v.is_sign_negative() { -1.0 } else { 1.0 };
            #[allow(clippy::cast_possible_truncation)]
            let even = (s * nearest_by_search(a, &grid, max, false)) as f32;
            #[allow(clippy::cast_possible_truncation)]
            let away = (s * nearest_by_search(a, &grid, max, true)) as f32;
            assert!(same(q, even), "e{e}m{m}: {v:e} -> {q:e}, expected {even:e}");
            if same(p, away) {
                ties += usize::from(!same(away, even));
                continue;
            }
            // Its subnormal path subtracts the shift back, which makes a negative zero +0.
            if p == 0.0 && away == 0.0 {
                zero_signs += 1;
                continue;
            }
            // Below the normal range QPyTorch rounds v + 2^emin in f32 first.
            let shift = format.min_normal();
            let shifted = f64::from(v.abs() + shift as f32);
            assert!(
                a < shift && shifted != a + shift,
                "e{e}m{m}: QPyTorch {v:e} -> {p:e}, neither {away:e} nor a double rounding"
            );
            double_rounded += 1;
        }
    }
    // Each documented difference occurs in the data.
    assert!(
        ties > 100 && double_rounded > 0 && zero_signs > 0,
        "{ties} ties, {double_rounded} double roundings, {zero_signs} zero signs"
    );
}

/// The block of element `i`.
type BlockOf = Box<dyn Fn(usize) -> usize>;

/// Block floating point against a model computed element by element, for every kind of block,
/// and the stochastic noise of each element's index in the whole tensor.
#[test]
fn block_formats_follow_the_exact_rule() {
    use xbquant::{BlockFormat, Blocks, FixedPoint, Overflow, QuantSpec};
    let shape = [3usize, 4, 10];
    let n: usize = shape.iter().product();
    let x: Vec<f32> = (0..n)
        .map(|i| ((i as f32) * 0.7).sin() * 2f32.powi((i % 13) as i32 - 6))
        .collect();
    let model = |blocks: &Blocks, block_of: &dyn Fn(usize) -> usize, wl: u32| -> Vec<f32> {
        let count = (0..n).map(block_of).max().unwrap() + 1;
        let mut top = vec![0f64; count];
        for (i, v) in x.iter().enumerate() {
            top[block_of(i)] = top[block_of(i)].max(f64::from(v.abs()));
        }
        let _ = blocks;
        (0..n)
            .map(|i| {
                let e = top[block_of(i)].log2().floor() as i32;
                let step = 2f64.powi(e + 2 - wl as i32);
                let k = (f64::from(x[i]) / step).round_ties_even();
                let m = f64::from((1u32 << (wl - 1)) - 1);
                (k.clamp(-m, m) * step) as f32
            })
            .collect()
    };
    for wl in [3, 6, 12] {
        let f = BlockFormat::new(wl).unwrap();
        let cases: Vec<(Blocks, BlockOf)> = vec![
            (Blocks::Whole, Box::new(|_| 0)),
            (
                Blocks::Axis {
                    shape: shape.to_vec(),
                    axis: 0,
                },
                Box::new(|i| i / 40),
            ),
            (
                Blocks::Axis {
                    shape: shape.to_vec(),
                    axis: 1,
                },
                Box::new(|i| (i / 10) % 4),
            ),
            (
                Blocks::Axis {
                    shape: shape.to_vec(),
                    axis: 2,
                },
                Box::new(|i| i % 10),
            ),
            (Blocks::Runs(8), Box::new(|i| i / 8)),
        ];
        for (blocks, block_of) in &cases {
            let q = f.quantize(&x, blocks, Rounding::NearestEven).unwrap();
            assert_eq!(
                q,
                model(blocks, block_of.as_ref(), wl),
                "wl {wl} {blocks:?}"
            );
        }
    }
    // One block with a seed: the fixed-point format of its exponent, element i drawing index i.
    let f = BlockFormat::new(6).unwrap();
    let r = Rounding::Stochastic { seed: 2 };
    let top = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let e = f64::from(top).log2().floor() as i32;
    let fixed = FixedPoint::new(6, 6 - 2 - e)
        .unwrap()
        .with_overflow(Overflow::SaturateSymmetric)
        .unwrap();
    assert_eq!(
        f.quantize(&x, &Blocks::Whole, r).unwrap(),
        QuantSpec::new(fixed, r).quantize(&x)
    );
    // Zeros, NaN, infinities; bad blocks.
    let q = f
        .quantize(
            &[0.0f32, 0.0, f32::NAN, 3.0, f32::INFINITY],
            &Blocks::Runs(2),
            Rounding::NearestEven,
        )
        .unwrap();
    assert_eq!(&q[..2], &[0.0, 0.0]);
    // A block with no finite value has exponent 0: infinity saturates at 31 steps of 2^-4.
    assert!(q[2].is_nan() && q[3] == 3.0 && q[4] == 1.9375);
    assert!(f
        .quantize(&x, &Blocks::Runs(0), Rounding::NearestEven)
        .is_err());
    assert!(f
        .quantize(
            &x,
            &Blocks::Axis {
                shape: vec![3, 4],
                axis: 0
            },
            Rounding::NearestEven
        )
        .is_err());
    assert!(f
        .quantize(
            &x,
            &Blocks::Axis {
                shape: shape.to_vec(),
                axis: 3
            },
            Rounding::NearestEven
        )
        .is_err());
    assert!(BlockFormat::new(1).is_err() && BlockFormat::new(65).is_err());
}

/// Every layout path of the block kernel (runs quantized directly with their block's format,
/// runs scaled run by run, short runs scaled by a table of one period; tensors of many pieces)
/// equals the element-by-element definition: each value quantized alone with its block's
/// fixed-point format and its own stream index, in every rounding, with the overflow mask.
#[test]
fn block_layouts_equal_the_element_by_element_definition() {
    use xbquant::{BlockFormat, Blocks, FixedPoint, Overflow, QuantSpec};
    let layouts: Vec<(Vec<usize>, Option<usize>)> = vec![
        (vec![6, 1000], Some(0)),     // runs of 1000
        (vec![3, 50, 700], Some(1)),  // runs of 700, 50 blocks
        (vec![40, 100, 20], Some(1)), // runs of 20
        (vec![700, 100], Some(1)),    // runs of 1, many pieces
        (vec![70_000], None),         // blocks of 32
        (vec![4_001], None),          // blocks of 4, the last one short
    ];
    for (shape, axis) in layouts {
        let n: usize = shape.iter().product();
        // Magnitudes over many binades, a few infinities and NaNs.
        let x: Vec<f32> = (0..n)
            .map(|i| match i % 997 {
                5 => f32::INFINITY,
                11 => f32::NAN,
                _ => ((i as f32) * 0.37).sin() * 2f32.powi((i % 23) as i32 - 11),
            })
            .collect();
        let (blocks, block_of): (Blocks, BlockOf) = match axis {
            Some(axis) => {
                let inner: usize = shape[axis + 1..].iter().product();
                let count = shape[axis];
                (
                    Blocks::Axis {
                        shape: shape.clone(),
                        axis,
                    },
                    Box::new(move |i| (i / inner) % count),
                )
            }
            None => {
                let k = if n == 70_000 { 32 } else { 4 };
                (Blocks::Runs(k), Box::new(move |i| i / k))
            }
        };
        let count = (0..n).map(&block_of).max().unwrap() + 1;
        let mut top = vec![0f32; count];
        for (i, v) in x.iter().enumerate() {
            if v.is_finite() {
                top[block_of(i)] = top[block_of(i)].max(v.abs());
            }
        }
        for rounding in [
            Rounding::NearestEven,
            Rounding::Floor,
            Rounding::Stochastic { seed: 31 },
        ] {
            let wl = 7;
            let mut q = vec![0f32; n];
            let mut mask = vec![false; n];
            BlockFormat::new(wl)
                .unwrap()
                .quantize_into_with_mask(&x, &mut q, Some(&mut mask), &blocks, rounding)
                .unwrap();
            for i in 0..n {
                let t = top[block_of(i)];
                let e = if t == 0.0 {
                    0
                } else {
                    f64::from(t).log2().floor() as i32
                };
                let format = FixedPoint::new(wl, wl as i32 - 2 - e)
                    .unwrap()
                    .with_overflow(Overflow::SaturateSymmetric)
                    .unwrap();
                let spec = QuantSpec::new(format, rounding).with_stream_start(i as u64);
                let (want, over) = spec.quantize_with_mask(&x[i..=i]);
                assert_eq!(
                    (q[i].to_bits(), mask[i]),
                    (want[0].to_bits(), over[0]),
                    "{shape:?} {axis:?} {rounding:?} element {i} = {}",
                    x[i]
                );
            }
        }
    }
}

/// Blocks of `f64` subnormals: fractional lengths beyond any fixed-point format's, still exact.
#[test]
fn blocks_of_subnormals_are_exact() {
    use xbquant::{BlockFormat, Blocks};
    let units = [3u64 << 40, 5, 1 << 20, (1 << 45) + 12345, 0, 7 << 30];
    let x: Vec<f64> = units.iter().map(|&m| f64::from_bits(m)).collect();
    let wl = 5u32;
    let q = BlockFormat::new(wl)
        .unwrap()
        .quantize(&x, &Blocks::Runs(2), Rounding::NearestEven)
        .unwrap();
    for (pair, got) in units.chunks(2).zip(q.chunks(2)) {
        // In units of 2^-1074: the block's step is 2^s units, with s = e + 2 - wl + 1074.
        let top = pair[0].max(pair[1]);
        let lead = if top == 0 {
            0
        } else {
            63 - top.leading_zeros() as i64
        };
        let s = (lead + 2 - i64::from(wl)).max(0);
        for (&m, &g) in pair.iter().zip(got) {
            let (k, rem) = (m >> s, m & ((1 << s) - 1));
            let half = if s == 0 { 0 } else { 1 << (s - 1) };
            let k = if rem > half || (rem == half && s > 0 && k % 2 == 1) {
                k + 1
            } else {
                k
            };
            let k = k.min((1 << (wl - 1)) - 1);
            assert_eq!(g, ((k << s) as f64) * f64::from_bits(1), "{m} units");
        }
    }
}
