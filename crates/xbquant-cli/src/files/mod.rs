//! `xbquant quantize` and `xbquant dequantize`: `.npy` and `.safetensors` files, and sharded
//! checkpoints (an index with a `weight_map`), streamed piece by piece in bounded memory.
//!
//! Nothing is lost on failure: a file's output goes to a temporary file beside it, synced and
//! renamed into place only when everything succeeded; a sharded model's files are written the
//! same way, the index last. Every size, shape and offset in a header is checked against the file
//! before anything is allocated for its data.
//!
//! One concern a module: `args` (the options and the scheme they name), `paths` (kinds of input
//! and the checks of the paths), `dtypes`, `npy` and `st` (the two file formats' headers),
//! `write` (the two writers and the codes' metadata), `stream` (one tensor's data, piece by
//! piece), `place` and `sink` (temporary files, atomic renames, synced writes), `sharded`
//! (checkpoints of several files), `report`.

mod accum;
mod args;
mod dtypes;
#[cfg(test)]
mod fuzz;
mod npy;
mod paths;
mod place;
mod report;
mod sharded;
mod sink;
mod source;
mod st;
mod stream;
mod write;

use std::path::Path;

use anyhow::{bail, Context, Result};
use xbquant::Scheme;

pub use accum::{run as accum, AccumArgs};
pub use args::{DequantizeArgs, QuantizeArgs};
use paths::{check_paths, Kind};
use report::{print_reports, progress, Report};
use sink::write_atomically;
use source::Source;
use write::FilePlan;

/// What a command does to each file.
enum Task<'a> {
    Quantize {
        scheme: Scheme,
        filter: Option<&'a regex::Regex>,
        codes: bool,
    },
    Dequantize,
}

/// `xbquant quantize`.
pub fn quantize(args: &QuantizeArgs) -> Result<()> {
    let scheme = args.scheme()?;
    let filter = match &args.tensors {
        Some(pattern) => {
            Some(regex::Regex::new(pattern).with_context(|| format!("--tensors {pattern:?}"))?)
        }
        None => None,
    };
    let kind = check_paths(&args.input, &args.output, args.force)?;
    if args.codes {
        if scheme.scale().reads_data() {
            bail!("--codes needs a fixed fractional length (the metadata is written first): give --fl a number");
        }
        if kind == Kind::Npy {
            bail!("--codes writes .safetensors files (the format goes in their metadata); convert the .npy file first");
        }
        match scheme.spec() {
            Some(spec) if !spec.format().clamps() => {
                bail!("--codes needs a bounded word: unbounded formats have no integer codes")
            }
            Some(_) => {}
            None => bail!("--codes needs a fixed-point format without scales"),
        }
    }
    if kind == Kind::Npy && filter.is_some() {
        bail!("--tensors applies to .safetensors files; a .npy file holds one tensor");
    }
    let task = Task::Quantize {
        scheme: scheme.clone(),
        filter: filter.as_ref(),
        codes: args.codes,
    };
    let reports = run(kind, &args.input, &args.output, args.force, &task)?;
    print_reports(&reports, Some(&scheme), args.json);
    Ok(())
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
