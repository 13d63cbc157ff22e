//! Writing an output file so that it reaches the disk while it is being written: a helper
//! thread flushes what was written so far (`sync_data`) after every few tens of MiB, so that
//! the final sync waits only for the last of it, not for the whole file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;

use anyhow::{Context, Result};

/// Bytes written between two requests to flush to disk.
const SYNC_EVERY: u64 = 64 << 20;

/// Writes `file` with `write`, then syncs it; `path` names it in messages.
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
        };
        let mut w = BufWriter::with_capacity(1 << 20, &mut counted);
        let r = write(&mut w)?;
        w.flush()
            .with_context(|| format!("{}: cannot write", path.display()))?;
        Ok::<R, anyhow::Error>(r)
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
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = (&*self.file).write(buf)?;
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
