//! Writing an output file so that it reaches the disk while it is being written: a helper
//! thread flushes what was written so far (`sync_data`) after every few tens of MiB, so that
//! the final sync waits only for the last of it, not for the whole file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;

use anyhow::{Context, Result};

use super::paths::parent_dir;
use super::place::{self, Temp};
use super::report::Report;

/// Bytes written between two requests to flush to disk.
const SYNC_EVERY: u64 = 64 << 20;

/// Writes `file` with `write`, then syncs it; `path` names it in messages: an error of the file
/// itself (a full disk) names `path`, whatever `write` was reading when it happened.
pub fn write_synced<R>(
    file: &File,
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<R>,
) -> Result<R> {
    let helper = file
        .try_clone()
        .with_context(|| format!("{}: cannot write", path.display()))?;
    let (tx, rx) = mpsc::channel::<()>();
    let result = std::thread::scope(|scope| {
        scope.spawn(move || {
            // Requests that arrive while a sync runs are served by the next one. An error here
            // shows again in the final sync below, which is the one that is checked.
            while rx.recv().is_ok() {
                while rx.try_recv().is_ok() {}
                helper.sync_data().ok();
            }
        });
        let mut counted = Counted {
            file,
            written: 0,
            tx,
            failed: None,
        };
        let mut w = BufWriter::with_capacity(1 << 20, &mut counted);
        let r = write(&mut w).and_then(|r| Ok(w.flush().map(|()| r)?));
        // Not flushed again on the way out (a failed write is not retried).
        let (counted, _) = w.into_parts();
        match (r, counted.failed.take()) {
            (Ok(r), None) => Ok(r),
            (_, Some(e)) => {
                Err(anyhow::Error::new(e).context(format!("{}: cannot write", path.display())))
            }
            (Err(e), None) => Err(e),
        }
        // `counted` (and with it the sender) is dropped here, which ends the helper.
    })?;
    file.sync_all()
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(result)
}

/// A file that asks for a flush to disk after every [`SYNC_EVERY`] bytes.
struct Counted<'a> {
    file: &'a File,
    written: u64,
    tx: mpsc::Sender<()>,
    /// The first error of the file itself.
    failed: Option<std::io::Error>,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match (&*self.file).write(buf) {
            Ok(n) => n,
            Err(e) => {
                let again = std::io::Error::new(e.kind(), e.to_string());
                self.failed.get_or_insert(e);
                return Err(again);
            }
        };
        let before = self.written / SYNC_EVERY;
        self.written += n as u64;
        if self.written / SYNC_EVERY != before {
            self.tx.send(()).ok();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.file).flush()
    }
}

/// Writes through a temporary file in OUT's directory, synced, then renamed to OUT (replacing
/// it only with `force`): a failure or a signal at any point leaves OUT as it was.
pub fn write_atomically<R>(
    output: &Path,
    force: bool,
    write: impl FnOnce(&mut dyn Write) -> Result<R>,
) -> Result<R> {
    let dir = parent_dir(output);
    place::remove_orphans(&dir);
    let (temp, file) = Temp::file(&dir, output_permissions(output, false))?;
    let result = write_synced(&file, output, write)?;
    drop(file);
    place::place(vec![(temp, output)], force)?;
    Ok(result)
}

/// The permissions of a new output: those of the file or directory it replaces, else the usual
/// `rw-r--r--` (`rwxr-xr-x` for a directory) rather than a temporary file's owner-only ones
/// (`None`: the system's default).
pub fn output_permissions(output: &Path, dir: bool) -> Option<std::fs::Permissions> {
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
pub fn write_new(
    path: &Path,
    name: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<Vec<Report>>,
) -> Result<Vec<Report>> {
    let file = File::create(path).with_context(|| format!("{}: cannot create", name.display()))?;
    write_synced(&file, name, write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    /// A full disk (`/dev/full`) is named by the output, even where the writer wraps its errors
    /// in the input's name.
    #[test]
    fn a_full_disk_names_the_output() {
        let Ok(full) = File::options().write(true).open("/dev/full") else {
            return;
        };
        let out = Path::new("weights-q.npy");
        let err = write_synced(&full, out, |w| {
            for _ in 0..4 {
                w.write_all(&[0u8; 1 << 20])?;
            }
            Ok(())
        })
        .context("weights.npy")
        .unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("weights-q.npy: cannot write"), "{message}");
        assert!(message.contains("No space left"), "{message}");
        // The error of the file itself, not the one the writer wrapped it in.
        let chain: Vec<String> = err.chain().map(ToString::to_string).collect();
        assert_eq!(chain.len(), 3, "{chain:?}");
    }
}
