//! The thread pool the kernels split large jobs over, and forked processes. `fork()` copies
//! rayon's global pool into the child without its threads, so a job sent there would wait
//! forever: a child (a process whose id differs from the one that first ran a kernel) gets a
//! pool of its own instead.

use std::sync::{Mutex, OnceLock};

use rayon::prelude::*;

use super::buffers::{Job, CHUNK, PARALLEL_MIN};

/// The id of the process that first ran a kernel: rayon's global pool, if it was made, belongs
/// to it.
static FIRST: OnceLock<u32> = OnceLock::new();

/// The pool of a forked child, with the id of the process that made it.
static CHILD_POOL: Mutex<Option<(u32, &'static rayon::ThreadPool)>> = Mutex::new(None);

/// Jobs of at most this many elements run in one piece: their parallel iterators never reach
/// a pool (the smallest piece a kernel splits off is 16K elements).
const ONE_PIECE: usize = 1 << 14;

/// Runs `f`, a job of `len` elements, whose parallel iterators then
/// run on a pool whose threads exist in this process: rayon's global pool, or in a forked child
/// a pool made for that child (run serially if no thread can be started there). The first call
/// of a process records its id; later ones compare it (a system call) only for large jobs.
pub(crate) fn in_pool<R: Send>(len: usize, f: impl FnOnce() -> R + Send) -> R {
    let first = *FIRST.get_or_init(std::process::id);
    if len <= ONE_PIECE {
        return f();
    }
    let pid = std::process::id();
    if first == pid {
        return f();
    }
    match child_pool(pid) {
        Some(pool) => pool.install(f),
        None => single_thread(f),
    }
}

/// This child's pool, made on first use; `None` if it cannot be made.
fn child_pool(pid: u32) -> Option<&'static rayon::ThreadPool> {
    let mut slot = CHILD_POOL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match *slot {
        Some((owner, pool)) if owner == pid => Some(pool),
        _ => {
            // A pool made by a parent (this process forked from a child) has no threads here
            // either; it is left as it is, never used again. Pools are few: one per process.
            let pool = rayon::ThreadPoolBuilder::new().build().ok()?;
            let pool: &'static rayon::ThreadPool = Box::leak(Box::new(pool));
            *slot = Some((pid, pool));
            Some(pool)
        }
    }
}

/// Runs `f` on a pool of the calling thread alone (no thread started).
fn single_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let mut f = Some(f);
    let mut out = None;
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .use_current_thread()
        .build();
    match built {
        Ok(pool) => {
            pool.install(|| out = f.take().map(|f| f()));
        }
        Err(_) => out = f.take().map(|f| f()),
    }
    match out {
        Some(out) => out,
        None => unreachable!("the closure ran"),
    }
}

/// Runs `piece` on the job, split into fixed chunks over rayon's threads when it is large; each
/// piece gets the stream index of its first element.
pub(super) fn split<T: Send + Sync>(job: Job<'_, T>, piece: &(dyn Fn(Job<'_, T>, u64) + Sync)) {
    let parallel = job.len() >= PARALLEL_MIN && rayon::current_num_threads() > 1;
    if !parallel {
        return piece(job, 0);
    }
    job.chunks(CHUNK)
        .into_par_iter()
        .enumerate()
        .for_each(|(c, job)| piece(job, (c * CHUNK) as u64));
}
