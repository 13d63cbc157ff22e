//! Temporary outputs and how they reach their place. Every temporary file or directory is named
//! `.xbquant-tmp-*` beside its destination, holds an exclusive advisory lock (`flock`) for as
//! long as its writer lives, and is removed by a signal handler on SIGINT, SIGTERM and SIGHUP. A
//! writer killed outright (SIGKILL) leaves it behind, unlocked: the next run that writes to the
//! same directory proves it orphaned by taking its lock, and removes it.
//!
//! Without `--force` an output is renamed into place only where nothing is (`RENAME_NOREPLACE`),
//! so a file that another writer put there meanwhile is never replaced.

use std::fs::{File, Permissions};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::{bail, Context, Result};

/// The prefix of every temporary file and directory this program creates.
pub const TEMP_PREFIX: &str = ".xbquant-tmp-";

/// The temporary paths that exist now, removed on a catchable signal. The final renames hold
/// the lock, so a signal never lands between two renames of one output.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live() -> MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes a file, or a directory with its contents; errors are ignored (best effort).
fn remove_path(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).ok(),
        Ok(_) => std::fs::remove_file(path).ok(),
        Err(_) => None,
    };
}

/// Removes the temporary outputs of this process on SIGINT, SIGTERM and SIGHUP, then ends it as
/// the signal would have. Called before anything is written; the handler is installed once.
pub fn remove_on_signals() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(install);
}

fn install() {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let live = live();
                for path in live.iter() {
                    remove_path(path);
                }
                // Ends the process while the list is held: no rename can follow.
                signal_hook::low_level::emulate_default_handler(signal).ok();
                std::process::exit(128 + signal);
            }
        });
    }
}

/// A temporary file or directory, locked and listed while it lives; removed when dropped
/// unless it was put in place.
pub struct Temp {
    path: PathBuf,
    /// The open file or directory that holds the lock.
    _lock: File,
}

impl Temp {
    /// A new temporary file in `dir`, and the file to write.
    pub fn file(dir: &Path, permissions: Option<Permissions>) -> Result<(Temp, File)> {
        match Self::create(dir, permissions, false)? {
            (temp, Some(file)) => Ok((temp, file)),
            (_, None) => bail!("{}: cannot create a file in this directory", dir.display()),
        }
    }

    /// A new temporary directory in `parent`.
    pub fn dir(parent: &Path, permissions: Option<Permissions>) -> Result<Temp> {
        Self::create(parent, permissions, true).map(|(t, _)| t)
    }

    fn create(
        dir: &Path,
        permissions: Option<Permissions>,
        is_dir: bool,
    ) -> Result<(Temp, Option<File>)> {
        if !dir.is_dir() {
            bail!(
                "{}: no such directory (the output goes into a directory that exists)",
                dir.display()
            );
        }
        let cannot = || format!("{}: cannot create a file in this directory", dir.display());
        // Another run's orphan cleaning can take the lock of a file created an instant before
        // its lock is taken here, and remove it: then the path is no longer this file, and
        // another is made.
        for _ in 0..8 {
            let mut builder = tempfile::Builder::new();
            builder.prefix(TEMP_PREFIX);
            if let Some(p) = &permissions {
                builder.permissions(p.clone());
            }
            let mut live = live();
            let (path, file) = if is_dir {
                let path = builder.tempdir_in(dir).with_context(cannot)?.keep();
                (path, None)
            } else {
                let (file, path) = builder.tempfile_in(dir).with_context(cannot)?.into_parts();
                let path = path.keep().with_context(cannot)?;
                (path, Some(file))
            };
            live.push(path.clone());
            drop(live);
            let lock = match &file {
                Some(f) => f.try_clone(),
                None => File::open(&path),
            };
            let lock = match lock {
                Ok(lock) => lock,
                Err(e) => {
                    forget(&path);
                    return Err(e).with_context(cannot);
                }
            };
            let temp = Temp { path, _lock: lock };
            if temp.lock_is_ours() {
                return Ok((temp, file));
            }
        }
        bail!(
            "{}: cannot create a temporary file that stays",
            dir.display()
        )
    }

    /// Takes the lock and checks that the path still names the locked file.
    fn lock_is_ours(&self) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let locked = rustix::fs::flock(
                &self._lock,
                rustix::fs::FlockOperation::NonBlockingLockExclusive,
            );
            let same = match (std::fs::symlink_metadata(&self.path), self._lock.metadata()) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            };
            locked.is_ok() && same
        }
        #[cfg(not(unix))]
        {
            true
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        forget(&self.path);
    }
}

/// Takes `path` off the list and removes it, if it is still listed (not put in place).
fn forget(path: &Path) {
    let mut live = live();
    if let Some(i) = live.iter().position(|p| p == path) {
        live.swap_remove(i);
        remove_path(path);
    }
}

/// Renames each temporary output to its destination, in order, with the signal handler held
/// off: `replace` (`--force`) replaces what is there, otherwise a destination that exists now
/// (another writer's output, a symbolic link) is an error and the output is not placed.
pub fn place<P: AsRef<Path>>(items: Vec<(Temp, P)>, replace: bool) -> Result<()> {
    let mut live = live();
    let mut result = Ok(());
    for (temp, to) in &items {
        let to = to.as_ref();
        result = rename(temp.path(), to, replace)
            .with_context(|| format!("{}: cannot write the output", to.display()));
        if result.is_err() {
            break;
        }
        if let Some(i) = live.iter().position(|p| p == temp.path()) {
            live.swap_remove(i);
        }
    }
    // The list is released before the temporaries that were not placed are dropped (removed).
    drop(live);
    drop(items);
    result
}

fn rename(from: &Path, to: &Path, replace: bool) -> Result<()> {
    if replace {
        return Ok(std::fs::rename(from, to)?);
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::EXIST) => bail!(
                "appeared while this run was writing (another writer?); it was not replaced \
                 (use --force to replace it)"
            ),
            // A file system without the flag: the check below, with a short window.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {}
            Err(e) => return Err(std::io::Error::from(e).into()),
        }
    }
    if std::fs::symlink_metadata(to).is_ok() {
        bail!(
            "appeared while this run was writing; it was not replaced (use --force to replace it)"
        );
    }
    Ok(std::fs::rename(from, to)?)
}

/// An exclusive advisory lock on the directory `dir`, held until the returned file is dropped
/// (waiting for another run that holds it: runs hold it only while they rename).
pub fn lock_dir(dir: &Path) -> Result<File> {
    let file =
        File::open(dir).with_context(|| format!("{}: cannot open the directory", dir.display()))?;
    #[cfg(unix)]
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(std::io::Error::from)
        .with_context(|| format!("{}: cannot lock the directory", dir.display()))?;
    Ok(file)
}

/// Removes the temporary outputs in `dir` that runs killed outright left behind: those named
/// by [`TEMP_PREFIX`] whose lock nobody holds. A live writer holds its lock, so its files stay.
pub fn remove_orphans(dir: &Path) {
    #[cfg(unix)]
    {
        use rustix::fs::{flock, open, FlockOperation, Mode, OFlags};
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                continue;
            }
            let path = entry.path();
            // Not through a symbolic link, and without waiting on a FIFO.
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            let Ok(fd) = open(&path, flags, Mode::empty()) else {
                continue;
            };
            if flock(&fd, FlockOperation::NonBlockingLockExclusive).is_ok() {
                remove_path(&path);
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
}
