//! `xbquant quantize` and `xbquant dequantize`: `.npy` and `.safetensors` files, and sharded
//! checkpoints (an index with a `weight_map`), streamed piece by piece in bounded memory.
//!
//! Nothing is lost on failure: a file's output goes to a temporary file beside it, synced and
//! renamed into place only when everything succeeded; a sharded model's output goes to a
//! temporary directory renamed into place the same way. Every size, shape and offset in a
//! header is checked against the file before anything is allocated for its data.

#[cfg(test)]
mod fuzz;
mod npy;
mod place;
mod sharded;
mod sink;
mod source;
mod st;
mod stream;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use xbquant::{FixedPoint, QuantSpec};

use crate::spec::{self, FormatArgs, ModeArgs};
use place::Temp;
use source::Source;
use stream::{CodeType, Float, Order, Output, Quantization, Stats};

/// Options of `xbquant quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// Input: a .npy or .safetensors file, a sharded model's `*.safetensors.index.json`, or a
    /// directory holding one.
    input: PathBuf,
    /// Output: a file of the same kind, or a directory for a sharded model.
    output: PathBuf,
    #[command(flatten)]
    format: FormatArgs,
    #[command(flatten)]
    mode: ModeArgs,
    /// Round to a low-precision floating-point format instead of fixed point: float16,
    /// bfloat16, e5m2, e4m3fn, or eXmY (eXmYfn without infinities, eXmYnx QPyTorch's, with no
    /// special values); rounding nearest (the default) or stochastic.
    #[arg(long, value_name = "FORMAT", conflicts_with_all = ["wl", "fl", "format", "asymmetric", "unsigned", "overflow", "sat_bits", "no_clamp", "codes"])]
    float: Option<String>,
    /// Block floating point of this word length instead of fixed point, one block per tensor:
    /// the tensor's largest magnitude sets a shared power-of-two scale (QPyTorch's
    /// `block_quantize(x, wl)`); any rounding.
    #[arg(long, value_name = "WL", conflicts_with_all = ["wl", "fl", "format", "asymmetric", "unsigned", "overflow", "sat_bits", "no_clamp", "codes", "float"])]
    block: Option<u32>,
    /// With --man: QPyTorch's floating point `FloatingPoint(exp, man)` (no infinities or NaN
    /// reserved, saturating), the same as --float eXmYnx.
    #[arg(long, requires = "man", conflicts_with_all = ["wl", "fl", "format", "asymmetric", "unsigned", "overflow", "sat_bits", "no_clamp", "codes", "float", "block"])]
    exp: Option<u32>,
    /// The mantissa bits of --exp.
    #[arg(long, requires = "exp")]
    man: Option<u32>,
    /// With --fl auto: a fractional length per index of this axis of each tensor (0: per output
    /// channel of a weight; negative: counted from the last, -1 the last); tensors without the
    /// axis get one per tensor.
    #[arg(long, requires = "fl", allow_negative_numbers = true)]
    axis: Option<i64>,
    /// Quantize only the float tensors whose name matches this regular expression
    /// (.safetensors); the others are copied unchanged.
    #[arg(long)]
    tensors: Option<String>,
    /// Write each quantized tensor as its integer codes in the smallest integer type that holds
    /// the word, with the format in the file's metadata (.safetensors); `xbquant dequantize`
    /// turns them back into values.
    #[arg(long)]
    codes: bool,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Options of `xbquant dequantize`.
#[derive(Debug, clap::Args)]
pub struct DequantizeArgs {
    /// Input: a .safetensors file written by `xbquant quantize --codes`, or such a sharded
    /// model's index or directory.
    input: PathBuf,
    /// Output: a .safetensors file, or a directory for a sharded model.
    output: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The prefix of the `__metadata__` key that holds a code tensor's format: `xbquant:NAME`.
const CODES_KEY: &str = "xbquant:";

/// What a command does to each file.
enum Task<'a> {
    Quantize {
        spec: Quantization,
        filter: Option<&'a regex::Regex>,
        codes: bool,
    },
    Dequantize,
}

/// What happened to one tensor.
#[derive(Debug, Clone)]
struct Report {
    file: Option<String>,
    name: String,
    shape: Vec<u64>,
    dtype: String,
    /// The dtype written, when it differs (codes).
    written: Option<String>,
    quantized: bool,
    stats: Stats,
    /// The fractional lengths chosen (`--fl auto`): one, or one per index of `--axis`.
    fls: Vec<i32>,
    bytes_in: u64,
    bytes_out: u64,
}

impl Report {
    fn json(&self) -> serde_json::Value {
        // JSON has no infinities: a number, or null where the value is not a finite number
        // (no error at all for the SQNR when `nonfinite_errors` is 0, an infinite error else).
        let finite = |v: f64| {
            if v.is_finite() {
                serde_json::Value::from(v)
            } else {
                serde_json::Value::Null
            }
        };
        let mut v = serde_json::json!({
            "name": self.name,
            "shape": self.shape,
            "dtype": self.dtype,
            "quantized": self.quantized,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        });
        match self.fls.as_slice() {
            [] => {}
            [fl] => v["fl"] = (*fl).into(),
            fls => v["fl"] = fls.into(),
        }
        if self.quantized {
            v["overflow"] = self.stats.overflow_share().into();
            v["max_abs_error"] = finite(self.stats.max_error());
            v["sqnr_db"] = finite(self.stats.sqnr_db());
            v["nonfinite_errors"] = self.stats.nonfinite_errors.into();
        }
        if let Some(w) = &self.written {
            v["written"] = w.clone().into();
        }
        if let Some(f) = &self.file {
            v["file"] = f.clone().into();
        }
        v
    }
}

/// The kinds of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Npy,
    Safetensors,
    /// A sharded model: an index file, or a directory holding one.
    Sharded,
}

impl Kind {
    fn of(path: &Path) -> Result<Kind> {
        if path.is_dir() {
            return Ok(Kind::Sharded);
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.ends_with(".index.json") {
            return Ok(Kind::Sharded);
        }
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("npy") => Ok(Kind::Npy),
            Some("safetensors") => Ok(Kind::Safetensors),
            _ => bail!(
                "{}: unknown file kind (expected a .npy or .safetensors file, a sharded model's \
                 .index.json, or a directory holding one)",
                path.display()
            ),
        }
    }
}

/// `xbquant quantize`.
pub fn quantize(args: &QuantizeArgs) -> Result<()> {
    let qpytorch = match (args.exp, args.man) {
        (Some(e), Some(m)) => Some(format!("e{e}m{m}nx")),
        _ => None,
    };
    let spec = match (args.float.as_ref().or(qpytorch.as_ref()), args.block) {
        (Some(name), _) => {
            let format: xbquant::FloatFormat = name.parse()?;
            let rounding = mode_rounding(&args.mode)?;
            // Refuses a rounding that floating point does not offer.
            format.quantize_value(0.0, rounding)?;
            Quantization::Float(format, rounding)
        }
        (None, Some(wl)) => {
            Quantization::Block(xbquant::BlockFormat::new(wl)?, mode_rounding(&args.mode)?)
        }
        (None, None) if args.format.fl_auto() => {
            Quantization::Auto(spec::quant_spec(&args.format, &args.mode)?, args.axis)
        }
        (None, None) => {
            if args.axis.is_some() {
                bail!("--axis goes with --fl auto");
            }
            Quantization::Fixed(spec::quant_spec(&args.format, &args.mode)?)
        }
    };
    let filter = match &args.tensors {
        Some(pattern) => {
            Some(regex::Regex::new(pattern).with_context(|| format!("--tensors {pattern:?}"))?)
        }
        None => None,
    };
    let kind = check_paths(&args.input, &args.output, args.force)?;
    if args.codes {
        if matches!(spec, Quantization::Auto(..)) {
            bail!("--codes needs a fixed fractional length (the metadata is written first): give --fl a number");
        }
        if kind == Kind::Npy {
            bail!("--codes writes .safetensors files (the format goes in their metadata); convert the .npy file first");
        }
        if let Quantization::Fixed(fixed) = &spec {
            if !fixed.format().clamps() {
                bail!("--codes needs a bounded word: unbounded formats have no integer codes");
            }
        }
    }
    if kind == Kind::Npy && filter.is_some() {
        bail!("--tensors applies to .safetensors files; a .npy file holds one tensor");
    }
    let task = Task::Quantize {
        spec,
        filter: filter.as_ref(),
        codes: args.codes,
    };
    let reports = run(kind, &args.input, &args.output, args.force, &task)?;
    print_reports(&reports, Some(&spec), args.json);
    Ok(())
}

/// The rounding of `--rounding` (nearest by default) with `--seed`, for the formats that take
/// no fixed-point options.
fn mode_rounding(mode: &ModeArgs) -> Result<xbquant::Rounding> {
    let rounding: xbquant::Rounding = mode.rounding_name().unwrap_or("nearest").parse()?;
    match mode.seed_value() {
        Some(seed) => Ok(rounding.with_seed(seed).context("--seed")?),
        None => Ok(rounding),
    }
}

/// `xbquant dequantize`.
pub fn dequantize(args: &DequantizeArgs) -> Result<()> {
    let kind = check_paths(&args.input, &args.output, args.force)?;
    if kind == Kind::Npy {
        bail!(
            "{}: dequantize reads .safetensors files written by `xbquant quantize --codes`",
            args.input.display()
        );
    }
    let reports = run(
        kind,
        &args.input,
        &args.output,
        args.force,
        &Task::Dequantize,
    )?;
    print_reports(&reports, None, args.json);
    Ok(())
}

/// Checks the input and output paths; returns the kind of input. The input must be a regular
/// file or a directory (a FIFO would block forever); an existing output, a dangling symbolic link
/// included, needs `force`, and a file output must not be the input under any name (symbolic or
/// hard link). A sharded model's files are checked against the output in [`sharded::run`].
fn check_paths(input: &Path, output: &Path, force: bool) -> Result<Kind> {
    let meta = std::fs::metadata(input).map_err(|e| path_error(input, &e))?;
    if !meta.is_file() && !meta.is_dir() {
        bail!(
            "{}: not a regular file or a directory (FIFOs, sockets and devices are not read)",
            input.display()
        );
    }
    let kind = Kind::of(input)?;
    let here = std::fs::symlink_metadata(output);
    if here.is_ok() && !force {
        bail!(
            "{}: already exists (use --force to replace it)",
            output.display()
        );
    }
    // What the output names once symbolic links are followed (nothing for a dangling one).
    let target = std::fs::metadata(output).ok();
    if here.is_ok() && target.is_none() && kind == Kind::Sharded {
        bail!(
            "{}: a symbolic link to nothing; remove it or name a directory",
            output.display()
        );
    }
    match kind {
        Kind::Sharded => {
            if target.as_ref().is_some_and(|m| !m.is_dir()) {
                bail!(
                    "{}: a sharded model is written to a directory, and this is a file",
                    output.display()
                );
            }
        }
        _ => {
            if target.as_ref().is_some_and(std::fs::Metadata::is_dir) {
                bail!("{}: is a directory; give an output file", output.display());
            }
            if target.as_ref().is_some_and(|t| same_file(t, &meta)) {
                bail!(
                    "{}: the output is the input; write to another file (the input is never modified)",
                    output.display()
                );
            }
            if Kind::of(output)? != kind {
                bail!(
                    "{}: the output must be the same kind of file as the input",
                    output.display()
                );
            }
        }
    }
    Ok(kind)
}

/// An error reaching `path`, as the user would name it.
fn path_error(path: &Path, e: &std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow::anyhow!("{}: no such file or directory", path.display())
    } else {
        anyhow::anyhow!("{}: {e}", path.display())
    }
}

/// Whether two files' metadata are those of one file (the same device and inode).
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// The directory a path's file lies in (`.` for a bare name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn run(
    kind: Kind,
    input: &Path,
    output: &Path,
    force: bool,
    task: &Task<'_>,
) -> Result<Vec<Report>> {
    place::remove_on_signals();
    if kind == Kind::Sharded {
        return sharded::run(input, output, force, task);
    }
    let mut src = Source::open(input)?;
    let plan = FilePlan::read(&mut src, kind)?;
    let bar = progress(plan.data_bytes());
    let reports = write_atomically(output, force, |out| {
        plan.write(&mut src, out, task, &bar, None)
    })?;
    bar.finish_and_clear();
    Ok(reports)
}

/// A file's header, read and checked: what will be done to it.
enum FilePlan {
    Npy(npy::Header),
    Safetensors(st::Header),
}

impl FilePlan {
    fn read(src: &mut Source, kind: Kind) -> Result<FilePlan> {
        Ok(match kind {
            Kind::Npy => FilePlan::Npy(npy::read_header(src)?),
            _ => FilePlan::Safetensors(st::read_header(src)?),
        })
    }

    /// Bytes of tensor data.
    fn data_bytes(&self) -> u64 {
        match self {
            FilePlan::Npy(h) => h.elements * element_size(&h.dtype),
            FilePlan::Safetensors(h) => h.metadata.data_len() as u64,
        }
    }

    /// Writes the output of `task` to `out`; `file` names the file in a sharded model's report.
    fn write(
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
    let Task::Quantize { spec, .. } = task else {
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
    let mut report = Report {
        file: None,
        name,
        shape: h.shape.clone(),
        dtype: match &h.dtype {
            npy::Dtype::Float(f, _) => f.name().to_string(),
            other => other.name(),
        },
        written: None,
        quantized: false,
        stats: Stats::default(),
        fls: Vec::new(),
        bytes_in: bytes,
        bytes_out: bytes,
    };
    let mut done = |n| bar.inc(n);
    match &h.dtype {
        npy::Dtype::Float(f, order) => {
            // Fortran order: the data is row-major in the reversed shape, where axis `a` is
            // axis `ndim - 1 - a`.
            let mut spec = spec.resolve();
            let mut shape = h.shape.clone();
            if h.fortran_order {
                shape.reverse();
                if let Quantization::Auto(s, Some(a)) = spec {
                    let n = shape.len();
                    let flipped = stream::normal_axis(a, n).map(|a| (n - 1 - a) as i64);
                    spec = Quantization::Auto(s, flipped);
                }
            }
            let layout = if h.fortran_order {
                stream::Layout::fortran(*order, &shape, &h.shape)
            } else {
                stream::Layout::c_order(*order, &shape)
            };
            let outcome =
                stream::quantize(src, *f, &layout, &spec, Output::Values(out), &mut done)?;
            (report.stats, report.fls) = (outcome.stats, outcome.fls);
            report.quantized = true;
        }
        npy::Dtype::Other { .. } => src.copy_next(bytes, out, done)?,
    }
    Ok(vec![report])
}

/// The `__metadata__` entry of a code tensor: its format, rounding and original dtype.
fn codes_entry(spec: &QuantSpec, float: Float) -> String {
    let f = spec.format();
    serde_json::json!({
        "hls": spec.to_hls().unwrap_or_else(|_| f.hls_name()),
        "wl": f.word_length(),
        "fl": f.frac_length(),
        "signed": f.is_signed(),
        "overflow": f.overflow().to_string(),
        "rounding": spec.rounding().name(),
        "dtype": float.safetensors_name(),
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
        .and_then(Float::from_safetensors_name)
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
        let dtype = dtype_name(info.dtype);
        let float = Float::from_safetensors_name(&dtype);
        let action = match (task, float) {
            (
                Task::Quantize {
                    filter,
                    codes,
                    spec,
                },
                Some(f),
            ) if filter.is_none_or(|re| re.is_match(name)) => {
                if *codes {
                    let Quantization::Fixed(fixed) = spec else {
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
                    let ty = CodeType::from_safetensors_name(&dtype).ok_or_else(|| {
                        anyhow::anyhow!("tensor {name:?}: codes of dtype {dtype} are not integers")
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
                Action::Copy | Action::Quantize(_) => (
                    dtype_name(info.dtype),
                    info.data_offsets.1 - info.data_offsets.0,
                ),
                Action::Codes(f, ty) => {
                    if let Task::Quantize {
                        spec: Quantization::Fixed(spec),
                        ..
                    } = task
                    {
                        extra.insert(format!("{CODES_KEY}{name}"), codes_entry(spec, *f));
                    }
                    (ty.safetensors_name().to_string(), elements * ty.size())
                }
                Action::Dequantize(_, _, f) => {
                    extra.remove(&format!("{CODES_KEY}{name}"));
                    (f.safetensors_name().to_string(), elements * f.size())
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
        let mut report = Report {
            file: None,
            name: name.clone(),
            shape: info.shape.iter().map(|&d| d as u64).collect(),
            dtype: dtype_name(info.dtype).to_ascii_lowercase(),
            written: None,
            quantized: false,
            stats: Stats::default(),
            fls: Vec::new(),
            bytes_in: bytes,
            bytes_out: bytes,
        };
        let tensor = |e: anyhow::Error| e.context(format!("tensor {name:?}"));
        match (action, task) {
            (Action::Copy, _) => src.copy_next(bytes, out, &mut done)?,
            (Action::Quantize(f), Task::Quantize { spec, .. }) => {
                let spec = spec.resolve();
                let outcome = stream::quantize(
                    src,
                    *f,
                    &stream::Layout::c_order(Order::Little, &report.shape),
                    &spec,
                    Output::Values(out),
                    &mut done,
                )
                .map_err(tensor)?;
                (report.stats, report.fls) = (outcome.stats, outcome.fls);
                report.quantized = true;
            }
            (Action::Codes(f, ty), Task::Quantize { spec, .. }) => {
                let spec = spec.resolve();
                let outcome = stream::quantize(
                    src,
                    *f,
                    &stream::Layout::c_order(Order::Little, &report.shape),
                    &spec,
                    Output::Codes(out, *ty),
                    &mut done,
                )
                .map_err(tensor)?;
                (report.stats, report.fls) = (outcome.stats, outcome.fls);
                report.quantized = true;
                report.written = Some(ty.safetensors_name().to_ascii_lowercase());
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

fn dtype_name(dtype: safetensors::Dtype) -> String {
    format!("{dtype:?}")
}

/// Writes through a temporary file in OUT's directory, synced, then renamed to OUT (replacing
/// it only with `force`): a failure or a signal at any point leaves OUT as it was.
fn write_atomically<R>(
    output: &Path,
    force: bool,
    write: impl FnOnce(&mut dyn Write) -> Result<R>,
) -> Result<R> {
    let dir = parent_dir(output);
    place::remove_orphans(&dir);
    let (temp, file) = Temp::file(&dir, output_permissions(output, false))?;
    let result = sink::write_synced(&file, output, write)?;
    drop(file);
    place::place(vec![(temp, output)], force)?;
    Ok(result)
}

/// The permissions of a new output: those of the file or directory it replaces, else the usual
/// `rw-r--r--` (`rwxr-xr-x` for a directory) rather than a temporary file's owner-only ones
/// (`None`: the system's default).
fn output_permissions(output: &Path, dir: bool) -> Option<std::fs::Permissions> {
    if let Ok(meta) = std::fs::metadata(output) {
        return Some(meta.permissions());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Some(std::fs::Permissions::from_mode(if dir {
            0o755
        } else {
            0o644
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Writes a new file at `path` (inside a temporary directory that is renamed as a whole);
/// `name` names it in messages.
fn write_new(
    path: &Path,
    name: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<Vec<Report>>,
) -> Result<Vec<Report>> {
    let file = File::create(path).with_context(|| format!("{}: cannot create", name.display()))?;
    sink::write_synced(&file, name, write)
}

/// Inputs with more data than this get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 16 << 20;

fn progress(bytes: u64) -> ProgressBar {
    if bytes < PROGRESS_MIN_BYTES {
        return ProgressBar::hidden();
    }
    // Hidden automatically when stderr is not a terminal.
    let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// The chosen fractional lengths of a tensor, for the text report: `5`, or `3..7 (64 slices)`.
fn fl_column(fls: &[i32]) -> String {
    match fls {
        [] => String::new(),
        [fl] => format!("  {fl}"),
        fls => {
            let (lo, hi) = (fls.iter().min(), fls.iter().max());
            let (lo, hi) = (lo.copied().unwrap_or(0), hi.copied().unwrap_or(0));
            format!("  {lo}..{hi} ({} slices)", fls.len())
        }
    }
}

fn print_reports(reports: &[Report], spec: Option<&Quantization>, json: bool) {
    let (bytes_in, bytes_out) = reports
        .iter()
        .fold((0u64, 0u64), |(a, b), r| (a + r.bytes_in, b + r.bytes_out));
    if json {
        let mut value = serde_json::json!({
            "tensors": reports.iter().map(Report::json).collect::<Vec<_>>(),
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
        });
        if let Some(spec) = spec {
            let (format, rounding) = spec.names();
            value["format"] = format.into();
            value["rounding"] = rounding.into();
        }
        println!("{value}");
        return;
    }
    if let Some(spec) = spec {
        println!("{spec}");
    }
    let sharded = reports.iter().any(|r| r.file.is_some());
    let chosen = reports.iter().any(|r| !r.fls.is_empty());
    println!(
        "{:<32} {:<16} {:<5} {:>10} {:>14} {:>10}{}",
        "tensor",
        "shape",
        "dtype",
        "overflow",
        "max |error|",
        "SQNR dB",
        if chosen { "  fl" } else { "" }
    );
    for r in reports {
        let shape = format!("{:?}", r.shape);
        let dtype = match &r.written {
            Some(w) => format!("{}->{w}", r.dtype),
            None => r.dtype.clone(),
        };
        let name = match (&r.file, sharded) {
            (Some(f), true) => format!("{f}:{}", r.name),
            _ => r.name.clone(),
        };
        if r.quantized {
            println!(
                "{:<32} {:<16} {:<5} {:>9.3}% {:>14.6e} {:>10.2}{}",
                name,
                shape,
                dtype,
                100.0 * r.stats.overflow_share(),
                r.stats.max_error(),
                r.stats.sqnr_db(),
                fl_column(&r.fls)
            );
        } else if r.written.is_some() {
            println!("{name:<32} {shape:<16} {dtype:<5} {:>10}", "decoded");
        } else {
            println!("{name:<32} {shape:<16} {dtype:<5} {:>10}", "copied");
        }
    }
    if bytes_out != bytes_in || reports.iter().any(|r| r.written.is_some()) {
        let saved = bytes_in as f64 - bytes_out as f64;
        println!(
            "tensor data: {bytes_in} bytes in, {bytes_out} bytes out ({:+.1}%, {} {} bytes)",
            100.0 * (bytes_out as f64 / bytes_in.max(1) as f64 - 1.0),
            if saved >= 0.0 { "saving" } else { "adding" },
            saved.abs()
        );
    }
}
