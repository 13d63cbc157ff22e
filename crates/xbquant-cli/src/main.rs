//! `xbquant`: inspect fixed-point formats, quantize tensor files, and train a small network for
//! fixed-point hardware on real data.

mod bench;
mod demo;
mod files;
mod spec;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    Range(spec::RangeArgs),
    /// Quantize the float tensors of a .npy or .safetensors file, or of a sharded model, into a
    /// new file or directory.
    Quantize(Box<files::QuantizeArgs>),
    /// Turn the integer codes written by `quantize --codes` back into values.
    Dequantize(files::DequantizeArgs),
    /// Train a 64-64-10 MLP on the embedded digits data set: float, quantization-aware training
    /// and post-training quantization at several weight widths.
    Demo(demo::DemoArgs),
    /// Measure the kernels against a plain copy of the same buffers on this machine.
    Bench(bench::BenchArgs),
    /// For every weight of a checkpoint, the accumulator width hls4ml's precision inference
    /// gives and the width the trained weights need.
    Accum(files::AccumArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Range(args) => spec::range(&args),
        Command::Quantize(args) => files::quantize(&args),
        Command::Dequantize(args) => files::dequantize(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Accum(args) => files::accum(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xbquant: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
