//! Fixed point with one fractional length per block: the engine under block floating point and
//! under per-slice scaled fixed point. All blocks share the word length, signedness and
//! overflow mode of a base format; block `b` has the fractional length `fls[b]`.
//!
//! Element `i` of a tensor belongs to block `(i / inner) % count`: `inner` consecutive elements
//! (a *run*) share a block, and the runs cycle through the blocks. That covers one block for the
//! whole tensor (`inner = len`, `count = 1`), the slices of a row-major tensor along any axis
//! (`inner` = the product of the later axes, `count` = the axis' length) and fixed-size blocks
//! along the last axis (`inner` = the block size, `count` = the number of blocks).
//!
//! Three paths give the same bits:
//! - runs of [`LONG`] elements or more, whose blocks all have formats, are quantized with the
//!   fixed-point kernel of their block's format, run by run;
//! - layouts whose period (`inner * count`) is at most [`FUSED_PERIOD`] go through the kernel's
//!   scaled sweep, which reads each element's `2^fl` and `2^-fl` from a table of one period, in
//!   one pass (for the modes and element types it is compiled for; see `kernel::driver`);
//! - otherwise each element is scaled by its block's power of two into an `f64` buffer (exact),
//!   quantized with the kernel of one reference format (same codes, same overflow), and scaled
//!   back. That also serves fractional lengths no [`FixedPoint`] takes.
//!
//! A call may cover a part of a tensor: `x[0]` is element `start` of the tensor, whose layout
//! and stream indices the part follows. In both paths, element `i` of the tensor draws the noise
//! of stream index `i`, so the result depends on neither the blocks' order, the thread count nor
//! how the tensor is split into parts.

use rayon::prelude::*;

use crate::format::pow2;
use crate::kernel::{Plan, ScaledJob};
use crate::{Element, FixedPoint, QuantSpec, Rounding};

/// Runs at least this long are quantized directly with their block's format.
const LONG: usize = 512;
/// Runs shorter than this are scaled with a factor table of one period (`inner * count`).
pub(crate) const SHORT: usize = 16;
/// Elements per piece of the scaled path (one `f64` scratch buffer each).
const PIECE: usize = 1 << 15;
/// The longest period of the one-pass path's scale table (64K entries).
const FUSED_PERIOD: usize = 1 << 16;
/// The largest period whose factor tables are built (two `f64` per element of a period).
pub(crate) const MAX_PERIOD: usize = 1 << 22;

/// One per-block quantization.
#[derive(Debug, Clone, Copy)]
pub struct PerBlock<'a> {
    /// Consecutive elements sharing a block.
    pub inner: usize,
    /// Blocks the runs cycle through (`fls.len()`).
    pub count: usize,
    /// Word length, signedness and overflow of every block.
    pub base: FixedPoint,
    /// Each block's fractional length (any value: those no format takes go the scaled way).
    pub fls: &'a [i32],
    /// The rounding, resolved (no fresh noise is drawn here).
    pub rounding: Rounding,
    /// The tensor index (and stream index) of `x[0]`.
    pub start: usize,
}

/// The largest finite magnitude of each block (0 for a block with none): `count` values.
pub(crate) fn finite_abs_max<T: Element>(x: &[T], inner: usize, count: usize) -> Vec<f64> {
    let count = count.max(1);
    let inner = if count == 1 {
        x.len().max(1)
    } else {
        inner.max(1)
    };
    let mut top = vec![0f64; count];
    if inner >= SHORT || count == 1 {
        // One maximum per run, then per block.
        let runs: Vec<f64> = if inner >= PIECE {
            x.par_chunks(inner).map(run_max).collect()
        } else {
            // Many runs per task, in one dispatch.
            let per = PIECE / inner;
            let mut runs = vec![0f64; x.len().div_ceil(inner)];
            runs.par_chunks_mut(per)
                .zip(x.par_chunks(per * inner))
                .for_each(|(m, xs)| crate::isa::arch().dispatch(RunMaxes(m, xs, inner)));
            runs
        };
        for (r, m) in runs.into_iter().enumerate() {
            let t = &mut top[r % count];
            if m > *t {
                *t = m;
            }
        }
    } else {
        // Element-wise over periods: one accumulator of a period per group of periods.
        let period = inner * count;
        let group = period * (PIECE / period).max(1);
        let merge = |mut a: Vec<f64>, b: Vec<f64>| {
            for (s, v) in a.iter_mut().zip(b) {
                if v > *s {
                    *s = v;
                }
            }
            a
        };
        let groups = x.par_chunks(group).map(|g| {
            let mut acc = vec![0f64; period];
            for p in g.chunks(period) {
                crate::isa::arch().dispatch(MaxInto(&mut acc, p));
            }
            acc
        });
        let acc = groups.reduce(|| vec![0f64; period], merge);
        for (p, m) in acc.into_iter().enumerate() {
            let t = &mut top[(p / inner) % count];
            if m > *t {
                *t = m;
            }
        }
    }
    top
}

/// Merges into `top` (one entry per block) the largest finite magnitude of each block's elements
/// in `x`, a part of a tensor whose element 0 is tensor element `start`.
pub(crate) fn merge_abs_max_part<T: Element>(
    x: &[T],
    start: usize,
    inner: usize,
    count: usize,
    top: &mut [f64],
) {
    let count = count.max(1);
    let inner = if count == 1 { usize::MAX } else { inner.max(1) };
    let merge = |mut a: Vec<f64>, b: Vec<f64>| {
        for (s, v) in a.iter_mut().zip(b) {
            if v > *s {
                *s = v;
            }
        }
        a
    };
    let local = if inner >= SHORT {
        x.par_chunks(PIECE)
            .enumerate()
            .fold(
                || vec![0f64; count],
                |mut acc, (k, xs)| {
                    for_runs(start + k * PIECE, inner, count, xs.len(), |i, b, n| {
                        let m = serial_max(&xs[i..i + n]);
                        if m > acc[b] {
                            acc[b] = m;
                        }
                    });
                    acc
                },
            )
            .reduce(|| vec![0f64; count], merge)
    } else {
        let period = inner * count;
        let acc = x
            .par_chunks(PIECE)
            .enumerate()
            .fold(
                || vec![0f64; period],
                |mut acc, (k, xs)| {
                    for_period((start + k * PIECE) % period, period, xs.len(), |i, p, n| {
                        crate::isa::arch().dispatch(MaxInto(&mut acc[p..p + n], &xs[i..i + n]));
                    });
                    acc
                },
            )
            .reduce(|| vec![0f64; period], merge);
        let mut blocks = vec![0f64; count];
        for (p, m) in acc.into_iter().enumerate() {
            let t = &mut blocks[(p / inner) % count];
            if m > *t {
                *t = m;
            }
        }
        blocks
    };
    for (t, m) in top.iter_mut().zip(local) {
        if m > *t {
            *t = m;
        }
    }
}

/// The sum over each block of `value(i)` for the `len` elements `i` of a tensor (`count`
/// entries), over rayon's threads.
pub(crate) fn block_sums(
    len: usize,
    inner: usize,
    count: usize,
    value: impl Fn(usize) -> f64 + Sync,
) -> Vec<f64> {
    let count = count.max(1);
    let inner = if count == 1 { usize::MAX } else { inner.max(1) };
    let add = |mut a: Vec<f64>, b: Vec<f64>| {
        for (s, v) in a.iter_mut().zip(b) {
            *s += v;
        }
        a
    };
    let pieces = (0..len.div_ceil(PIECE)).into_par_iter();
    if inner >= SHORT {
        return pieces
            .fold(
                || vec![0f64; count],
                |mut acc, k| {
                    let start = k * PIECE;
                    for_runs(start, inner, count, PIECE.min(len - start), |i, b, n| {
                        acc[b] += (start + i..start + i + n).map(&value).sum::<f64>();
                    });
                    acc
                },
            )
            .reduce(|| vec![0f64; count], add);
    }
    let period = inner * count;
    let acc = pieces
        .fold(
            || vec![0f64; period],
            |mut acc, k| {
                let start = k * PIECE;
                for_period(start % period, period, PIECE.min(len - start), |i, p, n| {
                    for (a, j) in acc[p..p + n].iter_mut().zip(start + i..) {
                        *a += value(j);
                    }
                });
                acc
            },
        )
        .reduce(|| vec![0f64; period], add);
    let mut sums = vec![0f64; count];
    for (p, v) in acc.into_iter().enumerate() {
        sums[(p / inner) % count] += v;
    }
    sums
}

/// The largest finite magnitude of a run, split over threads when it is long.
fn run_max<T: Element>(run: &[T]) -> f64 {
    if run.len() > 4 * PIECE {
        return run
            .par_chunks(PIECE)
            .map(serial_max)
            .reduce(|| 0.0, f64::max);
    }
    serial_max(run)
}

/// The largest finite magnitude of `run`, with the best instruction set of the machine.
fn serial_max<T: Element>(run: &[T]) -> f64 {
    crate::isa::arch().dispatch(MaxAbs(run))
}

struct MaxAbs<'a, T>(&'a [T]);

impl<T: Element> pulp::WithSimd for MaxAbs<'_, T> {
    type Output = f64;

    /// Sixteen accumulators, so that the loop vectorizes.
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> f64 {
        if self.0.len() < 16 {
            return self.0.iter().fold(0.0, |m, v| {
                let a = v.to_f64().abs();
                if a < f64::INFINITY && a > m {
                    a
                } else {
                    m
                }
            });
        }
        let mut acc = [0f64; 16];
        let mut chunks = self.0.chunks_exact(16);
        for c in &mut chunks {
            for (s, v) in acc.iter_mut().zip(c) {
                let a = v.to_f64().abs();
                *s = if a < f64::INFINITY && a > *s { a } else { *s };
            }
        }
        for v in chunks.remainder() {
            let a = v.to_f64().abs();
            if a < f64::INFINITY && a > acc[0] {
                acc[0] = a;
            }
        }
        acc.into_iter().fold(0.0, f64::max)
    }
}

/// The largest finite magnitude of each run of `.2` elements of `.1`, into `.0`.
struct RunMaxes<'a, T>(&'a mut [f64], &'a [T], usize);

impl<T: Element> pulp::WithSimd for RunMaxes<'_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        for (m, run) in self.0.iter_mut().zip(self.1.chunks(self.2)) {
            *m = MaxAbs(run).with_simd(simd);
        }
    }
}

/// Element-wise: each accumulator becomes the larger of itself and its element's finite
/// magnitude.
struct MaxInto<'a, T>(&'a mut [f64], &'a [T]);

impl<T: Element> pulp::WithSimd for MaxInto<'_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (s, v) in self.0.iter_mut().zip(self.1) {
            let a = v.to_f64().abs();
            *s = if a < f64::INFINITY && a > *s { a } else { *s };
        }
    }
}

/// `x` quantized block by block into `out` (same length), with the overflow mask when given.
pub(crate) fn quantize<T: Element>(
    job: &PerBlock<'_>,
    x: &[T],
    out: &mut [T],
    mask: Option<&mut [bool]>,
) {
    let count = job.count.max(1);
    // One block: one run.
    let inner = if count == 1 {
        x.len().max(1)
    } else {
        job.inner.max(1)
    };
    debug_assert_eq!(job.fls.len(), count);
    debug_assert_eq!(x.len(), out.len());
    let formats: Option<Vec<FixedPoint>> = if inner >= LONG || count == 1 {
        job.fls
            .iter()
            .map(|&fl| job.base.with_frac_length(fl).ok())
            .collect()
    } else {
        None
    };
    if let Some(formats) = formats {
        direct(job, &formats, inner, x, out, mask);
    } else {
        scaled(job, inner, count, x, out, mask);
    }
}

/// Run by run, each with its block's format.
fn direct<T: Element>(
    job: &PerBlock<'_>,
    formats: &[FixedPoint],
    inner: usize,
    x: &[T],
    out: &mut [T],
    mask: Option<&mut [bool]>,
) {
    let count = formats.len();
    // The part may begin inside a run: that head first, then whole runs.
    let head = ((inner - job.start % inner) % inner).min(x.len());
    let spec = |at: usize| {
        QuantSpec::new(formats[(at / inner) % count], job.rounding).with_stream_start(at as u64)
    };
    let (xh, xr) = x.split_at(head);
    let (oh, or) = out.split_at_mut(head);
    let runs = xr.par_chunks(inner).zip(or.par_chunks_mut(inner));
    let rest = job.start + head;
    match mask {
        None => {
            if head > 0 {
                let _ = spec(job.start).quantize_into(xh, oh);
            }
            runs.enumerate().for_each(|(r, (xs, os))| {
                // Equal lengths by construction.
                let _ = spec(rest + r * inner).quantize_into(xs, os);
            });
        }
        Some(mask) => {
            let (mh, mr) = mask.split_at_mut(head);
            if head > 0 {
                let _ = spec(job.start).quantize_into_with_mask(xh, oh, mh);
            }
            runs.zip(mr.par_chunks_mut(inner))
                .enumerate()
                .for_each(|(r, ((xs, os), ms))| {
                    let _ = spec(rest + r * inner).quantize_into_with_mask(xs, os, ms);
                });
        }
    }
}

/// Each block's scale factors: `down` takes an element to the reference format's scale,
/// `up` back; two factors each so that no factor leaves `f64`'s range.
#[derive(Debug, Clone, Copy)]
struct Factors {
    down: (f64, f64),
    up: (f64, f64),
}

impl Factors {
    fn new(shift: i64) -> Factors {
        let half = shift / 2;
        Factors {
            down: (pow2(half), pow2(shift - half)),
            up: (pow2(-half), pow2(half - shift)),
        }
    }
}

/// Scaled by powers of two into `f64`, quantized with one reference format, scaled back.
fn scaled<T: Element>(
    job: &PerBlock<'_>,
    inner: usize,
    count: usize,
    x: &[T],
    out: &mut [T],
    mask: Option<&mut [bool]>,
) {
    // The reference format: fl = 0 exists for every word length.
    let Ok(reference) = job.base.with_frac_length(0) else {
        return;
    };
    let period = inner.saturating_mul(count);
    // One pass of the kernel that takes a scale per element, from a table of one period, where
    // the element type has it and the period is short enough for the table to be cheap.
    let short = period <= FUSED_PERIOD;
    let period_fls: Vec<i32> = if short {
        (0..period).map(|p| job.fls[(p / inner) % count]).collect()
    } else {
        Vec::new()
    };
    let plan = Plan::of(&QuantSpec::new(reference, job.rounding));
    let (out, mask) = if short {
        let scaled = ScaledJob {
            plan: &plan,
            x,
            out,
            mask,
            fls: &period_fls,
            start: job.start,
        };
        match T::run_scaled(scaled) {
            Ok(()) => return,
            Err(back) => (back.out, back.mask),
        }
    } else {
        (out, mask)
    };
    let factors: Vec<Factors> = job
        .fls
        .iter()
        .map(|&fl| Factors::new(i64::from(fl)))
        .collect();
    // Short runs: per-position factors of one period, when one factor each suffices.
    let one_factor = job.fls.iter().all(|fl| fl.abs() <= 1022);
    let table = (inner < SHORT && period <= MAX_PERIOD && one_factor).then(|| {
        let mut down = Vec::with_capacity(period);
        let mut up = Vec::with_capacity(period);
        for p in 0..period {
            let fl = i64::from(job.fls[(p / inner) % count]);
            down.push(pow2(fl));
            up.push(pow2(-fl));
        }
        (down, up)
    });
    let piece =
        |offset: usize, xs: &[T], os: &mut [T], ms: Option<&mut [bool]>, buf: &mut Vec<f64>| {
            buf.clear();
            buf.resize(xs.len(), 0.0);
            let offset = job.start + offset;
            let at = |i: usize| (offset + i) % period;
            match &table {
                Some((down, _)) => for_period(at(0), period, buf.len(), |i, p, n| {
                    for ((s, v), f) in buf[i..i + n]
                        .iter_mut()
                        .zip(&xs[i..i + n])
                        .zip(&down[p..p + n])
                    {
                        *s = v.to_f64() * f;
                    }
                }),
                None => for_runs(offset, inner, count, buf.len(), |i, b, n| {
                    let (f0, f1) = factors[b].down;
                    for (s, v) in buf[i..i + n].iter_mut().zip(&xs[i..i + n]) {
                        *s = v.to_f64() * f0 * f1;
                    }
                }),
            }
            let spec = QuantSpec::new(reference, job.rounding).with_stream_start(offset as u64);
            match ms {
                None => spec.quantize_in_place(buf.as_mut_slice()),
                Some(ms) => {
                    let _ = spec.quantize_in_place_with_mask(buf.as_mut_slice(), ms);
                }
            }
            match &table {
                Some((_, up)) => for_period(at(0), period, buf.len(), |i, p, n| {
                    for ((o, s), f) in os[i..i + n]
                        .iter_mut()
                        .zip(&buf[i..i + n])
                        .zip(&up[p..p + n])
                    {
                        *o = T::from_f64(s * f);
                    }
                }),
                None => for_runs(offset, inner, count, buf.len(), |i, b, n| {
                    let (f0, f1) = factors[b].up;
                    for (o, s) in os[i..i + n].iter_mut().zip(&buf[i..i + n]) {
                        *o = T::from_f64(s * f0 * f1);
                    }
                }),
            }
        };
    in_pieces(x, out, mask, piece);
}

/// Runs `piece(offset, x, out, mask, buffer)` on pieces of [`PIECE`] elements over rayon's
/// threads, each thread with a scratch buffer of its own.
pub(crate) fn in_pieces<T: Sync + Send>(
    x: &[T],
    out: &mut [T],
    mask: Option<&mut [bool]>,
    piece: impl Fn(usize, &[T], &mut [T], Option<&mut [bool]>, &mut Vec<f64>) + Sync + Send,
) {
    let pieces = x
        .par_chunks(PIECE)
        .zip(out.par_chunks_mut(PIECE))
        .enumerate();
    match mask {
        None => pieces.for_each_init(Vec::new, |buf, (k, (xs, os))| {
            piece(k * PIECE, xs, os, None, buf);
        }),
        Some(mask) => pieces
            .zip(mask.par_chunks_mut(PIECE))
            .for_each_init(Vec::new, |buf, ((k, (xs, os)), ms)| {
                piece(k * PIECE, xs, os, Some(ms), buf)
            }),
    }
}

/// Calls `f(i, p, n)` for the stretches of `len` elements that begin at period position `p0`:
/// element `i` onwards, `n` of them, at period positions `p..p + n`.
pub(crate) fn for_period(
    p0: usize,
    period: usize,
    len: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let (mut i, mut p) = (0, p0);
    while i < len {
        let n = (period - p).min(len - i);
        f(i, p, n);
        i += n;
        p = 0;
    }
}

/// Calls `f(i, b, n)` for the stretches of `len` elements, the first at tensor index `offset`,
/// that lie in one block: element `i` onwards, `n` of them, in block `b`.
pub(crate) fn for_runs(
    offset: usize,
    inner: usize,
    count: usize,
    len: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let mut i = 0;
    while i < len {
        let at = offset + i;
        let n = (inner - at % inner).min(len - i);
        f(i, (at / inner) % count, n);
        i += n;
    }
}
