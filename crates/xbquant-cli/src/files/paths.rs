//! The kinds of input and the checks of the input and output paths before anything is written.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The kinds of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Npy,
    Safetensors,
    /// A sharded model: an index file, or a directory holding one.
    Sharded,
}

impl Kind {
    pub fn of(path: &Path) -> Result<Kind> {
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

/// Checks the input and output paths; returns the kind of input. The input must be a regular
/// file or a directory (a FIFO would block forever); an existing output, a dangling symbolic link
/// included, needs `force`, and a file output must not be the input under any name (symbolic or
/// hard link). A sharded model's files are checked against the output in [`sharded::run`].
pub fn check_paths(input: &Path, output: &Path, force: bool) -> Result<Kind> {
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
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
