//! `xbquant quantize`: .npy and .safetensors files in, the same kind of file out, never losing
//! data: the output is written to a temporary file beside OUT and renamed into place only when
//! everything succeeded.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use xbquant::half::{bf16, f16};
use xbquant::{Element, QuantSpec};

use crate::spec::{self, FormatArgs, ModeArgs};

/// Options of `xbquant quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// Input file (.npy or .safetensors).
    input: PathBuf,
    /// Output file (same kind as the input).
    output: PathBuf,
    #[command(flatten)]
    format: FormatArgs,
    #[command(flatten)]
    mode: ModeArgs,
    /// Quantize only the float tensors whose name matches this regular expression
    /// (.safetensors); the others are copied unchanged.
    #[arg(long)]
    tensors: Option<String>,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Files with more elements than this get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_ELEMENTS: u64 = 1 << 22;

/// What quantizing one tensor did.
#[derive(Debug)]
struct Report {
    name: String,
    shape: Vec<usize>,
    dtype: &'static str,
    quantized: bool,
    /// The share of elements whose code overflowed the word (the overflow mode changed it).
    overflow: f64,
    max_abs_error: f64,
    sqnr_db: f64,
}

impl Report {
    fn json(&self) -> serde_json::Value {
        let finite = |v: f64| {
            if v.is_finite() {
                serde_json::Value::from(v)
            } else if v > 0.0 {
                serde_json::Value::from("inf")
            } else {
                serde_json::Value::Null
            }
        };
        serde_json::json!({
            "name": self.name,
            "shape": self.shape,
            "dtype": self.dtype,
            "quantized": self.quantized,
            "overflow": self.overflow,
            "max_abs_error": self.max_abs_error,
            "sqnr_db": finite(self.sqnr_db),
        })
    }
}

/// Quantizes `values`, returning the result and the statistics of the change.
fn quantize_values<T: Element>(spec: &QuantSpec, values: &[T]) -> (Vec<T>, f64, f64, f64) {
    let (out, mask) = spec.quantize_with_mask(values);
    let overflowed = mask.iter().filter(|&&m| m).count();
    let (mut signal, mut noise, mut max_err) = (0.0f64, 0.0f64, 0.0f64);
    for (x, q) in values.iter().zip(&out) {
        let (x, q) = (x.to_f64(), q.to_f64());
        if x.is_finite() && q.is_finite() {
            let e = q - x;
            signal += x * x;
            noise += e * e;
            max_err = max_err.max(e.abs());
        }
    }
    let sqnr = if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    };
    let share = if values.is_empty() {
        0.0
    } else {
        overflowed as f64 / values.len() as f64
    };
    (out, share, max_err, sqnr)
}

fn report_for(name: &str, shape: &[usize], dtype: &'static str) -> Report {
    Report {
        name: name.to_string(),
        shape: shape.to_vec(),
        dtype,
        quantized: false,
        overflow: 0.0,
        max_abs_error: 0.0,
        sqnr_db: f64::INFINITY,
    }
}

/// `xbquant quantize`.
pub fn quantize(args: &QuantizeArgs) -> Result<()> {
    let spec = spec::quant_spec(&args.format, &args.mode)?;
    let filter = match &args.tensors {
        Some(pattern) => {
            Some(regex::Regex::new(pattern).with_context(|| format!("--tensors {pattern:?}"))?)
        }
        None => None,
    };
    let input = args.input.as_path();
    let output = args.output.as_path();
    if !input.is_file() {
        bail!("{}: no such file", input.display());
    }
    let same = match (input.canonicalize(), output.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        bail!(
            "{}: the output is the input; write to another file (the input is never modified)",
            output.display()
        );
    }
    if output.exists() && !args.force {
        bail!(
            "{}: already exists (use --force to replace it)",
            output.display()
        );
    }
    let kind = Kind::of(input)?;
    if Kind::of(output)? != kind {
        bail!(
            "{}: the output must be the same kind of file as the input ({})",
            output.display(),
            kind.extension()
        );
    }
    let reports = match kind {
        Kind::Npy => {
            if filter.is_some() {
                bail!("--tensors applies to .safetensors files; a .npy file holds one tensor");
            }
            quantize_npy(input, output, &spec)?
        }
        Kind::Safetensors => quantize_safetensors(input, output, &spec, filter.as_ref())?,
    };
    print_reports(&reports, &spec, args.json);
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Npy,
    Safetensors,
}

impl Kind {
    fn of(path: &Path) -> Result<Kind> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("npy") => Ok(Kind::Npy),
            Some("safetensors") => Ok(Kind::Safetensors),
            _ => bail!(
                "{}: unknown file kind (expected a .npy or .safetensors file)",
                path.display()
            ),
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Kind::Npy => ".npy",
            Kind::Safetensors => ".safetensors",
        }
    }
}

/// Writes through a temporary file in OUT's directory, renamed over OUT at the end: a failure
/// at any point leaves OUT as it was.
fn write_atomically(output: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".xbquant-")
        .suffix(
            output
                .extension()
                .map_or(String::new(), |e| format!(".{}", e.to_string_lossy()))
                .as_str(),
        )
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot create a file in this directory", dir.display()))?;
    write(temp.path())?;
    temp.as_file().sync_all().ok();
    temp.persist(output)
        .with_context(|| format!("{}: cannot write the output", output.display()))?;
    Ok(())
}

fn quantize_npy(input: &Path, output: &Path, spec: &QuantSpec) -> Result<Vec<Report>> {
    let tensor = Tensor::read_npy(input)
        .map_err(|e| anyhow::anyhow!("{}: not a readable .npy file: {e}", input.display()))?;
    let shape = tensor.dims().to_vec();
    let flat = tensor.flatten_all()?;
    let name = input
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let spinner = progress(shape.iter().product::<usize>() as u64, 1);
    let (out, report) = match tensor.dtype() {
        DType::F32 => quantize_tensor::<f32>(&name, &flat, &shape, spec)?,
        DType::F64 => quantize_tensor::<f64>(&name, &flat, &shape, spec)?,
        DType::F16 => quantize_tensor::<f16>(&name, &flat, &shape, spec)?,
        other => bail!(
            "{}: unsupported dtype {other:?} (quantize takes float32, float64 and float16 .npy files)",
            input.display()
        ),
    };
    spinner.finish_and_clear();
    write_atomically(output, |temp| {
        out.reshape(shape.as_slice())?
            .write_npy(temp)
            .with_context(|| format!("{}: cannot write", output.display()))
    })?;
    Ok(vec![report])
}

fn quantize_tensor<T: Element + candle_core::WithDType>(
    name: &str,
    flat: &Tensor,
    shape: &[usize],
    spec: &QuantSpec,
) -> Result<(Tensor, Report)> {
    let values = flat.to_vec1::<T>()?;
    let (out, overflow, max_abs_error, sqnr_db) = quantize_values(spec, &values);
    let report = Report {
        quantized: true,
        overflow,
        max_abs_error,
        sqnr_db,
        ..report_for(name, shape, T::NAME)
    };
    Ok((Tensor::from_vec(out, values.len(), &Device::Cpu)?, report))
}

fn progress(elements: u64, tensors: u64) -> ProgressBar {
    if elements < PROGRESS_MIN_ELEMENTS {
        return ProgressBar::hidden();
    }
    // Hidden automatically when stderr is not a terminal.
    let bar = ProgressBar::with_draw_target(Some(tensors), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} quantizing [{bar:30}] {pos}/{len} tensors {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn decode<T: Element>(bytes: &[u8], from: impl Fn([u8; 8]) -> T, size: usize) -> Vec<T> {
    bytes
        .chunks_exact(size)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(c);
            from(b)
        })
        .collect()
}

fn quantize_bytes(
    dtype: Dtype,
    bytes: &[u8],
    spec: &QuantSpec,
) -> Option<(Vec<u8>, f64, f64, f64)> {
    fn go<T: Element>(
        spec: &QuantSpec,
        values: &[T],
        encode: impl Fn(&T) -> Vec<u8>,
    ) -> (Vec<u8>, f64, f64, f64) {
        let (out, s, m, q) = quantize_values(spec, values);
        (out.iter().flat_map(encode).collect(), s, m, q)
    }
    let le2 = |b: [u8; 8]| [b[0], b[1]];
    Some(match dtype {
        Dtype::F32 => {
            let v = decode(bytes, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]), 4);
            go(spec, &v, |x| x.to_le_bytes().to_vec())
        }
        Dtype::F64 => {
            let v = decode(bytes, f64::from_le_bytes, 8);
            go(spec, &v, |x| x.to_le_bytes().to_vec())
        }
        Dtype::F16 => {
            let v = decode(bytes, |b| f16::from_le_bytes(le2(b)), 2);
            go(spec, &v, |x| x.to_le_bytes().to_vec())
        }
        Dtype::BF16 => {
            let v = decode(bytes, |b| bf16::from_le_bytes(le2(b)), 2);
            go(spec, &v, |x| x.to_le_bytes().to_vec())
        }
        _ => return None,
    })
}

fn dtype_name(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::F32 => "f32",
        Dtype::F64 => "f64",
        Dtype::F16 => "f16",
        Dtype::BF16 => "bf16",
        Dtype::I8 => "i8",
        Dtype::I16 => "i16",
        Dtype::I32 => "i32",
        Dtype::I64 => "i64",
        Dtype::U8 => "u8",
        Dtype::U16 => "u16",
        Dtype::U32 => "u32",
        Dtype::U64 => "u64",
        Dtype::BOOL => "bool",
        _ => "other",
    }
}

/// A tensor of the output file: name, dtype, shape and bytes (borrowed when copied unchanged).
type OutTensor<'a> = (String, Dtype, Vec<usize>, std::borrow::Cow<'a, [u8]>);

fn quantize_safetensors(
    input: &Path,
    output: &Path,
    spec: &QuantSpec,
    filter: Option<&regex::Regex>,
) -> Result<Vec<Report>> {
    let buffer =
        std::fs::read(input).with_context(|| format!("{}: cannot read", input.display()))?;
    let bad = |e: safetensors::SafeTensorError| {
        anyhow::anyhow!("{}: not a valid .safetensors file: {e}", input.display())
    };
    let (_, metadata) = SafeTensors::read_metadata(&buffer).map_err(bad)?;
    let file = SafeTensors::deserialize(&buffer).map_err(bad)?;
    let mut tensors = file.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let elements: u64 = tensors
        .iter()
        .map(|(_, t)| t.shape().iter().product::<usize>() as u64)
        .sum();
    let bar = progress(elements, tensors.len() as u64);
    let mut reports = Vec::with_capacity(tensors.len());
    let mut owned: Vec<OutTensor<'_>> = Vec::new();
    for (name, view) in &tensors {
        let wanted = filter.is_none_or(|re| re.is_match(name));
        let mut report = report_for(name, view.shape(), dtype_name(view.dtype()));
        let quantized = if wanted {
            quantize_bytes(view.dtype(), view.data(), spec)
        } else {
            None
        };
        let data = match quantized {
            Some((bytes, overflow, max_abs_error, sqnr_db)) => {
                report.quantized = true;
                report.overflow = overflow;
                report.max_abs_error = max_abs_error;
                report.sqnr_db = sqnr_db;
                std::borrow::Cow::Owned(bytes)
            }
            None => std::borrow::Cow::Borrowed(view.data()),
        };
        owned.push((name.clone(), view.dtype(), view.shape().to_vec(), data));
        reports.push(report);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let views = owned
        .iter()
        .map(|(name, dtype, shape, data)| {
            Ok((name.clone(), TensorView::new(*dtype, shape.clone(), data)?))
        })
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let info: Option<HashMap<String, String>> = metadata.metadata().clone();
    let bytes = safetensors::serialize(views, info)?;
    write_atomically(output, |temp| {
        let mut f = std::fs::File::create(temp)?;
        f.write_all(&bytes)
            .with_context(|| format!("{}: cannot write", output.display()))
    })?;
    Ok(reports)
}

fn print_reports(reports: &[Report], spec: &QuantSpec, json: bool) {
    if json {
        let value = serde_json::json!({
            "format": spec.to_hls().unwrap_or_else(|_| spec.format().to_string()),
            "rounding": spec.rounding().name(),
            "tensors": reports.iter().map(Report::json).collect::<Vec<_>>(),
        });
        println!("{value}");
        return;
    }
    println!("{spec}");
    println!(
        "{:<32} {:<16} {:<5} {:>10} {:>14} {:>10}",
        "tensor", "shape", "dtype", "overflow", "max |error|", "SQNR dB"
    );
    for r in reports {
        let shape = format!("{:?}", r.shape);
        if r.quantized {
            println!(
                "{:<32} {:<16} {:<5} {:>9.3}% {:>14.6e} {:>10.2}",
                r.name,
                shape,
                r.dtype,
                100.0 * r.overflow,
                r.max_abs_error,
                r.sqnr_db
            );
        } else {
            println!(
                "{:<32} {:<16} {:<5} {:>10}",
                r.name, shape, r.dtype, "copied"
            );
        }
    }
}
