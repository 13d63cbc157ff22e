//! Bit-exact checks against the golden vectors in `tests/data/`: QPyTorch's CPU kernel (the
//! seed's arithmetic, with its known misroundings corrected), XBTorch's range formula, and the
//! HLS `ap_fixed` types for every rounding and overflow mode.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use serde_json::Value;
use xbquant::{get_range_fixed_point, FixedPoint, QuantSpec, Rounding};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn load(name: &str) -> Value {
    let file = BufReader::new(File::open(data(name)).expect("golden file"));
    if name.ends_with(".gz") {
        serde_json::from_reader(flate2::read::GzDecoder::new(file)).expect("golden json")
    } else {
        serde_json::from_reader(file).expect("golden json")
    }
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|b| b.as_u64().expect("u64"))
        .collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    u64s(v)
        .into_iter()
        .map(|b| f32::from_bits(b as u32))
        .collect()
}

/// Golden comparison for the QPyTorch vectors: NaN as NaN, -0.0 equal to 0.0, else the bits.
fn same_f32(got: f32, want: f32) -> bool {
    (got.is_nan() && want.is_nan())
        || got.to_bits() == want.to_bits()
        || (got == 0.0 && want == 0.0)
}

fn seed_format(case: &Value) -> FixedPoint {
    let wl = case["wl"].as_u64().unwrap() as u32;
    let fl = case["fl"].as_i64().unwrap() as i32;
    FixedPoint::new(wl, fl)
        .unwrap()
        .with_symmetric(case["symmetric"].as_bool().unwrap())
        .with_clamp(case["clamp"].as_bool().unwrap())
}

#[test]
fn qpytorch_nearest_vectors_bit_exact_on_f32_and_f64() {
    let golden = load("fixed_point_nearest.json");
    let cases = golden["cases"].as_array().unwrap();
    let mut checked = 0;
    for case in cases {
        assert_eq!(case["rounding"], "nearest");
        let fmt = seed_format(case);
        let x = f32s(&case["x_bits"]);
        let want = f32s(&case["q_bits"]);
        let got32 = fmt.quantize(&x, Rounding::NearestEven);
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let got64 = fmt.quantize(&x64, Rounding::NearestEven);
        for i in 0..x.len() {
            assert!(
                same_f32(got32[i], want[i]),
                "f32 {fmt}: x = {:e}: got {:e}, want {:e}",
                x[i],
                got32[i],
                want[i]
            );
            assert!(
                same_f32(got64[i] as f32, want[i]),
                "f64 {fmt}: x = {:e}: got {:e}, want {:e}",
                x[i],
                got64[i],
                want[i]
            );
            assert!(
                !(got32[i] == 0.0 && got32[i].is_sign_negative()),
                "-0.0 out"
            );
            checked += 1;
        }
    }
    assert_eq!(cases.len(), 272);
    assert_eq!(checked, 85_753);
    eprintln!(
        "{checked} golden elements bit-exact in {} cases",
        cases.len()
    );
}

#[test]
fn qpytorch_deviations_give_the_exact_answer() {
    let golden = load("fixed_point_nearest.json");
    let deviations = golden["deviations"].as_array().unwrap();
    for d in deviations {
        let fmt = seed_format(d);
        let x = f32::from_bits(d["x_bits"].as_u64().unwrap() as u32);
        let exact = f32::from_bits(d["exact_bits"].as_u64().unwrap() as u32);
        let qtorch = f32::from_bits(d["qtorch_bits"].as_u64().unwrap() as u32);
        assert_ne!(exact.to_bits(), qtorch.to_bits());
        let got = fmt.quantize(&[x], Rounding::NearestEven)[0];
        assert!(
            same_f32(got, exact),
            "{fmt}: x = {x:e}: got {got:e}, want {exact:e}"
        );
        let got64 = fmt.quantize(&[f64::from(x)], Rounding::NearestEven)[0];
        assert!(same_f32(got64 as f32, exact));
    }
    assert_eq!(deviations.len(), 1015);
}

#[test]
fn ranges_bit_exact() {
    let golden = load("fixed_point_range.json");
    let ranges = golden["ranges"].as_array().unwrap();
    for r in ranges {
        let wl = r["wl"].as_u64().unwrap() as u32;
        let fl = r["fl"].as_i64().unwrap() as i32;
        let symmetric = r["symmetric"].as_bool().unwrap();
        let fmt = FixedPoint::new(wl, fl).unwrap().with_symmetric(symmetric);
        let (lo, hi) = get_range_fixed_point(&fmt);
        let want_lo = r["min"].as_f64().unwrap();
        let want_hi = r["max"].as_f64().unwrap();
        assert_eq!(
            (lo.to_bits(), hi.to_bits()),
            (want_lo.to_bits(), want_hi.to_bits()),
            "wl={wl} fl={fl} symmetric={symmetric}: got ({lo:e}, {hi:e})"
        );
        assert_eq!(fmt.range(), (lo, hi));
    }
    assert_eq!(ranges.len(), 6336);
}

#[test]
fn hls_ap_fixed_every_mode_bit_exact() {
    let golden = load("ap_fixed.json.gz");
    let cases = golden["cases"].as_array().unwrap();
    let (mut checked64, mut checked32) = (0usize, 0usize);
    for case in cases {
        let wl = case["wl"].as_u64().unwrap();
        let fl = case["fl"].as_i64().unwrap();
        let kind = if case["signed"].as_bool().unwrap() {
            "ap_fixed"
        } else {
            "ap_ufixed"
        };
        let hls = format!(
            "{kind}<{wl}, {}, {}, {}, {}>",
            wl as i64 - fl,
            case["rounding"].as_str().unwrap(),
            case["overflow"].as_str().unwrap(),
            case["sat_bits"].as_u64().unwrap()
        );
        let spec = QuantSpec::from_hls(&hls).unwrap_or_else(|e| panic!("{hls}: {e}"));
        let (fmt, rounding) = (*spec.format(), spec.rounding());
        let x = f32s(&case["x_bits"]);
        let want = u64s(&case["q_bits64"]);
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let got = fmt.quantize(&x64, rounding);
        for i in 0..x.len() {
            assert_eq!(
                got[i].to_bits(),
                want[i],
                "{hls}: x = {:e}: got {:e}, want {:e}",
                x[i],
                got[i],
                f64::from_bits(want[i])
            );
        }
        checked64 += x.len();
        if wl <= 24 {
            let got32 = fmt.quantize(&x, rounding);
            for i in 0..x.len() {
                assert_eq!(
                    f64::from(got32[i]).to_bits(),
                    want[i],
                    "{hls} f32: x = {:e}",
                    x[i]
                );
            }
            checked32 += x.len();
        }
    }
    assert_eq!(cases.len(), 1260);
    assert_eq!(checked64, 126_196);
    eprintln!("{checked64} ap_fixed elements bit-exact on f64, {checked32} on f32");
}
