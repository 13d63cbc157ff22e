//! The buffers of a call: the work of one call ([`Job`]), its buffers in their four shapes
//! ({into, in place} x {mask, no mask}, looped over by [`Buffers::each`] and cut into chunks by
//! [`Buffers::chunks`], both written once), and the staging of half-precision data through
//! L1-sized blocks of `f32` or `f64`.

use std::ops::Range;

use crate::Element;

/// Elements per parallel task. Fixed, so that the work split never depends on the thread count.
pub(super) const CHUNK: usize = 1 << 15;
/// Below this many elements a call stays on the calling thread (no hand-off cost).
pub(super) const PARALLEL_MIN: usize = 1 << 17;
/// Elements per staging buffer (half-precision data, the values of a mask-only job): small enough
/// to stay in the L1 cache.
pub(super) const BLOCK: usize = 1 << 10;

/// The work of one call. A `mask`, when present, has the same length as the data.
pub enum Job<'a, T> {
    /// Quantize into a buffer or in place.
    Quantize(Buffers<'a, T>),
    /// The overflow mask of `src` alone (the values go to a staging buffer).
    Mask { src: &'a [T], mask: &'a mut [bool] },
}

/// The buffers of a quantization: a call's, or a staging buffer's.
pub enum Buffers<'a, T> {
    /// `src` quantized into `dst`.
    Into {
        src: &'a [T],
        dst: &'a mut [T],
        mask: Option<&'a mut [bool]>,
    },
    /// `buf` quantized where it lies.
    InPlace {
        buf: &'a mut [T],
        mask: Option<&'a mut [bool]>,
    },
}

impl<T> Buffers<'_, T> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Buffers::Into { src, .. } => src.len(),
            Buffers::InPlace { buf, .. } => buf.len(),
        }
    }
}

impl<'a, T> Buffers<'a, T> {
    /// The buffers cut into consecutive chunks of `n` elements (the last may be shorter).
    pub(super) fn chunks(self, n: usize) -> Vec<Buffers<'a, T>> {
        match self {
            Buffers::Into { src, dst, mask } => {
                let mut masks = mask.map(|m| m.chunks_mut(n));
                src.chunks(n)
                    .zip(dst.chunks_mut(n))
                    .map(|(src, dst)| Buffers::Into {
                        src,
                        dst,
                        mask: masks.as_mut().and_then(Iterator::next),
                    })
                    .collect()
            }
            Buffers::InPlace { buf, mask } => {
                let mut masks = mask.map(|m| m.chunks_mut(n));
                buf.chunks_mut(n)
                    .map(|buf| Buffers::InPlace {
                        buf,
                        mask: masks.as_mut().and_then(Iterator::next),
                    })
                    .collect()
            }
        }
    }
}

impl<'a, T> Job<'a, T> {
    /// The job cut into consecutive chunks of `n` elements (the last may be shorter).
    pub(super) fn chunks(self, n: usize) -> Vec<Job<'a, T>> {
        match self {
            Job::Quantize(buffers) => buffers.chunks(n).into_iter().map(Job::Quantize).collect(),
            Job::Mask { src, mask } => src
                .chunks(n)
                .zip(mask.chunks_mut(n))
                .map(|(src, mask)| Job::Mask { src, mask })
                .collect(),
        }
    }
}

impl<T: Copy> Buffers<'_, T> {
    /// Runs the loop over elements `r` in each of the four shapes, written once: `f(x, e)`
    /// (with `e` the next item of `extra`, such as the element's draw) gives the element's
    /// value, whether it overflowed, and whether to leave its input as it was (in place: an
    /// element a later pass decides keeps its input readable; into a buffer, the value is
    /// written anyway and the later pass overwrites it). Inlined, with `f`, into each caller's
    /// vector loop.
    #[inline(always)]
    pub(super) fn each<E>(
        &mut self,
        r: Range<usize>,
        extra: impl Iterator<Item = E>,
        mut f: impl FnMut(T, E) -> (T, bool, bool),
    ) {
        match self {
            Buffers::Into {
                src,
                dst,
                mask: None,
            } => {
                for ((x, y), e) in src[r.clone()].iter().zip(&mut dst[r]).zip(extra) {
                    *y = f(*x, e).0;
                }
            }
            Buffers::Into {
                src,
                dst,
                mask: Some(mask),
            } => {
                let ys = dst[r.clone()].iter_mut().zip(&mut mask[r.clone()]);
                for ((x, (y, m)), e) in src[r].iter().zip(ys).zip(extra) {
                    let (v, over, _) = f(*x, e);
                    *y = v;
                    *m = over;
                }
            }
            Buffers::InPlace { buf, mask: None } => {
                for (y, e) in buf[r].iter_mut().zip(extra) {
                    let (v, _, keep) = f(*y, e);
                    if !keep {
                        *y = v;
                    }
                }
            }
            Buffers::InPlace {
                buf,
                mask: Some(mask),
            } => {
                let ys = buf[r.clone()].iter_mut().zip(&mut mask[r]);
                for ((y, m), e) in ys.zip(extra) {
                    let (v, over, keep) = f(*y, e);
                    if !keep {
                        *y = v;
                    }
                    *m = over;
                }
            }
        }
    }

    /// The input of element `i`: in place, the value it holds.
    pub(super) fn input(&self, i: usize) -> T {
        match self {
            Buffers::Into { src, .. } => src[i],
            Buffers::InPlace { buf, .. } => buf[i],
        }
    }
}

impl<T> Job<'_, T> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Job::Quantize(buffers) => buffers.len(),
            Job::Mask { src, .. } => src.len(),
        }
    }
}

/// The part of `mask` for the block at `start` of length `n`.
fn block_mask<'m>(
    mask: &'m mut Option<&mut [bool]>,
    start: usize,
    n: usize,
) -> Option<&'m mut [bool]> {
    mask.as_deref_mut().map(|m| &mut m[start..start + n])
}

/// A half-precision type, converted to and from the `f32` and `f64` data the sweeps take.
pub(crate) trait Half: Element + Default {
    fn load_f32(src: &[Self], dst: &mut [f32]);
    fn store_f32(src: &[f32], dst: &mut [Self]);
    fn load_f64(src: &[Self], dst: &mut [f64]);
    fn store_f64(src: &[f64], dst: &mut [Self]);
}

/// A half-precision job through a sweep of `S` data (`f32` or `f64`) in L1-sized blocks. Generic
/// over the plan, so that fixed point and floating point share it.
pub(super) fn staged<H: Copy + Default, S: Copy + Default, P>(
    job: Job<'_, H>,
    base: u64,
    f: fn(Buffers<'_, S>, u64, &P),
    plan: &P,
    load: fn(&[H], &mut [S]),
    store: fn(&[S], &mut [H]),
) {
    let mut input = [S::default(); BLOCK];
    let mut output = [S::default(); BLOCK];
    let mut block = |src: &[H], dst: &mut [H], mask: Option<&mut [bool]>, start: usize| {
        let n = src.len();
        load(src, &mut input[..n]);
        let (src, staged) = (&input[..n], &mut output[..n]);
        let buffers = Buffers::Into {
            src,
            dst: staged,
            mask,
        };
        f(buffers, base + start as u64, plan);
        store(&output[..n], dst);
    };
    match job {
        Job::Quantize(Buffers::Into { src, dst, mut mask }) => {
            for (i, (src, dst)) in src.chunks(BLOCK).zip(dst.chunks_mut(BLOCK)).enumerate() {
                let start = i * BLOCK;
                block(src, dst, block_mask(&mut mask, start, src.len()), start);
            }
        }
        Job::Quantize(Buffers::InPlace { buf, mut mask }) => {
            let mut copy = [H::default(); BLOCK];
            for (i, dst) in buf.chunks_mut(BLOCK).enumerate() {
                let start = i * BLOCK;
                let n = dst.len();
                copy[..n].copy_from_slice(dst);
                block(&copy[..n], dst, block_mask(&mut mask, start, n), start);
            }
        }
        Job::Mask { src, mask } => {
            for (i, (src, mask)) in src.chunks(BLOCK).zip(mask.chunks_mut(BLOCK)).enumerate() {
                let n = src.len();
                load(src, &mut input[..n]);
                let start = base + (i * BLOCK) as u64;
                let (src, dst) = (&input[..n], &mut output[..n]);
                let mask = Some(mask);
                f(Buffers::Into { src, dst, mask }, start, plan);
            }
        }
    }
}
