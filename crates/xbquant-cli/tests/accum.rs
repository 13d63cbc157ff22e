//! `xbquant accum`, run as a user runs it: the widths of every weight of a `.safetensors` and a
//! `.npy` checkpoint against `xbquant_fixed`, the table and JSON, and the error paths.
#![cfg(unix)]

use std::process::{Command, Output};

use safetensors::tensor::{Dtype, TensorView};
use xbquant_fixed::{accum_bits, accum_type, FixedType};

fn xbquant(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xbquant"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn values(n: usize, seed: f64) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f64 * 0.618 + seed).sin() * 0.9) as f32)
        .collect()
}

#[test]
fn every_weight_gets_hls4mls_width_and_the_width_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let (fc, conv, bias) = (
        values(12 * 20, 0.1),
        values(4 * 3 * 2 * 2, 0.7),
        values(12, 0.3),
    );
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (fcb, convb, biasb) = (bytes(&fc), bytes(&conv), bytes(&bias));
    let tensors = vec![
        (
            "fc.weight",
            TensorView::new(Dtype::F32, vec![12, 20], &fcb).unwrap(),
        ),
        (
            "conv.weight",
            TensorView::new(Dtype::F32, vec![4, 3, 2, 2], &convb).unwrap(),
        ),
        (
            "fc.bias",
            TensorView::new(Dtype::F32, vec![12], &biasb).unwrap(),
        ),
    ];
    safetensors::serialize_to_file(tensors, None, &path).unwrap();
    let (xt, wt) = ("ap_fixed<12,4>", "ap_fixed<6,1,AP_RND,AP_SAT>");
    let out = xbquant(&[
        "accum",
        path.to_str().unwrap(),
        "--input",
        xt,
        "--weight",
        wt,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (input, weight) = (FixedType::parse(xt).unwrap(), FixedType::parse(wt).unwrap());
    let rows = report["tensors"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "the bias is not a weight");
    for (name, data, out_ch, n) in [("fc.weight", &fc, 12, 20), ("conv.weight", &conv, 4, 12)] {
        let row = rows.iter().find(|r| r["name"] == name).unwrap();
        let codes: Vec<i64> = weight
            .cast_all(data, "w")
            .unwrap()
            .0
            .iter()
            .map(|&c| c as i64)
            .collect();
        let bits = accum_bits(&codes, out_ch, n, &input).unwrap();
        assert_eq!(row["needed_bits"], *bits.iter().max().unwrap());
        assert_eq!(
            row["needed_bits_smallest_channel"],
            *bits.iter().min().unwrap()
        );
        assert_eq!(
            row["hls4ml_accum"],
            accum_type(&input, &weight, n, None).unwrap().hls()
        );
        assert_eq!(row["n"], n);
    }
    // The table names every weight; a big-endian .npy reads as a native one.
    let table = xbquant(&[
        "accum",
        path.to_str().unwrap(),
        "--input",
        xt,
        "--weight",
        wt,
    ]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("fc.weight") && text.contains("conv.weight") && !text.contains("fc.bias")
    );
    let npy = dir.path().join("w.npy");
    let mut file = b"\x93NUMPY\x01\x00".to_vec();
    let mut header = "{'descr': '>f4', 'fortran_order': False, 'shape': (12, 20), }".to_string();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    file.extend_from_slice(&(header.len() as u16).to_le_bytes());
    file.extend_from_slice(header.as_bytes());
    file.extend(fc.iter().flat_map(|x| x.to_be_bytes()));
    std::fs::write(&npy, file).unwrap();
    let out = xbquant(&[
        "accum",
        npy.to_str().unwrap(),
        "--input",
        xt,
        "--weight",
        wt,
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fc_row = rows.iter().find(|r| r["name"] == "fc.weight").unwrap();
    assert_eq!(report["tensors"][0]["needed_bits"], fc_row["needed_bits"]);
    assert_eq!(report["tensors"][0]["name"], "w");
}

#[test]
fn bad_checkpoints_and_types_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bias.safetensors");
    let b: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    safetensors::serialize_to_file(
        vec![("b", TensorView::new(Dtype::F32, vec![2], &b).unwrap())],
        None,
        &path,
    )
    .unwrap();
    let p = path.to_str().unwrap();
    // A weight with no outputs, and one with non-finite values.
    let empty = dir.path().join("empty.safetensors");
    safetensors::serialize_to_file(
        vec![("w", TensorView::new(Dtype::F32, vec![0, 5], &[]).unwrap())],
        None,
        &empty,
    )
    .unwrap();
    let nan = dir.path().join("nan.safetensors");
    let nan_bytes: Vec<u8> = [1.0f32, f32::NAN]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    safetensors::serialize_to_file(
        vec![(
            "w",
            TensorView::new(Dtype::F32, vec![1, 2], &nan_bytes).unwrap(),
        )],
        None,
        &nan,
    )
    .unwrap();
    let (e, n) = (empty.to_str().unwrap(), nan.to_str().unwrap());
    let types = ["--input", "ap_fixed<8,3>", "--weight", "ap_fixed<8,3>"];
    for (path, message) in [(e, "with an output"), (n, "not finite")] {
        let out = xbquant(&[&["accum", path][..], &types[..]].concat());
        assert!(!out.status.success(), "{path}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{path}: {err}");
    }
    for (args, message) in [
        (
            vec![
                "accum",
                p,
                "--input",
                "ap_fixed<8,3>",
                "--weight",
                "ap_fixed<8,3>",
            ],
            "no float tensor",
        ),
        (
            vec![
                "accum",
                p,
                "--input",
                "ap_fixed<99,3>",
                "--weight",
                "ap_fixed<8,3>",
            ],
            "--input",
        ),
        (
            vec!["accum", p, "--input", "ap_fixed<8,3>", "--weight", "float"],
            "--weight",
        ),
        (
            vec![
                "accum",
                "/nonexistent.safetensors",
                "--input",
                "ap_fixed<8,3>",
                "--weight",
                "ap_fixed<8,3>",
            ],
            "cannot open",
        ),
        (
            vec![
                "accum",
                "/etc/hostname",
                "--input",
                "ap_fixed<8,3>",
                "--weight",
                "ap_fixed<8,3>",
            ],
            "expected a .npy or .safetensors",
        ),
    ] {
        let out = xbquant(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
}
