//! The report of a run: per tensor, what was done and what it changed, as a table or JSON, and
//! the progress bar of a long run.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use xbquant::{ErrorStats, Scheme};

/// What happened to one tensor.
#[derive(Debug, Clone)]
pub struct Report {
    pub file: Option<String>,
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: String,
    /// The dtype written, when it differs (codes).
    pub written: Option<String>,
    pub quantized: bool,
    pub stats: ErrorStats,
    /// The fractional lengths chosen (`--fl auto`): one, or one per index of `--axis`.
    pub fls: Vec<i32>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Report {
    /// The report of a tensor before anything is done to it: copied, `bytes` in and out.
    pub fn new(name: String, shape: Vec<u64>, dtype: String, bytes: u64) -> Report {
        Report {
            file: None,
            name,
            shape,
            dtype,
            written: None,
            quantized: false,
            stats: ErrorStats::default(),
            fls: Vec::new(),
            bytes_in: bytes,
            bytes_out: bytes,
        }
    }

    pub fn json(&self) -> serde_json::Value {
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
            v["overflow"] = self.stats.clipped_share().into();
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

/// Inputs with more data than this get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 16 << 20;

pub fn progress(bytes: u64) -> ProgressBar {
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

/// The chosen fractional lengths of a tensor, for the text report: `5`, or `3..7 (64 groups)`.
fn fl_column(fls: &[i32]) -> String {
    match fls {
        [] => String::new(),
        [fl] => format!("  {fl}"),
        fls => {
            let (lo, hi) = (fls.iter().min(), fls.iter().max());
            let (lo, hi) = (lo.copied().unwrap_or(0), hi.copied().unwrap_or(0));
            format!("  {lo}..{hi} ({} groups)", fls.len())
        }
    }
}

pub fn print_reports(reports: &[Report], scheme: Option<&Scheme>, json: bool) {
    let (bytes_in, bytes_out) = reports
        .iter()
        .fold((0u64, 0u64), |(a, b), r| (a + r.bytes_in, b + r.bytes_out));
    if json {
        let mut value = serde_json::json!({
            "tensors": reports.iter().map(Report::json).collect::<Vec<_>>(),
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
        });
        if let Some(scheme) = scheme {
            // The element format's name (an HLS type where one expresses a fixed-point
            // scheme), the rounding's, and the whole scheme in its text form.
            let text = scheme.to_string();
            let format = match scheme.spec() {
                Some(spec) => spec.to_hls().unwrap_or_else(|_| spec.format().to_string()),
                None => text.split(' ').next().unwrap_or_default().to_string(),
            };
            value["format"] = format.into();
            value["rounding"] = scheme.rounding().name().into();
            value["scheme"] = text.into();
        }
        println!("{value}");
        return;
    }
    if let Some(scheme) = scheme {
        println!("{scheme}");
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
                100.0 * r.stats.clipped_share(),
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
