//! Values at the edges of the element types: grids whose points overflow `f64` (which once
//! looped forever), ranges and levels an element type cannot hold (which once gave NaN or
//! infinities), fractional lengths chosen from data at a type's largest value, and bit planes
//! whose digits do not fit their bits.

use xbquant::half::{bf16, f16};
use xbquant::{
    BitSlicing, Blocks, Converter, ConverterRange, Element, Error, FixedPoint, FracLengthRule,
    Grid, Levels, Rounding, SliceEncoding,
};

/// Every rounding: the deterministic ones and a seeded stochastic one.
fn roundings() -> impl Iterator<Item = Rounding> {
    Rounding::DETERMINISTIC
        .into_iter()
        .chain([Rounding::Stochastic { seed: 3 }])
}

fn p2(e: i32) -> f64 {
    2f64.powi(e)
}

/// Grids of huge steps and offsets finish in every mode, with the exact answer.
#[test]
fn huge_grids_finish_with_exact_points() {
    let cases: [(f64, f64, f64, f64); 7] = [
        // (step, offset, x, nearest-even point)
        (1e308, 0.0, 1e308, 1e308),
        (1e308, -1e308, 0.0, 0.0),
        (1e308, -1e308, 1e308, 1e308),
        (p2(1020), 0.0, 1.5 * p2(1020), p2(1021)),
        (p2(1020), 0.0, 2.5 * p2(1020), p2(1021)),
        (p2(1023), 0.0, -p2(1023), -p2(1023)),
        (p2(1000), 0.0, f64::MAX, f64::INFINITY),
    ];
    for (step, offset, x, nearest) in cases {
        let g = Grid::new(step, offset, None).unwrap();
        let q = g.quantize(&[x], Rounding::NearestEven).unwrap();
        assert_eq!(q, [nearest], "step {step:e} offset {offset:e} x {x:e}");
        for r in roundings() {
            let q = g.quantize(&[x, -x, 0.0, f64::MIN_POSITIVE], r).unwrap();
            for v in q {
                // Each result is a point of the grid (or beyond the f64 range).
                if v.is_finite() {
                    let k = (v - offset) / step;
                    assert_eq!(k, k.round(), "{r:?}: {v:e} is not a point");
                }
            }
        }
    }
    // Floor at the top of the range: the point below, finite.
    let g = Grid::new(p2(1000), 0.0, None).unwrap();
    let below = (p2(24) - 1.0) * p2(1000);
    assert_eq!(g.quantize(&[f64::MAX], Rounding::Floor).unwrap(), [below]);
    // Bounded: the end points.
    let g = Grid::new(1e308, -1e308, Some(3)).unwrap();
    assert_eq!(
        g.quantize(&[f64::MAX, -f64::MAX, 4e307], Rounding::NearestEven)
            .unwrap(),
        [1e308, -1e308, 0.0]
    );
    // A bounded grid whose last point is beyond f64 is refused.
    assert!(matches!(
        Grid::new(1e308, 0.0, Some(3)),
        Err(Error::InvalidGrid(_))
    ));
}

/// A grid point, level or converter range that the data's type cannot hold is refused with
/// an error naming the type; one that it holds works.
#[test]
fn values_the_element_type_cannot_hold_are_refused() {
    let x16 = [f16::from_f32(0.5), f16::from_f32(-0.25)];
    let x32 = [0.5f32, -0.25];
    let not_held = |e: Error, what: &str, dtype: &str| match &e {
        Error::NotRepresentable {
            what: w, dtype: d, ..
        } => {
            assert_eq!((*w, *d), (what, dtype), "{e}");
            assert!(e.to_string().contains(dtype), "{e}");
        }
        other => panic!("expected NotRepresentable, got {other:?}"),
    };
    // Levels.
    let levels = Levels::new(vec![-1e5, 1e5]).unwrap();
    not_held(
        levels.quantize(&x16, Rounding::NearestEven).unwrap_err(),
        "level",
        "f16",
    );
    assert_eq!(
        levels.quantize(&x32, Rounding::NearestEven).unwrap(),
        [1e5, -1e5]
    );
    // Grids: an unbounded one's step, a bounded one's end point.
    let g = Grid::new(1e5, 0.0, None).unwrap();
    not_held(
        g.quantize(&x16, Rounding::NearestEven).unwrap_err(),
        "step",
        "f16",
    );
    assert_eq!(g.quantize(&x32, Rounding::NearestEven).unwrap(), [0.0, 0.0]);
    let g = Grid::new(1e308, 0.0, None).unwrap();
    not_held(
        g.quantize(&x32, Rounding::NearestEven).unwrap_err(),
        "step",
        "f32",
    );
    let g = Grid::new(1.0, -70000.0, Some(10)).unwrap();
    not_held(
        g.quantize(&x16, Rounding::NearestEven).unwrap_err(),
        "grid point",
        "f16",
    );
    // Converter ranges: too large, and nonzero but 0 in the type.
    let dac = Converter::new(8).unwrap();
    for (range, dtype) in [(1e39, "f32"), (1e-50, "f32")] {
        not_held(
            dac.convert(&x32, &Blocks::Whole, &ConverterRange::Fixed(range))
                .unwrap_err(),
            "range",
            dtype,
        );
    }
    not_held(
        dac.convert(&x16, &Blocks::Whole, &ConverterRange::Fixed(1e5))
            .unwrap_err(),
        "range",
        "f16",
    );
    not_held(
        dac.convert(
            &[bf16::from_f32(1.0)],
            &Blocks::Whole,
            &ConverterRange::PerSlice(vec![1e39]),
        )
        .unwrap_err(),
        "range",
        "bf16",
    );
    // In f64 the same range is held: r * Q(x / r) with x / r tiny gives zeros.
    let q = dac
        .convert(
            &[0.5f64, -0.25],
            &Blocks::Whole,
            &ConverterRange::Fixed(1e39),
        )
        .unwrap();
    assert_eq!(q, [0.0, 0.0]);
    // A zero range stays allowed (zeros out).
    let q = dac
        .convert(&x32, &Blocks::Whole, &ConverterRange::Fixed(0.0))
        .unwrap();
    assert_eq!(q, [0.0, 0.0]);
}

fn finite_within<T: Element>(x: &[T]) {
    let f = FixedPoint::new(4, 0).unwrap();
    let fls = f
        .choose_frac_lengths(x, &Blocks::Whole, FracLengthRule::Max)
        .unwrap();
    let mut q = x.to_vec();
    f.quantize_slices_into(x, &mut q, None, &Blocks::Whole, &fls, Rounding::NearestEven)
        .unwrap();
    for (v, r) in x.iter().zip(&q) {
        assert!(
            r.to_f64().is_finite(),
            "{} -> {} (fl {fls:?})",
            v.to_f64(),
            r.to_f64()
        );
    }
    // The largest magnitude saturates to the format's largest value, at most T::MAX.
    let top = q.iter().map(|v| v.to_f64().abs()).fold(0.0, f64::max);
    assert_eq!(top, 7.0 * p2(-fls[0]), "{}", T::NAME);
    assert!(top <= T::MAX);
}

/// Fractional lengths chosen from data never make a type's largest values infinite.
#[test]
fn chosen_fractional_lengths_stay_within_the_type() {
    let f = FixedPoint::new(4, 0).unwrap();
    assert_eq!(f.frac_length_for(65504.0), -14);
    assert_eq!(f.frac_length_within(65504.0, f16::MAX.to_f64()), -13);
    // Where the type holds the coarser format, nothing changes.
    assert_eq!(
        f.frac_length_within(1000.0, f16::MAX.to_f64()),
        f.frac_length_for(1000.0)
    );
    assert_eq!(
        f.frac_length_within(3.4e38, f64::MAX),
        f.frac_length_for(3.4e38)
    );
    finite_within(&[f16::MAX, f16::from_f32(1.0), f16::from_f32(-60000.0)]);
    finite_within(&[f32::MAX, 1.0, -3e38]);
    finite_within(&[bf16::from_f32(3e38), bf16::from_f32(1.0)]);
    finite_within(&[f64::MAX, 1.0]);
    // Every word length and signedness, at each type's largest value.
    for wl in 2..=64 {
        for signed in [true, false] {
            let f = FixedPoint::new(wl, 0).unwrap().with_signed(signed).unwrap();
            for limit in [f16::MAX.to_f64(), bf16::MAX.to_f64(), f64::from(f32::MAX)] {
                let fl = f.frac_length_within(limit, limit);
                let (_, code_max) = f.code_range();
                let top = code_max as f64 * p2(-fl);
                assert!(top <= limit, "wl {wl} signed {signed}: {top:e} > {limit:e}");
                // One step coarser would exceed it (or hold the value).
                let coarser = code_max as f64 * p2(-(fl - 1));
                assert!(coarser > limit || limit * p2(fl) <= code_max as f64);
            }
        }
    }
}

/// Two's complement planes must hold their digits: out-of-range digits once wrapped silently.
#[test]
fn twos_complement_planes_hold_their_digits() {
    let s = BitSlicing::new(4, 2, SliceEncoding::TwosComplement).unwrap();
    assert_eq!(s.join(&[vec![3i64], vec![2]]).unwrap(), [-5]);
    for planes in [
        [vec![4i64], vec![0]],
        [vec![-1], vec![0]],
        [vec![0], vec![4]],
    ] {
        let e = s.join(&planes).unwrap_err();
        assert!(matches!(e, Error::InvalidBitSlicing(_)), "{e}");
        assert!(e.to_string().contains("outside 0..=3"), "{e}");
    }
    // A last plane of fewer bits: 5 bits in planes of 2 leave one bit on top.
    let s = BitSlicing::new(5, 2, SliceEncoding::TwosComplement).unwrap();
    assert!(s.join(&[vec![0i64], vec![0], vec![2]]).is_err());
    assert_eq!(s.join(&[vec![0i64], vec![0], vec![1]]).unwrap(), [-16]);
    // Sign-magnitude planes stay linear sums.
    let m = BitSlicing::new(4, 1, SliceEncoding::SignMagnitude).unwrap();
    assert_eq!(
        m.join(&[vec![3i64], vec![0], vec![0], vec![0]]).unwrap(),
        [3]
    );
}

/// `frac_length_within` on hostile arguments: any magnitude and any limit (NaN, infinities,
/// zero, negative, subnormal) give a fractional length the format takes, never a panic; a limit
/// that is not a positive finite number is no limit.
#[test]
fn frac_length_within_takes_any_argument() {
    let values = [
        0.0,
        -0.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        -f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        1.0,
        -3.5,
        65504.0,
    ];
    for wl in [1, 2, 8, 24, 53, 64] {
        for signed in [true, false] {
            let f = FixedPoint::new(wl, 0).unwrap().with_signed(signed).unwrap();
            for &max in &values {
                for &limit in &values {
                    let fl = f.frac_length_within(max, limit);
                    assert!(
                        f.with_frac_length(fl).is_ok(),
                        "wl {wl} signed {signed} max {max:e} limit {limit:e}: fl {fl}"
                    );
                    if !(limit.is_finite() && limit > 0.0) {
                        assert_eq!(fl, f.frac_length_for(max));
                    }
                }
            }
        }
    }
}

/// Schemes given hostile arguments: non-finite and huge values, axes and runs at the extremes
/// of their types, parts beyond their tensors, observations of another layout. Each is a named
/// error, never a panic or a silent wrong answer.
#[test]
fn schemes_refuse_hostile_arguments() {
    use xbquant::{
        ConverterNoise, Data, ErrorStats, Granularity, Observation, Part, Quantizer, Scale, Scheme,
    };
    let fixed = FixedPoint::new(8, 4).unwrap();
    let s = Scheme::new(fixed);
    for range in [f64::NAN, f64::INFINITY, -1.0, -0.0 - f64::MIN_POSITIVE] {
        let r = s
            .clone()
            .with_scale(Scale::Range(ConverterRange::Fixed(range)));
        assert!(matches!(r, Err(Error::InvalidRange(_))), "range {range}");
        let r = s
            .clone()
            .with_scale(Scale::Range(ConverterRange::PerSlice(vec![1.0, range])));
        assert!(
            matches!(r, Err(Error::InvalidRange(_))),
            "ranges [1, {range}]"
        );
    }
    for p in [f64::NAN, f64::INFINITY, -1e-300, 100.000_000_1, 1e300] {
        let r = s
            .clone()
            .with_scale(Scale::Range(ConverterRange::Percentile(p)));
        assert!(matches!(r, Err(Error::InvalidRange(_))), "percentile {p}");
    }
    let ranged = s
        .clone()
        .with_scale(Scale::Range(ConverterRange::AbsMax))
        .unwrap();
    for w in [f64::NAN, f64::INFINITY, -1.0] {
        for noise in [ConverterNoise::Gaussian(w), ConverterNoise::Uniform(w)] {
            assert!(matches!(
                ranged.clone().with_noise(noise, Some(1)),
                Err(Error::InvalidNoise(_))
            ));
        }
    }
    // A range too large for f16 or f32 data is refused for that data, not turned into infinities.
    let huge = s
        .clone()
        .with_scale(Scale::Range(ConverterRange::Fixed(1e300)))
        .unwrap();
    assert!(matches!(
        huge.quantize(&[f16::ONE]),
        Err(Error::NotRepresentable { .. })
    ));
    assert!(matches!(
        huge.quantize(&[1.0f32]),
        Err(Error::NotRepresentable { .. })
    ));
    assert_eq!(huge.quantize(&[1.0f64]).unwrap(), [0.0]); // 1 / 1e300 rounds to 0
                                                          // Axes and runs at the extremes.
    let x = [1.0f32; 6];
    for g in [
        Granularity::Axis(i64::MIN),
        Granularity::Axis(i64::MAX),
        Granularity::Axis(2),
        Granularity::Axis(-3),
    ] {
        let s = Scheme::new(fixed)
            .with_granularity(g)
            .unwrap()
            .with_scale(Scale::PowerOfTwo(FracLengthRule::Max))
            .unwrap();
        assert!(matches!(
            s.quantize_shaped(&x, &[2, 3]),
            Err(Error::InvalidBlocks(_))
        ));
    }
    let runs = Scheme::new(fixed)
        .with_granularity(Granularity::Runs(usize::MAX))
        .unwrap()
        .with_scale(Scale::PowerOfTwo(FracLengthRule::Max))
        .unwrap();
    // One run longer than any tensor is one group: the whole tensor's power of two (max 3.3:
    // fl 5, codes up to 127 in steps of 1/32).
    let varied = [0.3f32, -3.3, 1.7, 0.01, -0.6, 2.2];
    let whole = Scheme::new(fixed)
        .with_scale(Scale::PowerOfTwo(FracLengthRule::Max))
        .unwrap();
    assert_eq!(
        runs.quantize(&varied).unwrap(),
        whole.quantize(&varied).unwrap()
    );
    assert_eq!(
        runs.quantize(&varied).unwrap(),
        Scheme::new(fixed.with_frac_length(5).unwrap())
            .quantize(&varied)
            .unwrap()
    );
    // Empty per-group lists: no group to give them to, and a text that would not parse back.
    assert!(matches!(
        Scheme::new(fixed).with_scale(Scale::FracLengths(vec![])),
        Err(Error::InvalidScheme(_))
    ));
    assert!(matches!(
        Scheme::new(fixed).with_scale(Scale::Range(ConverterRange::PerSlice(vec![]))),
        Err(Error::InvalidScheme(_))
    ));
    // Parts beyond their tensor, and shapes that overflow.
    assert!(Part::shaped(&[usize::MAX, 2]).is_err());
    assert!(Part::shaped(&[1 << 40, 1 << 40]).is_err());
    let mut out = [0f32; 3];
    for part in [
        Part::flat(2),
        Part::flat(6).at(4),
        Part::flat(6).at(usize::MAX),
    ] {
        let r = s.quantize_part(
            Data::Into {
                x: &x[..3],
                out: &mut out,
            },
            None,
            part,
        );
        assert!(matches!(r, Err(Error::InvalidBlocks(_))));
    }
    // Observations: nothing seen, another layout, the SQNR rule's whole-tensor search.
    let rows = Scheme::new(fixed)
        .with_granularity(Granularity::Axis(0))
        .unwrap()
        .with_scale(Scale::PowerOfTwo(FracLengthRule::Max))
        .unwrap();
    assert!(matches!(
        rows.calibrate::<f32>(&Observation::default()),
        Err(Error::InvalidScheme(_))
    ));
    let mut seen = Observation::default();
    rows.observe(&x, Part::shaped(&[2, 3]).unwrap(), &mut seen)
        .unwrap();
    assert!(rows
        .observe(&x, Part::shaped(&[3, 2]).unwrap(), &mut seen)
        .is_err());
    let sqnr = rows
        .clone()
        .with_scale(Scale::PowerOfTwo(FracLengthRule::Sqnr))
        .unwrap();
    assert!(matches!(
        sqnr.calibrate::<f32>(&seen),
        Err(Error::InvalidScheme(_))
    ));
    // Error statistics of mismatched buffers.
    assert!(matches!(
        ErrorStats::of(&x, &x[..5], &[false; 6]),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        ErrorStats::of(&x, &x, &[false; 5]),
        Err(Error::LengthMismatch { .. })
    ));
}
