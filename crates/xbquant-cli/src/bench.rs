//! `xbquant bench`: the kernels against a plain copy of the same buffers, measured in one run, so
//! that users can compare machines. The measuring code is the `xbquant-bench` crate's, which
//! `cargo bench -p xbquant-bench` runs too.

use anyhow::{anyhow, Result};

/// Options of `xbquant bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Fewer repetitions and sizes (1K, 1M, 16M).
    #[arg(long)]
    quick: bool,
    /// Only the paths whose name contains this text (for example "stochastic" or "f64").
    #[arg(long)]
    only: Option<String>,
    /// Run the kernels with at most this instruction set: avx512, avx2 or baseline (to measure
    /// what a machine without AVX-512 gets). The default is the best this CPU has.
    #[arg(long)]
    isa: Option<String>,
}

/// `xbquant bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    if let Some(name) = &args.isa {
        let isa = xbquant_bench::parse_isa(name).map_err(|e| anyhow!("--isa: {e}"))?;
        xbquant::set_max_instruction_set(isa);
    }
    xbquant_bench::run(args.quick, args.only.clone());
    Ok(())
}
