//! `xbquant`: inspect fixed-point formats, quantize tensor files, and train a small network for
//! fixed-point hardware on real data.

mod bench;
mod demo;
mod files;
mod spec;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Exact fixed-point quantization for simulating fixed-point and in-memory-computing hardware.
#[derive(Debug, Parser)]
#[command(name = "xbquant", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the range, step and levels of a fixed-point format.
    Range(RangeArgs),
    /// Quantize the float tensors of a .npy or .safetensors file into a new file.
    Quantize(QuantizeArgs),
    /// Train a 64-64-10 MLP on the embedded digits data set: float, quantization-aware training
    /// and post-training quantization at several weight widths.
    Demo(demo::DemoArgs),
    /// Measure the kernels against a plain copy of the same buffers on this machine.
    Bench(bench::BenchArgs),
}

/// A format, as in the seed's wrapper: symmetric, nearest rounding, clamping on by default.
#[derive(Debug, Args)]
pub struct FormatArgs {
    /// Word length in bits (1..=64).
    #[arg(long, allow_negative_numbers = true)]
    wl: Option<u32>,
    /// Fractional length in bits (may be negative or exceed the word length).
    #[arg(long, allow_negative_numbers = true)]
    fl: Option<i32>,
    /// Keep the most negative code (range [-2^(wl-1), 2^(wl-1)-1] steps) instead of the seed's
    /// symmetric range.
    #[arg(long)]
    asymmetric: bool,
    /// An unsigned word (codes 0..2^wl-1).
    #[arg(long)]
    unsigned: bool,
    /// An HLS type such as "ap_fixed<8,3,AP_RND_CONV,AP_SAT>" instead of --wl/--fl.
    #[arg(long, conflicts_with_all = ["wl", "fl", "asymmetric", "unsigned"])]
    format: Option<String>,
}

#[derive(Debug, Args)]
struct RangeArgs {
    #[command(flatten)]
    format: FormatArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// How values are rounded and what happens beyond the range.
#[derive(Debug, Args)]
pub struct ModeArgs {
    /// Rounding: nearest (ties to even), nearest-up, nearest-down, nearest-toward-zero,
    /// nearest-away, floor, toward-zero, stochastic, or an HLS name (AP_RND_CONV, AP_TRN, ...).
    #[arg(long)]
    rounding: Option<String>,
    /// Seed for stochastic rounding (fresh noise on every run without it).
    #[arg(long)]
    seed: Option<u64>,
    /// Overflow: saturate, saturate-symmetric, saturate-zero, wrap, wrap-sign-magnitude,
    /// unbounded, or an HLS name (AP_SAT, AP_WRAP, ...).
    #[arg(long)]
    overflow: Option<String>,
    /// Saturation bits for the wrap modes (HLS N).
    #[arg(long)]
    sat_bits: Option<u32>,
    /// No clamping: values beyond the range keep their rounded value.
    #[arg(long, conflicts_with = "overflow")]
    no_clamp: bool,
}

#[derive(Debug, Args)]
struct QuantizeArgs {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Range(args) => spec::range(&args.format, args.json),
        Command::Quantize(args) => files::quantize(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xbquant: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
