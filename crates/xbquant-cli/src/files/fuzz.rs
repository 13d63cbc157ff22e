//! Random mutations of valid files (truncations, bit flips, header edits, appended bytes),
//! thousands of cases, run in-process: each gives an error or a correct result, never a panic.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use xbquant::half::f16;
use xbquant::{FixedPoint, QuantSpec, Rounding};

use super::paths::Kind;
use super::{run, Task};

/// A small deterministic generator (xorshift64*), so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn valid_safetensors() -> Vec<u8> {
    let a: Vec<u8> = (0..24)
        .flat_map(|i| (i as f32 * 0.37 - 3.0).to_le_bytes())
        .collect();
    let b: Vec<u8> = (0..10)
        .flat_map(|i| f16::from_f32(i as f32 * 0.71 - 2.0).to_le_bytes())
        .collect();
    let c: Vec<u8> = (0..6).flat_map(|i: i32| i.to_le_bytes()).collect();
    let views = vec![
        ("a", TensorView::new(Dtype::F32, vec![4, 6], &a).unwrap()),
        ("b", TensorView::new(Dtype::F16, vec![10], &b).unwrap()),
        ("c", TensorView::new(Dtype::I32, vec![2, 3], &c).unwrap()),
    ];
    safetensors::serialize(views, None).unwrap()
}

fn valid_npy() -> Vec<u8> {
    let mut text = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }".to_string();
    while (10 + text.len() + 1) % 64 != 0 {
        text.push(' ');
    }
    text.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend((0..12).flat_map(|i| (i as f32 * 0.9 - 5.0).to_le_bytes()));
    out
}

/// A mutation of `file` whose header spans `header` bytes.
fn mutate(rng: &mut Rng, file: &[u8], header: usize) -> Vec<u8> {
    let mut out = file.to_vec();
    match rng.below(7) {
        0 => out.truncate(rng.below(file.len())),
        1 => {
            for _ in 0..=rng.below(4) {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            // An edit inside the header: a digit, a quote, a bracket, or a random byte.
            let pool = b"0123456789\"'{}[](),:-eE FTxn\x00\xff";
            for _ in 0..=rng.below(3) {
                let i = rng.below(header);
                out[i] = pool[rng.below(pool.len())];
            }
        }
        3 => {
            // A length field rewritten.
            let i = rng.below(12.min(out.len()));
            out[i] = rng.next() as u8;
        }
        4 => out.extend((0..=rng.below(16)).map(|_| rng.next() as u8)),
        5 => {
            // Bits of the data flipped: NaNs, infinities, huge and tiny values.
            for _ in 0..=rng.below(8) {
                let i = header + rng.below(out.len() - header);
                out[i] ^= 1 << rng.below(8);
            }
        }
        _ => {
            // Bytes removed from the middle.
            let i = rng.below(out.len());
            let n = rng.below(out.len() - i);
            out.drain(i..i + n);
        }
    }
    out
}

/// What a successful run must have written: for `.safetensors`, each float tensor of the input
/// (read by the `safetensors` crate) quantized by the core and the others copied; for `.npy`,
/// the same header and one element per input element.
fn check_output(kind: Kind, input: &[u8], output: &Path, spec: &QuantSpec) {
    let out = std::fs::read(output).unwrap();
    match kind {
        Kind::Safetensors => {
            let want = SafeTensors::deserialize(input).expect("an accepted file is valid");
            let got = SafeTensors::deserialize(&out).expect("the output is valid");
            assert_eq!(want.len(), got.len());
            for (name, t) in want.tensors() {
                let g = got.tensor(&name).unwrap();
                assert_eq!((g.dtype(), g.shape()), (t.dtype(), t.shape()));
                let expected: Vec<u8> = match t.dtype() {
                    Dtype::F32 => {
                        let x: Vec<f32> = t
                            .data()
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                            .collect();
                        spec.quantize(&x)
                            .iter()
                            .flat_map(|v| v.to_le_bytes())
                            .collect()
                    }
                    Dtype::F16 => {
                        let x: Vec<f16> = t
                            .data()
                            .chunks_exact(2)
                            .map(|c| f16::from_le_bytes(c.try_into().unwrap()))
                            .collect();
                        spec.quantize(&x)
                            .iter()
                            .flat_map(|v| v.to_le_bytes())
                            .collect()
                    }
                    _ => t.data().to_vec(),
                };
                let same = expected
                    .chunks(4)
                    .zip(g.data().chunks(4))
                    .all(|(a, b)| a == b || is_nan_pair(t.dtype(), a, b));
                assert!(same && expected.len() == g.data().len(), "tensor {name}");
            }
        }
        _ => {
            assert_eq!(out.len(), input.len());
            let start = input.len() - 48;
            assert_eq!(out[..start], input[..start]);
        }
    }
}

/// Both NaN (a NaN's payload may change).
fn is_nan_pair(dtype: Dtype, a: &[u8], b: &[u8]) -> bool {
    match dtype {
        Dtype::F32 => {
            let f = |c: &[u8]| f32::from_le_bytes(c.try_into().unwrap()).is_nan();
            f(a) && f(b)
        }
        _ => false,
    }
}

#[test]
fn mutated_files_give_an_error_or_a_correct_result() {
    let dir = tempfile::tempdir().unwrap();
    let spec = QuantSpec::new(FixedPoint::new(6, 3).unwrap(), Rounding::NearestEven);
    let task = Task::Quantize {
        scheme: xbquant::Scheme::from(spec),
        filter: None,
        codes: false,
    };
    let st = valid_safetensors();
    let st_header = 8 + u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    let np = valid_npy();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut refused) = (0, 0);
    for case in 0..4000 {
        let (kind, file, ext) = if case % 2 == 0 {
            (
                Kind::Safetensors,
                mutate(&mut rng, &st, st_header),
                "safetensors",
            )
        } else {
            (Kind::Npy, mutate(&mut rng, &np, np.len() - 48), "npy")
        };
        let input = dir.path().join(format!("in.{ext}"));
        let output = dir.path().join(format!("out.{ext}"));
        std::fs::write(&input, &file).unwrap();
        let result = catch_unwind(AssertUnwindSafe(|| {
            run(kind, &input, &output, false, &task)
        }));
        match result {
            Err(_) => panic!("case {case} panicked: {file:?}"),
            Ok(Ok(_)) => {
                accepted += 1;
                check_output(kind, &file, &output, &spec);
                std::fs::remove_file(&output).unwrap();
            }
            Ok(Err(e)) => {
                refused += 1;
                assert!(format!("{e:#}").contains("in."), "case {case}: {e:#}");
                assert!(!output.exists(), "case {case}: an output after an error");
            }
        }
    }
    // Both outcomes occur: the mutations reach past the header checks, and many are refused.
    assert!(
        accepted > 500 && refused > 500,
        "{accepted} accepted, {refused} refused"
    );
}
