//! Sharded checkpoints: an index (`model.safetensors.index.json`) whose `weight_map` names the
//! shard holding each tensor. Every shard is quantized into a new directory under the same
//! name, with a matching index; the directory is renamed into place at the end.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::source::Source;
use super::{progress, temp_builder, write_new, FilePlan, Kind, Report, Task};

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

pub(super) fn run(input: &Path, output: &Path, task: &Task<'_>) -> Result<Vec<Report>> {
    let index = index_path(input)?;
    let dir = match index.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let text = std::fs::read_to_string(&index)
        .with_context(|| format!("{}: cannot read the index", index.display()))?;
    let mut json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: the index is not JSON", index.display()))?;
    let map = json
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| {
            anyhow::anyhow!("{}: the index has no weight_map object", index.display())
        })?;
    let mut wanted: HashMap<String, Vec<String>> = HashMap::new();
    for (tensor, file) in map {
        wanted
            .entry(shard_name(&index, tensor, file)?)
            .or_default()
            .push(tensor.clone());
    }
    let shards: BTreeSet<String> = wanted.keys().cloned().collect();
    if shards.is_empty() {
        bail!("{}: the weight_map is empty", index.display());
    }
    // Read and check every shard's header before anything is written.
    let mut plans = Vec::with_capacity(shards.len());
    let mut total = 0u64;
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
        }
        total += plan.data_bytes();
        plans.push((name, src, plan));
    }
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = temp_builder(output, true)
        .tempdir_in(&parent)
        .with_context(|| format!("{}: cannot create a directory here", parent.display()))?;
    let bar = progress(total);
    let mut reports = Vec::new();
    let mut out_total = 0u64;
    for (name, src, plan) in &mut plans {
        let r = write_new(&temp.path().join(name.as_str()), |out| {
            plan.write(src, out, task, &bar, Some(name.as_str()))
        })?;
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
    let text = serde_json::to_string_pretty(&json)?;
    std::fs::write(temp.path().join(index_name), text + "\n")
        .with_context(|| format!("{}: cannot write the index", output.display()))?;
    // Put the directory in place: an existing output (--force) is moved aside first and
    // removed only once the new one is in place.
    let aside = if output.exists() {
        let aside = parent.join(format!(
            ".xbquant-old-{}",
            temp.path()
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        ));
        std::fs::rename(output, &aside)
            .with_context(|| format!("{}: cannot replace it", output.display()))?;
        Some(aside)
    } else {
        None
    };
    let new = temp.keep();
    if let Err(e) = std::fs::rename(&new, output) {
        if let Some(aside) = &aside {
            std::fs::rename(aside, output).ok();
        }
        std::fs::remove_dir_all(&new).ok();
        return Err(e).with_context(|| format!("{}: cannot write the output", output.display()));
    }
    if let Some(aside) = aside {
        if aside.is_dir() {
            std::fs::remove_dir_all(&aside).ok();
        } else {
            std::fs::remove_file(&aside).ok();
        }
    }

    Ok(reports)
}
