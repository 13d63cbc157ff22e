//! The exact integer cast against the core's quantization (itself checked against the `ap_types`
//! headers' outputs): every rounding and overflow mode, signed and unsigned, with saturation bits,
//! on values around the range, ties, huge and tiny magnitudes and subnormals, for words the
//! core's `f64` results hold exactly; and the cast of exact codes far beyond `f64`.

use xbquant::QuantSpec;
use xbquant_fixed::{Error, FixedType};

const ROUNDINGS: [&str; 7] = [
    "AP_TRN",
    "AP_TRN_ZERO",
    "AP_RND",
    "AP_RND_ZERO",
    "AP_RND_MIN_INF",
    "AP_RND_INF",
    "AP_RND_CONV",
];

/// Every supported overflow mode of a word, with saturation bits where they apply.
fn overflows(signed: bool, width: u32) -> Vec<String> {
    let mut modes: Vec<String> = ["AP_SAT", "AP_SAT_ZERO", "AP_SAT_SYM", "AP_WRAP"]
        .iter()
        .map(|m| format!("{m},0"))
        .collect();
    if signed {
        for n in [1, 2, width.min(3)] {
            modes.push(format!("AP_WRAP,{n}"));
            modes.push(format!("AP_WRAP_SM,{n}"));
        }
        modes.push("AP_WRAP_SM,0".into());
    }
    modes
}

/// Values around a type's range and step: ties, codes just past the ends, far beyond them, and
/// the extremes of `f64`.
fn values(width: u32, frac: i32, seed: u64) -> Vec<f64> {
    let step = 2f64.powi(-frac);
    let top = 2f64.powi(width as i32) * step;
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut v = vec![
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE / 8.0,
        5e-324,
        1e300,
        -1e300,
        f64::MAX,
        f64::MIN,
        top,
        -top,
        top / 2.0,
        -top / 2.0,
        top / 2.0 - step / 2.0,
        -top / 2.0 - step / 2.0,
    ];
    for _ in 0..400 {
        let u = next() * 2.0 - 1.0;
        v.push(u * top * 1.5);
        // Ties and quarter steps.
        let code = (u * top / step * 1.2).round();
        v.push((code + 0.5) * step);
        v.push((code + 0.25 * (next() * 4.0).floor()) * step);
        v.push(u * step * 3.0);
    }
    v
}

#[test]
fn casts_of_values_equal_the_cores_quantization() {
    let mut checked = 0;
    for signed in [true, false] {
        for (width, integer) in [
            (1, 1),
            (4, 2),
            (8, 3),
            (8, 10),
            (12, -2),
            (16, 6),
            (24, 24),
            (40, 8),
            (52, 20),
        ] {
            for q in ROUNDINGS {
                for o in overflows(signed, width) {
                    let name = if signed { "ap_fixed" } else { "ap_ufixed" };
                    let hls = format!("{name}<{width},{integer},{q},{o}>");
                    let Ok(spec) = QuantSpec::from_hls(&hls) else {
                        continue; // modes the type refuses (the core says why)
                    };
                    let ty = FixedType::parse(&hls).unwrap();
                    for x in values(width, width as i32 - integer, u64::from(width) * 31 + 7) {
                        let (code, _) = ty.cast_f64(x).unwrap();
                        let ours = (code as f64) * 2f64.powi(-ty.frac());
                        let core = spec.quantize_value(x);
                        assert!(
                            ours == core,
                            "{hls} of {x:e}: ours {ours:e} (code {code}), the core {core:e}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 500_000, "{checked}");
}

#[test]
fn casts_of_wide_codes_are_exact() {
    // 2^100 + 2^40 + 3 at 60 fractional bits into ap_fixed<64,50,AP_RND_CONV,AP_WRAP>: 14
    // fractional bits, so the code is (2^100 + 2^40 + 3) / 2^46 rounded, wrapped to 64 bits.
    let ty = FixedType::parse("ap_fixed<64,50,AP_RND_CONV,AP_WRAP>").unwrap();
    let code: i128 = (1 << 100) + (1 << 40) + 3;
    let (out, over) = ty.cast(code, 60);
    let exact: i128 = 1 << 54; // 2^40 + 3 is below half of 2^46: rounded off
    assert_eq!((out, over), (exact, false));
    // Shifted left by 100 bits, beyond the word: wrapped to its low 64 bits (all zero) and
    // saturated to the largest code.
    let (wrapped, over) = ty.cast(3, -100);
    assert_eq!((wrapped, over), (0, true));
    let saturating = FixedType::parse("ap_fixed<64,50,AP_TRN,AP_SAT>").unwrap();
    assert_eq!(saturating.cast(-3, -100), (i64::MIN.into(), true));
    assert_eq!(saturating.cast(3, -100), (i64::MAX.into(), true));
    // Ties at the largest shifts: -2^127 at 128 more fractional bits is exactly -1/2.
    let rnd = FixedType::parse("ap_fixed<8,8,AP_RND,AP_SAT>").unwrap();
    assert_eq!(rnd.cast(i128::MIN, 128), (0, false)); // ties toward +inf
    let rnd_inf = FixedType::parse("ap_fixed<8,8,AP_RND_INF,AP_SAT>").unwrap();
    assert_eq!(rnd_inf.cast(i128::MIN, 128), (-1, false)); // away from zero
    assert_eq!(rnd_inf.cast(i128::MIN, 129), (0, false)); // -1/4
    assert_eq!(rnd_inf.cast(i128::MAX, 128), (0, false)); // just below 1/2
    let trn = FixedType::parse("ap_fixed<8,8>").unwrap();
    assert_eq!(trn.cast(-1, 400), (-1, false)); // floor of a tiny negative
    assert_eq!(trn.cast(1, 400), (0, false));
}

#[test]
fn types_beyond_the_supported_ones_are_clear_errors() {
    for bad in [
        "ap_fixed<65,3>",
        "ap_fixed<8,600>",
        "ap_fixed<8,-600>",
        "ap_int<8>",
        "ap_fixed<8>",
        "float",
        "",
    ] {
        assert!(
            matches!(FixedType::parse(bad), Err(Error::InvalidType(..))),
            "{bad}"
        );
    }
    let t = FixedType::parse("ap_ufixed<8,4,AP_RND,AP_SAT>").unwrap();
    assert_eq!(t.hls(), "ap_ufixed<8,4,AP_RND,AP_SAT,0>");
    assert_eq!(FixedType::parse(&t.hls()).unwrap(), t);
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(matches!(t.cast_f64(v), Err(Error::NotFinite(_))));
    }
}
