//! Sharded checkpoints: an index (`model.safetensors.index.json`) whose `weight_map` names the
//! shard holding each tensor. Every shard is quantized into a new directory under the same
//! name, with a matching index; the directory is renamed into place at the end. With `--force`
//! into a directory that exists, each shard and the index are written beside their place and
//! renamed over it at the end, the index last: nothing else in the directory is touched.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::paths::{parent_dir, Kind};
use super::place::{self, Temp};
use super::report::{progress, Report};
use super::sink::{self, output_permissions, write_new};
use super::source::Source;
use super::write::FilePlan;
use super::Task;

/// The index file of `input`: the path itself, or the one `*.safetensors.index.json` in a
/// directory.
fn index_path(input: &Path) -> Result<PathBuf> {
    if !input.is_dir() {
        return Ok(input.to_path_buf());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(input)
        .with_context(|| format!("{}: cannot list the directory", input.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".safetensors.index.json") {
            found.push(path);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!(
            "{}: no *.safetensors.index.json in this directory (a sharded model has one)",
            input.display()
        ),
        _ => bail!(
            "{}: several *.safetensors.index.json in this directory; give the one to use",
            input.display()
        ),
    }
}

/// A shard's file name from an index: a plain `.safetensors` name in the index's directory.
fn shard_name(index: &Path, tensor: &str, file: &serde_json::Value) -> Result<String> {
    let bad = |why: &str| {
        anyhow::anyhow!(
            "{}: the weight_map entry of {tensor:?} {why}",
            index.display()
        )
    };
    let name = file.as_str().ok_or_else(|| bad("is not a file name"))?;
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && name.to_ascii_lowercase().ends_with(".safetensors");
    if !plain {
        return Err(bad(&format!(
            "names {name:?}, not a .safetensors file beside the index"
        )));
    }
    Ok(name.to_string())
}

/// Writes the index's `text` to `file` and syncs it (as the shards are); `name` names it.
fn write_index(mut file: &File, name: &Path, text: &str) -> Result<()> {
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("{}: cannot write the index", name.display()))
}

pub(super) fn run(
    input: &Path,
    output: &Path,
    force: bool,
    task: &Task<'_>,
) -> Result<Vec<Report>> {
    let index = index_path(input)?;
    let dir = parent_dir(&index);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut super::source::open_regular(&index)?, &mut text)
        .with_context(|| format!("{}: cannot read the index", index.display()))?;
    let mut json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: the index is not JSON", index.display()))?;
    let map = json
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| {
            anyhow::anyhow!("{}: the index has no weight_map object", index.display())
        })?;
    let mut wanted: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (tensor, file) in map {
        wanted
            .entry(shard_name(&index, tensor, file)?)
            .or_default()
            .insert(tensor.clone());
    }
    let shards: BTreeSet<String> = wanted.keys().cloned().collect();
    if shards.is_empty() {
        bail!("{}: the weight_map is empty", index.display());
    }
    // Read and check every shard's header before anything is written: each tensor of the index
    // in its shard, and each tensor of a shard in the index, under that shard, once.
    let mut plans = Vec::with_capacity(shards.len());
    let mut total = 0u64;
    let mut holder: HashMap<String, String> = HashMap::new();
    for name in &shards {
        let mut src = Source::open(&dir.join(name))?;
        let plan = FilePlan::read(&mut src, Kind::Safetensors)?;
        if let FilePlan::Safetensors(h) = &plan {
            for tensor in &wanted[name] {
                if h.metadata.info(tensor).is_none() {
                    bail!(
                        "{}: the index puts {tensor:?} in this shard, which does not hold it",
                        src.path().display()
                    );
                }
            }
            for (tensor, _) in h.tensors() {
                if let Some(other) = holder.insert(tensor.clone(), name.clone()) {
                    bail!(
                        "{}: tensor {tensor:?} is in two shards, {other} and {name}; which one \
                         the model means is unclear",
                        index.display()
                    );
                }
                if !wanted[name].contains(&tensor) {
                    bail!(
                        "{}: holds tensor {tensor:?}, which the index does not list in this \
                         shard (the output's index would leave it out)",
                        src.path().display()
                    );
                }
            }
        }
        total += plan.data_bytes();
        plans.push((name, src, plan));
    }
    // Without --force the output is a new directory, put in place only where nothing is.
    let into = force && std::fs::metadata(output).is_ok_and(|m| m.is_dir());
    if into {
        // Nothing written may land on an input: the output directory must not hold any of the
        // files read (the index's own directory included), whatever the spelling of either.
        let out = output
            .canonicalize()
            .with_context(|| format!("{}: cannot resolve the path", output.display()))?;
        let read = std::iter::once(index.clone()).chain(shards.iter().map(|n| dir.join(n)));
        for file in read {
            let real = file
                .canonicalize()
                .with_context(|| format!("{}: cannot resolve the path", file.display()))?;
            if real.starts_with(&out) {
                bail!(
                    "{}: the output directory holds the input ({}); write to another directory \
                     (the input is never modified)",
                    output.display(),
                    file.display()
                );
            }
        }
        // Each file written replaces a file: a directory of one of their names would stop the
        // renames half way, so it is refused before anything is written.
        let index_name = index.file_name().unwrap_or_default();
        for name in shards.iter().map(std::ffi::OsStr::new).chain([index_name]) {
            let target = output.join(name);
            if std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
                bail!(
                    "{}: a directory, where the output's file of that name goes",
                    target.display()
                );
            }
        }
    }
    let bar = progress(total);
    let mut reports = Vec::new();
    let mut out_total = 0u64;
    let mut written = Vec::new();
    let new_dir = if into {
        place::remove_orphans(output);
        None
    } else {
        let parent = parent_dir(output);
        place::remove_orphans(&parent);
        Some(Temp::dir(&parent, output_permissions(output, true))?)
    };
    for (name, src, plan) in &mut plans {
        let target = output.join(name.as_str());
        let r = match &new_dir {
            Some(temp) => write_new(&temp.path().join(name.as_str()), &target, |out| {
                plan.write(src, out, task, &bar, Some(name.as_str()))
            })?,
            None => {
                let (temp, file) = Temp::file(output, output_permissions(&target, false))?;
                let r = sink::write_synced(&file, &target, |out| {
                    plan.write(src, out, task, &bar, Some(name.as_str()))
                })?;
                written.push((temp, target));
                r
            }
        };
        out_total += r.iter().map(|r| r.bytes_out).sum::<u64>();
        reports.extend(r);
    }
    bar.finish_and_clear();
    if let Some(meta) = json
        .get_mut("metadata")
        .and_then(serde_json::Value::as_object_mut)
    {
        meta.insert("total_size".into(), out_total.into());
    } else if let Some(obj) = json.as_object_mut() {
        obj.insert(
            "metadata".into(),
            serde_json::json!({ "total_size": out_total }),
        );
    }
    let index_name = index.file_name().unwrap_or_default();
    let text = serde_json::to_string_pretty(&json)? + "\n";
    let index_out = output.join(index_name);
    match new_dir {
        Some(temp) => {
            let file = File::create(temp.path().join(index_name))
                .with_context(|| format!("{}: cannot create", index_out.display()))?;
            write_index(&file, &index_out, &text)?;
            place::place(vec![(temp, output)], false)?;
        }
        None => {
            let (temp, file) = Temp::file(output, output_permissions(&index_out, false))?;
            write_index(&file, &index_out, &text)?;
            written.push((temp, index_out));
            // Two runs --force into one directory rename their files in turn, not interleaved:
            // each leaves a whole model.
            let _lock = place::lock_dir(output)?;
            place::place(written, true)?;
        }
    }
    Ok(reports)
}
