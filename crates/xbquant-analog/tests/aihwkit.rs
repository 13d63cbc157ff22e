//! The tile's outputs against aihwkit 1.2.0's torch tile (`AnalogMVM.matmul`), noise off, for a
//! table of `IOParameters` and shapes, one of them tiled (`scripts/aihwkit-reference.py` made
//! the data). In float64 the outputs are aihwkit's bit for bit except where the two matrix
//! products (ours in its fixed order, aihwkit's from torch's BLAS) differ in the last bit next to an
//! ADC step: those are counted and must be rare, and each within one step. In float32, within
//! one step.

use std::io::Read;

use serde_json::Value;
use xbquant_analog::{mvm, BoundManagement, IoParameters, NoiseManagement, PcmLikeNoise};

/// A float written by Python's `float.hex()`.
fn hex(s: &str) -> f64 {
    match s {
        "inf" => return f64::INFINITY,
        "-inf" => return f64::NEG_INFINITY,
        "nan" => return f64::NAN,
        _ => {}
    }
    let (negative, rest) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let rest = rest.strip_prefix("0x").expect("hex float");
    let (mantissa, exponent) = rest.split_once('p').expect("exponent");
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut bits: u64 = u64::from_str_radix(whole, 16).expect("whole part");
    for c in fraction.chars() {
        bits = (bits << 4) | u64::from(c.to_digit(16).expect("hex digit"));
    }
    let exponent: i32 = exponent.parse::<i32>().expect("exponent") - 4 * fraction.len() as i32;
    // bits * 2^exponent, in two exact steps (bits < 2^53).
    let half = exponent / 2;
    let v = bits as f64 * 2f64.powi(half) * 2f64.powi(exponent - half);
    if negative {
        -v
    } else {
        v
    }
}

fn io_of(case: &Value) -> IoParameters {
    let f = |k: &str| case[k].as_f64().unwrap_or_else(|| panic!("{k}"));
    IoParameters {
        inp_bound: f("inp_bound"),
        inp_res: f("inp_res"),
        inp_noise: 0.0,
        out_bound: f("out_bound"),
        out_res: f("out_res"),
        out_noise: 0.0,
        out_scale: f("out_scale"),
        noise_management: match case["noise_management"].as_str().unwrap() {
            "none" => NoiseManagement::None,
            "abs_max" => NoiseManagement::AbsMax,
            "max" => NoiseManagement::Max,
            "constant" => NoiseManagement::Constant,
            other => panic!("{other}"),
        },
        nm_thres: f("nm_thres"),
        bound_management: match case["bound_management"].as_str().unwrap() {
            "none" => BoundManagement::None,
            "iterative" => BoundManagement::Iterative,
            other => panic!("{other}"),
        },
        max_bm_factor: f("max_bm_factor"),
        max_bm_res: f("max_bm_res"),
        ..IoParameters::default()
    }
}

/// The reference data: the table of products and the noise statistics.
fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/aihwkit_mvm.json.gz"
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("reference data"))
        .read_to_string(&mut text)
        .expect("gzip");
    serde_json::from_str(&text).expect("json")
}

fn records() -> Vec<Value> {
    reference()["records"].as_array().expect("records").clone()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| hex(s.as_str().expect("hex string")))
        .collect()
}

/// The largest distance between neighbouring outputs an ADC step can make in this case: the
/// step, times `out_scale`, times the largest input scale noise and bound management can undo.
fn step_bound(io: &IoParameters, x: &[f64], rows: usize, n: usize) -> f64 {
    let res = if io.out_res > 1.0 {
        1.0 / io.out_res
    } else {
        io.out_res
    };
    let step = res * 2.0 * io.out_bound;
    let largest = (0..rows)
        .map(|r| {
            x[r * n..(r + 1) * n]
                .iter()
                .fold(0f64, |m, v| m.max(v.abs()))
        })
        .fold(1f64, f64::max);
    let bm = if io.bound_management == BoundManagement::None {
        1.0
    } else {
        2.0 * io.max_bm_factor
    };
    step * io.out_scale.abs() * largest.max(1.0) * bm
}

#[test]
fn outputs_equal_aihwkit() {
    let (mut with_adc, mut with_adc_differ, mut without_adc, mut without_adc_differ) = (0, 0, 0, 0);
    let (mut compared32, mut equal32, mut refused) = (0, 0, 0);
    for (i, rec) in records().iter().enumerate() {
        let io = io_of(&rec["io"]);
        let (rows, n, k) = (
            rec["rows"].as_u64().unwrap() as usize,
            rec["in"].as_u64().unwrap() as usize,
            rec["out"].as_u64().unwrap() as usize,
        );
        let tile = rec["tile"].as_array().map_or((0, 0), |t| {
            (
                t[0].as_u64().unwrap() as usize,
                t[1].as_u64().unwrap() as usize,
            )
        });
        let x = floats(&rec["x"]);
        let w = floats(&rec["w"]);
        let want64 = floats(&rec["y"]["float64"]);
        let want32 = floats(&rec["y"]["float32"]);
        if io.check().is_err() {
            // Only an ADC that quantizes without a bound is refused: aihwkit divides by a step
            // of 0 there and returns NaN.
            assert!(io.out_res > 0.0 && io.out_bound == 0.0, "case {i}: {io:?}");
            assert!(want64.iter().any(|v| v.is_nan()), "case {i}");
            refused += 1;
            continue;
        }
        let got = mvm(&x, rows, n, &w, k, &io, tile, 0).expect("mvm");
        let tolerance = step_bound(&io, &x, rows, n);
        for (j, (&g, &e)) in got.iter().zip(&want64).enumerate() {
            let (r, o) = (j / k, j % k);
            if io.out_res > 0.0 {
                with_adc += 1;
                if g.to_bits() != e.to_bits() {
                    with_adc_differ += 1;
                    assert!(
                        (g - e).abs() <= tolerance,
                        "case {i} element {j}: {g} against aihwkit's {e}"
                    );
                }
            } else {
                // No ADC: the products themselves, whose sums differ in order (a few ulps of
                // the sum of the terms' magnitudes).
                without_adc += 1;
                if g.to_bits() != e.to_bits() {
                    without_adc_differ += 1;
                    let magnitude: f64 = (0..n).map(|c| (x[r * n + c] * w[o * n + c]).abs()).sum();
                    let bound = 1e-13 * io.out_scale.abs() * magnitude.max(1e-300);
                    assert!(
                        (g - e).abs() <= bound,
                        "case {i} element {j}: {g} against aihwkit's {e}"
                    );
                }
            }
        }
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        let got32 = mvm(&x32, rows, n, &w32, k, &io, tile, 0).expect("mvm f32");
        for (j, (&g, &e)) in got32.iter().zip(&want32).enumerate() {
            let (r, o) = (j / k, j % k);
            compared32 += 1;
            let g = f64::from(g);
            equal32 += usize::from(g == e);
            let magnitude: f64 = (0..n).map(|c| (x[r * n + c] * w[o * n + c]).abs()).sum();
            let close = g == e
                || (g - e).abs() <= 1e-5 * io.out_scale.abs() * magnitude
                || (g - e).abs() <= tolerance;
            assert!(
                close,
                "float32 case {i} element {j}: {g} against aihwkit's {e}"
            );
        }
    }
    println!(
        "float64: {with_adc} outputs through an ADC, {with_adc_differ} differ; {without_adc} without, \
         {without_adc_differ} differ in their last bits; float32: {equal32} of {compared32} equal; \
         {refused} cases refused"
    );
    assert!(with_adc > 1500 && without_adc > 300);
    // The products' last bits change an ADC step only next to a tie: rare.
    assert!(
        with_adc_differ * 200 <= with_adc,
        "{with_adc_differ} of {with_adc} differ"
    );
}

/// With the noise on, each output's mean and standard deviation over 100,000 products of one
/// input vector agree with aihwkit's within sampling error (4.5 standard errors).
#[test]
fn noise_statistics_agree_with_aihwkit() {
    let data = reference();
    let configs = data["noise"].as_array().expect("noise");
    assert_eq!(configs.len(), 3);
    for (c, config) in configs.iter().enumerate() {
        let io_json = &config["io"];
        let io = IoParameters {
            inp_noise: io_json["inp_noise"].as_f64().unwrap(),
            out_noise: io_json["out_noise"].as_f64().unwrap(),
            inp_res: io_json["inp_res"].as_f64().unwrap(),
            out_res: io_json["out_res"].as_f64().unwrap(),
            inp_sto_round: io_json["inp_sto_round"].as_bool().unwrap(),
            out_sto_round: io_json["out_sto_round"].as_bool().unwrap(),
            noise_management: NoiseManagement::AbsMax,
            bound_management: BoundManagement::None,
            ..IoParameters::default()
        };
        let draws = config["draws"].as_u64().unwrap() as usize;
        let x = floats(&config["x"]);
        let w = floats(&config["w"]);
        let (n, k) = (x.len(), config["out"].as_u64().unwrap() as usize);
        let batch: Vec<f64> = (0..draws).flat_map(|_| x.iter().copied()).collect();
        let y64 = mvm(&batch, draws, n, &w, k, &io, (0, 0), 42).expect("mvm");
        // float32 draws its noise in float32 (its own generator): the same statistics.
        let narrow = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let y32 = mvm(&narrow(&batch), draws, n, &narrow(&w), k, &io, (0, 0), 42).expect("mvm");
        let y32: Vec<f64> = y32.into_iter().map(f64::from).collect();
        let (their_mean, their_std) = (floats(&config["mean"]), floats(&config["std"]));
        for (dtype, y) in [("float64", &y64), ("float32", &y32)] {
            for j in 0..k {
                let column: Vec<f64> = (0..draws).map(|r| y[r * k + j]).collect();
                let mean = column.iter().sum::<f64>() / draws as f64;
                let var = column.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>()
                    / (draws - 1) as f64;
                let std = var.sqrt();
                let s = their_std[j].max(1e-12);
                // Two independent estimates: the standard error of their difference.
                let mean_error = (2.0 * s * s / draws as f64).sqrt();
                let std_error = (2.0 * s * s / (2.0 * (draws - 1) as f64)).sqrt();
                assert!(
                    (mean - their_mean[j]).abs() <= 4.5 * mean_error,
                    "{dtype} config {c} output {j}: mean {mean} against {}",
                    their_mean[j]
                );
                assert!(
                    (std - their_std[j]).abs() <= 4.5 * std_error + 1e-12,
                    "{dtype} config {c} output {j}: std {std} against {s}"
                );
            }
        }
    }
}

/// Mean and standard deviation of two samples of `n` draws agree within 4.5 standard errors of
/// their difference; the standard deviation's error from the sample's fourth moment, as these
/// distributions are skewed (clipped at 0).
fn agree(what: &str, ours: (f64, f64, f64), theirs: (f64, f64), n: usize) {
    let (mean, std, fourth) = ours;
    let s = theirs.1.max(std).max(1e-12);
    let mean_error = (2.0 * s * s / n as f64).sqrt();
    let std_error =
        (2.0 * (fourth - std.powi(4)).max(0.0) / (4.0 * n as f64 * std * std).max(1e-300)).sqrt();
    assert!(
        (mean - theirs.0).abs() <= 4.5 * mean_error + 1e-12,
        "{what}: mean {mean} against aihwkit's {}",
        theirs.0
    );
    assert!(
        (std - theirs.1).abs() <= 4.5 * std_error + 1e-12,
        "{what}: standard deviation {std} against aihwkit's {}",
        theirs.1
    );
}

/// The mean, standard deviation and fourth central moment of `v`.
fn moments(v: &[f64]) -> (f64, f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    let fourth = v.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n;
    (mean, var.sqrt(), fourth)
}

/// Programmed conductances, drift coefficients and conductances read from 0 s to a year after
/// programming: mean and standard deviation over 100,000 devices per target conductance agree
/// with aihwkit's `PCMLikeNoiseModel` within sampling error.
#[test]
fn pcm_statistics_agree_with_aihwkit() {
    let data = reference();
    let pcm_data = &data["pcm"];
    let draws = pcm_data["draws"].as_u64().unwrap() as usize;
    let pcm = PcmLikeNoise::default();
    let pair = |v: &Value| (hex(v[0].as_str().unwrap()), hex(v[1].as_str().unwrap()));
    let targets = pcm_data["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 6);
    for (k, target) in targets.iter().enumerate() {
        let g_target = target["g"].as_f64().unwrap();
        let g = vec![g_target; draws];
        let seed = 100 + k as u64;
        let programmed = pcm.programming_noise(&g, seed).unwrap();
        let nu = pcm.drift_coefficients(&g, seed).unwrap();
        agree(
            &format!("programmed {g_target}"),
            moments(&programmed),
            pair(&target["programmed"]),
            draws,
        );
        agree(
            &format!("nu {g_target}"),
            moments(&nu),
            pair(&target["nu"]),
            draws,
        );
        for (t, stats) in target["read"].as_object().unwrap() {
            let t: f64 = t.parse().unwrap();
            let read = pcm.drift(&programmed, &nu, t, seed).unwrap();
            agree(
                &format!("read {g_target} at {t} s"),
                moments(&read),
                pair(stats),
                draws,
            );
        }
    }
}
