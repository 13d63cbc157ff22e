//! An input file read front to back in pieces, checked against the length it had when opened.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Opens `path` for reading if it is a regular file: without waiting for a writer if it is a
/// FIFO (opened without blocking, then refused).
pub fn open_regular(path: &Path) -> Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        #[allow(clippy::cast_possible_wrap)]
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = options
        .open(path)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("{}: cannot read it", path.display()))?;
    if !meta.is_file() {
        bail!(
            "{}: not a regular file (FIFOs, sockets and devices are not read)",
            path.display()
        );
    }
    Ok(file)
}

/// An open input file and the length it had when opened: every read is checked against it, so
/// a file cut short while read gives an error naming it, not a short output.
pub struct Source {
    file: File,
    path: PathBuf,
    len: u64,
}

impl Source {
    /// Opens a regular file: anything else (a directory, a FIFO, a device) is an error, never
    /// a wait.
    pub fn open(path: &Path) -> Result<Source> {
        if path.is_dir() {
            bail!("{}: is a directory, not a tensor file", path.display());
        }
        let file = open_regular(path)?;
        let len = file
            .metadata()
            .with_context(|| format!("{}: cannot read its size", path.display()))?
            .len();
        Ok(Source {
            file,
            path: path.to_path_buf(),
            len,
        })
    }

    /// The length in bytes when opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads `buf.len()` bytes at `offset`, which the caller has checked lie within the length.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.seek(offset)?;
        self.read_next(buf)
    }

    /// Moves to `offset`.
    pub fn seek(&mut self, offset: u64) -> Result<()> {
        self.file
            .seek(SeekFrom::Start(offset))
            .with_context(|| format!("{}: cannot seek to byte {offset}", self.path.display()))?;
        Ok(())
    }

    /// The current position.
    pub fn position(&mut self) -> Result<u64> {
        self.file
            .stream_position()
            .with_context(|| format!("{}: cannot read its position", self.path.display()))
    }

    /// Reads the next `buf.len()` bytes.
    pub fn read_next(&mut self, buf: &mut [u8]) -> Result<()> {
        self.file.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                anyhow::anyhow!(
                    "{}: the file ended early (was it changed while read?)",
                    self.path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("{}: cannot read", self.path.display()))
            }
        })
    }

    /// Copies the next `n` bytes to `out`, calling `done(bytes)` after each piece.
    pub fn copy_next(
        &mut self,
        n: u64,
        out: &mut dyn Write,
        mut done: impl FnMut(u64),
    ) -> Result<()> {
        let mut buf = vec![0u8; n.min(COPY_PIECE) as usize];
        let mut left = n;
        while left > 0 {
            let m = left.min(COPY_PIECE) as usize;
            self.read_next(&mut buf[..m])?;
            out.write_all(&buf[..m])?;
            left -= m as u64;
            done(m as u64);
        }
        Ok(())
    }

    /// Fails if the file's length changed since it was opened.
    pub fn check_unchanged(&self) -> Result<()> {
        let now = self
            .file
            .metadata()
            .with_context(|| format!("{}: cannot read its size", self.path.display()))?
            .len();
        if now != self.len {
            bail!(
                "{}: the file changed while it was read ({} bytes, then {now})",
                self.path.display(),
                self.len
            );
        }
        Ok(())
    }
}

/// Bytes per piece when copying unchanged data.
const COPY_PIECE: u64 = 8 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    /// A file cut short or grown after it was opened gives an error naming it.
    #[test]
    fn a_file_that_changes_while_read_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        std::fs::write(&path, [7u8; 100]).unwrap();
        let mut src = Source::open(&path).unwrap();
        let mut buf = [0u8; 60];
        src.read_at(0, &mut buf).unwrap();
        src.check_unchanged().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(80)
            .unwrap();
        let err = src.read_next(&mut buf).unwrap_err().to_string();
        assert!(
            err.contains("data.bin") && err.contains("ended early"),
            "{err}"
        );
        let err = src.check_unchanged().unwrap_err().to_string();
        assert!(err.contains("changed while it was read"), "{err}");
        std::fs::write(&path, [7u8; 120]).unwrap();
        assert!(src.check_unchanged().is_err());
    }
}
