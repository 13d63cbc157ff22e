//! The worked example of the semantics (wl = 4, fl = 2: step 0.25, codes -8..=7) for every
//! rounding and overflow mode, and the documented behaviour of special values.

use xbquant::{FixedPoint, Overflow, QuantSpec, Rounding};

const X: [f64; 13] = [
    -2.375, -2.0, -1.125, -0.625, -0.375, -0.125, 0.125, 0.375, 0.625, 1.125, 1.875, 2.5, 9.0,
];

fn fmt(overflow: Overflow) -> FixedPoint {
    FixedPoint::new(4, 2)
        .unwrap()
        .with_overflow(overflow)
        .unwrap()
}

#[test]
fn rounding_rows_with_saturate() {
    let rows: [(Rounding, [f64; 13]); 7] = [
        (
            Rounding::NearestEven,
            [
                -2.0, -2.0, -1.0, -0.5, -0.5, 0.0, 0.0, 0.5, 0.5, 1.0, 1.75, 1.75, 1.75,
            ],
        ),
        (
            Rounding::NearestUp,
            [
                -2.0, -2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.25, 1.75, 1.75, 1.75,
            ],
        ),
        (
            Rounding::NearestDown,
            [
                -2.0, -2.0, -1.25, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.75, 1.75, 1.75,
            ],
        ),
        (
            Rounding::NearestTowardZero,
            [
                -2.0, -2.0, -1.0, -0.5, -0.25, 0.0, 0.0, 0.25, 0.5, 1.0, 1.75, 1.75, 1.75,
            ],
        ),
        (
            Rounding::NearestAway,
            [
                -2.0, -2.0, -1.25, -0.75, -0.5, -0.25, 0.25, 0.5, 0.75, 1.25, 1.75, 1.75, 1.75,
            ],
        ),
        (
            Rounding::Floor,
            [
                -2.0, -2.0, -1.25, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.75, 1.75, 1.75,
            ],
        ),
        (
            Rounding::TowardZero,
            [
                -2.0, -2.0, -1.0, -0.5, -0.25, 0.0, 0.0, 0.25, 0.5, 1.0, 1.75, 1.75, 1.75,
            ],
        ),
    ];
    for (rounding, want) in rows {
        assert_eq!(
            fmt(Overflow::Saturate).quantize(&X, rounding),
            want,
            "{rounding}"
        );
        let x32: Vec<f32> = X.iter().map(|&v| v as f32).collect();
        let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        assert_eq!(
            fmt(Overflow::Saturate).quantize(&x32, rounding),
            want32,
            "{rounding} f32"
        );
    }
}

#[test]
fn overflow_rows_with_floor() {
    let rows: [(Overflow, [f64; 13]); 6] = [
        (
            Overflow::SaturateZero,
            [
                0.0, -2.0, -1.25, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.75, 0.0, 0.0,
            ],
        ),
        (
            Overflow::SaturateSymmetric,
            [
                -1.75, -1.75, -1.25, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.75, 1.75, 1.75,
            ],
        ),
        (
            Overflow::Wrap { sat_bits: 0 },
            [
                1.5, -2.0, -1.25, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.75, -1.5, 1.0,
            ],
        ),
        (
            Overflow::Wrap { sat_bits: 1 },
            [
                -0.5, -2.0, -1.25, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.75, 0.5, 1.0,
            ],
        ),
        (
            Overflow::WrapSignMagnitude { sat_bits: 0 },
            [
                -1.75, -2.0, -1.25, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.75, 1.25, 1.0,
            ],
        ),
        (
            Overflow::Saturate,
            [
                -2.0, -2.0, -1.25, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.75, 1.75, 1.75,
            ],
        ),
    ];
    for (overflow, want) in rows {
        assert_eq!(
            fmt(overflow).quantize(&X, Rounding::Floor),
            want,
            "{overflow}"
        );
    }
    let unbounded = [
        -2.5, -2.0, -1.0, -0.5, -0.5, 0.0, 0.0, 0.5, 0.5, 1.0, 2.0, 2.5, 9.0,
    ];
    assert_eq!(
        fmt(Overflow::Unbounded).quantize(&X, Rounding::NearestEven),
        unbounded
    );
}

#[test]
fn special_values() {
    let inf = f64::INFINITY;
    let x = [inf, -inf, f64::NAN, -0.0, 1e300, -1e300];
    let check = |overflow: Overflow, want: [f64; 6]| {
        let q = fmt(overflow).quantize(&x, Rounding::NearestEven);
        for (i, (&got, &w)) in q.iter().zip(&want).enumerate() {
            if w.is_nan() {
                assert!(got.is_nan(), "{overflow} [{i}]");
            } else {
                assert_eq!(got.to_bits(), w.to_bits(), "{overflow} [{i}]: {got}");
            }
        }
    };
    let nan = f64::NAN;
    check(Overflow::Saturate, [1.75, -2.0, nan, 0.0, 1.75, -2.0]);
    check(
        Overflow::SaturateSymmetric,
        [1.75, -1.75, nan, 0.0, 1.75, -1.75],
    );
    check(Overflow::SaturateZero, [0.0, 0.0, nan, 0.0, 0.0, 0.0]);
    check(Overflow::Unbounded, [inf, -inf, nan, 0.0, 1e300, -1e300]);
    // Wrap modes: +-inf behaves as a huge value with all-zero low bits, like 1e300.
    check(
        Overflow::Wrap { sat_bits: 0 },
        [0.0, 0.0, nan, 0.0, 0.0, 0.0],
    );
    check(
        Overflow::Wrap { sat_bits: 1 },
        [0.0, -2.0, nan, 0.0, 0.0, -2.0],
    );
    check(
        Overflow::Wrap { sat_bits: 2 },
        [1.0, -2.0, nan, 0.0, 1.0, -2.0],
    );
    for sat_bits in 0..3 {
        let sm = fmt(Overflow::WrapSignMagnitude { sat_bits }).quantize(&x, Rounding::NearestEven);
        assert_eq!(sm[0], sm[4], "+inf as a huge value");
        assert_eq!(sm[1], sm[5], "-inf as a huge value");
        assert!(sm[2].is_nan());
    }
}

#[test]
fn f64_simulates_wide_words_exactly() {
    // 40-bit words: f32 cannot hold the codes, f64 can.
    let fmt = FixedPoint::new(40, 20).unwrap();
    let x = 123_456.789_012_345_f64;
    let q = fmt.quantize(&[x], Rounding::NearestEven)[0];
    assert_eq!(q, (x * 1048576.0).round_ties_even() / 1048576.0);
    // 64-bit words saturate to the nearest f64 of the bound.
    let wide = FixedPoint::new(64, 0).unwrap();
    assert_eq!(
        wide.quantize(&[1e30f64], Rounding::NearestEven),
        [2f64.powi(63)]
    );
    assert_eq!(
        wide.to_codes(&[1e30f64], Rounding::NearestEven).unwrap(),
        [i64::MAX]
    );
}

#[test]
fn half_precision_types() {
    use xbquant::half::{bf16, f16};
    let fmt = FixedPoint::new(8, 4).unwrap();
    let x: Vec<f16> = [0.03125f32, 0.09375, 100.0, -0.3]
        .iter()
        .map(|&v| f16::from_f32(v))
        .collect();
    let q: Vec<f32> = fmt
        .quantize(&x, Rounding::NearestEven)
        .iter()
        .map(|v| v.to_f32())
        .collect();
    assert_eq!(q, [0.0, 0.125, 7.9375, -0.3125]);
    let xb: Vec<bf16> = [0.03125f32, 0.09375, 100.0]
        .iter()
        .map(|&v| bf16::from_f32(v))
        .collect();
    let qb: Vec<f32> = fmt
        .quantize(&xb, Rounding::NearestEven)
        .iter()
        .map(|v| v.to_f32())
        .collect();
    // 7.9375 needs 7 significant bits: bf16 (8) holds it.
    assert_eq!(qb, [0.0, 0.125, 7.9375]);
}

#[test]
fn names_parse_and_print_back() {
    for r in Rounding::DETERMINISTIC {
        assert_eq!(r.name().parse::<Rounding>().unwrap(), r);
        assert_eq!(r.hls_name().unwrap().parse::<Rounding>().unwrap(), r);
    }
    for o in [
        Overflow::Saturate,
        Overflow::SaturateSymmetric,
        Overflow::SaturateZero,
        Overflow::Wrap { sat_bits: 0 },
        Overflow::Wrap { sat_bits: 2 },
        Overflow::WrapSignMagnitude { sat_bits: 1 },
        Overflow::Unbounded,
    ] {
        assert_eq!(o.name().parse::<Overflow>().unwrap(), o);
    }
    assert!("nearest-sideways".parse::<Rounding>().is_err());
    assert!("stochastic:x".parse::<Rounding>().is_err());
    assert!("saturate:2".parse::<Overflow>().is_err());
    assert!("clip".parse::<Overflow>().is_err());
    let msg = "bogus".parse::<Rounding>().unwrap_err().to_string();
    assert!(msg.contains("unknown rounding mode \"bogus\""), "{msg}");
}

#[test]
fn hls_types_parse_print_and_reject() {
    let spec = QuantSpec::from_hls("ap_fixed<16,6,AP_RND_ZERO,AP_WRAP_SM,2>").unwrap();
    let (f, r) = (*spec.format(), spec.rounding());
    assert_eq!(
        (f.word_length(), f.frac_length(), r),
        (16, 10, Rounding::NearestTowardZero)
    );
    assert_eq!(f.overflow(), Overflow::WrapSignMagnitude { sat_bits: 2 });
    assert_eq!(QuantSpec::from_hls(&spec.to_hls().unwrap()).unwrap(), spec);
    assert_eq!(spec.to_hls().unwrap().parse::<QuantSpec>().unwrap(), spec);
    assert_eq!(f.to_string(), "ap_fixed<16,6> wrap-sign-magnitude:2");
    let u = QuantSpec::from_hls("ap_ufixed<6,2>").unwrap();
    assert_eq!(u.to_string(), "ap_ufixed<6,2> wrap, rounding floor");
    assert_eq!(u.to_hls().unwrap(), "ap_ufixed<6,2,AP_TRN,AP_WRAP,0>");
    for bad in [
        "ap_fixed<8>",
        "ap_fixed<8,3",
        "ap_int<8>",
        "ap_fixed<0,0>",
        "ap_fixed<8,3,AP_FOO>",
        "ap_fixed<8,3,AP_TRN,AP_SAT,1>",
        "ap_fixed<8,x>",
        "ap_fixed<8,3,AP_TRN,AP_WRAP,9>",
        "ap_ufixed<8,3,AP_TRN,AP_WRAP_SM>",
        "ap_fixed<8,3,AP_TRN,AP_WRAP,0,1>",
    ] {
        assert!(QuantSpec::from_hls(bad).is_err(), "{bad}");
    }
    let fmt = FixedPoint::new(8, 2).unwrap();
    assert!(QuantSpec::new(fmt, Rounding::StochasticFresh)
        .to_hls()
        .is_err());
    assert!(QuantSpec::new(fmt.with_clamp(false), Rounding::Floor)
        .to_hls()
        .is_err());
}

#[test]
fn codes_into_narrow_types() {
    let fmt = FixedPoint::new(8, 7).unwrap().with_symmetric(false);
    let x = [0.5f32, -1.0, 0.99, -0.01];
    let mut c8 = [0i8; 4];
    fmt.to_codes_into(&x, &mut c8, Rounding::NearestEven)
        .unwrap();
    assert_eq!(c8, [64, -128, 127, -1]);
    assert_eq!(
        fmt.from_codes::<i8, f32>(&c8).unwrap(),
        fmt.quantize(&x, Rounding::NearestEven)
    );
    let mut c16 = [0i16; 4];
    fmt.to_codes_into(&x, &mut c16, Rounding::NearestEven)
        .unwrap();
    assert_eq!(c16, [64, -128, 127, -1]);
    let mut u8s = [0u8; 4];
    assert!(fmt
        .to_codes_into(&x, &mut u8s, Rounding::NearestEven)
        .is_err());
    let unsigned = FixedPoint::new(8, 0).unwrap().with_signed(false).unwrap();
    unsigned
        .to_codes_into(
            &[255.0f32, -3.0, 7.4, 300.0],
            &mut u8s,
            Rounding::NearestEven,
        )
        .unwrap();
    assert_eq!(u8s, [255, 0, 7, 255]);
    assert!(unsigned
        .to_codes_into(&[0.0f32; 4], &mut c8, Rounding::NearestEven)
        .is_err());
    assert!(fmt.to_codes(&[f32::NAN], Rounding::NearestEven).is_err());
    assert!(fmt.from_codes::<i16, f32>(&[200]).is_err());
}

/// `Element::SIGNIFICAND_BITS` is the widest word whose codes the type holds exactly.
#[test]
fn significand_bits_bound_exact_codes() {
    use xbquant::half::{bf16, f16};
    use xbquant::Element;
    fn check<T: Element>() {
        let wl = T::SIGNIFICAND_BITS;
        let fmt = FixedPoint::new(wl, 0).unwrap().with_symmetric(false);
        let (kmin, kmax) = fmt.word_codes();
        assert_eq!(fmt.levels(), (kmax - kmin + 1) as u128);
        let q = fmt.quantize(
            &[T::from_f64(1e30), T::from_f64(-1e30)],
            Rounding::NearestEven,
        );
        assert_eq!(q[0].to_f64(), kmax as f64, "{}", T::NAME);
        assert_eq!(q[1].to_f64(), kmin as f64, "{}", T::NAME);
    }
    check::<f32>();
    check::<f64>();
    check::<f16>();
    check::<bf16>();
}
