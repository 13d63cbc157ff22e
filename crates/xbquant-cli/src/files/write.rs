//! The two writers, `.npy` and `.safetensors`: what each tensor of a file becomes (copied,
//! quantized, written as codes, decoded), and the metadata that records a code tensor's scheme.

use std::io::Write;

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use xbquant::{FixedPoint, QuantSpec, Scheme};

use super::dtypes::{dtype_name, CodeType, Float, Order};
use super::paths::Kind;
use super::report::Report;
use super::source::Source;
use super::stream::{self, Output};
use super::{npy, st, Task};

/// The prefix of the `__metadata__` key that holds a code tensor's format: `xbquant:NAME`.
const CODES_KEY: &str = "xbquant:";

/// A file's header, read and checked: what will be done to it.
pub enum FilePlan {
    Npy(npy::Header),
    Safetensors(st::Header),
}

impl FilePlan {
    pub fn read(src: &mut Source, kind: Kind) -> Result<FilePlan> {
        Ok(match kind {
            Kind::Npy => FilePlan::Npy(npy::read_header(src)?),
            _ => FilePlan::Safetensors(st::read_header(src)?),
        })
    }

    /// Bytes of tensor data.
    pub fn data_bytes(&self) -> u64 {
        match self {
            FilePlan::Npy(h) => h.elements * element_size(&h.dtype),
            FilePlan::Safetensors(h) => h.metadata.data_len() as u64,
        }
    }

    /// Writes the output of `task` to `out`; `file` names the file in a sharded model's report.
    pub fn write(
        &self,
        src: &mut Source,
        out: &mut dyn Write,
        task: &Task<'_>,
        bar: &ProgressBar,
        file: Option<&str>,
    ) -> Result<Vec<Report>> {
        let path = src.path().display().to_string();
        let reports = match self {
            FilePlan::Npy(h) => write_npy(h, src, out, task, bar),
            FilePlan::Safetensors(h) => write_safetensors(h, src, out, task, bar),
        }
        .with_context(|| path.clone())?;
        src.check_unchanged()?;
        Ok(reports
            .into_iter()
            .map(|r| Report {
                file: file.map(str::to_string),
                ..r
            })
            .collect())
    }
}

fn element_size(dtype: &npy::Dtype) -> u64 {
    match dtype {
        npy::Dtype::Float(f, _) => f.size() as u64,
        npy::Dtype::Other { size, .. } => *size,
    }
}

fn write_npy(
    h: &npy::Header,
    src: &mut Source,
    out: &mut dyn Write,
    task: &Task<'_>,
    bar: &ProgressBar,
) -> Result<Vec<Report>> {
    let Task::Quantize { scheme, .. } = task else {
        bail!("dequantize reads .safetensors files");
    };
    // The header is kept byte for byte: the same dtype, order and shape.
    let mut header = vec![0u8; h.data_start as usize];
    src.read_at(0, &mut header)?;
    out.write_all(&header)?;
    let bytes = h.elements * element_size(&h.dtype);
    let name = src
        .path()
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let dtype = match &h.dtype {
        npy::Dtype::Float(f, _) => f.name().to_string(),
        other => other.name(),
    };
    let mut report = Report::new(name, h.shape.clone(), dtype, bytes);
    let mut done = |n| bar.inc(n);
    match &h.dtype {
        npy::Dtype::Float(f, order) => {
            // Fortran order: the data is row-major in the reversed shape, where axis `a` is
            // axis `ndim - 1 - a`.
            // Fortran order: the data is row-major in the reversed shape (the stream handles
            // the axes' order).
            let scheme = scheme.resolve();
            let mut shape = h.shape.clone();
            if h.fortran_order {
                shape.reverse();
            }
            let layout = if h.fortran_order {
                stream::Layout::fortran(*order, &shape, &h.shape)
            } else {
                stream::Layout::c_order(*order, &shape)
            };
            let outcome =
                stream::quantize(src, *f, &layout, &scheme, Output::Values(out), &mut done)?;
            (report.stats, report.fls) = (outcome.stats, outcome.fls);
            report.quantized = true;
        }
        npy::Dtype::Other { .. } => src.copy_next(bytes, out, done)?,
    }
    Ok(vec![report])
}

/// The `__metadata__` entry of a code tensor: its scheme in the text form, and for readers of
/// the fields one by one its format, rounding and original dtype.
fn codes_entry(spec: &QuantSpec, float: Float) -> String {
    let f = spec.format();
    serde_json::json!({
        "scheme": Scheme::from(*spec).to_string(),
        "hls": spec.to_hls().unwrap_or_else(|_| f.hls_name()),
        "wl": f.word_length(),
        "fl": f.frac_length(),
        "signed": f.is_signed(),
        "overflow": f.overflow().to_string(),
        "rounding": spec.rounding().name(),
        "dtype": dtype_name(float.dtype()),
    })
    .to_string()
}

/// The format and original dtype a code tensor's `__metadata__` entry names.
fn parse_codes_entry(name: &str, entry: &str) -> Result<(FixedPoint, Float)> {
    let bad = || anyhow::anyhow!("tensor {name:?}: its metadata entry is not an xbquant format");
    let v: serde_json::Value = serde_json::from_str(entry).map_err(|_| bad())?;
    let wl = v["wl"]
        .as_u64()
        .and_then(|w| u32::try_from(w).ok())
        .ok_or_else(bad)?;
    let fl = v["fl"]
        .as_i64()
        .and_then(|w| i32::try_from(w).ok())
        .ok_or_else(bad)?;
    let signed = v["signed"].as_bool().ok_or_else(bad)?;
    let float = v["dtype"]
        .as_str()
        .and_then(|d| serde_json::from_value(serde_json::Value::from(d)).ok())
        .and_then(|d: safetensors::Dtype| Float::try_from(d).ok())
        .ok_or_else(bad)?;
    let format = FixedPoint::new(wl, fl)?.with_signed(signed)?;
    Ok((format, float))
}

fn write_safetensors(
    h: &st::Header,
    src: &mut Source,
    out: &mut dyn Write,
    task: &Task<'_>,
    bar: &ProgressBar,
) -> Result<Vec<Report>> {
    let tensors = h.tensors();
    let extra = h.extra().cloned().unwrap_or_default();
    // What each tensor becomes: (dtype written, whether it is quantized, codes/format).
    enum Action {
        Copy,
        Quantize(Float),
        Codes(Float, CodeType),
        Dequantize(CodeType, FixedPoint, Float),
    }
    let mut actions = Vec::with_capacity(tensors.len());
    for (name, info) in &tensors {
        let dtype = info.dtype;
        let float = Float::try_from(dtype).ok();
        let action = match (task, float) {
            (
                Task::Quantize {
                    filter,
                    codes,
                    scheme,
                },
                Some(f),
            ) if filter.is_none_or(|re| re.is_match(name)) => {
                if *codes {
                    let Some(fixed) = scheme.spec() else {
                        bail!("--codes needs a fixed-point format");
                    };
                    let fmt = fixed.format();
                    Action::Codes(f, CodeType::smallest(fmt.word_length(), fmt.is_signed()))
                } else {
                    Action::Quantize(f)
                }
            }
            (Task::Dequantize, _) => match extra.get(&format!("{CODES_KEY}{name}")) {
                Some(entry) => {
                    let ty = CodeType::try_from(dtype).map_err(|d| {
                        anyhow::anyhow!(
                            "tensor {name:?}: codes of dtype {} are not integers",
                            dtype_name(d)
                        )
                    })?;
                    let (format, float) = parse_codes_entry(name, entry)?;
                    Action::Dequantize(ty, format, float)
                }
                None => Action::Copy,
            },
            _ => Action::Copy,
        };
        actions.push(action);
    }
    let rewrites = actions
        .iter()
        .any(|a| !matches!(a, Action::Copy | Action::Quantize(_)));
    if rewrites {
        let mut extra = extra.clone();
        let mut entries = Vec::with_capacity(tensors.len());
        for ((name, info), action) in tensors.iter().zip(&actions) {
            let elements: usize = info.shape.iter().product();
            let (dtype, size) = match action {
                Action::Copy | Action::Quantize(_) => {
                    (info.dtype, info.data_offsets.1 - info.data_offsets.0)
                }
                Action::Codes(f, ty) => {
                    if let Task::Quantize { scheme, .. } = task {
                        if let Some(spec) = scheme.spec() {
                            extra.insert(format!("{CODES_KEY}{name}"), codes_entry(&spec, *f));
                        }
                    }
                    (ty.dtype(), elements * ty.size())
                }
                Action::Dequantize(_, _, f) => {
                    extra.remove(&format!("{CODES_KEY}{name}"));
                    (f.dtype(), elements * f.size())
                }
            };
            entries.push((name.clone(), dtype, info.shape.clone(), size));
        }
        let extra = if extra.is_empty() { None } else { Some(extra) };
        out.write_all(&st::write_header(&entries, extra)?)?;
    } else {
        let mut header = vec![0u8; h.data_start as usize];
        src.read_at(0, &mut header)?;
        out.write_all(&header)?;
    }
    src.seek(h.data_start)?;
    let mut reports = Vec::with_capacity(tensors.len());
    let mut done = |n| bar.inc(n);
    for ((name, info), action) in tensors.iter().zip(&actions) {
        let elements = info.shape.iter().map(|&d| d as u64).product::<u64>();
        let bytes = (info.data_offsets.1 - info.data_offsets.0) as u64;
        let mut report = Report::new(
            name.clone(),
            info.shape.iter().map(|&d| d as u64).collect(),
            dtype_name(info.dtype).to_ascii_lowercase(),
            bytes,
        );
        let tensor = |e: anyhow::Error| e.context(format!("tensor {name:?}"));
        match (action, task) {
            (Action::Copy, _) => src.copy_next(bytes, out, &mut done)?,
            (Action::Quantize(f), Task::Quantize { scheme, .. }) => {
                let scheme = scheme.resolve();
                let outcome = stream::quantize(
                    src,
                    *f,
                    &stream::Layout::c_order(Order::Little, &report.shape),
                    &scheme,
                    Output::Values(out),
                    &mut done,
                )
                .map_err(tensor)?;
                (report.stats, report.fls) = (outcome.stats, outcome.fls);
                report.quantized = true;
            }
            (Action::Codes(f, ty), Task::Quantize { scheme, .. }) => {
                let scheme = scheme.resolve();
                let outcome = stream::quantize(
                    src,
                    *f,
                    &stream::Layout::c_order(Order::Little, &report.shape),
                    &scheme,
                    Output::Codes(out, *ty),
                    &mut done,
                )
                .map_err(tensor)?;
                (report.stats, report.fls) = (outcome.stats, outcome.fls);
                report.quantized = true;
                report.written = Some(dtype_name(ty.dtype()).to_ascii_lowercase());
                report.bytes_out = elements * ty.size() as u64;
            }
            (Action::Dequantize(ty, format, f), _) => {
                stream::dequantize(src, *ty, elements, format, *f, out, &mut done)
                    .map_err(tensor)?;
                report.written = Some(f.name().to_string());
                report.bytes_out = elements * f.size() as u64;
            }
            _ => unreachable!("the actions follow the task"),
        }
        reports.push(report);
    }
    Ok(reports)
}
