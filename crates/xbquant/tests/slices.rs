//! Per-slice fixed point and the ADC/DAC model against their definitions: per-slice results
//! equal one call per slice, chosen fractional lengths equal a search, conversions equal the
//! float arithmetic of XBTorch's formula, and noise repeats and has its distribution.

mod common;

use xbquant::{
    Blocks, Converter, ConverterNoise, ConverterRange, FixedPoint, FracLengthRule, Overflow,
    QuantSpec, Rounding,
};

/// Data over several binades, with one slice of zeros when the layout has more than one.
fn data(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32) * 0.61).sin() * 2f32.powi((i % 7) as i32 - 3))
        .collect()
}

/// The block of element `i` for slices along `axis` of `shape`, and the count.
fn slicing(shape: &[usize], axis: usize) -> (impl Fn(usize) -> usize + '_, usize) {
    let inner: usize = shape[axis + 1..].iter().product();
    (move |i| (i / inner) % shape[axis], shape[axis])
}

#[test]
fn per_slice_quantization_equals_one_call_per_slice() {
    let shapes: [&[usize]; 4] = [&[37], &[5, 300], &[3, 4, 50], &[2, 3, 4, 45]];
    for shape in shapes {
        let n: usize = shape.iter().product();
        let x = data(n);
        for axis in 0..shape.len() {
            let (block_of, count) = slicing(shape, axis);
            let blocks = Blocks::Axis {
                shape: shape.to_vec(),
                axis,
            };
            for (wl, signed, overflow) in [
                (6, true, Overflow::SaturateSymmetric),
                (5, false, Overflow::Saturate),
                (7, true, Overflow::Wrap { sat_bits: 0 }),
            ] {
                let base = FixedPoint::new(wl, 0)
                    .unwrap()
                    .with_signed(signed)
                    .unwrap()
                    .with_overflow(overflow)
                    .unwrap();
                let fls: Vec<i32> = (0..count).map(|b| (b % 5) as i32 + 1).collect();
                for rounding in [Rounding::NearestEven, Rounding::Stochastic { seed: 4 }] {
                    let mut q = vec![0f32; n];
                    let mut mask = vec![false; n];
                    base.quantize_slices_into(&x, &mut q, Some(&mut mask), &blocks, &fls, rounding)
                        .unwrap();
                    for (b, &fl) in fls.iter().enumerate() {
                        let spec = QuantSpec::new(base.with_frac_length(fl).unwrap(), rounding);
                        for i in (0..n).filter(|&i| block_of(i) == b) {
                            // Element i draws stream index i, whichever slice it is in.
                            let (want, over) = spec
                                .with_stream_start(i as u64)
                                .quantize_with_mask(&x[i..=i]);
                            assert_eq!(
                                (q[i], mask[i]),
                                (want[0], over[0]),
                                "{shape:?} axis {axis} {overflow:?} {rounding:?} element {i}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn chosen_frac_lengths_equal_a_search() {
    let shape = [6usize, 40];
    let mut x = data(240);
    for v in &mut x[40..80] {
        *v = 0.0; // a zero slice
    }
    x[100] = 127.0; // a slice whose maximum is exactly a code at fl = 0 of 8 bits
    x[130] = 127.5; // one just past it
    let blocks = Blocks::Axis {
        shape: shape.to_vec(),
        axis: 0,
    };
    for (wl, signed) in [(8, true), (8, false), (4, true), (16, true)] {
        let f = FixedPoint::new(wl, 0).unwrap().with_signed(signed).unwrap();
        let (_, code_max) = f.code_range();
        let fls = f
            .choose_frac_lengths(&x, &blocks, FracLengthRule::Max)
            .unwrap();
        for (b, &fl) in fls.iter().enumerate() {
            let top = x[b * 40..(b + 1) * 40]
                .iter()
                .fold(0f64, |m, v| m.max(f64::from(v.abs())));
            if top == 0.0 {
                assert_eq!(fl, if signed { wl as i32 - 2 } else { wl as i32 - 1 });
                continue;
            }
            // fl holds the maximum; fl + 1 does not.
            let fits = |fl: i32| top * 2f64.powi(fl) <= code_max as f64;
            assert!(
                fits(fl) && !fits(fl + 1),
                "wl {wl} slice {b}: {top} at fl {fl}"
            );
        }
        // SQNR: the least squared error among the Max choice and the four finer ones.
        let sq = f
            .choose_frac_lengths(&x, &blocks, FracLengthRule::Sqnr)
            .unwrap();
        for b in 0..6 {
            let slice = &x[b * 40..(b + 1) * 40];
            let sse = |fl: i32| -> f64 {
                let spec = QuantSpec::new(f.with_frac_length(fl).unwrap(), Rounding::NearestEven);
                spec.quantize(slice)
                    .iter()
                    .zip(slice)
                    .map(|(q, v)| (f64::from(*q) - f64::from(*v)).powi(2))
                    .sum()
            };
            let best = (fls[b]..=fls[b] + 4)
                .min_by(|a, c| sse(*a).partial_cmp(&sse(*c)).unwrap())
                .unwrap();
            assert_eq!(sq[b], best, "wl {wl} slice {b}");
        }
    }
    // Whole tensor and runs.
    let f = FixedPoint::new(8, 0).unwrap();
    assert_eq!(
        f.choose_frac_lengths(&[0.75f32, -3.5], &Blocks::Whole, FracLengthRule::Max)
            .unwrap(),
        [5]
    );
    assert_eq!(
        f.choose_frac_lengths(&[0.75f32, -3.5], &Blocks::Runs(1), FracLengthRule::Max)
            .unwrap(),
        [7, 5]
    );
}

/// XBTorch's `SimpleFixedPoint` formula, `max|v| * Q(v / max|v|)`, in float32 arithmetic.
fn xbtorch_formula(v: &[f32], range: f32, bits: u32) -> Vec<f32> {
    let q = QuantSpec::from(FixedPoint::new(bits, bits as i32 - 1).unwrap());
    let scaled: Vec<f32> = v.iter().map(|x| x / range).collect();
    q.quantize(&scaled).iter().map(|y| range * y).collect()
}

#[test]
fn converters_equal_the_xbtorch_formula() {
    let x: Vec<f32> = (0..3000)
        .map(|i| ((i as f32) * 0.37).sin() * 0.3 + ((i % 11) as f32) * 1e-3)
        .collect();
    for bits in [2, 4, 5, 8, 12] {
        let c = Converter::new(bits).unwrap();
        let top = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let got = c
            .convert(&x, &Blocks::Whole, &ConverterRange::AbsMax)
            .unwrap();
        assert_eq!(got, xbtorch_formula(&x, top, bits), "bits {bits}");
        // A fixed range, and per-column ranges of a 100 x 30 matrix.
        let got = c
            .convert(&x, &Blocks::Whole, &ConverterRange::Fixed(0.2))
            .unwrap();
        assert_eq!(got, xbtorch_formula(&x, 0.2, bits));
        let cols = Blocks::Axis {
            shape: vec![100, 30],
            axis: 1,
        };
        let got = c.convert(&x, &cols, &ConverterRange::AbsMax).unwrap();
        for j in 0..30 {
            let col: Vec<f32> = (0..100).map(|r| x[r * 30 + j]).collect();
            let top = col.iter().fold(0f32, |m, v| m.max(v.abs()));
            let want = xbtorch_formula(&col, top, bits);
            for r in 0..100 {
                assert_eq!(got[r * 30 + j], want[r], "bits {bits} column {j}");
            }
        }
    }
    // Zeros give zeros (XBTorch's formula gives NaN); NaN stays NaN; bad ranges are errors.
    let c = Converter::new(5).unwrap();
    assert_eq!(
        c.convert(&[0.0f32; 4], &Blocks::Whole, &ConverterRange::AbsMax)
            .unwrap(),
        [0.0; 4]
    );
    // The largest magnitude saturates at 15/16 of the range (as in XBTorch).
    let y = c
        .convert(
            &[f64::NAN, 0.5, -1.0],
            &Blocks::Whole,
            &ConverterRange::AbsMax,
        )
        .unwrap();
    assert!(y[0].is_nan() && y[1] == 0.5 && y[2] == -0.9375);
    assert!(c
        .convert(&[1.0f32], &Blocks::Whole, &ConverterRange::Fixed(-1.0))
        .is_err());
    assert!(c
        .convert(
            &[1.0f32, 2.0],
            &Blocks::Runs(1),
            &ConverterRange::PerSlice(vec![1.0])
        )
        .is_err());
    assert!(Converter::new(1).is_err());
    assert!(c
        .with_noise(ConverterNoise::Gaussian(f64::NAN), None)
        .is_err());
}

#[test]
fn noise_repeats_on_any_thread_count_and_has_its_distribution() {
    let n = 200_000;
    let x = vec![0f64; n];
    for (noise, var) in [
        (ConverterNoise::Gaussian(0.01), 1e-4),
        (ConverterNoise::Uniform(0.02), 0.02f64.powi(2) / 3.0),
    ] {
        // 24 bits: a step of 2^-23, far below the noise.
        let c = Converter::new(24)
            .unwrap()
            .with_noise(noise, Some(5))
            .unwrap();
        let range = ConverterRange::Fixed(1.0);
        let a = c.convert(&x, &Blocks::Whole, &range).unwrap();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = one.install(|| c.convert(&x, &Blocks::Whole, &range).unwrap());
        assert_eq!(a, b, "{noise:?}: thread count changed the result");
        let mean = a.iter().sum::<f64>() / n as f64;
        let v = a.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / n as f64;
        let sigma_mean = (var / n as f64).sqrt();
        assert!(mean.abs() < 4.0 * sigma_mean, "{noise:?}: mean {mean}");
        // The variance of a sample variance is about 2 var^2 / n (Gaussian), less (uniform).
        let sigma_var = (2.0 * var * var / n as f64).sqrt();
        assert!(
            (v - var).abs() < 4.0 * sigma_var + var * 1e-3,
            "{noise:?}: variance {v}"
        );
        // Another seed gives other noise; no noise gives the plain conversion.
        let other = c.with_noise(noise, Some(6)).unwrap();
        assert_ne!(a, other.convert(&x, &Blocks::Whole, &range).unwrap());
    }
}

/// A tensor gone through part by part, with parts of awkward lengths, equals one call on the
/// whole tensor: the slices' maxima and the quantized values (stochastic rounding included), on
/// every path of the kernel.
#[test]
fn parts_equal_the_whole_tensor() {
    use xbquant::TensorPart;
    let layouts: Vec<Blocks> = vec![
        Blocks::Whole,
        Blocks::Axis {
            shape: vec![7, 900],
            axis: 0,
        }, // runs of 900 (quantized directly)
        Blocks::Axis {
            shape: vec![30, 7, 30],
            axis: 1,
        }, // runs of 30 (scaled run by run)
        Blocks::Axis {
            shape: vec![900, 7],
            axis: 1,
        }, // runs of 1 (scaled by a period's table)
        Blocks::Runs(32),
    ];
    let n = 6300;
    let x = data(n);
    let f = FixedPoint::new(7, 0).unwrap();
    for blocks in &layouts {
        let fls = f
            .choose_frac_lengths(&x, blocks, FracLengthRule::Max)
            .unwrap();
        for rounding in [Rounding::NearestEven, Rounding::Stochastic { seed: 8 }] {
            let mut whole = vec![0f32; n];
            let mut whole_mask = vec![false; n];
            f.quantize_slices_into(
                &x,
                &mut whole,
                Some(&mut whole_mask),
                blocks,
                &fls,
                rounding,
            )
            .unwrap();
            for piece in [1000usize, 777, 4096] {
                let mut top = vec![0f64; fls.len()];
                let mut parts = vec![0f32; n];
                let mut mask = vec![false; n];
                for (k, ((xs, os), ms)) in x
                    .chunks(piece)
                    .zip(parts.chunks_mut(piece))
                    .zip(mask.chunks_mut(piece))
                    .enumerate()
                {
                    let part = TensorPart {
                        blocks,
                        len: n,
                        start: k * piece,
                    };
                    part.merge_slice_maxima(xs, &mut top).unwrap();
                    f.quantize_slices_part_into(xs, os, Some(ms), part, &fls, rounding)
                        .unwrap();
                }
                let from_parts: Vec<i32> = top.iter().map(|&m| f.frac_length_for(m)).collect();
                assert_eq!(from_parts, fls, "{blocks:?}: maxima by parts of {piece}");
                assert_eq!(parts, whole, "{blocks:?} {rounding:?}: parts of {piece}");
                assert_eq!(mask, whole_mask);
            }
        }
    }
    // A part beyond the tensor is an error.
    let part = TensorPart {
        blocks: &Blocks::Whole,
        len: 10,
        start: 8,
    };
    let mut out = [0f32; 3];
    assert!(f
        .quantize_slices_part_into(
            &[1.0f32; 3],
            &mut out,
            None,
            part,
            &[3],
            Rounding::NearestEven
        )
        .is_err());
    assert!(part.merge_slice_maxima(&[1.0f32; 3], &mut [0.0]).is_err());
}

/// Per-slice stochastic rounding with fractions set to each element's own draw never rounds up,
/// and with the next number above it always does, in `f64` and `f32` data, per row and per
/// column: the vector loops see only a draw's high bits, so these are the elements they must
/// leave undecided and settle with the exact draw.
#[test]
fn per_slice_stochastic_rounding_settles_fractions_at_the_draws() {
    let seed = 6;
    let rounding = Rounding::Stochastic { seed };
    let base = FixedPoint::new(6, 0).unwrap();
    let shape = [40, 64];
    let n = shape[0] * shape[1];
    for axis in 0..2 {
        let (block_of, count) = slicing(&shape, axis);
        let blocks = Blocks::Axis {
            shape: shape.to_vec(),
            axis,
        };
        let fls: Vec<i32> = (0..count).map(|b| (b % 5) as i32 + 1).collect();
        let step = |i: usize| 2f64.powi(-fls[block_of(i)]);
        let sign = |i: usize| if i % 4 < 2 { 1.0 } else { -1.0 };
        let want: Vec<f64> = (0..n)
            .map(|i| if i % 2 == 1 { sign(i) * step(i) } else { 0.0 })
            .collect();
        let x: Vec<f64> = common::fractions_at_draws(seed, n)
            .iter()
            .enumerate()
            .map(|(i, &f)| sign(i) * f * step(i))
            .collect();
        let mut q = vec![0f64; n];
        base.quantize_slices_into(&x, &mut q, None, &blocks, &fls, rounding)
            .unwrap();
        for i in 0..n {
            assert!(q[i] == want[i], "axis {axis} f64 {i}: {} -> {}", x[i], q[i]);
        }
        let x32: Vec<f32> = common::fractions_at_draws_f32(seed, n)
            .iter()
            .enumerate()
            .map(|(i, &f)| (sign(i) * f64::from(f) * step(i)) as f32)
            .collect();
        let mut q32 = vec![0f32; n];
        let mut mask = vec![true; n];
        base.quantize_slices_into(&x32, &mut q32, Some(&mut mask), &blocks, &fls, rounding)
            .unwrap();
        for i in 0..n {
            assert!(
                f64::from(q32[i]) == want[i],
                "axis {axis} f32 {i}: {} -> {}",
                x32[i],
                q32[i]
            );
        }
        assert!(mask.iter().all(|m| !m));
    }
}
