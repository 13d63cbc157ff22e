//! Nothing lost, nothing hangs: the binary as users run it, against outputs that are the input
//! under another name, `--force` into directories holding other files, racing writers, signals
//! at several points of a large write, FIFOs and symbolic links, and the report's edge cases.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use safetensors::tensor::{Dtype, TensorView};
use xbquant::{FixedPoint, QuantSpec, Rounding};

mod common;
use common::{bin, npy, ok, s, xbquant};

/// Runs a command that must fail with status 1 and a message containing `message`.
fn refused(args: &[&str], message: &str) {
    let o = xbquant(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(
        err.contains(message),
        "{args:?}: expected {message:?} in {err}"
    );
}

/// A `.npy` file of `f32` values, C or Fortran order.
fn npy_f32(path: &Path, shape: &[usize], fortran: bool, values: &[f32]) {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, npy("<f4", fortran, shape, &data)).unwrap();
}

/// The data of an `.npy` file written by [`npy_f32`] (or by the binary from one).
fn npy_values(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let header = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[header..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn values(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32) * 0.618_034).sin() * scale)
        .collect()
}

/// A sharded model in `dir`: two shards of two tensors each and their index.
fn sharded_model(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut weight_map = serde_json::Map::new();
    for k in 1..=2 {
        let shard = format!("s{k}.safetensors");
        let w = values(64 * k, k as f32);
        let b = values(k, 0.5);
        let (wb, bb): (Vec<u8>, Vec<u8>) = (
            w.iter().flat_map(|v| v.to_le_bytes()).collect(),
            b.iter().flat_map(|v| v.to_le_bytes()).collect(),
        );
        let views = vec![
            (
                format!("l{k}.weight"),
                TensorView::new(Dtype::F32, vec![64, k], &wb).unwrap(),
            ),
            (
                format!("l{k}.bias"),
                TensorView::new(Dtype::F32, vec![k], &bb).unwrap(),
            ),
        ];
        safetensors::serialize_to_file(views, None, &dir.join(&shard)).unwrap();
        weight_map.insert(format!("l{k}.weight"), shard.clone().into());
        weight_map.insert(format!("l{k}.bias"), shard.into());
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

/// Every file under `dir` (recursively, symbolic links not followed) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            } else {
                out.insert(p.clone(), Vec::new());
            }
        }
    }
    out
}

/// The temporary files and directories left in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".xbquant"))
        .collect()
}

/// The output directory is the input's under every spelling: refused, nothing changed.
#[test]
fn a_sharded_model_is_never_written_over_itself() {
    let dir = tempfile::tempdir().unwrap();
    let m2 = dir.path().join("m2");
    sharded_model(&m2);
    std::os::unix::fs::symlink(&m2, dir.path().join("link")).unwrap();
    let before = snapshot(dir.path());
    let index = m2.join("model.safetensors.index.json");
    let spellings = [
        (index.clone(), m2.clone()),
        (index.clone(), m2.join(".")),
        (index.clone(), dir.path().join("m2/../m2")),
        (index.clone(), dir.path().join("link")),
        (
            dir.path().join("link/model.safetensors.index.json"),
            m2.clone(),
        ),
        (m2.clone(), dir.path().join("link")),
        (dir.path().join("link"), m2.join("..").join("m2")),
        // The output directory holds the input's.
        (index.clone(), dir.path().to_path_buf()),
    ];
    for (input, output) in &spellings {
        for command in ["quantize", "dequantize"] {
            let mut args = vec![command, s(input), s(output), "--force"];
            if command == "quantize" {
                args.extend(["--wl", "4", "--fl", "1"]);
            }
            let o = xbquant(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
            assert!(
                err.contains("holds the input") || err.contains("the output is the input"),
                "{args:?}: {err}"
            );
            assert_eq!(snapshot(dir.path()), before, "{args:?}");
        }
    }
    // A file written over itself through a symbolic or hard link.
    let x = dir.path().join("x.npy");
    npy_f32(&x, &[4], false, &[0.1, 0.2, 0.3, 0.4]);
    std::os::unix::fs::symlink(&x, dir.path().join("sym.npy")).unwrap();
    std::fs::hard_link(&x, dir.path().join("hard.npy")).unwrap();
    let before = std::fs::read(&x).unwrap();
    for out in ["sym.npy", "hard.npy", "x.npy"] {
        let out = dir.path().join(out);
        refused(
            &[
                "quantize",
                s(&x),
                s(&out),
                "--wl",
                "4",
                "--fl",
                "1",
                "--force",
            ],
            "the output is the input",
        );
    }
    assert_eq!(std::fs::read(&x).unwrap(), before);
}

/// `--force` into a directory replaces the files it writes and nothing else; an output
/// directory that holds the input is refused.
#[test]
fn force_into_a_directory_removes_nothing_it_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v3/out");
    sharded_model(&out.join("model"));
    std::fs::write(out.join("notes.txt"), "keep").unwrap();
    let before = snapshot(dir.path());
    refused(
        &[
            "quantize",
            s(&out.join("model")),
            s(&out),
            "--wl",
            "8",
            "--fl",
            "4",
            "--force",
        ],
        "holds the input",
    );
    assert_eq!(snapshot(dir.path()), before);

    // A model elsewhere, quantized --force into that directory: its files are replaced, the
    // others stay as they were.
    let model = dir.path().join("model");
    sharded_model(&model);
    std::fs::write(out.join("s1.safetensors"), "an old shard").unwrap();
    ok(&[
        "quantize",
        s(&model),
        s(&out),
        "--wl",
        "8",
        "--fl",
        "4",
        "--force",
    ]);
    let after = snapshot(&out);
    for (path, bytes) in snapshot(&out.join("model")) {
        assert_eq!(after[&path], bytes, "{}", path.display());
    }
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"keep");
    let shard = std::fs::read(out.join("s1.safetensors")).unwrap();
    assert_ne!(shard, b"an old shard");
    assert!(out.join("model.safetensors.index.json").exists());
    assert!(temporaries(&out).is_empty());
    // A directory where a shard goes is refused before anything is written.
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join("s2.safetensors")).unwrap();
    std::fs::write(other.join("s1.safetensors"), "keep").unwrap();
    let before = snapshot(&other);
    refused(
        &[
            "quantize",
            s(&model),
            s(&other),
            "--wl",
            "8",
            "--fl",
            "4",
            "--force",
        ],
        "a directory, where the output's file of that name goes",
    );
    assert_eq!(snapshot(&other), before);
    assert!(temporaries(&other).is_empty());
    // Each shard holds the quantized values.
    let st = safetensors::SafeTensors::deserialize(&shard).unwrap();
    let w: Vec<f32> = st
        .tensor("l1.weight")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let spec = QuantSpec::new(FixedPoint::new(8, 4).unwrap(), Rounding::NearestEven);
    assert_eq!(w, spec.format().quantize(&values(64, 1.0), spec.rounding()));
}

/// A large `.npy` input: 12M `f32` (48 MiB), written once per test that needs one.
fn large_input(dir: &Path) -> PathBuf {
    let big = dir.join("big.npy");
    npy_f32(&big, &[12 << 20], false, &values(12 << 20, 3.0));
    big
}

/// Waits until a temporary file in `dir` holds at least `bytes` bytes (or the child ends).
fn wait_for_temporary(dir: &Path, bytes: u64, child: &mut Child) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".xbquant-tmp-")
                && e.metadata().is_ok_and(|m| m.is_file() && m.len() >= bytes)
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("no temporary file of {bytes} bytes appeared");
}

/// Sends SIG`name` to the child.
fn signal(child: &Child, name: &str) {
    use rustix::process::{kill_process, Pid, Signal};
    let signal = match name {
        "INT" => Signal::INT,
        "TERM" => Signal::TERM,
        "HUP" => Signal::HUP,
        _ => Signal::KILL,
    };
    let pid = Pid::from_raw(child.id() as i32).unwrap();
    // The child may have ended (and not yet been reaped) already; that is not an error here.
    kill_process(pid, signal).ok();
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
}

/// `xbquant quantize INPUT OUTPUT --wl 8 --fl 4 --force`, which must succeed.
fn quantize_force(input: &Path, output: &Path) {
    ok(&[
        "quantize",
        s(input),
        s(output),
        "--wl",
        "8",
        "--fl",
        "4",
        "--force",
    ]);
}

/// Runs `quantize_force` in a child, sends it SIG`name` once a temporary file in `watch` holds
/// `bytes` bytes, and waits for it: whether the signal ended the run (it was still running then
/// and did not succeed).
fn interrupt(input: &Path, output: &Path, watch: &Path, bytes: u64, name: &str) -> bool {
    let mut child = bin()
        .args([
            "quantize",
            s(input),
            s(output),
            "--wl",
            "8",
            "--fl",
            "4",
            "--force",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_temporary(watch, bytes, &mut child);
    let finished = child.try_wait().unwrap();
    signal(&child, name);
    let status = child.wait().unwrap();
    finished.is_none() && !status.success()
}

/// Signals at several points of a large write: the old output intact, no temporary file left
/// (after the next run, for SIGKILL), and the run ended by the signal.
#[test]
fn signals_during_a_large_write_leave_the_old_output_and_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let big = large_input(dir.path());
    let small = dir.path().join("small.npy");
    npy_f32(&small, &[3], false, &[0.1, 0.2, 0.3]);
    let out = dir.path().join("out.npy");
    let total = std::fs::metadata(&big).unwrap().len();
    let mut interrupted = 0;
    for name in ["INT", "TERM", "HUP", "KILL"] {
        for share in [0, 3, 6] {
            // The old output.
            npy_f32(&out, &[2], false, &[7.0, 8.0]);
            let old = std::fs::read(&out).unwrap();
            let at = format!("SIG{name} at {share}/10");
            if interrupt(&big, &out, dir.path(), total * share / 10, name) {
                interrupted += 1;
                assert_eq!(std::fs::read(&out).unwrap(), old, "{at}");
            } else {
                // Done before the signal: the whole new output.
                assert_eq!(npy_values(&out).len(), 12 << 20, "{at}");
            }
            if name == "KILL" {
                // The next run into the directory removes what a killed run left.
                quantize_force(&small, &dir.path().join("next.npy"));
            }
            let left = temporaries(dir.path());
            assert!(left.is_empty(), "{at}: {left:?}");
        }
    }
    assert!(
        interrupted >= 8,
        "only {interrupted} of 12 runs were interrupted"
    );
}

/// A sharded model written --force into a directory holding other files, interrupted: the
/// other files and the old shards intact, no temporary file left.
#[test]
fn signals_during_a_sharded_write_into_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    let w = values(8 << 20, 2.0);
    let wb: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = vec![(
        "w",
        TensorView::new(Dtype::F32, vec![8 << 20], &wb).unwrap(),
    )];
    safetensors::serialize_to_file(views, None, &model.join("a.safetensors")).unwrap();
    let index = serde_json::json!({"weight_map": {"w": "a.safetensors"}});
    std::fs::write(
        model.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "keep").unwrap();
    std::fs::write(out.join("a.safetensors"), "old").unwrap();
    let mut interrupted = 0;
    for name in ["INT", "TERM", "HUP", "KILL"] {
        let before = snapshot(&out);
        if interrupt(&model, &out, &out, 8 << 20, name) {
            interrupted += 1;
            // Everything as it was, and for SIGKILL one temporary file more.
            let after = snapshot(&out);
            assert_eq!(after.len(), before.len() + usize::from(name == "KILL"));
            for (path, bytes) in &before {
                assert_eq!(&after[path], bytes, "SIG{name}");
            }
        }
        if name == "KILL" {
            // A sharded model --force into the same directory removes the orphan.
            quantize_force(&model, &out);
            std::fs::write(out.join("a.safetensors"), "old").unwrap();
            std::fs::remove_file(out.join("model.safetensors.index.json")).unwrap();
        }
        let left = temporaries(&out);
        assert!(left.is_empty(), "SIG{name}: {left:?}");
        assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"keep");
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} of 4 runs were interrupted"
    );
}

/// Two writers of one output without --force: the later to finish fails and the output holds
/// the first result; with a directory, likewise.
#[test]
fn racing_writers_never_replace_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let big = large_input(dir.path());
    let small = dir.path().join("small.npy");
    npy_f32(&small, &[3], false, &[0.1, 0.2, 0.3]);
    let out = dir.path().join("race.npy");
    let mut slow = bin()
        .args(["quantize", s(&big), s(&out), "--wl", "8", "--fl", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The slow writer has started writing; the fast one finishes first.
    wait_for_temporary(dir.path(), 1 << 20, &mut slow);
    assert!(
        slow.try_wait().unwrap().is_none(),
        "the large write ended too soon"
    );
    ok(&["quantize", s(&small), s(&out), "--wl", "8", "--fl", "4"]);
    let o = slow.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("appeared while this run was writing"), "{err}");
    assert_eq!(npy_values(&out).len(), 3);
    assert!(temporaries(dir.path()).is_empty());
}

/// Runs the binary, which must end within 20 seconds (a FIFO once made it wait for ever).
fn exits_soon(args: &[&str]) -> std::process::Output {
    let mut child = bin().args(args).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("{args:?} blocks");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Inputs that are not regular files are refused at once; the messages say what is wrong.
#[test]
fn fifos_links_and_loops() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let fifo = p("fifo.npy");
    mkfifo(&fifo);
    let o = exits_soon(&[
        "quantize",
        s(&fifo),
        s(&p("o.npy")),
        "--wl",
        "8",
        "--fl",
        "4",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a regular file"));
    // A FIFO in a sharded model, as a shard or as the index found in a directory: refused at
    // once as well.
    for fifo_name in ["s1.safetensors", "model.safetensors.index.json"] {
        let model = p(&format!("model-{fifo_name}"));
        sharded_model(&model);
        std::fs::remove_file(model.join(fifo_name)).unwrap();
        mkfifo(&model.join(fifo_name));
        let o = exits_soon(&[
            "quantize",
            s(&model),
            s(&p("o-model")),
            "--wl",
            "8",
            "--fl",
            "4",
        ]);
        assert_eq!(o.status.code(), Some(1), "{fifo_name}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("not a regular file"), "{fifo_name}: {err}");
    }
    // An output in a directory that does not exist is named as such.
    let x = p("in.npy");
    npy_f32(&x, &[2], false, &[0.3, 0.6]);
    refused(
        &[
            "quantize",
            s(&x),
            s(&p("nowhere/o.npy")),
            "--wl",
            "8",
            "--fl",
            "4",
        ],
        "no such directory",
    );
    // A symbolic link loop is named as one.
    std::os::unix::fs::symlink(p("loop-b.npy"), p("loop-a.npy")).unwrap();
    std::os::unix::fs::symlink(p("loop-a.npy"), p("loop-b.npy")).unwrap();
    refused(
        &[
            "quantize",
            s(&p("loop-a.npy")),
            s(&p("o.npy")),
            "--wl",
            "8",
            "--fl",
            "4",
        ],
        "symbolic links",
    );
    // A dangling symbolic link as output is replaced only with --force.
    let x = p("x.npy");
    npy_f32(&x, &[2], false, &[0.3, 0.6]);
    let dangling = p("dangling.npy");
    std::os::unix::fs::symlink(p("nowhere.npy"), &dangling).unwrap();
    refused(
        &["quantize", s(&x), s(&dangling), "--wl", "8", "--fl", "4"],
        "already exists",
    );
    assert!(std::fs::symlink_metadata(&dangling)
        .unwrap()
        .file_type()
        .is_symlink());
    ok(&[
        "quantize",
        s(&x),
        s(&dangling),
        "--wl",
        "8",
        "--fl",
        "4",
        "--force",
    ]);
    assert_eq!(npy_values(&dangling), [0.3125, 0.625]);
    assert!(!p("nowhere.npy").exists());
}

/// Stochastic rounding of a Fortran-order file draws each element's logical index: the same
/// bits as the same tensor in C order (and as Python, which follows logical order).
#[test]
fn fortran_order_draws_follow_logical_order() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, cols) = (37, 23);
    let logical = values(rows * cols, 2.0);
    // Fortran memory: column after column.
    let mut fortran = vec![0f32; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            fortran[j * rows + i] = logical[i * cols + j];
        }
    }
    let (c, f) = (dir.path().join("c.npy"), dir.path().join("f.npy"));
    npy_f32(&c, &[rows, cols], false, &logical);
    npy_f32(&f, &[rows, cols], true, &fortran);
    for extra in [
        &["--wl", "6", "--fl", "3"][..],
        &["--wl", "6", "--fl", "auto", "--axis", "1"],
        &["--wl", "6", "--fl", "auto", "--axis", "-2"],
        &["--float", "e2m1"],
    ] {
        let (cq, fq) = (dir.path().join("cq.npy"), dir.path().join("fq.npy"));
        for (input, output) in [(&c, &cq), (&f, &fq)] {
            let mut args = vec![
                "quantize",
                s(input),
                s(output),
                "--rounding",
                "stochastic",
                "--seed",
                "-5",
                "--force",
            ];
            args.extend_from_slice(extra);
            ok(&args);
        }
        let (cv, fv) = (npy_values(&cq), npy_values(&fq));
        for i in 0..rows {
            for j in 0..cols {
                assert_eq!(cv[i * cols + j], fv[j * rows + i], "{extra:?} ({i}, {j})");
            }
        }
        assert_ne!(cv, logical, "{extra:?}");
    }
    // --seed -5 is the seed 2^64 - 5.
    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    ok(&[
        "quantize",
        s(&c),
        s(&a),
        "--wl",
        "6",
        "--fl",
        "3",
        "--rounding",
        "stochastic",
        "--seed",
        "-5",
    ]);
    ok(&[
        "quantize",
        s(&c),
        s(&b),
        "--wl",
        "6",
        "--fl",
        "3",
        "--rounding",
        "stochastic",
        "--seed",
        "18446744073709551611",
    ]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // --axis -1 is the last axis.
    let (a, b) = (dir.path().join("a1.npy"), dir.path().join("b1.npy"));
    ok(&[
        "quantize",
        s(&c),
        s(&a),
        "--wl",
        "6",
        "--fl",
        "auto",
        "--axis",
        "-1",
        "--json",
    ]);
    ok(&[
        "quantize",
        s(&c),
        s(&b),
        "--wl",
        "6",
        "--fl",
        "auto",
        "--axis",
        "1",
        "--json",
    ]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

/// A shard's tensors all listed in the index, each in one shard only.
#[test]
fn shards_and_index_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    sharded_model(&model);
    let index_path = model.join("model.safetensors.index.json");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    // A tensor of a shard left out of the index.
    let mut missing = index.clone();
    missing["weight_map"]
        .as_object_mut()
        .unwrap()
        .remove("l1.bias");
    std::fs::write(&index_path, missing.to_string()).unwrap();
    refused(
        &[
            "quantize",
            s(&model),
            s(&dir.path().join("o1")),
            "--wl",
            "8",
            "--fl",
            "4",
        ],
        "which the index does not list",
    );
    // A tensor held by two shards.
    let x = values(4, 1.0);
    let xb: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = vec![
        (
            "l1.bias",
            TensorView::new(Dtype::F32, vec![4], &xb).unwrap(),
        ),
        ("extra", TensorView::new(Dtype::F32, vec![4], &xb).unwrap()),
    ];
    safetensors::serialize_to_file(views, None, &model.join("s3.safetensors")).unwrap();
    let mut twice = index.clone();
    twice["weight_map"]["extra"] = "s3.safetensors".into();
    std::fs::write(&index_path, twice.to_string()).unwrap();
    refused(
        &[
            "quantize",
            s(&model),
            s(&dir.path().join("o2")),
            "--wl",
            "8",
            "--fl",
            "4",
        ],
        "is in two shards",
    );
    assert!(!dir.path().join("o1").exists() && !dir.path().join("o2").exists());
}

/// The report: infinite errors counted, SQNR and errors one JSON type (a number or null).
#[test]
fn reports_count_non_finite_errors() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    npy_f32(
        &x,
        &[4],
        false,
        &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.0],
    );
    let json = ok(&[
        "quantize",
        s(&x),
        s(&dir.path().join("q.npy")),
        "--wl",
        "4",
        "--fl",
        "2",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let t = &v["tensors"][0];
    assert_eq!(t["nonfinite_errors"], 2);
    assert!(
        t["sqnr_db"].is_null() && t["max_abs_error"].is_null(),
        "{t}"
    );
    let text = ok(&[
        "quantize",
        s(&x),
        s(&dir.path().join("q2.npy")),
        "--wl",
        "4",
        "--fl",
        "2",
    ]);
    assert!(text.contains("inf") && text.contains("-inf"), "{text}");
    // Unbounded: infinities stay, NaN stays; no error at all.
    let json = ok(&[
        "quantize",
        s(&x),
        s(&dir.path().join("q3.npy")),
        "--wl",
        "4",
        "--fl",
        "2",
        "--overflow",
        "unbounded",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let t = &v["tensors"][0];
    assert_eq!(t["nonfinite_errors"], 0);
    assert!(t["sqnr_db"].is_null() && t["max_abs_error"] == 0.0, "{t}");
    // A finite SQNR is a number.
    npy_f32(&x, &[3], false, &[0.3, 0.6, -1.1]);
    let json = ok(&[
        "quantize",
        s(&x),
        s(&dir.path().join("q4.npy")),
        "--wl",
        "4",
        "--fl",
        "2",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["tensors"][0]["sqnr_db"].is_f64());
}

/// `--fl auto` never turns finite values into infinities: a float16 file at its largest value.
#[test]
fn fl_auto_stays_finite_in_the_files_type() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("h.npy");
    let data: Vec<u8> = [65504f32, 1.0, -60000.0]
        .iter()
        .flat_map(|&v| xbquant::half::f16::from_f32(v).to_le_bytes())
        .collect();
    std::fs::write(&x, npy("<f2", false, &[3], &data)).unwrap();
    let q = dir.path().join("q.npy");
    let json = ok(&[
        "quantize",
        s(&x),
        s(&q),
        "--wl",
        "4",
        "--fl",
        "auto",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let out = std::fs::read(&q).unwrap();
    let values: Vec<f32> = out[out.len() - 6..]
        .chunks_exact(2)
        .map(|c| xbquant::half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    assert_eq!(values, [57344.0, 0.0, -57344.0], "{v}");
    assert_eq!(v["tensors"][0]["fl"], -13);
    // 65504 overflows the word (and saturates); -60000 rounds to -7 steps.
    assert_eq!(v["tensors"][0]["overflow"].as_f64(), Some(1.0 / 3.0), "{v}");
}

/// Two runs --force into one directory at once: each output file is whole, and the shards and
/// the index all come from one of the two runs (they rename in turn, under the directory's
/// lock).
#[test]
fn racing_force_runs_into_one_directory_leave_one_whole_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    sharded_model(&model);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // What each run alone writes.
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(&["quantize", s(&model), s(&a), "--wl", "8", "--fl", "4"]);
    ok(&["quantize", s(&model), s(&b), "--wl", "4", "--fl", "1"]);
    let (a, b) = (snapshot(&a), snapshot(&b));
    let name = |p: &Path| p.file_name().unwrap().to_os_string();
    for _ in 0..5 {
        let spawn = |fl: &str, wl: &str| {
            bin()
                .args([
                    "quantize",
                    s(&model),
                    s(&out),
                    "--wl",
                    wl,
                    "--fl",
                    fl,
                    "--force",
                ])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        };
        let (mut first, mut second) = (spawn("4", "8"), spawn("1", "4"));
        assert!(first.wait().unwrap().success() && second.wait().unwrap().success());
        let got: BTreeMap<_, _> = snapshot(&out)
            .into_iter()
            .map(|(p, bytes)| (name(&p), bytes))
            .collect();
        let from = |run: &BTreeMap<PathBuf, Vec<u8>>| {
            run.iter()
                .all(|(p, bytes)| got.get(&name(p)) == Some(bytes))
        };
        assert!(from(&a) || from(&b), "the output mixes the two runs");
        assert_eq!(got.len(), a.len());
    }
}
