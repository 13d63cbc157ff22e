//! The `xbquant` binary, run as a user runs it: every subcommand's output, file round trips
//! checked element by element against the core, and every error path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use xbquant::half::f16;
use xbquant::{FixedPoint, QuantSpec, Rounding};

fn xbquant(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xbquant"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sample(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            ((i as f64) * 0.618_033_988_7).sin() * 9.0 + if i % 5 == 0 { 0.03125 } else { 0.0 }
        })
        .collect()
}

#[test]
fn range_prints_the_format() {
    let o = xbquant(&["range", "--wl", "8", "--fl", "6"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for want in ["ap_fixed<8,2>", "-1.984375", "1.984375", "0.015625", "255"] {
        assert!(text.contains(want), "{want} missing from\n{text}");
    }
    let o = xbquant(&["range", "--wl", "8", "--fl", "6", "--asymmetric", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["min"], -2.0);
    assert_eq!(v["max"], 1.984375);
    assert_eq!(v["step"], 0.015625);
    assert_eq!(v["levels"], 256);
    let o = xbquant(&["range", "--wl", "4", "--fl", "4", "--unsigned", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["min"].as_f64(), v["max"].as_f64()),
        (Some(0.0), Some(0.9375))
    );
    assert_eq!(v["hls_type"], "ap_ufixed<4,0>");
    let o = xbquant(&["range", "--wl", "0", "--fl", "1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("word length"), "{}", stderr(&o));
}

/// .npy files of each float dtype and several shapes, quantized by the binary, equal the core's
/// result element by element, with dtype and shape kept.
#[test]
fn npy_round_trips_equal_the_core() {
    let dir = tempfile::tempdir().unwrap();
    let values = sample(60);
    let format = FixedPoint::new(6, 3).unwrap();
    for (dtype, shape) in [
        (DType::F32, vec![60]),
        (DType::F64, vec![3, 4, 5]),
        (DType::F16, vec![6, 10]),
        (DType::F32, vec![0]),
    ] {
        let n: usize = shape.iter().product();
        let t = Tensor::from_vec(values[..n].to_vec(), shape.as_slice(), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let input = dir.path().join(format!("in-{dtype:?}-{n}.npy"));
        let output = dir.path().join(format!("out-{dtype:?}-{n}.npy"));
        t.write_npy(&input).unwrap();
        let o = xbquant(&[
            "quantize",
            path_str(&input),
            path_str(&output),
            "--wl",
            "6",
            "--fl",
            "3",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let q = Tensor::read_npy(&output).unwrap();
        assert_eq!(q.dtype(), dtype);
        assert_eq!(q.dims(), shape.as_slice());
        let flat = t.flatten_all().unwrap();
        let got = q.flatten_all().unwrap();
        match dtype {
            DType::F32 => assert_eq!(
                got.to_vec1::<f32>().unwrap(),
                format.quantize(&flat.to_vec1::<f32>().unwrap(), Rounding::NearestEven)
            ),
            DType::F64 => assert_eq!(
                got.to_vec1::<f64>().unwrap(),
                format.quantize(&flat.to_vec1::<f64>().unwrap(), Rounding::NearestEven)
            ),
            _ => assert_eq!(
                got.to_vec1::<f16>().unwrap(),
                format.quantize(&flat.to_vec1::<f16>().unwrap(), Rounding::NearestEven)
            ),
        }
    }
}

/// Modes, seeds and HLS types reach the kernels; the JSON report has the statistics.
#[test]
fn quantize_options_and_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = sample(1000).iter().map(|&v| v as f32).collect();
    let input = dir.path().join("x.npy");
    Tensor::from_vec(values.clone(), 1000, &Device::Cpu)
        .unwrap()
        .write_npy(&input)
        .unwrap();
    let run = |name: &str, extra: &[&str]| -> (Vec<f32>, serde_json::Value) {
        let out = dir.path().join(name);
        let mut args = vec!["quantize", path_str(&input), path_str(&out), "--json"];
        args.extend_from_slice(extra);
        let o = xbquant(&args);
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let q = Tensor::read_npy(&out).unwrap().to_vec1::<f32>().unwrap();
        (q, report)
    };
    let (q, report) = run("a.npy", &["--wl", "5", "--fl", "2"]);
    let fmt = FixedPoint::new(5, 2).unwrap();
    assert_eq!(q, fmt.quantize(&values, Rounding::NearestEven));
    let t = &report["tensors"][0];
    let (_, mask) = fmt.quantize_with_mask(&values, Rounding::NearestEven);
    let share = mask.iter().filter(|&&m| m).count() as f64 / 1000.0;
    assert_eq!(t["overflow"].as_f64(), Some(share));
    let max_err = values
        .iter()
        .zip(&q)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max);
    assert_eq!(t["max_abs_error"].as_f64(), Some(max_err));
    assert!(t["sqnr_db"].as_f64().unwrap() > 0.0);
    assert_eq!(t["shape"], serde_json::json!([1000]));

    let (q, _) = run(
        "b.npy",
        &[
            "--wl",
            "5",
            "--fl",
            "2",
            "--rounding",
            "stochastic",
            "--seed",
            "7",
        ],
    );
    assert_eq!(q, fmt.quantize(&values, Rounding::Stochastic { seed: 7 }));
    let (q, _) = run(
        "c.npy",
        &[
            "--wl",
            "5",
            "--fl",
            "2",
            "--overflow",
            "wrap",
            "--rounding",
            "floor",
        ],
    );
    let wrap = fmt
        .with_overflow(xbquant::Overflow::Wrap { sat_bits: 0 })
        .unwrap();
    assert_eq!(q, wrap.quantize(&values, Rounding::Floor));
    let (q, _) = run(
        "d.npy",
        &["--format", "ap_fixed<6,3,AP_RND_CONV,AP_WRAP_SM>"],
    );
    let hls = QuantSpec::from_hls("ap_fixed<6,3,AP_RND_CONV,AP_WRAP_SM>").unwrap();
    assert_eq!(q, hls.quantize(&values));
    let (q, _) = run(
        "e.npy",
        &["--wl", "5", "--fl", "2", "--asymmetric", "--no-clamp"],
    );
    let loose = fmt.with_symmetric(false).with_clamp(false);
    assert_eq!(q, loose.quantize(&values, Rounding::NearestEven));
    let (q, _) = run(
        "f.npy",
        &[
            "--wl",
            "5",
            "--fl",
            "2",
            "--overflow",
            "wrap",
            "--sat-bits",
            "1",
        ],
    );
    let sat = fmt
        .with_overflow(xbquant::Overflow::Wrap { sat_bits: 1 })
        .unwrap();
    assert_eq!(q, sat.quantize(&values, Rounding::NearestEven));
}

fn write_safetensors(path: &Path) -> (Vec<f32>, Vec<f64>, Vec<i32>) {
    let w: Vec<f32> = sample(12).iter().map(|&v| v as f32).collect();
    let b: Vec<f64> = sample(4).iter().map(|v| v / 3.0).collect();
    let steps: Vec<i32> = vec![1, 2, 300];
    let bytes = |v: Vec<Vec<u8>>| v.concat();
    let wb = bytes(w.iter().map(|x| x.to_le_bytes().to_vec()).collect());
    let bb = bytes(b.iter().map(|x| x.to_le_bytes().to_vec()).collect());
    let sb = bytes(steps.iter().map(|x| x.to_le_bytes().to_vec()).collect());
    let tensors = vec![
        (
            "layer.weight",
            TensorView::new(Dtype::F32, vec![3, 4], &wb).unwrap(),
        ),
        (
            "layer.bias",
            TensorView::new(Dtype::F64, vec![4], &bb).unwrap(),
        ),
        ("steps", TensorView::new(Dtype::I32, vec![3], &sb).unwrap()),
    ];
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    std::fs::write(path, safetensors::serialize(tensors, Some(meta)).unwrap()).unwrap();
    (w, b, steps)
}

/// .safetensors: float tensors quantized (or those matching --tensors), others copied, the
/// metadata kept.
#[test]
fn safetensors_round_trip_keeps_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model.safetensors");
    let (w, b, steps) = write_safetensors(&input);
    let fmt = FixedPoint::new(4, 1).unwrap();
    for (name, filter) in [
        ("all.safetensors", None),
        ("weights.safetensors", Some("weight$")),
    ] {
        let output = dir.path().join(name);
        let mut args = vec![
            "quantize",
            path_str(&input),
            path_str(&output),
            "--wl",
            "4",
            "--fl",
            "1",
        ];
        if let Some(f) = filter {
            args.extend_from_slice(&["--tensors", f]);
        }
        let o = xbquant(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("copied"), "{}", stdout(&o));
        let buffer = std::fs::read(&output).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&buffer).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
        let file = safetensors::SafeTensors::deserialize(&buffer).unwrap();
        let get = |n: &str| file.tensor(n).unwrap();
        let wq: Vec<f32> = get("layer.weight")
            .data()
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(get("layer.weight").shape(), &[3, 4]);
        assert_eq!(wq, fmt.quantize(&w, Rounding::NearestEven));
        let bq: Vec<f64> = get("layer.bias")
            .data()
            .chunks(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let want_b = if filter.is_some() {
            b.clone()
        } else {
            fmt.quantize(&b, Rounding::NearestEven)
        };
        assert_eq!(bq, want_b);
        let s: Vec<i32> = get("steps")
            .data()
            .chunks(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(get("steps").dtype(), Dtype::I32);
        assert_eq!(s, steps);
    }
}

fn assert_fails(args: &[&str], message: &str) {
    let o = xbquant(args);
    assert!(!o.status.success(), "{args:?} succeeded");
    let err = stderr(&o);
    assert!(
        err.contains(message),
        "{args:?}: expected {message:?} in {err:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Every error exits non-zero with a message naming the file and the problem, writes no output
/// and leaves the input (and an existing output) untouched.
#[test]
fn errors_leave_files_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| -> PathBuf { dir.path().join(n) };
    let input = p("in.npy");
    Tensor::from_vec(vec![0.3f32, 9.0], 2, &Device::Cpu)
        .unwrap()
        .write_npy(&input)
        .unwrap();
    let original = std::fs::read(&input).unwrap();
    let existing = p("existing.npy");
    std::fs::write(&existing, b"keep me").unwrap();
    let i = path_str(&input);

    assert_fails(
        &["quantize", i, path_str(&existing), "--wl", "4", "--fl", "2"],
        "already exists",
    );
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    assert_fails(
        &["quantize", i, i, "--wl", "4", "--fl", "2", "--force"],
        "the output is the input",
    );
    assert_fails(
        &[
            "quantize",
            path_str(&p("missing.npy")),
            path_str(&p("o1.npy")),
            "--wl",
            "4",
            "--fl",
            "2",
        ],
        "missing.npy: no such file",
    );
    let truncated = p("truncated.npy");
    std::fs::write(&truncated, &original[..original.len() - 3]).unwrap();
    assert_fails(
        &[
            "quantize",
            path_str(&truncated),
            path_str(&p("o2.npy")),
            "--wl",
            "4",
            "--fl",
            "2",
        ],
        "truncated.npy",
    );
    let garbage = p("garbage.safetensors");
    std::fs::write(&garbage, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}").unwrap();
    assert_fails(
        &[
            "quantize",
            path_str(&garbage),
            path_str(&p("o3.safetensors")),
            "--wl",
            "4",
            "--fl",
            "2",
        ],
        "garbage.safetensors",
    );
    // An array of Python objects (pickled): nothing to quantize or copy safely.
    let ints = p("ints.npy");
    let mut objects = b"\x93NUMPY\x01\x00".to_vec();
    let text = b"{'descr': '|O', 'fortran_order': False, 'shape': (2,), }           \n";
    objects.extend_from_slice(&(text.len() as u16).to_le_bytes());
    objects.extend_from_slice(text);
    objects.extend_from_slice(&[0u8; 16]);
    std::fs::write(&ints, objects).unwrap();
    assert_fails(
        &[
            "quantize",
            path_str(&ints),
            path_str(&p("o4.npy")),
            "--wl",
            "4",
            "--fl",
            "2",
        ],
        "unsupported descr",
    );
    assert_fails(
        &[
            "quantize",
            i,
            path_str(&p("o5.npy")),
            "--wl",
            "4",
            "--fl",
            "2000",
        ],
        "fractional length",
    );
    assert_fails(
        &[
            "quantize",
            i,
            path_str(&p("o6.npy")),
            "--format",
            "ap_fixed<4>",
        ],
        "ap_fixed<4>",
    );
    assert_fails(
        &[
            "quantize",
            i,
            path_str(&p("o7.npy")),
            "--wl",
            "4",
            "--fl",
            "2",
            "--rounding",
            "sideways",
        ],
        "sideways",
    );
    assert_fails(
        &[
            "quantize",
            i,
            path_str(&p("o8.npy")),
            "--wl",
            "4",
            "--fl",
            "2",
            "--seed",
            "3",
        ],
        "--seed",
    );
    assert_fails(
        &[
            "quantize",
            i,
            path_str(&p("o9.safetensors")),
            "--wl",
            "4",
            "--fl",
            "2",
        ],
        "same kind",
    );
    assert_fails(&["quantize", i, path_str(&p("o10.npy"))], "--wl and --fl");

    // Nothing was written but the files made above, and the input is unchanged.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "existing.npy",
            "garbage.safetensors",
            "in.npy",
            "ints.npy",
            "truncated.npy"
        ]
    );
    assert_eq!(std::fs::read(&input).unwrap(), original);

    // --force replaces an existing output.
    let o = xbquant(&[
        "quantize",
        i,
        path_str(&existing),
        "--wl",
        "4",
        "--fl",
        "2",
        "--force",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        Tensor::read_npy(&existing)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        [0.25, 1.75]
    );
}

/// The PCM demo at reduced epochs: four read times, each with four spreads over the seeds, and
/// its plot; a negative weight noise is refused.
#[test]
fn demo_pcm_smoke_test() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("pcm.svg");
    let o = xbquant(&[
        "demo",
        "--mode",
        "pcm",
        "--epochs",
        "2",
        "--seeds",
        "2",
        "--json",
        "--plot",
        path_str(&plot),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let times = v["pcm"].as_array().unwrap();
    let seconds: Vec<f64> = times
        .iter()
        .map(|t| t["seconds"].as_f64().unwrap())
        .collect();
    assert_eq!(seconds, [1.0, 3600.0, 86_400.0, 3.15e7]);
    for t in times {
        for key in ["float", "float_compensated", "aware", "aware_compensated"] {
            let runs = t[key]["runs"].as_array().unwrap();
            assert_eq!(runs.len(), 2, "{key}");
            assert!(runs
                .iter()
                .all(|a| (0.0..=1.0).contains(&a.as_f64().unwrap())));
        }
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("compensated"));
    assert_fails(
        &["demo", "--mode", "pcm", "--weight-noise", "-1"],
        "--weight-noise",
    );
}

/// The demo at reduced epochs: its JSON has the promised shape (both experiments, a spread
/// over the seeds), and it writes the plot.
#[test]
fn demo_smoke_test() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("demo.svg");
    let o = xbquant(&[
        "demo",
        "--epochs",
        "2",
        "--seeds",
        "2",
        "--bits",
        "4,2",
        "--converter-bits",
        "6,3",
        "--noise",
        "0.05",
        "--json",
        "--plot",
        path_str(&plot),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let float = v["float_accuracy"].as_f64().unwrap();
    assert!(float > 0.5 && float <= 1.0, "{float}");
    assert_eq!(v["seeds"], serde_json::json!([0, 1]));
    assert_eq!(v["float"]["runs"].as_array().unwrap().len(), 2);
    for (key, widths) in [("rows", [4, 2]), ("crossbar", [6, 3])] {
        let rows = v[key].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{key}");
        for (r, bits) in rows.iter().zip(widths) {
            assert_eq!(r["bits"], bits);
            for name in ["qat", "ptq"] {
                let s = &r[name];
                let runs: Vec<f64> = s["runs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_f64().unwrap())
                    .collect();
                assert_eq!(runs.len(), 2);
                assert!(
                    runs.iter().all(|a| (0.0..=1.0).contains(a)),
                    "{key} {name} {runs:?}"
                );
                let mean = s["mean"].as_f64().unwrap();
                assert!((mean - (runs[0] + runs[1]) / 2.0).abs() < 1e-12);
                assert_eq!(r[format!("{name}_accuracy")].as_f64().unwrap(), mean);
            }
        }
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("trained aware") && svg.contains("ADC/DAC bits")
    );
    assert!(stderr(&o).contains(path_str(&plot)));
    assert_fails(&["demo", "--bits", "1"], "--bits 1");
    assert_fails(&["demo", "--seeds", "0"], "--seeds");
    assert_fails(&["demo", "--noise", "-1"], "--noise");
    // Counts that would run for ever or allocate without bound are refused at once (10^11
    // seeds once aborted on an 800 GB allocation).
    assert_fails(&["demo", "--seeds", "100000000000"], "--seeds must be 1 to");
    assert_fails(
        &["demo", "--epochs", "100000000000"],
        "--epochs must be 1 to",
    );
    // --plot replaces only a plot, and says so before training.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.safetensors");
    std::fs::write(&model, b"not a plot").unwrap();
    assert_fails(&["demo", "--plot", path_str(&model)], "is not an SVG plot");
    assert_eq!(std::fs::read(&model).unwrap(), b"not a plot");
    assert_fails(
        &["demo", "--plot", path_str(dir.path())],
        "not a regular file",
    );
}

#[test]
fn bench_prints_ratios_to_copy() {
    let o = xbquant(&[
        "bench",
        "--quick",
        "--only",
        "f32 into nearest saturate-symmetric",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("f32 into nearest saturate-symmetric"),
        "{text}"
    );
    assert!(text.contains("x copy"), "{text}");
}
