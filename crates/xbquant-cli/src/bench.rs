//! `xbquant bench`: the kernels against a plain copy of the same buffers, measured in one run, so
//! that users can compare machines. The measuring code is that of `cargo bench -p xbquant`.

use anyhow::Result;

#[path = "../../xbquant/benches/throughput.rs"]
mod throughput;

/// Options of `xbquant bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Fewer repetitions and sizes (1K, 1M, 16M).
    #[arg(long)]
    quick: bool,
    /// Only the paths whose name contains this text (for example "stochastic" or "f64").
    #[arg(long)]
    only: Option<String>,
}

/// `xbquant bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    throughput::run(args.quick, args.only.clone());
    Ok(())
}
