//! Properties over random formats and inputs (proptest), and the statistics of stochastic
//! rounding with stated tolerances.

use proptest::prelude::*;
use xbquant::half::{bf16, f16};
use xbquant::{Element, Error, FixedPoint, Overflow, QuantSpec, Rounding};

fn any_rounding() -> impl Strategy<Value = Rounding> {
    prop_oneof![
        Just(Rounding::NearestEven),
        Just(Rounding::NearestUp),
        Just(Rounding::NearestDown),
        Just(Rounding::NearestTowardZero),
        Just(Rounding::NearestAway),
        Just(Rounding::Floor),
        Just(Rounding::TowardZero),
        any::<u64>().prop_map(|seed| Rounding::Stochastic { seed }),
    ]
}

fn deterministic_rounding() -> impl Strategy<Value = Rounding> {
    proptest::sample::select(Rounding::DETERMINISTIC.to_vec())
}

fn any_overflow() -> impl Strategy<Value = Overflow> {
    prop_oneof![
        Just(Overflow::Saturate),
        Just(Overflow::SaturateSymmetric),
        Just(Overflow::SaturateZero),
        (0u32..4).prop_map(|sat_bits| Overflow::Wrap { sat_bits }),
        (0u32..4).prop_map(|sat_bits| Overflow::WrapSignMagnitude { sat_bits }),
        Just(Overflow::Unbounded),
    ]
}

/// Any valid format: wl 1..=64, fl across its whole legal range (mostly near wl), any sign and
/// overflow mode; combinations the format rejects are skipped.
fn any_format() -> impl Strategy<Value = FixedPoint> {
    (
        1u32..=64,
        prop_oneof![4 => -8i32..72, 1 => -1000i32..1022],
        any::<bool>(),
        any_overflow(),
    )
        .prop_filter_map("invalid combination", |(wl, fl, signed, overflow)| {
            FixedPoint::new(wl, fl.max(wl as i32 - 1023))
                .ok()?
                .with_signed(signed)
                .ok()?
                .with_overflow(overflow)
                .ok()
        })
}

/// Formats whose codes are exact in f64, with a scale that keeps inputs meaningful.
fn exact_format() -> impl Strategy<Value = FixedPoint> {
    (1u32..=40, -6i32..46, any::<bool>(), any_overflow()).prop_filter_map(
        "invalid combination",
        |(wl, fl, signed, overflow)| {
            FixedPoint::new(wl, fl)
                .ok()?
                .with_signed(signed)
                .ok()?
                .with_overflow(overflow)
                .ok()
        },
    )
}

/// Finite inputs on the scale of the format's range, ties and on-grid values included.
fn inputs_for(fmt: FixedPoint) -> impl Strategy<Value = Vec<f64>> {
    let (lo, hi) = fmt.range();
    let span = (hi - lo).max(fmt.step()) * 1.5;
    let step = fmt.step();
    prop::collection::vec(
        prop_oneof![
            (-1.0f64..1.0).prop_map(move |u| u * span),
            (-200i64..200).prop_map(move |k| k as f64 * step * 0.5),
        ],
        1..64,
    )
}

fn format_and_inputs() -> impl Strategy<Value = (FixedPoint, Vec<f64>)> {
    exact_format().prop_flat_map(|fmt| (Just(fmt), inputs_for(fmt)))
}

fn special_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(-5e-324),
        Just(f64::MAX),
        Just(f64::MIN),
    ]
}

fn is_integer(v: f64) -> bool {
    v.is_finite() && v == v.trunc()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// No input and no valid format makes any entry point panic, and every output is NaN (for
    /// NaN input only) or a value the format can produce.
    #[test]
    fn never_panics_and_stays_valid(fmt in any_format(), r in any_rounding(),
                                    x in prop::collection::vec(special_f64(), 0..40)) {
        let (q, mask) = fmt.quantize_with_mask(&x, r);
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let q32 = fmt.quantize(&x32, r);
        let (lo, hi) = fmt.word_codes();
        let step = fmt.step();
        for i in 0..x.len() {
            prop_assert_eq!(q[i].is_nan(), x[i].is_nan());
            prop_assert_eq!(q32[i].is_nan(), x32[i].is_nan());
            if x[i].is_nan() {
                prop_assert!(!mask[i]);
                continue;
            }
            prop_assert!(!(q[i] == 0.0 && q[i].is_sign_negative()), "-0.0 out");
            if fmt.clamps() {
                prop_assert!(q[i].is_finite());
                prop_assert!(q[i] >= lo as f64 * step && q[i] <= hi as f64 * step,
                    "{} out of the word: {:e} -> {:e}", fmt, x[i], q[i]);
            }
        }
        let result = fmt.to_codes(&x, r).map(|_| ());
        if !fmt.clamps() {
            prop_assert_eq!(result, Err(Error::UnboundedCodes));
        } else if !fmt.is_signed() && fmt.word_length() == 64 {
            prop_assert!(matches!(result, Err(Error::CodeTypeTooNarrow { .. })), "expected CodeTypeTooNarrow");
        } else if let Some(i) = x.iter().position(|v| v.is_nan()) {
            prop_assert_eq!(result, Err(Error::NanInput { index: i }));
        } else {
            prop_assert!(result.is_ok());
        }
    }

    /// Every output is a code of the word (on the grid and in range), and the most negative code
    /// never appears under saturate-symmetric.
    #[test]
    fn outputs_are_representable_codes((fmt, x) in format_and_inputs(), r in any_rounding()) {
        let q = fmt.quantize(&x, r);
        let (kmin, kmax) = fmt.word_codes();
        let scale = 1.0 / fmt.step();
        for (&xi, &qi) in x.iter().zip(&q) {
            let k = qi * scale;
            prop_assert!(is_integer(k), "{} {}: {:e} -> {:e} is off the grid", fmt, r, xi, qi);
            if fmt.clamps() {
                prop_assert!(k >= kmin as f64 && k <= kmax as f64);
            }
            if fmt.overflow() == Overflow::SaturateSymmetric && fmt.is_signed() {
                prop_assert!(k > kmin as f64, "most negative code emitted");
            }
        }
    }

    /// Quantizing twice changes nothing (every mode, stochastic included: on-grid values never
    /// move).
    #[test]
    fn idempotent((fmt, x) in format_and_inputs(), r in any_rounding()) {
        let once = fmt.quantize(&x, r);
        let twice = fmt.quantize(&once, r);
        prop_assert_eq!(once, twice);
    }

    /// Saturating and unbounded modes are monotone non-decreasing for deterministic rounding.
    #[test]
    fn saturating_modes_are_monotone(fmt in exact_format(), r in deterministic_rounding(),
                                     a in -1e3f64..1e3, b in -1e3f64..1e3) {
        prop_assume!(matches!(fmt.overflow(),
            Overflow::Saturate | Overflow::SaturateSymmetric | Overflow::Unbounded));
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let s = fmt.step();
        let q = fmt.quantize(&[lo * s * 8.0, hi * s * 8.0], r);
        prop_assert!(q[0] <= q[1], "{} {}: q({:e}) = {:e} > q({:e}) = {:e}", fmt, r, lo, q[0], hi, q[1]);
    }

    /// Nearest modes are within half a step inside the range; floor and toward-zero within a step.
    #[test]
    fn error_bounded_inside_range(fmt in exact_format(), r in deterministic_rounding(), u in 0.0f64..1.0) {
        let (lo, hi) = fmt.range();
        let x = lo + (hi - lo) * u;
        let q = fmt.quantize(&[x], r)[0];
        let bound = match r {
            Rounding::Floor | Rounding::TowardZero => fmt.step(),
            _ => fmt.step() / 2.0,
        };
        prop_assert!((q - x).abs() <= bound, "{} {}: {:e} -> {:e}", fmt, r, x, q);
    }

    /// Nearest-even, nearest-toward-zero, nearest-away and toward-zero are odd functions under a
    /// symmetric range; nearest-up(-x) = -nearest-down(x).
    #[test]
    fn odd_symmetry(wl in 1u32..=40, fl in -6i32..46, clamp in any::<bool>(),
                    x in prop::collection::vec(-1e6f64..1e6, 1..32)) {
        let fmt = FixedPoint::new(wl, fl).unwrap().with_clamp(clamp);
        let x: Vec<f64> = x.iter().map(|v| v * fmt.step()).collect();
        let neg: Vec<f64> = x.iter().map(|v| -v).collect();
        for r in [Rounding::NearestEven, Rounding::NearestTowardZero, Rounding::NearestAway,
                  Rounding::TowardZero] {
            let a = fmt.quantize(&x, r);
            let b: Vec<f64> = fmt.quantize(&neg, r).iter().map(|v| 0.0 - v).collect();
            prop_assert_eq!(a, b, "{}", r);
        }
        let up: Vec<f64> = fmt.quantize(&neg, Rounding::NearestUp).iter().map(|v| 0.0 - v).collect();
        prop_assert_eq!(up, fmt.quantize(&x, Rounding::NearestDown));
    }

    /// Stochastic rounding picks the floor or the ceiling of the scaled value, never further.
    #[test]
    fn stochastic_is_floor_or_ceil(wl in 2u32..=40, fl in -6i32..46, seed in any::<u64>(),
                                   x in prop::collection::vec(-1e4f64..1e4, 1..64)) {
        let fmt = FixedPoint::new(wl, fl).unwrap().with_clamp(false);
        let x: Vec<f64> = x.iter().map(|v| v * fmt.step()).collect();
        let q = fmt.quantize(&x, Rounding::Stochastic { seed });
        let s = fmt.step();
        for (&xi, &qi) in x.iter().zip(&q) {
            let t = xi / s;
            prop_assert!(qi / s == t.floor() || qi / s == t.ceil(), "{:e} -> {:e}", xi, qi);
        }
    }

    /// `f32` data (run in the `f32` lane where that is exact) gives the same bits as the same
    /// values quantized as `f64` and then rounded to `f32`, in every mode, across the whole `f32`
    /// range: subnormals, values whose scaled form leaves `f32`, infinities, NaN, every `fl` the
    /// narrow lane takes and beyond, words up to 26 bits (around the narrow lane's limit).
    #[test]
    fn f32_lane_equals_f64_lane(wl in 1u32..=26, fl in prop_oneof![3 => -8i32..34, 1 => -140i32..140],
                                signed in any::<bool>(), overflow in any_overflow(), r in any_rounding(),
                                x in prop::collection::vec(prop_oneof![
                                    any::<f32>(),
                                    (-1.0f32..1.0).prop_map(|u| u * 300.0),
                                    (-4000i32..4000).prop_map(|k| k as f32 / 64.0),
                                    Just(f32::MIN_POSITIVE), Just(-1e-45f32), Just(f32::MAX),
                                    Just(f32::INFINITY), Just(f32::NEG_INFINITY), Just(-0.0f32),
                                ], 1..48)) {
        let Some(fmt) = FixedPoint::new(wl, fl).ok()
            .and_then(|f| f.with_signed(signed).ok())
            .and_then(|f| f.with_overflow(overflow).ok()) else {
            return Ok(());
        };
        // Values at and just beyond the ends of the word's codes, where a bound that f32 cannot
        // hold would show.
        let mut x = x;
        let (kmin, kmax) = fmt.word_codes();
        for k in [kmin, kmax] {
            for d in -2..=2 {
                x.push(((k + d) as f64 * fmt.step()) as f32);
            }
        }
        let (q32, m32) = fmt.quantize_with_mask(&x, r);
        let wide: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let (q64, m64) = fmt.quantize_with_mask(&wide, r);
        for i in 0..x.len() {
            let want = q64[i] as f32;
            prop_assert!(q32[i].to_bits() == want.to_bits() || (q32[i].is_nan() && want.is_nan()),
                "{} {}: {:e} -> {:e} in f32, {:e} in f64", fmt, r, x[i], q32[i], q64[i]);
            prop_assert_eq!(m32[i], m64[i]);
        }
        let mut in_place = x.clone();
        fmt.quantize_in_place(&mut in_place, r);
        prop_assert_eq!(in_place.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        q32.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }

    /// `f16` and `bf16` data (staged through `f32` or `f64` buffers) give the `f64` result of the
    /// same values rounded once to the type, in every mode, with the same mask; so do the
    /// in-place and mask-only calls. Sizes cross the staging blocks (1024 elements), so a draw
    /// taken at the wrong index would show.
    #[test]
    fn half_types_equal_the_f64_result(wl in 1u32..=40, fl in prop_oneof![3 => -8i32..20, 1 => -140i32..140],
                                       signed in any::<bool>(), overflow in any_overflow(), r in any_rounding(),
                                       n in prop_oneof![1usize..40, 1000usize..2100],
                                       scale in -6i32..12, seed in any::<u64>()) {
        let Some(fmt) = FixedPoint::new(wl, fl).ok()
            .and_then(|f| f.with_signed(signed).ok())
            .and_then(|f| f.with_overflow(overflow).ok()) else {
            return Ok(());
        };
        // Fix the noise once, so that every call below draws the same.
        let spec = QuantSpec::new(fmt, r).resolve();
        let spec = if r.is_stochastic() { spec.with_seed(seed).unwrap() } else { spec };
        let wide: Vec<f64> = (0..n)
            .map(|i| (i as f64 * 0.618_033_988_7 + seed as f64).sin() * 2f64.powi(scale))
            .collect();
        fn check<H: Element>(spec: &QuantSpec, wide: &[f64]) -> Result<(), TestCaseError> {
            let x: Vec<H> = wide.iter().map(|&v| H::from_f64(v)).collect();
            let exact: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
            let (q64, m64) = spec.quantize_with_mask(&exact);
            let (q, m) = spec.quantize_with_mask(&x);
            for i in 0..x.len() {
                let want = H::from_f64(q64[i]);
                prop_assert!(q[i] == want || (q[i].to_f64().is_nan() && want.to_f64().is_nan()),
                    "{} {}: {:?} -> {:?}, want {:?} ({:e})", H::NAME, spec, x[i], q[i], want, q64[i]);
            }
            prop_assert_eq!(&m, &m64);
            let mut in_place = x.clone();
            let mut m2 = vec![false; x.len()];
            spec.quantize_in_place_with_mask(&mut in_place, &mut m2).unwrap();
            prop_assert!(in_place
                .iter()
                .zip(&q)
                .all(|(a, b)| a == b || (a.to_f64().is_nan() && b.to_f64().is_nan())));
            prop_assert_eq!(&m2, &m64);
            prop_assert_eq!(&spec.overflow_mask(&x), &m64);
            Ok(())
        }
        check::<f16>(&spec, &wide)?;
        check::<bf16>(&spec, &wide)?;
        check::<f32>(&spec, &wide)?;
        prop_assert_eq!(spec.overflow_mask(&wide), spec.quantize_with_mask(&wide).1);
    }

    /// Integer codes round-trip to the quantized values.
    #[test]
    fn codes_round_trip((fmt, x) in format_and_inputs(), r in deterministic_rounding()) {
        prop_assume!(fmt.clamps());
        let q = fmt.quantize(&x, r);
        if fmt.is_signed() {
            let codes = fmt.to_codes(&x, r).unwrap();
            prop_assert_eq!(fmt.from_codes::<i64, f64>(&codes).unwrap(), q);
        } else {
            let mut codes = vec![0u64; x.len()];
            fmt.to_codes_into(&x, &mut codes, r).unwrap();
            prop_assert_eq!(fmt.from_codes::<u64, f64>(&codes).unwrap(), q);
        }
    }
}

/// Mean error of stochastic rounding over `n` draws of the same value, in units of the standard
/// error of the mean; the noise of a fair rounding is Bernoulli(frac) in steps.
fn bias_in_sigmas(fmt: &FixedPoint, x: f64, n: usize, seed: u64) -> f64 {
    let input = vec![x; n];
    let q = fmt.quantize(&input, Rounding::Stochastic { seed });
    let step = fmt.step();
    let mean_err: f64 = q.iter().map(|v| (v - x) / step).sum::<f64>() / n as f64;
    let t = x / step;
    let p = t - t.floor();
    let sigma = (p * (1.0 - p) / n as f64).sqrt();
    mean_err / sigma
}

#[test]
fn stochastic_is_unbiased_within_4_sigma() {
    let n = 1_000_000;
    let cases = [
        (FixedPoint::new(8, 4).unwrap(), 0.3),
        (FixedPoint::new(8, 4).unwrap(), -1.23),
        (FixedPoint::new(32, 0).unwrap(), 1e6 + 0.3),
        (FixedPoint::new(32, 0).unwrap(), -(1e6 + 0.7)),
        (FixedPoint::new(40, 0).unwrap(), 2f64.powi(30) + 0.5),
        (FixedPoint::new(16, 20).unwrap(), 1e-5),
    ];
    for (i, (fmt, x)) in cases.iter().enumerate() {
        let z = bias_in_sigmas(fmt, *x, n, 1234 + i as u64);
        assert!(z.abs() < 4.0, "{fmt}: x = {x}: mean error {z:.2} sigma");
    }
}

#[test]
fn stochastic_f32_at_large_magnitude_is_unbiased() {
    // QPyTorch adds a float32 random number: at 2^22 and beyond its rounding is biased.
    let fmt = FixedPoint::new(32, 0).unwrap();
    let x = 4_194_304.5f32; // 2^22 + 0.5
    let q = fmt.quantize(&vec![x; 1_000_000], Rounding::Stochastic { seed: 99 });
    let ups = q.iter().filter(|&&v| v > x).count() as f64;
    let p = 0.5;
    let z = (ups / 1e6 - p) / (p * (1.0 - p) / 1e6).sqrt();
    assert!(z.abs() < 4.0, "rounded up {ups} times ({z:.2} sigma)");
}

#[test]
fn stochastic_never_moves_on_grid_values_and_keeps_zero_positive() {
    let fmt = FixedPoint::new(8, 3).unwrap();
    let x: Vec<f32> = (-100..100).map(|k| k as f32 / 8.0).collect();
    for seed in 0..50 {
        let q = fmt.quantize(&x, Rounding::Stochastic { seed });
        let want = fmt.quantize(&x, Rounding::NearestEven);
        assert_eq!(q, want);
        assert!(q.iter().all(|v| !(*v == 0.0 && v.is_sign_negative())));
    }
}

#[test]
fn seeds_reproduce_and_differ() {
    let fmt = FixedPoint::new(8, 2).unwrap();
    let x: Vec<f32> = (0..10_000).map(|i| (i as f32 * 0.013).sin()).collect();
    let a = fmt.quantize(&x, Rounding::Stochastic { seed: 1 });
    assert_eq!(a, fmt.quantize(&x, Rounding::Stochastic { seed: 1 }));
    let b = fmt.quantize(&x, Rounding::Stochastic { seed: 2 });
    let differ = a.iter().zip(&b).filter(|(p, q)| p != q).count();
    assert!(
        differ > 1000,
        "seeds 1 and 2 differ in {differ} of 10000 elements"
    );
    let f1 = fmt.quantize(&x, Rounding::StochasticFresh);
    let f2 = fmt.quantize(&x, Rounding::StochasticFresh);
    assert!(f1.iter().zip(&f2).filter(|(p, q)| p != q).count() > 1000);
}

/// Results equal the element-by-element reference whatever the thread count, the size (around
/// the parallel threshold), the alignment of the start and the length of the tail.
#[test]
fn threads_sizes_and_offsets_do_not_change_results() {
    let fmt = FixedPoint::new(10, 6).unwrap();
    let n = (1 << 17) + 4099;
    let x: Vec<f64> = (0..n).map(|i| ((i as f64) * 0.618).sin() * 20.0).collect();
    let pool = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    };
    for r in [
        Rounding::NearestEven,
        Rounding::NearestAway,
        Rounding::Stochastic { seed: 5 },
    ] {
        let serial = pool(1).install(|| fmt.quantize(&x, r));
        for threads in [2, 3, 8] {
            assert_eq!(
                pool(threads).install(|| fmt.quantize(&x, r)),
                serial,
                "{r}, {threads} threads"
            );
            let (with_mask, _) = pool(threads).install(|| fmt.quantize_with_mask(&x, r));
            assert_eq!(with_mask, serial);
            let mut in_place = x.clone();
            pool(threads).install(|| fmt.quantize_in_place(&mut in_place, r));
            assert_eq!(in_place, serial);
        }
        if r.is_stochastic() {
            continue;
        }
        // Deterministic modes: any sub-slice equals the element-by-element reference.
        for (start, len) in [
            (0, 1),
            (1, 7),
            (3, 33),
            (5, (1 << 17) - 1),
            (7, 1 << 17),
            (13, (1 << 17) + 1),
        ] {
            let part = fmt.quantize(&x[start..start + len], r);
            for (i, q) in part.iter().enumerate() {
                assert_eq!(*q, fmt.quantize_value(x[start + i], r));
            }
        }
    }
}

#[test]
fn mask_marks_exactly_the_overflowing_codes() {
    let fmt = FixedPoint::new(4, 2).unwrap().with_symmetric(false);
    let x = [1.875f32, 1.8, -2.0, -2.2, f32::NAN, f32::INFINITY, 0.0];
    let (q, mask) = fmt.quantize_with_mask(&x, Rounding::NearestEven);
    assert_eq!(mask, [true, false, false, true, false, true, false]);
    assert_eq!(&q[..4], &[1.75, 1.75, -2.0, -2.0]);
    let mut y = x;
    let mut m = [false; 7];
    fmt.quantize_in_place_with_mask(&mut y, &mut m, Rounding::NearestEven)
        .unwrap();
    assert_eq!(m.to_vec(), mask);
    assert!(matches!(
        fmt.quantize_in_place_with_mask(&mut y, &mut [false; 3], Rounding::NearestEven),
        Err(Error::LengthMismatch {
            input: 7,
            output: 3
        })
    ));
}
