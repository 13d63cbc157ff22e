//! `xbquant quantize` and `xbquant dequantize` on files as users have them: every float dtype
//! in both `.npy` orders and byte orders, `.safetensors` of every float dtype, sharded models,
//! integer codes, tensors larger than one streamed piece, and files that must be refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use xbquant::half::{bf16, f16};
use xbquant::{Element, FixedPoint, QuantSpec, Rounding};

mod common;
use common::{npy, ok, s, xbquant};

fn sample(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| ((i as f64) * 0.618_033_988_7).sin() * 5.0 + if i % 7 == 0 { 0.0625 } else { 0.0 })
        .collect()
}

fn bytes_of<T: Element>(values: &[T], big: bool) -> Vec<u8> {
    let size = std::mem::size_of::<T>();
    let mut out = Vec::with_capacity(std::mem::size_of_val(values));
    for v in values {
        let le: Vec<u8> = match size {
            2 => (f32_bits_16(v)).to_vec(),
            4 => (v.to_f64() as f32).to_le_bytes().to_vec(),
            _ => v.to_f64().to_le_bytes().to_vec(),
        };
        if big {
            out.extend(le.iter().rev());
        } else {
            out.extend(le);
        }
    }
    out
}

/// The little-endian bytes of a 16-bit float element (f16 or bf16, by its name).
fn f32_bits_16<T: Element>(v: &T) -> [u8; 2] {
    if T::NAME == "bf16" {
        bf16::from_f64(v.to_f64()).to_le_bytes()
    } else {
        f16::from_f64(v.to_f64()).to_le_bytes()
    }
}

fn values_of<T: Element>(bytes: &[u8], big: bool) -> Vec<T> {
    let size = std::mem::size_of::<T>();
    bytes
        .chunks_exact(size)
        .map(|c| {
            let mut b = c.to_vec();
            if big {
                b.reverse();
            }
            let v = match size {
                2 if T::NAME == "bf16" => bf16::from_le_bytes([b[0], b[1]]).to_f64(),
                2 => f16::from_le_bytes([b[0], b[1]]).to_f64(),
                4 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                _ => f64::from_le_bytes(b.try_into().unwrap()),
            };
            T::from_f64(v)
        })
        .collect()
}

fn spec() -> QuantSpec {
    QuantSpec::new(FixedPoint::new(8, 5).unwrap(), Rounding::NearestEven)
}

/// Every float dtype of .npy, C and Fortran order, little and big endian: the header is kept
/// byte for byte and each element equals the core's quantization.
#[test]
fn npy_every_dtype_and_order() {
    fn check<T: Element>(dir: &Path, kind: &str) {
        let x: Vec<T> = sample(60).into_iter().map(T::from_f64).collect();
        let want = spec().quantize(&x);
        for (fortran, big) in [(false, false), (true, false), (false, true), (true, true)] {
            let descr = format!("{}{kind}", if big { '>' } else { '<' });
            let input = dir.join(format!("in-{kind}-{big}-{fortran}.npy"));
            let output = input.with_extension("q.npy");
            let file = npy(&descr, fortran, &[3, 4, 5], &bytes_of(&x, big));
            std::fs::write(&input, &file).unwrap();
            ok(&["quantize", s(&input), s(&output), "--wl", "8", "--fl", "5"]);
            let out = std::fs::read(&output).unwrap();
            let start = file.len() - x.len() * std::mem::size_of::<T>();
            assert_eq!(out[..start], file[..start], "{descr} header");
            let got: Vec<T> = values_of(&out[start..], big);
            assert_eq!(got, want, "{descr} fortran={fortran}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    check::<f16>(dir.path(), "f2");
    check::<f32>(dir.path(), "f4");
    check::<f64>(dir.path(), "f8");

    // Other dtypes are copied unchanged, and the report says so.
    let ints = dir.path().join("ints.npy");
    let file = npy("<i4", false, &[2], &[1, 0, 0, 0, 2, 0, 0, 0]);
    std::fs::write(&ints, &file).unwrap();
    let out = dir.path().join("ints-q.npy");
    let report = ok(&["quantize", s(&ints), s(&out), "--wl", "8", "--fl", "5"]);
    assert!(report.contains("copied"), "{report}");
    assert_eq!(std::fs::read(&out).unwrap(), file);
}

/// A safetensors file of the given float tensors and an `I32` one, with free-form metadata.
fn write_safetensors(path: &Path, tensors: &[(&str, Dtype, Vec<u8>, Vec<usize>)]) {
    let mut views = Vec::new();
    for (name, dtype, data, shape) in tensors {
        views.push((
            name.to_string(),
            TensorView::new(*dtype, shape.clone(), data).unwrap(),
        ));
    }
    let meta = HashMap::from([("source".to_string(), "test".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), path).unwrap();
}

fn floats_file(path: &Path, n: usize) -> Vec<(String, Dtype, Vec<u8>, Vec<usize>)> {
    let x = sample(n);
    let x16: Vec<f16> = x.iter().map(|&v| f16::from_f64(v)).collect();
    let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f64(v)).collect();
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let ints: Vec<u8> = (0..n as i32).flat_map(i32::to_le_bytes).collect();
    let tensors = vec![
        (
            "a.f16".to_string(),
            Dtype::F16,
            bytes_of(&x16, false),
            vec![n],
        ),
        (
            "b.bf16".to_string(),
            Dtype::BF16,
            bytes_of(&xb, false),
            vec![n],
        ),
        (
            "c.f32".to_string(),
            Dtype::F32,
            bytes_of(&x32, false),
            vec![n],
        ),
        (
            "d.f64".to_string(),
            Dtype::F64,
            bytes_of(&x, false),
            vec![n],
        ),
        ("e.steps".to_string(), Dtype::I32, ints, vec![n]),
    ];
    let borrowed: Vec<(&str, Dtype, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, d, b, s)| (n.as_str(), *d, b.clone(), s.clone()))
        .collect();
    write_safetensors(path, &borrowed);
    tensors
}

/// Each tensor of an output file equals the core's quantization of the input's (`F16`, `BF16`,
/// `F32`, `F64`), or the input's bytes (others).
fn assert_quantized(
    input: &[(String, Dtype, Vec<u8>, Vec<usize>)],
    output: &Path,
    spec: &QuantSpec,
) {
    let bytes = std::fs::read(output).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    for (name, dtype, data, shape) in input {
        let t = file.tensor(name).unwrap();
        assert_eq!((t.dtype(), t.shape()), (*dtype, shape.as_slice()), "{name}");
        let want: Vec<u8> = match dtype {
            Dtype::F16 => bytes_of(&spec.quantize(&values_of::<f16>(data, false)), false),
            Dtype::BF16 => bytes_of(&spec.quantize(&values_of::<bf16>(data, false)), false),
            Dtype::F32 => bytes_of(&spec.quantize(&values_of::<f32>(data, false)), false),
            Dtype::F64 => bytes_of(&spec.quantize(&values_of::<f64>(data, false)), false),
            _ => data.clone(),
        };
        assert!(t.data() == want.as_slice(), "{name}");
    }
}

#[test]
fn safetensors_every_float_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    let tensors = floats_file(&input, 1000);
    let output = dir.path().join("q.safetensors");
    let report = ok(&[
        "quantize",
        s(&input),
        s(&output),
        "--wl",
        "8",
        "--fl",
        "5",
        "--json",
    ]);
    assert_quantized(&tensors, &output, &spec());
    let json: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(json["tensors"].as_array().unwrap().len(), 5);
    // Free-form metadata is kept.
    let bytes = std::fs::read(&output).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["source"], "test");
}

/// A tensor of more than one streamed piece (1M elements), stochastic with a seed: equal to
/// one call of the core on the whole tensor, so the pieces draw the right noise.
#[test]
fn tensors_larger_than_a_piece_draw_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let n = (1 << 20) + 12_345;
    let x: Vec<f32> = sample(n).iter().map(|&v| v as f32).collect();
    let input = dir.path().join("big.safetensors");
    write_safetensors(&input, &[("w", Dtype::F32, bytes_of(&x, false), vec![n])]);
    let output = dir.path().join("big-q.safetensors");
    let args = [
        "--wl",
        "6",
        "--fl",
        "3",
        "--rounding",
        "stochastic",
        "--seed",
        "11",
    ];
    let mut all = vec!["quantize", s(&input), s(&output)];
    all.extend(args);
    ok(&all);
    let spec = QuantSpec::new(
        FixedPoint::new(6, 3).unwrap(),
        Rounding::Stochastic { seed: 11 },
    );
    let bytes = std::fs::read(&output).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let got: Vec<f32> = values_of(file.tensor("w").unwrap().data(), false);
    assert!(got == spec.quantize(&x));
}

/// Integer codes: the smallest integer type, the format in the metadata, and `dequantize`
/// gives back exactly what `quantize` writes; the report counts the bytes saved.
#[test]
fn codes_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    floats_file(&input, 999);
    for (wl, fl, signed, dtype) in [
        (8, 5, true, Dtype::I8),
        (12, 6, false, Dtype::U16),
        (20, 10, true, Dtype::I32),
    ] {
        let values = dir.path().join(format!("v{wl}.safetensors"));
        let codes = dir.path().join(format!("c{wl}.safetensors"));
        let back = dir.path().join(format!("b{wl}.safetensors"));
        let (wl_s, fl_s) = (wl.to_string(), fl.to_string());
        let mut common = vec![
            "--wl",
            &wl_s,
            "--fl",
            &fl_s,
            "--rounding",
            "stochastic",
            "--seed",
            "3",
        ];
        if !signed {
            common.push("--unsigned");
        }
        let mut a = vec!["quantize", s(&input), s(&values)];
        a.extend(&common);
        ok(&a);
        let mut a = vec!["quantize", s(&input), s(&codes), "--codes"];
        a.extend(&common);
        let report = ok(&a);
        assert!(report.contains("bytes out"), "{report}");
        if wl == 8 {
            // 2+2+4+8 bytes per element of the four float tensors become 4 x 1.
            let saved = 999 * (2 + 2 + 4 + 8 - 4);
            assert!(
                report.contains(&format!("saving {saved} bytes")),
                "{report}"
            );
        }
        let bytes = std::fs::read(&codes).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(file.tensor("c.f32").unwrap().dtype(), dtype);
        // The codes are the core's, for every input dtype.
        let inputs = std::fs::read(&input).unwrap();
        let inputs = SafeTensors::deserialize(&inputs).unwrap();
        let mut format = FixedPoint::new(wl, fl).unwrap();
        if !signed {
            format = format.with_signed(false).unwrap();
        }
        let spec = QuantSpec::new(format, Rounding::Stochastic { seed: 3 });
        for name in ["a.f16", "b.bf16", "c.f32", "d.f64"] {
            let data = inputs.tensor(name).unwrap().data();
            let want = match name {
                "a.f16" => spec.to_codes(&values_of::<f16>(data, false)),
                "b.bf16" => spec.to_codes(&values_of::<bf16>(data, false)),
                "c.f32" => spec.to_codes(&values_of::<f32>(data, false)),
                _ => spec.to_codes(&values_of::<f64>(data, false)),
            }
            .unwrap();
            let raw = file.tensor(name).unwrap().data();
            let size = raw.len() / want.len();
            let got: Vec<i64> = raw
                .chunks_exact(size)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b[..size].copy_from_slice(c);
                    let v = i64::from_le_bytes(b);
                    // Sign-extend the signed types.
                    if signed {
                        (v << (64 - 8 * size)) >> (64 - 8 * size)
                    } else {
                        v
                    }
                })
                .collect();
            assert_eq!(got, want, "wl {wl}: {name}");
        }
        assert_eq!(file.tensor("e.steps").unwrap().dtype(), Dtype::I32);
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let entry: serde_json::Value =
            serde_json::from_str(&meta.metadata().as_ref().unwrap()["xbquant:b.bf16"]).unwrap();
        assert_eq!(entry["wl"], wl);
        assert_eq!(entry["fl"], fl);
        assert_eq!(entry["signed"], signed);
        assert_eq!(entry["dtype"], "BF16");
        assert_eq!(entry["rounding"], "stochastic:3");
        ok(&["dequantize", s(&codes), s(&back)]);
        let a = std::fs::read(&values).unwrap();
        let b = std::fs::read(&back).unwrap();
        let (va, vb) = (
            SafeTensors::deserialize(&a).unwrap(),
            SafeTensors::deserialize(&b).unwrap(),
        );
        for name in ["a.f16", "b.bf16", "c.f32", "d.f64", "e.steps"] {
            let (ta, tb) = (va.tensor(name).unwrap(), vb.tensor(name).unwrap());
            assert_eq!(ta.dtype(), tb.dtype(), "{name}");
            assert!(ta.data() == tb.data(), "wl {wl}: {name}");
        }
    }
}

/// A sharded model of three shards: every shard quantized under its name, a matching index
/// with the new total size, one combined report.
#[test]
fn sharded_model_of_three_shards() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    let mut weight_map = serde_json::Map::new();
    let mut all = Vec::new();
    for k in 1..=3 {
        let name = format!("model-{k:05}-of-00003.safetensors");
        let x: Vec<f32> = sample(500 * k)
            .iter()
            .map(|&v| v as f32 * k as f32)
            .collect();
        let tensors = vec![
            (
                format!("layer{k}.weight"),
                Dtype::F32,
                bytes_of(&x, false),
                vec![500, k],
            ),
            (
                format!("layer{k}.bias"),
                Dtype::F32,
                bytes_of(&x[..k], false),
                vec![k],
            ),
        ];
        let borrowed: Vec<(&str, Dtype, Vec<u8>, Vec<usize>)> = tensors
            .iter()
            .map(|(n, d, b, s)| (n.as_str(), *d, b.clone(), s.clone()))
            .collect();
        write_safetensors(&model.join(&name), &borrowed);
        for (t, ..) in &tensors {
            weight_map.insert(t.clone(), name.clone().into());
        }
        all.push((name, tensors));
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(
        model.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let out = dir.path().join("quantized");
    // A directory or its index file as input.
    let report = ok(&[
        "quantize",
        s(&model),
        s(&out),
        "--wl",
        "8",
        "--fl",
        "5",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(json["tensors"].as_array().unwrap().len(), 6);
    for (name, tensors) in &all {
        assert_quantized(tensors, &out.join(name), &spec());
    }
    let new_index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(new_index["weight_map"], index["weight_map"]);
    let data: u64 = all
        .iter()
        .flat_map(|(_, t)| t.iter().map(|t| t.2.len() as u64))
        .sum();
    assert_eq!(new_index["metadata"]["total_size"], data);
    let out2 = dir.path().join("quantized2");
    let index_path = model.join("model.safetensors.index.json");
    ok(&[
        "quantize",
        s(&index_path),
        s(&out2),
        "--wl",
        "8",
        "--fl",
        "5",
    ]);
    for (name, _) in &all {
        assert_eq!(
            std::fs::read(out.join(name)).unwrap(),
            std::fs::read(out2.join(name)).unwrap()
        );
    }
    // An existing output directory is replaced only with --force.
    let o = xbquant(&["quantize", s(&model), s(&out), "--wl", "4", "--fl", "2"]);
    assert!(!o.status.success());
    ok(&[
        "quantize",
        s(&model),
        s(&out),
        "--wl",
        "4",
        "--fl",
        "2",
        "--force",
    ]);
    let coarse = QuantSpec::new(FixedPoint::new(4, 2).unwrap(), Rounding::NearestEven);
    assert_quantized(&all[0].1, &out.join(&all[0].0), &coarse);
    // Codes and back, sharded.
    let codes = dir.path().join("codes");
    let back = dir.path().join("back");
    ok(&[
        "quantize",
        s(&model),
        s(&codes),
        "--wl",
        "8",
        "--fl",
        "5",
        "--codes",
    ]);
    ok(&["dequantize", s(&codes), s(&back)]);
    for (name, tensors) in &all {
        assert_quantized(tensors, &back.join(name), &spec());
    }
    // A shard the index names but that lacks a tensor, or a path outside the directory.
    for (tensor, file) in [
        ("layer1.weight", "model-00002-of-00003.safetensors"),
        ("layer1.weight", "../model-00001-of-00003.safetensors"),
    ] {
        let bad = dir.path().join("bad");
        std::fs::create_dir_all(&bad).unwrap();
        for (name, _) in &all {
            std::fs::copy(model.join(name), bad.join(name)).unwrap();
        }
        let mut index = index.clone();
        index["weight_map"][tensor] = file.into();
        std::fs::write(bad.join("model.safetensors.index.json"), index.to_string()).unwrap();
        let target = dir.path().join("bad-out");
        let o = xbquant(&["quantize", s(&bad), s(&target), "--wl", "8", "--fl", "5"]);
        assert_eq!(o.status.code(), Some(1), "{file}");
        assert!(!target.exists());
    }
}

/// Files that must be refused: exit status 1, a message naming the file, no output, no
/// temporary file left behind.
#[test]
fn bad_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| -> PathBuf { dir.path().join(n) };
    let good = npy("<f4", false, &[4], &[0u8; 16]);
    let st_header = |json: &str, data: usize| {
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(json.as_bytes());
        out.extend(std::iter::repeat_n(0u8, data));
        out
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.npy", vec![], "too short"),
        ("empty.safetensors", vec![], "too short"),
        (
            "huge-shape.npy",
            npy("<f4", false, &[100_000_000_000, 3], &[0u8; 16]),
            "needs",
        ),
        (
            "overflow-shape.npy",
            npy(
                "<f4",
                false,
                &[4_294_967_296, 4_294_967_296, 4_294_967_296],
                &[0u8; 16],
            ),
            "2^64",
        ),
        (
            "short-data.npy",
            good[..good.len() - 1].to_vec(),
            "needs 16 bytes",
        ),
        (
            "long-header.npy",
            {
                let mut b = good.clone();
                b[8] = 0xff;
                b[9] = 0xff;
                b
            },
            "past the end",
        ),
        (
            "bad-magic.npy",
            b"NUMPY!!!!!!!!!!!!!!!!!!!".to_vec(),
            "magic",
        ),
        (
            "object.npy",
            npy("|O", false, &[2], &[0u8; 16]),
            "unsupported descr",
        ),
        (
            "header-past-end.safetensors",
            st_header("{}", 0)[..4].to_vec(),
            "too short",
        ),
        (
            "claims-too-much.safetensors",
            {
                let mut b = st_header("{}", 0);
                b[0] = 200;
                b
            },
            "past the end",
        ),
        (
            "not-utf8.safetensors",
            {
                let mut b = st_header("{\"a\":1}", 0);
                b[9] = 0xff;
                b
            },
            "UTF-8",
        ),
        ("not-json.safetensors", st_header("{not json}", 0), "JSON"),
        (
            "duplicate.safetensors",
            st_header(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                4,
            ),
            "twice",
        ),
        (
            "overlapping.safetensors",
            st_header(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                12,
            ),
            "bad header",
        ),
        (
            "gap.safetensors",
            st_header(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                12,
            ),
            "bad header",
        ),
        (
            "out-of-bounds.safetensors",
            st_header(
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                8,
            ),
            "the file holds 8",
        ),
        (
            "absurd-shape.safetensors",
            st_header(
                r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}}"#,
                16,
            ),
            "bad header",
        ),
        (
            "wrong-size.safetensors",
            st_header(
                r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#,
                16,
            ),
            "bad header",
        ),
    ];
    for (name, bytes, message) in &cases {
        let input = p(name);
        std::fs::write(&input, bytes).unwrap();
        let ext = if name.ends_with(".npy") {
            "npy"
        } else {
            "safetensors"
        };
        let output = p(&format!("out.{ext}"));
        let o = xbquant(&["quantize", s(&input), s(&output), "--wl", "8", "--fl", "5"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(name), "{name}: {err}");
        assert!(
            err.contains(message),
            "{name}: expected {message:?} in {err}"
        );
        assert!(!output.exists(), "{name}");
    }
    // A directory without an index.
    let empty = p("empty-dir");
    std::fs::create_dir(&empty).unwrap();
    let o = xbquant(&["quantize", s(&empty), s(&p("o")), "--wl", "8", "--fl", "5"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no *.safetensors.index.json"));
    // No temporary files were left behind.
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".xbquant"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `--float`: every float dtype rounded to a floating-point format as the core does, stochastic
/// noise continuous across pieces, and the options that do not apply refused.
#[test]
fn float_formats_from_the_command_line() {
    use xbquant::FloatFormat;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    let tensors = floats_file(&input, 2000);
    for (name, format) in [
        ("e4m3fn", FloatFormat::E4M3FN),
        ("e5m2", FloatFormat::E5M2),
        ("e3m2nx", FloatFormat::new(3, 2).unwrap().without_specials()),
    ] {
        let output = dir.path().join(format!("{name}.safetensors"));
        let report = ok(&["quantize", s(&input), s(&output), "--float", name, "--json"]);
        let json: serde_json::Value = serde_json::from_str(&report).unwrap();
        assert_eq!(json["format"], name);
        let bytes = std::fs::read(&output).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        for (tensor, dtype, data, _) in &tensors {
            let got = file.tensor(tensor).unwrap().data();
            let r = Rounding::NearestEven;
            let want: Vec<u8> = match dtype {
                Dtype::F16 => bytes_of(
                    &format.quantize(&values_of::<f16>(data, false), r).unwrap(),
                    false,
                ),
                Dtype::BF16 => bytes_of(
                    &format.quantize(&values_of::<bf16>(data, false), r).unwrap(),
                    false,
                ),
                Dtype::F32 => bytes_of(
                    &format.quantize(&values_of::<f32>(data, false), r).unwrap(),
                    false,
                ),
                Dtype::F64 => bytes_of(
                    &format.quantize(&values_of::<f64>(data, false), r).unwrap(),
                    false,
                ),
                _ => data.clone(),
            };
            assert!(got == want.as_slice(), "{name} {tensor}");
        }
    }
    // Stochastic, over more than one piece: one call of the core.
    let n = (1 << 20) + 999;
    let x: Vec<f32> = sample(n).iter().map(|&v| v as f32).collect();
    let big = dir.path().join("big.safetensors");
    write_safetensors(&big, &[("w", Dtype::F32, bytes_of(&x, false), vec![n])]);
    let out = dir.path().join("big-q.safetensors");
    ok(&[
        "quantize",
        s(&big),
        s(&out),
        "--float",
        "e5m2",
        "--rounding",
        "stochastic",
        "--seed",
        "8",
    ]);
    let bytes = std::fs::read(&out).unwrap();
    let got: Vec<f32> = values_of(
        SafeTensors::deserialize(&bytes)
            .unwrap()
            .tensor("w")
            .unwrap()
            .data(),
        false,
    );
    assert!(
        got == FloatFormat::E5M2
            .quantize(&x, Rounding::Stochastic { seed: 8 })
            .unwrap()
    );
    // --exp/--man: QPyTorch's format, the same as --float eXmYnx.
    let a = dir.path().join("exp-man.safetensors");
    let b = dir.path().join("nx.safetensors");
    ok(&["quantize", s(&input), s(&a), "--exp", "4", "--man", "3"]);
    ok(&["quantize", s(&input), s(&b), "--float", "e4m3nx"]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(!xbquant(&[
        "quantize",
        s(&input),
        s(&dir.path().join("e.safetensors")),
        "--exp",
        "4"
    ])
    .status
    .success());
    // Refused: codes, fixed-point options, roundings floating point does not offer.
    let refused = dir.path().join("refused.safetensors");
    for extra in [
        &["--codes"][..],
        &["--wl", "8"],
        &["--overflow", "wrap"],
        &["--rounding", "floor"],
        &["--seed", "1"],
    ] {
        let mut args = vec!["quantize", s(&input), s(&refused), "--float", "e5m2"];
        args.extend(extra);
        let o = xbquant(&args);
        assert!(!o.status.success(), "{extra:?}");
        assert!(!refused.exists());
    }
}

/// `--block WL`: one block per tensor, equal to the core's block format; stochastic continuous
/// across pieces.
#[test]
fn block_floating_point_from_the_command_line() {
    use xbquant::{BlockFormat, Blocks};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    let tensors = floats_file(&input, 3000);
    let output = dir.path().join("b.safetensors");
    let report = ok(&["quantize", s(&input), s(&output), "--block", "6", "--json"]);
    assert!(report.contains("scale=shared-exponent"), "{report}");
    let f = BlockFormat::new(6).unwrap();
    let bytes = std::fs::read(&output).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let r = Rounding::NearestEven;
    for (tensor, dtype, data, _) in &tensors {
        let got = file.tensor(tensor).unwrap().data();
        let want: Vec<u8> = match dtype {
            Dtype::F16 => bytes_of(
                &f.quantize(&values_of::<f16>(data, false), &Blocks::Whole, r)
                    .unwrap(),
                false,
            ),
            Dtype::BF16 => bytes_of(
                &f.quantize(&values_of::<bf16>(data, false), &Blocks::Whole, r)
                    .unwrap(),
                false,
            ),
            Dtype::F32 => bytes_of(
                &f.quantize(&values_of::<f32>(data, false), &Blocks::Whole, r)
                    .unwrap(),
                false,
            ),
            Dtype::F64 => bytes_of(
                &f.quantize(&values_of::<f64>(data, false), &Blocks::Whole, r)
                    .unwrap(),
                false,
            ),
            _ => data.clone(),
        };
        assert!(got == want.as_slice(), "{tensor}");
    }
    let n = (1 << 20) + 77;
    let x: Vec<f32> = sample(n).iter().map(|&v| v as f32).collect();
    let big = dir.path().join("big.safetensors");
    write_safetensors(&big, &[("w", Dtype::F32, bytes_of(&x, false), vec![n])]);
    let out = dir.path().join("big-b.safetensors");
    ok(&[
        "quantize",
        s(&big),
        s(&out),
        "--block",
        "8",
        "--rounding",
        "stochastic",
        "--seed",
        "5",
    ]);
    let bytes = std::fs::read(&out).unwrap();
    let got: Vec<f32> = values_of(
        SafeTensors::deserialize(&bytes)
            .unwrap()
            .tensor("w")
            .unwrap()
            .data(),
        false,
    );
    let want = BlockFormat::new(8)
        .unwrap()
        .quantize(&x, &Blocks::Whole, Rounding::Stochastic { seed: 5 })
        .unwrap();
    assert!(got == want);
    let o = xbquant(&[
        "quantize",
        s(&input),
        s(&dir.path().join("x.safetensors")),
        "--block",
        "6",
        "--float",
        "e5m2",
    ]);
    assert!(!o.status.success());
}

/// `--fl auto`, per tensor and per index of `--axis`: the fractional lengths are the core's
/// choice (reported per tensor), and the values equal one core call on the whole tensor, for
/// tensors of several streamed pieces (stochastic, with a seed), `.npy` in both orders, and a
/// `.safetensors` file whose bias lacks the axis.
#[test]
fn fractional_lengths_chosen_per_tensor_and_per_axis() {
    use xbquant::{Blocks, FracLengthRule};
    let dir = tempfile::tempdir().unwrap();
    let format = FixedPoint::new(8, 0).unwrap();
    let rounding = Rounding::Stochastic { seed: 5 };
    // Rows on different scales, one of zeros; more than one piece of 1M elements.
    let (rows, cols) = (5usize, 300_001usize);
    let x: Vec<f32> = sample(rows * cols)
        .iter()
        .enumerate()
        .map(|(i, &v)| (v * [0.01, 1.0, 30.0, 0.0, 0.2][i / cols]) as f32)
        .collect();
    let want = |data: &[f32], shape: &[usize], axis: Option<usize>, rounding: Rounding| {
        let blocks = match axis {
            Some(axis) => Blocks::Axis {
                shape: shape.to_vec(),
                axis,
            },
            None => Blocks::Whole,
        };
        let fls = format
            .choose_frac_lengths(data, &blocks, FracLengthRule::Max)
            .unwrap();
        let mut q = vec![0f32; data.len()];
        format
            .quantize_slices_into(data, &mut q, None, &blocks, &fls, rounding)
            .unwrap();
        (q, fls)
    };
    let input = dir.path().join("w.npy");
    std::fs::write(
        &input,
        npy("<f4", false, &[rows, cols], &bytes_of(&x, false)),
    )
    .unwrap();
    for axis in [None, Some(0), Some(1)] {
        let output = dir.path().join(format!("q{axis:?}.npy"));
        let mut args = vec![
            "quantize",
            s(&input),
            s(&output),
            "--wl",
            "8",
            "--fl",
            "auto",
        ];
        args.extend(["--rounding", "stochastic", "--seed", "5", "--json"]);
        let axis_text = axis.map(|a: usize| a.to_string());
        if let Some(a) = &axis_text {
            args.extend(["--axis", a.as_str()]);
        }
        let report: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
        let (q, fls) = want(&x, &[rows, cols], axis, rounding);
        let bytes = std::fs::read(&output).unwrap();
        let got: Vec<f32> = values_of(&bytes[bytes.len() - 4 * x.len()..], false);
        assert!(got == q, "axis {axis:?}");
        let reported = &report["tensors"][0]["fl"];
        match axis {
            None => assert_eq!(reported.as_i64(), Some(i64::from(fls[0]))),
            Some(_) => assert_eq!(reported, &serde_json::json!(fls)),
        }
        if axis == Some(0) {
            assert_eq!(
                fls[3], 6,
                "a row of zeros: the fl whose largest value is under 1"
            );
        }
    }
    // Fortran order: the same logical rows.
    let small: Vec<f32> = x[..rows * 40].to_vec(); // 5 x 40 taken as row-major
    let fortran: Vec<f32> = (0..rows * 40)
        .map(|k| small[(k % rows) * 40 + k / rows])
        .collect();
    let input = dir.path().join("f.npy");
    std::fs::write(
        &input,
        npy("<f4", true, &[rows, 40], &bytes_of(&fortran, false)),
    )
    .unwrap();
    let output = dir.path().join("fq.npy");
    ok(&[
        "quantize",
        s(&input),
        s(&output),
        "--wl",
        "8",
        "--fl",
        "auto",
        "--axis",
        "0",
    ]);
    let bytes = std::fs::read(&output).unwrap();
    let got: Vec<f32> = values_of(&bytes[bytes.len() - 4 * fortran.len()..], false);
    let (q, _) = want(&small, &[rows, 40], Some(0), Rounding::NearestEven);
    let q_fortran: Vec<f32> = (0..rows * 40)
        .map(|k| q[(k % rows) * 40 + k / rows])
        .collect();
    assert!(got == q_fortran);
    // A weight and a bias: --axis 1 gives the weight one fl per column, the bias one.
    let input = dir.path().join("m.safetensors");
    let w: Vec<f32> = x[..6 * 4].to_vec();
    let b: Vec<f32> = x[cols..cols + 4].to_vec();
    write_safetensors(
        &input,
        &[
            ("w", Dtype::F32, bytes_of(&w, false), vec![6, 4]),
            ("b", Dtype::F32, bytes_of(&b, false), vec![4]),
        ],
    );
    let output = dir.path().join("mq.safetensors");
    let args = [
        "quantize",
        s(&input),
        s(&output),
        "--wl",
        "6",
        "--fl",
        "auto",
        "--axis",
        "1",
    ];
    let text = ok(&args);
    assert!(text.contains("group=axis:1 scale=pow2"), "{text}");
    assert!(text.contains("(4 groups)"), "{text}");
    // --codes needs one fl; --axis needs --fl auto; range needs a number.
    let o = xbquant(&[
        "quantize",
        s(&input),
        s(&output),
        "--wl",
        "6",
        "--fl",
        "auto",
        "--codes",
        "--force",
    ]);
    assert!(!o.status.success());
    let o = xbquant(&[
        "quantize",
        s(&input),
        s(&output),
        "--wl",
        "6",
        "--fl",
        "2",
        "--axis",
        "1",
        "--force",
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--fl auto"));
    assert!(!xbquant(&["range", "--wl", "6", "--fl", "auto"])
        .status
        .success());
}

/// `--scheme`: any scheme in its text form, here an 8-bit converter whose range per row is a
/// percentile of the row's magnitudes (a first pass gathers them), equal to the core's scheme on
/// the whole tensor; and a stochastic scheme of a tensor longer than a piece, equal to one call.
#[test]
fn schemes_from_the_command_line() {
    use xbquant::{Quantizer, Scheme};
    let dir = tempfile::tempdir().unwrap();
    let (rows, cols) = (3usize, 700_001usize);
    let x: Vec<f32> = sample(rows * cols).iter().map(|&v| v as f32).collect();
    let input = dir.path().join("w.safetensors");
    write_safetensors(
        &input,
        &[("w", Dtype::F32, bytes_of(&x, false), vec![rows, cols])],
    );
    for text in [
        "fixed<8,7> overflow=saturate-symmetric group=axis:0 range=percentile:99.5",
        "fixed<6,0> overflow=saturate rounding=stochastic:5 group=axis:-1 scale=pow2",
        "e4m3fn rounding=stochastic:9",
    ] {
        let output = dir.path().join("q.safetensors");
        let report = ok(&[
            "quantize",
            s(&input),
            s(&output),
            "--scheme",
            text,
            "--json",
            "--force",
        ]);
        let json: serde_json::Value = serde_json::from_str(&report).unwrap();
        assert_eq!(json["scheme"], text);
        let scheme: Scheme = text.parse().unwrap();
        let want = scheme.quantize_shaped(&x, &[rows, cols]).unwrap();
        let bytes = std::fs::read(&output).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let got: Vec<f32> = values_of(file.tensor("w").unwrap().data(), false);
        let first = (0..want.len()).find(|&i| got[i].to_bits() != want[i].to_bits());
        assert_eq!(first, None, "{text}");
    }
    // A bad scheme is a named error; --scheme excludes the format options.
    let o = xbquant(&[
        "quantize",
        s(&input),
        "o.safetensors",
        "--scheme",
        "fixed<8,4> range=-1",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("range"));
    let o = xbquant(&[
        "quantize",
        s(&input),
        "o.safetensors",
        "--scheme",
        "e4m3fn",
        "--wl",
        "8",
    ]);
    assert!(!o.status.success());
}
