//! `xbquant accum`: for every weight of a checkpoint (2-D, or a convolution kernel), the
//! accumulator width hls4ml's precision inference gives and the width the trained weights need
//! (`xbquant_fixed::accum_type` and `accum_bits`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use half::{bf16, f16};
use xbquant_fixed::{accum_bits, accum_type, FixedType};

use super::dtypes::{Float, Order};
use super::source::Source;
use super::{npy, st};

/// Options of `xbquant accum`.
#[derive(Debug, clap::Args)]
pub struct AccumArgs {
    /// A `.npy` or `.safetensors` checkpoint.
    pub checkpoint: PathBuf,
    /// The layers' input type, an HLS type string such as `ap_fixed<16,6>`.
    #[arg(long)]
    pub input: String,
    /// The weights' type, such as `ap_fixed<8,3>` (the weights are cast to it).
    #[arg(long)]
    pub weight: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One weight's widths.
struct Row {
    name: String,
    shape: Vec<u64>,
    /// Products per output: the inputs, times the kernel's size for a convolution.
    n: u64,
    /// hls4ml's accumulator type (its width and integer bits), or why it has none here.
    hls4ml: Result<FixedType, String>,
    /// The width each output channel's weights need: the largest, and the smallest.
    needed: (u32, u32),
}

/// Runs `xbquant accum`.
pub fn run(args: &AccumArgs) -> Result<()> {
    let input = FixedType::parse(&args.input).context("--input")?;
    let weight = FixedType::parse(&args.weight).context("--weight")?;
    let tensors = read(&args.checkpoint)?;
    let mut rows = Vec::new();
    for (name, shape, values) in tensors {
        if shape.len() < 2 || shape[0] == 0 {
            continue; // biases, scalars and empty tensors: not weights
        }
        let out = shape[0] as usize;
        let n = values.len() / out;
        let (codes, _) = weight
            .cast_all(&values, "the weights")
            .with_context(|| name.clone())?;
        let codes: Vec<i64> = codes.into_iter().map(|c| c as i64).collect();
        let bits = accum_bits(&codes, out, n, &input)?;
        let needed = (
            bits.iter().copied().max().unwrap_or(1),
            bits.iter().copied().min().unwrap_or(1),
        );
        let hls4ml = accum_type(&input, &weight, n, None).map_err(|e| e.to_string());
        rows.push(Row {
            name,
            n: n as u64,
            shape,
            hls4ml,
            needed,
        });
    }
    if rows.is_empty() {
        bail!(
            "{} holds no float tensor of 2 or more dimensions with an output",
            args.checkpoint.display()
        );
    }
    if args.json {
        print_json(&rows, args, &input, &weight)
    } else {
        print_table(&rows, &input, &weight);
        Ok(())
    }
}

fn print_table(rows: &[Row], input: &FixedType, weight: &FixedType) {
    println!(
        "inputs {}, weights {}; accumulator widths in bits (the products' {} fractional bits)",
        input.hls(),
        weight.hls(),
        input.frac() + weight.frac()
    );
    println!(
        "{:40} {:>16} {:>8} {:>18} {:>14} {:>8}",
        "tensor", "shape", "n", "hls4ml accum_t", "needed (max)", "saved"
    );
    for r in rows {
        let shape = format!("{:?}", r.shape);
        let (hls, saved) = match &r.hls4ml {
            Ok(t) => (
                format!(
                    "<{},{}>",
                    t.width(),
                    i64::from(t.width()) - i64::from(t.frac())
                ),
                format!("{}", i64::from(t.width()) - i64::from(r.needed.0)),
            ),
            Err(_) => ("over 64 bits".to_string(), "-".to_string()),
        };
        println!(
            "{:40} {:>16} {:>8} {:>18} {:>14} {:>8}",
            r.name, shape, r.n, hls, r.needed.0, saved
        );
    }
}

fn print_json(rows: &[Row], args: &AccumArgs, input: &FixedType, weight: &FixedType) -> Result<()> {
    let tensors: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let hls = r.hls4ml.as_ref().ok();
            serde_json::json!({
                "name": r.name,
                "shape": r.shape,
                "n": r.n,
                "hls4ml_accum": hls.map(FixedType::hls),
                "hls4ml_bits": hls.map(FixedType::width),
                "needed_bits": r.needed.0,
                "needed_bits_smallest_channel": r.needed.1,
            })
        })
        .collect();
    let report = serde_json::json!({
        "checkpoint": args.checkpoint.display().to_string(),
        "input": input.hls(),
        "weight": weight.hls(),
        "fractional_bits": input.frac() + weight.frac(),
        "tensors": tensors,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Tensors by name, with their shapes and values.
type Tensors = Vec<(String, Vec<u64>, Vec<f64>)>;

/// The float tensors of a `.npy` or `.safetensors` file: name, shape and values (C order).
fn read(path: &Path) -> Result<Tensors> {
    let mut src = Source::open(path)?;
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let mut out = Vec::new();
    match extension {
        "npy" => {
            let header = npy::read_header(&mut src)?;
            let npy::Dtype::Float(float, order) = header.dtype else {
                bail!("{}: not a float array", path.display());
            };
            if header.fortran_order && header.shape.len() > 1 {
                bail!(
                    "{}: Fortran-ordered arrays are not supported here",
                    path.display()
                );
            }
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("array")
                .to_string();
            let values = values(&mut src, header.data_start, header.elements, float, order)?;
            out.push((name, header.shape, values));
        }
        "safetensors" => {
            let header = st::read_header(&mut src)?;
            for (name, info) in header.tensors() {
                let Ok(float) = Float::try_from(info.dtype) else {
                    continue;
                };
                let shape: Vec<u64> = info.shape.iter().map(|&d| d as u64).collect();
                let elements = shape.iter().product::<u64>();
                let start = header.data_start + info.data_offsets.0 as u64;
                out.push((
                    name,
                    shape,
                    values(&mut src, start, elements, float, Order::Little)?,
                ));
            }
        }
        _ => bail!("{}: expected a .npy or .safetensors file", path.display()),
    }
    src.check_unchanged()?;
    Ok(out)
}

/// `elements` values of type `float` in byte order `order` at `offset`, as `f64`.
fn values(
    src: &mut Source,
    offset: u64,
    elements: u64,
    float: Float,
    order: Order,
) -> Result<Vec<f64>> {
    let size = float.size();
    let bytes = usize::try_from(elements)
        .ok()
        .and_then(|e| e.checked_mul(size))
        .context("a tensor too large for this machine")?;
    let mut raw = vec![0u8; bytes];
    src.read_at(offset, &mut raw)?;
    let little = order == Order::Little;
    let word = |c: &[u8]| -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        if !little {
            b[..c.len()].reverse();
        }
        b
    };
    Ok(raw
        .chunks_exact(size)
        .map(|c| {
            let b = word(c);
            match float {
                Float::F16 => f16::from_le_bytes([b[0], b[1]]).to_f64(),
                Float::BF16 => bf16::from_le_bytes([b[0], b[1]]).to_f64(),
                Float::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                Float::F64 => f64::from_le_bytes(b),
            }
        })
        .collect())
}
