//! `xbquant accum`: for every weight of a checkpoint (2-D, or a convolution kernel), the
//! accumulator width hls4ml's precision inference gives and the width the trained weights need
//! (`xbquant_fixed::accum_type` and `accum_bits`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bytemuck::Pod;
use half::{bf16, f16};
use xbquant_fixed::{accum_bits, accum_type, FixedType};

use super::dtypes::{Float, Order};
use super::source::Source;
use super::stream::swap_bytes;
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
    let mut src = Source::open(&args.checkpoint)?;
    let mut rows = Vec::new();
    // One weight in memory at a time; biases, scalars and empty tensors are not read.
    for tensor in tensors(&mut src, &args.checkpoint)? {
        let shape = &tensor.shape;
        if shape.len() < 2 || shape[0] == 0 {
            continue;
        }
        let values = values(&mut src, &tensor)?;
        let out = shape[0] as usize;
        let n = values.len() / out;
        let (codes, _) = weight
            .cast_all(&values, "the weights")
            .with_context(|| tensor.name.clone())?;
        let codes: Vec<i64> = codes.into_iter().map(|c| c as i64).collect();
        let bits = accum_bits(&codes, out, n, &input)?;
        let needed = (
            bits.iter().copied().max().unwrap_or(1),
            bits.iter().copied().min().unwrap_or(1),
        );
        let hls4ml = accum_type(&input, &weight, n, None).map_err(|e| e.to_string());
        rows.push(Row {
            name: tensor.name,
            n: n as u64,
            shape: tensor.shape,
            hls4ml,
            needed,
        });
    }
    src.check_unchanged()?;
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

/// A float tensor of a checkpoint: its name, shape, and where its values lie.
struct Tensor {
    name: String,
    shape: Vec<u64>,
    start: u64,
    elements: u64,
    float: Float,
    order: Order,
}

/// The float tensors of a `.npy` or `.safetensors` file (C order).
fn tensors(src: &mut Source, path: &Path) -> Result<Vec<Tensor>> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match extension {
        "npy" => {
            let header = npy::read_header(src)?;
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
            Ok(vec![Tensor {
                name,
                shape: header.shape,
                start: header.data_start,
                elements: header.elements,
                float,
                order,
            }])
        }
        "safetensors" => {
            let header = st::read_header(src)?;
            Ok(header
                .tensors()
                .into_iter()
                .filter_map(|(name, info)| {
                    let float = Float::try_from(info.dtype).ok()?;
                    let shape: Vec<u64> = info.shape.iter().map(|&d| d as u64).collect();
                    Some(Tensor {
                        name,
                        elements: shape.iter().product::<u64>(),
                        shape,
                        start: header.data_start + info.data_offsets.0 as u64,
                        float,
                        order: Order::Little,
                    })
                })
                .collect())
        }
        _ => bail!("{}: expected a .npy or .safetensors file", path.display()),
    }
}

/// The values of `tensor`, as `f64`.
fn values(src: &mut Source, tensor: &Tensor) -> Result<Vec<f64>> {
    Ok(match tensor.float {
        Float::F16 => typed::<f16>(src, tensor)?
            .iter()
            .map(|v| v.to_f64())
            .collect(),
        Float::BF16 => typed::<bf16>(src, tensor)?
            .iter()
            .map(|v| v.to_f64())
            .collect(),
        Float::F32 => typed::<f32>(src, tensor)?
            .into_iter()
            .map(f64::from)
            .collect(),
        Float::F64 => typed::<f64>(src, tensor)?,
    })
}

/// The values of `tensor` read as `T`, in this machine's byte order.
fn typed<T: Pod + Default>(src: &mut Source, tensor: &Tensor) -> Result<Vec<T>> {
    let len = usize::try_from(tensor.elements).context("a tensor too large for this machine")?;
    let mut values = vec![T::default(); len];
    src.read_at(tensor.start, bytemuck::cast_slice_mut(&mut values))?;
    if tensor.order != Order::native() {
        swap_bytes(bytemuck::cast_slice_mut(&mut values), size_of::<T>());
    }
    Ok(values)
}
