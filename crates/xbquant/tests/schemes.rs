//! Schemes composed from parts: the text form round-trips, each composition equals the type it
//! composes (block floating point, per-group fixed point, the converter), a tensor quantized part
//! by part equals one call, percentile ranges equal their definition, and masks are the core's.

use xbquant::{
    BlockFormat, Blocks, Converter, ConverterNoise, ConverterRange, Data, ElementFormat,
    FixedPoint, FracLengthRule, Granularity, Grid, Observation, Overflow, Part, QuantSpec,
    Quantizer, Rounding, Scale, Scheme,
};

/// Data over several binades, with outliers and a few non-finite values.
fn data(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match i % 97 {
            13 => f32::NAN,
            41 => f32::INFINITY,
            77 => -40.0,
            _ => ((i as f32) * 0.61).sin() * 2f32.powi((i % 7) as i32 - 3),
        })
        .collect()
}

/// Checks two results bit for bit, naming the first difference.
#[track_caller]
fn same(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: element {i}: {} != {}", got[i], want[i]);
    }
}

const TEXTS: &[&str] = &[
    "fixed<8,4> overflow=saturate",
    "ufixed<6,2> overflow=wrap rounding=floor",
    "fixed<8,3> overflow=saturate-symmetric rounding=stochastic:7 group=axis:1 scale=pow2",
    "fixed<6,0> overflow=saturate group=axis:-1 scale=pow2-sqnr",
    "fixed<4,0> overflow=saturate-symmetric group=runs:32 scale=shared-exponent",
    "fixed<5,0> overflow=saturate group=axis:0 scale=fl:3,-2,5",
    "fixed<8,7> overflow=saturate-symmetric group=axis:1 range=percentile:99.5",
    "fixed<8,7> overflow=saturate-symmetric range=abs-max noise=gaussian:0.01 seed=3",
    "fixed<4,3> overflow=saturate-symmetric group=axis:0 range=each:0.5,2.0,0.0",
    "fixed<3,2> overflow=saturate-symmetric range=1.5 noise=uniform:0.25",
    "e4m3fn",
    "float16 overflow=saturate rounding=stochastic:11",
    "e3m2nx",
    "grid<0.1,-0.5,11>",
    "grid<0.25,0.0> rounding=nearest-away",
    "levels<-1.0,0.0,0.5,2.0> rounding=stochastic:5",
];

#[test]
fn text_form_round_trips() {
    for text in TEXTS {
        let s: Scheme = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(s.to_string(), *text, "canonical form of {text}");
        assert_eq!(s.to_string().parse::<Scheme>().unwrap(), s);
    }
    // HLS types and other spellings parse to the canonical form.
    let hls: Scheme = "ap_fixed<8,3,AP_RND,AP_SAT_SYM>".parse().unwrap();
    assert_eq!(
        hls.to_string(),
        "fixed<8,5> overflow=saturate-symmetric rounding=nearest-up"
    );
    let spaced: Scheme = "fixed< 8 , 4 >   rounding=NEAREST   group=tensor"
        .parse()
        .unwrap();
    assert_eq!(spaced.to_string(), "fixed<8,4> overflow=saturate-symmetric");
}

#[test]
fn bad_texts_are_named_errors() {
    for text in [
        "",
        "fixed<8>",
        "fixed<0,0>",
        "fixed<8,4> overflow",
        "fixed<8,4> colour=red",
        "fixed<8,4> group=axis:x",
        "fixed<8,4> group=runs:0",
        "fixed<8,4> scale=pow3",
        "fixed<8,4> scale=fl:1,x",
        "fixed<8,4> scale=fl:2000",
        "fixed<8,4> range=-1",
        "fixed<8,4> range=nan",
        "fixed<8,4> range=inf",
        "fixed<8,4> range=percentile:101",
        "fixed<8,4> range=percentile:-0.1",
        "fixed<8,4> noise=gaussian:0.1",
        "fixed<8,4> range=1 noise=gaussian:-1",
        "fixed<8,4> range=1 noise=gaussian:inf",
        "fixed<8,4> range=1 noise=pink:1",
        "fixed<8,4> seed=-1",
        "fixed<8,4> seed=18446744073709551616",
        "e4m3fn scale=pow2",
        "e4m3fn rounding=floor",
        "e4m3fn overflow=wrap",
        "grid<0,0>",
        "grid<0.1,0,0>",
        "grid<1e308,1e308,10>",
        "levels<>",
        "levels<1,nan>",
        "ufixed<8,0> scale=shared-exponent",
        "e9m30",
        "\u{0}",
    ] {
        assert!(text.parse::<Scheme>().is_err(), "{text:?} parsed");
    }
}

#[test]
fn compositions_equal_the_types_they_compose() {
    let x = data(6 * 250);
    let shape = [6, 250];
    for axis in [0usize, 1] {
        let blocks = Blocks::Axis {
            shape: shape.to_vec(),
            axis,
        };
        let g = Granularity::Axis(axis as i64);
        // Block floating point.
        let b = BlockFormat::new(5).unwrap();
        let want = b.quantize(&x, &blocks, Rounding::NearestEven).unwrap();
        let text = format!(
            "fixed<5,0> overflow=saturate-symmetric group=axis:{axis} scale=shared-exponent"
        );
        let s: Scheme = text.parse().unwrap();
        same(
            &s.quantize_shaped(&x, &shape).unwrap(),
            &want,
            &s.to_string(),
        );
        assert_eq!(s, b.scheme(g).unwrap());
        // Power-of-two fixed point per group, both rules.
        let f = FixedPoint::new(6, 0).unwrap();
        for (rule, name) in [
            (FracLengthRule::Max, "pow2"),
            (FracLengthRule::Sqnr, "pow2-sqnr"),
        ] {
            let fls = f.choose_frac_lengths(&x, &blocks, rule).unwrap();
            let mut want = vec![0f32; x.len()];
            f.quantize_slices_into(&x, &mut want, None, &blocks, &fls, Rounding::NearestEven)
                .unwrap();
            let s: Scheme =
                format!("fixed<6,0> overflow=saturate-symmetric group=axis:{axis} scale={name}")
                    .parse()
                    .unwrap();
            same(
                &s.quantize_shaped(&x, &shape).unwrap(),
                &want,
                &s.to_string(),
            );
        }
        // The converter, with noise.
        let adc = Converter::new(6)
            .unwrap()
            .with_noise(ConverterNoise::Gaussian(0.02), Some(9))
            .unwrap();
        let want = adc.convert(&x, &blocks, &ConverterRange::AbsMax).unwrap();
        let s: Scheme = format!(
            "fixed<6,5> overflow=saturate-symmetric group=axis:{axis} range=abs-max noise=gaussian:0.02 seed=9"
        )
        .parse()
        .unwrap();
        same(
            &s.quantize_shaped(&x, &shape).unwrap(),
            &want,
            &s.to_string(),
        );
    }
    // Fixed point alone is the spec.
    let spec = QuantSpec::from_hls("ap_fixed<7,2,AP_RND_CONV,AP_WRAP>").unwrap();
    let s = Scheme::from(spec);
    same(
        &Quantizer::quantize(&s, &x).unwrap(),
        &spec.quantize(&x),
        "spec",
    );
    assert_eq!(s.spec(), Some(spec));
}

/// Every scheme of the table, on a 3-d tensor, part by part (data-derived scales calibrated
/// from an observation of the parts first) equals one call, with masks; in place equals into.
#[test]
fn parts_equal_one_call() {
    let shape = [4, 5, 61];
    let n: usize = shape.iter().product();
    let x = data(n);
    for text in TEXTS {
        let s: Scheme = text.parse().unwrap();
        let s = match s.granularity() {
            Granularity::Axis(_) => s.with_granularity(Granularity::Axis(1)).unwrap(),
            _ => s,
        };
        let s = match s.scale() {
            Scale::Range(ConverterRange::PerSlice(_)) | Scale::FracLengths(_) => {
                let count = s
                    .granularity()
                    .groups(Part::shaped(&shape).unwrap())
                    .unwrap();
                let scale = match s.scale() {
                    Scale::FracLengths(_) => Scale::FracLengths((0..count as i32).collect()),
                    _ => Scale::Range(ConverterRange::PerSlice(
                        (0..count).map(|c| c as f64 * 0.5).collect(),
                    )),
                };
                s.with_scale(scale).unwrap()
            }
            _ => s,
        };
        if s.scale() == &Scale::PowerOfTwo(FracLengthRule::Sqnr) {
            continue; // searched over the whole tensor only: checked below
        }
        let s = s.resolve();
        let whole = Part::shaped(&shape).unwrap();
        let mut want = vec![0f32; n];
        let mut want_mask = vec![false; n];
        s.quantize_part(
            Data::Into {
                x: &x,
                out: &mut want,
            },
            Some(&mut want_mask),
            whole,
        )
        .unwrap();
        let mut seen = Observation::default();
        for (k, xs) in x.chunks(333).enumerate() {
            s.observe(xs, whole.at(k * 333), &mut seen).unwrap();
        }
        let fixed = s.calibrate::<f32>(&seen).unwrap();
        let mut got = vec![0f32; n];
        let mut mask = vec![false; n];
        for (k, ((xs, os), ms)) in x
            .chunks(333)
            .zip(got.chunks_mut(333))
            .zip(mask.chunks_mut(333))
            .enumerate()
        {
            fixed
                .quantize_part(Data::Into { x: xs, out: os }, Some(ms), whole.at(k * 333))
                .unwrap();
        }
        same(&got, &want, text);
        assert_eq!(mask, want_mask, "{text}");
        let mut buf = x.clone();
        let mut mask = vec![false; n];
        s.quantize_part(Data::InPlace(&mut buf), Some(&mut mask), whole)
            .unwrap();
        same(&buf, &want, &format!("{text} in place"));
        assert_eq!(mask, want_mask, "{text} in place");
        // A part alone cannot choose its scales.
        if s.scale().reads_data() {
            let mut out = vec![0f32; 10];
            let err = s.quantize_part(
                Data::Into {
                    x: &x[..10],
                    out: &mut out,
                },
                None,
                whole,
            );
            assert!(
                matches!(err, Err(xbquant::Error::InvalidScheme(_))),
                "{text}"
            );
        }
    }
}

#[test]
fn percentile_ranges_follow_their_definition() {
    let shape = [7, 300];
    let x = data(7 * 300);
    for p in [0.0, 12.5, 50.0, 99.0, 99.9, 100.0] {
        let s: Scheme =
            format!("fixed<8,7> overflow=saturate-symmetric group=axis:0 range=percentile:{p}")
                .parse()
                .unwrap();
        let mut seen = Observation::default();
        s.observe(&x, Part::shaped(&shape).unwrap(), &mut seen)
            .unwrap();
        let Scale::Range(ConverterRange::PerSlice(ranges)) =
            s.calibrate::<f32>(&seen).unwrap().scale().clone()
        else {
            panic!("no ranges");
        };
        for (row, r) in x.chunks(300).zip(&ranges) {
            // Sorted finite magnitudes, linear interpolation at (n - 1) p / 100.
            let mut v: Vec<f64> = row
                .iter()
                .map(|a| f64::from(*a).abs())
                .filter(|a| a.is_finite())
                .collect();
            v.sort_by(f64::total_cmp);
            let h = (v.len() - 1) as f64 * (p / 100.0);
            let (lo, t) = (h.floor() as usize, h - h.floor());
            let hi = (lo + 1).min(v.len() - 1);
            let want = if t >= 0.5 {
                v[hi] - (v[hi] - v[lo]) * (1.0 - t)
            } else {
                v[lo] + (v[hi] - v[lo]) * t
            };
            assert_eq!(r.to_bits(), want.to_bits(), "p {p}");
        }
    }
    // The 100th percentile is the abs-max, bit for bit.
    let adc = Converter::new(8).unwrap();
    let blocks = Blocks::Axis {
        shape: shape.to_vec(),
        axis: 1,
    };
    let a = adc.convert(&x, &blocks, &ConverterRange::AbsMax).unwrap();
    let b = adc
        .convert(&x, &blocks, &ConverterRange::Percentile(100.0))
        .unwrap();
    same(&a, &b, "percentile 100");
    // A lower percentile clips the outliers: the mask says which.
    let s: Scheme = "fixed<8,7> overflow=saturate-symmetric range=percentile:90"
        .parse()
        .unwrap();
    let (_, clipped) = s.quantize_with_mask(&x).unwrap();
    let share = clipped.iter().filter(|&&c| c).count() as f64 / x.len() as f64;
    assert!((0.08..0.13).contains(&share), "{share}");
}

/// A bounded grid's mask uses its last point as the core computes it, `offset + (levels - 1) *
/// step` rounded once: at 0.1 + 3 * 0.003 the value rounded twice is one ulp above.
#[test]
fn grid_masks_use_the_points_rounded_once() {
    let (step, offset, levels) = (0.003f64, 0.1f64, 4u64);
    let once = 3f64.mul_add(step, offset);
    let twice = offset + 3.0 * step;
    assert_eq!((once, twice), (0.109, 0.10900000000000001));
    let g = Grid::new(step, offset, Some(levels)).unwrap();
    assert_eq!(g.span().unwrap().1, once);
    let s = Scheme::new(g);
    let between = [once.max(twice), once.min(twice)];
    let (_, mask) = s.quantize_with_mask(&between).unwrap();
    assert_eq!(mask, [once < twice, false]);
    let s = Scheme::new(ElementFormat::Grid(g));
    assert_eq!(s.to_string(), "grid<0.003,0.1,4>");
}

#[test]
fn builders_check_their_parts() {
    let fixed = FixedPoint::new(8, 4).unwrap();
    let float = ElementFormat::Float("e5m2".parse().unwrap());
    assert!(Scheme::new(float.clone())
        .with_scale(Scale::PowerOfTwo(FracLengthRule::Max))
        .is_err());
    assert!(Scheme::new(float).with_rounding(Rounding::Floor).is_err());
    assert!(Scheme::new(fixed)
        .with_noise(ConverterNoise::Uniform(0.1), None)
        .is_err());
    assert!(Scheme::new(fixed)
        .with_scale(Scale::FracLengths(vec![1, 5000]))
        .is_err());
    assert!(Scheme::new(fixed)
        .with_granularity(Granularity::Runs(0))
        .is_err());
    // Calls fail on their data, named.
    let s = Scheme::new(fixed)
        .with_granularity(Granularity::Axis(2))
        .unwrap()
        .with_scale(Scale::PowerOfTwo(FracLengthRule::Max))
        .unwrap();
    assert!(s.quantize_shaped(&[1f32; 6], &[2, 3]).is_err());
    let s = Scheme::new(fixed)
        .with_granularity(Granularity::Axis(0))
        .unwrap()
        .with_scale(Scale::FracLengths(vec![1, 2, 3]))
        .unwrap();
    assert!(s.quantize_shaped(&[1f32; 6], &[2, 3]).is_err());
    let mut out = [0f32; 5];
    assert!(s
        .quantize_part(
            Data::Into {
                x: &[1f32; 6],
                out: &mut out
            },
            None,
            Part::flat(6)
        )
        .is_err());
    assert!(s
        .quantize_part(Data::InPlace(&mut [1f32; 6]), None, Part::flat(6).at(1))
        .is_err());
    assert!(Part::shaped(&[usize::MAX, 2]).is_err());
    // A range too large for f16 data.
    let s: Scheme = "fixed<8,7> overflow=saturate-symmetric range=1e10"
        .parse()
        .unwrap();
    assert!(s.quantize(&[xbquant::half::f16::ONE]).is_err());
    let w = FixedPoint::new(8, 4)
        .unwrap()
        .with_overflow(Overflow::Wrap { sat_bits: 0 })
        .unwrap();
    assert_eq!(
        Scheme::new(w).quantize_value(9.0).unwrap(),
        9.0 - 16.0,
        "wraps"
    );
}
