//! The per-element maths and the loops: the vectorized sweep (compiled for the CPU's best
//! instruction set), the split over threads, the staging of in-place and half-precision work, and
//! the serial loop of integer codes.

use std::marker::PhantomData;
use std::ops::Range;

use rayon::prelude::*;

use super::lane::Lane;
use super::overflow::OverflowOp;
use super::round::RoundOp;
use super::{with_ops, Plan};
use crate::format::pow2;
use crate::random::{draw, draw_high, hash32, hash_keys, WEYL};
use crate::Element;

/// Elements per parallel task. Fixed, so that the work split never depends on the thread count.
const CHUNK: usize = 1 << 15;
/// Below this many elements a call stays on the calling thread (no hand-off cost).
const PARALLEL_MIN: usize = 1 << 17;
/// Elements per staging buffer (half-precision data, the values of a mask-only job): small enough
/// to stay in the L1 cache.
const BLOCK: usize = 1 << 10;

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

impl<T: Copy> Buffers<'_, T> {
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

/// The code of `x` (as an exact integer-valued float), the scaled value, and whether it
/// overflowed. `u` is the element's draw for stochastic rounding (see [`Lane::draw`]).
#[inline(always)]
fn code_of<F: Lane, R: RoundOp, O: OverflowOp>(x: F, u: F, p: &Plan) -> (F, F, bool) {
    code_with::<F, R, O>(x, u, p, F::bounds(p).scale)
}

/// [`code_of`] with a scale of the element's own (`2^fl` of its slice).
#[inline(always)]
fn code_with<F: Lane, R: RoundOp, O: OverflowOp>(x: F, u: F, p: &Plan, scale: F) -> (F, F, bool) {
    let scaled = x * scale;
    let t = if R::NEEDS_TINY && scaled == F::ZERO && x != F::ZERO {
        F::TINY.copysign(x)
    } else {
        scaled
    };
    let (k, over) = O::apply(R::round(t, u), t, p);
    (k, t, over)
}

/// The quantized value of `x` and whether it overflowed (never for NaN).
#[inline(always)]
fn value_of<F: Lane, R: RoundOp, O: OverflowOp>(x: F, u: F, p: &Plan) -> (F, bool) {
    let b = F::bounds(p);
    value_with::<F, R, O>(x, u, p, b.scale, b.inv_scale)
}

/// [`value_of`] with a scale and its inverse of the element's own.
#[inline(always)]
fn value_with<F: Lane, R: RoundOp, O: OverflowOp>(
    x: F,
    u: F,
    p: &Plan,
    scale: F,
    inv_scale: F,
) -> (F, bool) {
    let (k, t, over) = code_with::<F, R, O>(x, u, p, scale);
    finish::<F, O>(x, k, t, over, inv_scale)
}

/// The value of the code `k` of `x` (`t` its scaled value). A NaN `x` needs no test of its own:
/// every rounding and overflow rule keeps its NaN code (a NaN compares false, so it is never
/// out of range and no select replaces it), and scaling it back gives NaN.
#[inline(always)]
fn finish<F: Lane, O: OverflowOp>(x: F, k: F, t: F, over: bool, inv_scale: F) -> (F, bool) {
    // `+ 0.0` turns -0.0 into +0.0: hardware has no negative zero.
    let q = k * inv_scale + F::ZERO;
    if O::UNBOUNDED && t.is_infinite() {
        // x * 2^fl overflowed, so x is a multiple of the step already.
        (x, over)
    } else {
        (q, over)
    }
}

/// [`value_with`] for a vector loop of stochastic rounding, `n` the lower bound of the draw
/// ([`Lane::draw_floor`]), and whether that leaves the rounding undecided (see
/// [`RoundOp::round_bounded`], which also flags a nonzero input whose scaled value underflowed
/// where its sign could matter, so that this loop skips the test that [`code_with`] makes for it:
/// the exact path settles it).
#[inline(always)]
fn value_full<F: Lane, R: RoundOp, O: OverflowOp>(
    x: F,
    n: F,
    p: &Plan,
    scale: F,
    inv_scale: F,
) -> (F, bool, bool) {
    let t = x * scale;
    let (k, undecided) = R::round_bounded(t, n);
    let (k, over) = O::apply(k, t, p);
    let (q, over) = finish::<F, O>(x, k, t, over, inv_scale);
    (q, over, undecided)
}

/// A sweep: the buffers quantized, element `i` drawing from stream index `base + i`.
type SweepFn<T> = fn(Buffers<'_, T>, u64, &Plan);

/// The data types the sweeps are compiled for. Sealed by the crate: implemented for `f32` and
/// `f64`.
pub(crate) trait Native: Element + Default {
    /// The sweep of the plan's modes, in the lane the plan allows.
    fn sweep_fn(plan: &Plan) -> SweepFn<Self>;
}

impl Native for f32 {
    fn sweep_fn(plan: &Plan) -> SweepFn<f32> {
        if plan.can_narrow {
            select::<f32, f32>(plan)
        } else {
            select::<f32, f64>(plan)
        }
    }
}

impl Native for f64 {
    fn sweep_fn(plan: &Plan) -> SweepFn<f64> {
        select::<f64, f64>(plan)
    }
}

fn select<T: Native, F: Lane>(plan: &Plan) -> SweepFn<T> {
    macro_rules! sweep_of {
        ($r:ident, $o:ident) => {
            sweep::<T, F, $r, $o> as SweepFn<T>
        };
    }
    with_ops!(plan, sweep_of)
}

/// Runs the sweep in a copy compiled for the best instruction set of this CPU (AVX-512 as in
/// x86-64-v4, AVX2+FMA as in x86-64-v3, or the baseline), chosen at run time (see
/// [`crate::instruction_set`]), so that the per-element maths compiles to vector instructions
/// even in a default build. AVX-512 matters most to stochastic rounding: its random generator
/// multiplies 64-bit integers, which only AVX-512 does in vector registers.
fn sweep<T: Native, F: Lane, R: RoundOp, O: OverflowOp>(
    buffers: Buffers<'_, T>,
    base: u64,
    plan: &Plan,
) {
    crate::isa::arch().dispatch(Sweep::<T, F, R, O> {
        buffers,
        base,
        plan,
        ops: PhantomData,
    });
}

struct Sweep<'a, T, F, R, O> {
    buffers: Buffers<'a, T>,
    base: u64,
    plan: &'a Plan,
    ops: PhantomData<(F, R, O)>,
}

impl<T: Native, F: Lane, R: RoundOp, O: OverflowOp> Sweep<'_, T, F, R, O> {
    /// Quantizes the elements with a deterministic rounding (stochastic rounding takes
    /// [`stochastic`]).
    #[inline(always)]
    fn run(self) {
        let p = self.plan;
        let value = |x: T| value_of::<F, R, O>(F::narrow(x.to_f64()), F::ZERO, p);
        match self.buffers {
            Buffers::Into {
                src,
                dst,
                mask: None,
            } => {
                for (x, y) in src.iter().zip(dst) {
                    *y = T::from_f64(value(*x).0.widen());
                }
            }
            Buffers::Into {
                src,
                dst,
                mask: Some(mask),
            } => {
                for (x, (y, m)) in src.iter().zip(dst.iter_mut().zip(mask)) {
                    let (q, over) = value(*x);
                    *y = T::from_f64(q.widen());
                    *m = over;
                }
            }
            Buffers::InPlace { buf, mask: None } => {
                for y in buf.iter_mut() {
                    *y = T::from_f64(value(*y).0.widen());
                }
            }
            Buffers::InPlace {
                buf,
                mask: Some(mask),
            } => {
                for (y, m) in buf.iter_mut().zip(mask) {
                    let (q, over) = value(*y);
                    *y = T::from_f64(q.widen());
                    *m = over;
                }
            }
        }
    }
}

impl<T: Native, F: Lane, R: RoundOp, O: OverflowOp> pulp::WithSimd for Sweep<'_, T, F, R, O> {
    type Output = ();

    /// Inlined (always) into the copy `pulp` compiles for each instruction set, so the loops are
    /// compiled with that set's features: `vroundps`, `vminps`, ... rather than calls to `libm`.
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        if !R::STOCHASTIC {
            return self.run();
        }
        let draws = Draws::new(self.plan.key, self.plan.start.wrapping_add(self.base));
        let len = self.buffers.len();
        stochastic(len, draws, &mut SweepBody::<T, F, R, O>::new(self), simd);
    }
}

/// Elements per block of a stochastic sweep.
const DRAW_BLOCK: usize = BLOCK;

/// The draws of a stochastic sweep, element `j` drawing stream index `start + j` of stream
/// `key` (see [`crate::random::draw`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Draws {
    key: u64,
    start: u64,
}

impl Draws {
    pub(super) fn new(key: u64, start: u64) -> Self {
        Draws { key, start }
    }

    /// The high 32 bits of the draws of elements `r`, from the 32-bit hash alone: its counter
    /// steps by one addition per element. `None` when `r` crosses a multiple of `2^32` in stream
    /// index, where the hash's keys change.
    #[inline(always)]
    #[allow(clippy::cast_possible_truncation)]
    fn highs(&self, r: &Range<usize>) -> Option<impl Iterator<Item = u32>> {
        let first = self.start.wrapping_add(r.start as u64);
        let last = first.wrapping_add((r.len() as u64).saturating_sub(1));
        if first >> 32 != last >> 32 {
            return None;
        }
        let keys = hash_keys(self.key, first >> 32);
        let mut w = (first as u32).wrapping_mul(WEYL);
        Some(std::iter::repeat_with(move || {
            let h = hash32(w, keys);
            w = w.wrapping_add(WEYL);
            h
        }))
    }

    /// The lower bound of the draw of element `j`, in lane `F`.
    fn floor<F: Lane>(&self, j: usize) -> F {
        F::draw_floor(draw_high(self.key, self.start.wrapping_add(j as u64)))
    }

    /// The exact draw of element `j`, in lane `F`.
    fn exact<F: Lane>(&self, j: usize) -> F {
        F::draw_exact(draw(self.key, self.start.wrapping_add(j as u64)))
    }
}

/// The loops of a stochastic sweep, for [`stochastic`].
pub(super) trait Body<F> {
    /// Quantizes elements `r` with the lower bounds of their draws; returns whether they leave
    /// the rounding of any element undecided. Such an element's input must be left readable
    /// for [`Body::undecided`] and [`Body::exact`]: in place, its value is left as it was.
    fn fast(&mut self, r: Range<usize>, floors: impl Iterator<Item = F>) -> bool;
    /// After [`Body::fast`]: whether element `i`'s rounding is undecided by the lower bound
    /// `n` of its draw (never for an element `fast` quantized in place: its code has no
    /// fraction).
    fn undecided(&self, i: usize, n: F) -> bool;
    /// Quantizes element `i` with its exact draw `u`.
    fn exact(&mut self, i: usize, u: F);
}

/// A stochastic sweep of `len` elements, in blocks: each block in a vector loop that draws only
/// the high bits of each draw, then, where that leaves some element's rounding undecided
/// (about one element in `2^24` in `f32`, `2^31` in `f64`, more for fractions that sit near a
/// draw), the block again one element at a time, the undecided ones with their exact draws.
#[inline(always)]
pub(super) fn stochastic<F: Lane, S: pulp::Simd>(
    len: usize,
    draws: Draws,
    body: &mut impl Body<F>,
    _: S,
) {
    // Staged only where a vector holds at most 256 bits: with AVX-512 the draws were as fast
    // hashed beside the maths, and the round trip through memory made 16M calls slower.
    let stage = F::STAGE_DRAWS && std::mem::size_of::<S::f32s>() <= 32;
    let mut at = 0;
    let mut staged = [0u32; DRAW_BLOCK];
    while at < len {
        let r = at..len.min(at + DRAW_BLOCK);
        match draws.highs(&r) {
            Some(highs) => {
                let undecided = if stage {
                    let staged = &mut staged[..r.len()];
                    for (s, h) in staged.iter_mut().zip(highs) {
                        *s = h;
                    }
                    body.fast(r.clone(), staged.iter().map(|&h| F::draw_floor(h)))
                } else {
                    body.fast(r.clone(), highs.map(F::draw_floor))
                };
                if undecided {
                    for i in r.clone() {
                        if body.undecided(i, draws.floor(i)) {
                            body.exact(i, draws.exact(i));
                        }
                    }
                }
            }
            None => {
                for i in r.clone() {
                    body.exact(i, draws.exact(i));
                }
            }
        }
        at = r.end;
    }
}

/// The stochastic loops of [`Sweep`].
struct SweepBody<'a, T, F, R, O> {
    buffers: Buffers<'a, T>,
    plan: &'a Plan,
    ops: PhantomData<(F, R, O)>,
}

impl<'a, T: Native, F: Lane, R: RoundOp, O: OverflowOp> SweepBody<'a, T, F, R, O> {
    fn new(sweep: Sweep<'a, T, F, R, O>) -> Self {
        SweepBody {
            buffers: sweep.buffers,
            plan: sweep.plan,
            ops: PhantomData,
        }
    }
}

impl<T: Native, F: Lane, R: RoundOp, O: OverflowOp> Body<F> for SweepBody<'_, T, F, R, O> {
    #[inline(always)]
    fn fast(&mut self, r: Range<usize>, floors: impl Iterator<Item = F>) -> bool {
        let p = self.plan;
        let b = F::bounds(p);
        let (scale, inv) = (b.scale, b.inv_scale);
        let value = |x: T, u: F| value_full::<F, R, O>(F::narrow(x.to_f64()), u, p, scale, inv);
        // Counted as an integer, which the vector loop keeps in one register and adds each
        // comparison's mask to: ORed as `bool`, the flags were packed into bytes first, two
        // more instructions per vector. (A block holds far fewer than 2^32 elements.)
        let mut any = 0u32;
        match &mut self.buffers {
            Buffers::Into {
                src,
                dst,
                mask: None,
            } => {
                let ys = &mut dst[r.clone()];
                for ((x, y), u) in src[r].iter().zip(ys).zip(floors) {
                    let (q, _, undecided) = value(*x, u);
                    *y = T::from_f64(q.widen());
                    any += u32::from(undecided);
                }
            }
            Buffers::Into {
                src,
                dst,
                mask: Some(mask),
            } => {
                let ys = dst[r.clone()].iter_mut().zip(&mut mask[r.clone()]);
                for ((x, (y, m)), u) in src[r].iter().zip(ys).zip(floors) {
                    let (q, over, undecided) = value(*x, u);
                    *y = T::from_f64(q.widen());
                    *m = over;
                    any += u32::from(undecided);
                }
            }
            Buffers::InPlace { buf, mask: None } => {
                for (y, u) in buf[r].iter_mut().zip(floors) {
                    let (q, _, undecided) = value(*y, u);
                    if !undecided {
                        *y = T::from_f64(q.widen());
                    }
                    any += u32::from(undecided);
                }
            }
            Buffers::InPlace {
                buf,
                mask: Some(mask),
            } => {
                let ys = buf[r.clone()].iter_mut().zip(&mut mask[r]);
                for ((y, m), u) in ys.zip(floors) {
                    let (q, over, undecided) = value(*y, u);
                    if !undecided {
                        *y = T::from_f64(q.widen());
                    }
                    *m = over;
                    any += u32::from(undecided);
                }
            }
        }
        any != 0
    }

    fn undecided(&self, i: usize, n: F) -> bool {
        let x = self.buffers.input(i);
        let b = F::bounds(self.plan);
        value_full::<F, R, O>(F::narrow(x.to_f64()), n, self.plan, b.scale, b.inv_scale).2
    }

    fn exact(&mut self, i: usize, u: F) {
        let p = self.plan;
        let value = |x: T| value_of::<F, R, O>(F::narrow(x.to_f64()), u, p);
        let (over, mask) = match &mut self.buffers {
            Buffers::Into { src, dst, mask } => {
                let (q, over) = value(src[i]);
                dst[i] = T::from_f64(q.widen());
                (over, mask)
            }
            Buffers::InPlace { buf, mask } => {
                let (q, over) = value(buf[i]);
                buf[i] = T::from_f64(q.widen());
                (over, mask)
            }
        };
        if let Some(m) = mask {
            m[i] = over;
        }
    }
}

/// A piece whose elements have scales of their own: element `i` of `src` (tensor position
/// `p0 + i` within a period of `scales.len()`) is quantized with `scales[(p0 + i) % period]`
/// (`2^fl` of its slice) and `inverses[...]` (`2^-fl`), the plan's word and modes otherwise.
pub(crate) struct Scaled<'a, T, F> {
    pub src: &'a [T],
    pub dst: &'a mut [T],
    pub mask: Option<&'a mut [bool]>,
    pub scales: &'a [F],
    pub inverses: &'a [F],
    pub p0: usize,
}

/// A scaled sweep, element `i` drawing from stream index `base + i`.
pub(crate) type ScaledFn<T, F> = fn(Scaled<'_, T, F>, u64, &Plan);

/// The scaled sweep of the plan's modes, in lane `F` (`f32` for `f32` data whose scales and
/// codes are exact there, `f64` for `f64` data). Compiled for the modes per-slice formats are
/// used with, nearest and stochastic rounding with saturation, so as not to compile every mode
/// twice; `None` for the others (they take the scaled path of three passes).
fn scaled_fn<T: Native, F: Lane>(plan: &Plan) -> Option<ScaledFn<T, F>> {
    use super::overflow::Clamp;
    use super::round::{NearestEven, Stochastic};
    use crate::{Overflow, Rounding};
    if !matches!(
        plan.overflow,
        Overflow::Saturate | Overflow::SaturateSymmetric
    ) {
        return None;
    }
    match plan.rounding {
        Rounding::NearestEven => Some(scaled_sweep::<T, F, NearestEven, Clamp>),
        Rounding::Stochastic { .. } | Rounding::StochasticFresh => {
            Some(scaled_sweep::<T, F, Stochastic, Clamp>)
        }
        _ => None,
    }
}

fn scaled_sweep<T: Native, F: Lane, R: RoundOp, O: OverflowOp>(
    job: Scaled<'_, T, F>,
    base: u64,
    plan: &Plan,
) {
    crate::isa::arch().dispatch(ScaledSweep::<T, F, R, O> {
        job,
        base,
        plan,
        ops: PhantomData,
    });
}

struct ScaledSweep<'a, T, F, R, O> {
    job: Scaled<'a, T, F>,
    base: u64,
    plan: &'a Plan,
    ops: PhantomData<(R, O)>,
}

impl<T: Native, F: Lane, R: RoundOp, O: OverflowOp> pulp::WithSimd for ScaledSweep<'_, T, F, R, O> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        if R::STOCHASTIC {
            let draws = Draws::new(self.plan.key, self.plan.start.wrapping_add(self.base));
            let len = self.job.src.len();
            stochastic(len, draws, &mut ScaledBody::<T, F, R, O>(self), simd);
        } else {
            self.run();
        }
    }
}

impl<T: Native, F: Lane, R: RoundOp, O: OverflowOp> ScaledSweep<'_, T, F, R, O> {
    /// The elements of `r` in stretches of the period, contiguous slices of data and scales, so
    /// that the loops vectorize: `each(xs, ys, mask, scales, inverses)` per stretch.
    #[inline(always)]
    fn stretches(
        &mut self,
        r: Range<usize>,
        mut each: impl FnMut(&[T], &mut [T], Option<&mut [bool]>, &[F], &[F]),
    ) {
        let Scaled {
            src,
            dst,
            mask,
            scales,
            inverses,
            p0,
        } = &mut self.job;
        let period = scales.len();
        let (mut i, mut at) = (r.start, (*p0 + r.start) % period);
        while i < r.end {
            let n = (period - at).min(r.end - i);
            let m = mask.as_deref_mut().map(|m| &mut m[i..i + n]);
            let (s, v) = (&scales[at..at + n], &inverses[at..at + n]);
            each(&src[i..i + n], &mut dst[i..i + n], m, s, v);
            i += n;
            at = 0;
        }
    }

    /// The deterministic roundings, over all elements.
    #[inline(always)]
    fn run(mut self) {
        let p = self.plan;
        let value =
            |x: T, s: F, v: F| value_with::<F, R, O>(F::narrow(x.to_f64()), F::ZERO, p, s, v);
        let len = self.job.src.len();
        self.stretches(0..len, |xs, ys, mask, ss, vs| {
            let scaled = ss.iter().zip(vs);
            match mask {
                None => {
                    for ((x, y), (s, v)) in xs.iter().zip(ys).zip(scaled) {
                        *y = T::from_f64(value(*x, *s, *v).0.widen());
                    }
                }
                Some(m) => {
                    for (((x, y), (s, v)), o) in xs.iter().zip(ys).zip(scaled).zip(m) {
                        let (q, over) = value(*x, *s, *v);
                        *y = T::from_f64(q.widen());
                        *o = over;
                    }
                }
            }
        });
    }
}

/// The stochastic loops of [`ScaledSweep`].
struct ScaledBody<'a, T, F, R, O>(ScaledSweep<'a, T, F, R, O>);

impl<T: Native, F: Lane, R, O> ScaledBody<'_, T, F, R, O> {
    /// Element `i`'s input, scale and inverse scale.
    fn element(&self, i: usize) -> (F, F, F) {
        let job = &self.0.job;
        let at = (job.p0 + i) % job.scales.len();
        (
            F::narrow(job.src[i].to_f64()),
            job.scales[at],
            job.inverses[at],
        )
    }
}

impl<T: Native, F: Lane, R: RoundOp, O: OverflowOp> Body<F> for ScaledBody<'_, T, F, R, O> {
    #[inline(always)]
    fn fast(&mut self, r: Range<usize>, mut floors: impl Iterator<Item = F>) -> bool {
        let p = self.0.plan;
        let value =
            |x: T, u: F, s: F, v: F| value_full::<F, R, O>(F::narrow(x.to_f64()), u, p, s, v);
        let mut any = 0u32;
        self.0.stretches(r, |xs, ys, mask, ss, vs| {
            let scaled = ss.iter().zip(vs);
            match mask {
                None => {
                    for (((x, y), (s, v)), u) in xs.iter().zip(ys).zip(scaled).zip(&mut floors) {
                        let (q, _, undecided) = value(*x, u, *s, *v);
                        *y = T::from_f64(q.widen());
                        any += u32::from(undecided);
                    }
                }
                Some(m) => {
                    for ((((x, y), (s, v)), o), u) in
                        xs.iter().zip(ys).zip(scaled).zip(m).zip(&mut floors)
                    {
                        let (q, over, undecided) = value(*x, u, *s, *v);
                        *y = T::from_f64(q.widen());
                        *o = over;
                        any += u32::from(undecided);
                    }
                }
            }
        });
        any != 0
    }

    fn undecided(&self, i: usize, n: F) -> bool {
        let (x, s, v) = self.element(i);
        value_full::<F, R, O>(x, n, self.0.plan, s, v).2
    }

    fn exact(&mut self, i: usize, u: F) {
        let (x, s, v) = self.element(i);
        let (q, over) = value_with::<F, R, O>(x, u, self.0.plan, s, v);
        let job = &mut self.0.job;
        job.dst[i] = T::from_f64(q.widen());
        if let Some(m) = job.mask.as_deref_mut() {
            m[i] = over;
        }
    }
}

/// A quantization whose elements have fractional lengths of their own, repeating with a
/// period: element `i` of `x` (tensor index `start + i`) has `fls[(start + i) % fls.len()]`.
pub struct ScaledJob<'a, T> {
    pub plan: &'a Plan,
    pub x: &'a [T],
    pub out: &'a mut [T],
    pub mask: Option<&'a mut [bool]>,
    pub fls: &'a [i32],
    pub start: usize,
}

/// Runs a scaled job in lane `F`, split over rayon's threads in fixed chunks when it is large;
/// gives it back for the modes without a scaled sweep.
pub(crate) fn run_scaled<T: Native, F: Lane>(
    job: ScaledJob<'_, T>,
) -> Result<(), ScaledJob<'_, T>> {
    let Some(f) = scaled_fn::<T, F>(job.plan) else {
        return Err(job);
    };
    let ScaledJob {
        plan,
        x,
        out,
        mask,
        fls,
        start,
    } = job;
    let scales: Vec<F> = fls
        .iter()
        .map(|&fl| F::narrow(pow2(i64::from(fl))))
        .collect();
    let inverses: Vec<F> = fls
        .iter()
        .map(|&fl| F::narrow(pow2(-i64::from(fl))))
        .collect();
    let (scales, inverses) = (scales.as_slice(), inverses.as_slice());
    let period = fls.len();
    let piece = |c: usize, src: &[T], dst: &mut [T], mask: Option<&mut [bool]>| {
        let at = start + c * CHUNK;
        let job = Scaled {
            src,
            dst,
            mask,
            scales,
            inverses,
            p0: at % period,
        };
        f(job, at as u64, plan);
    };
    if x.len() < PARALLEL_MIN || rayon::current_num_threads() == 1 {
        piece(0, x, out, mask);
        return Ok(());
    }
    let chunks = x
        .par_chunks(CHUNK)
        .zip(out.par_chunks_mut(CHUNK))
        .enumerate();
    match mask {
        None => chunks.for_each(|(c, (src, dst))| piece(c, src, dst, None)),
        Some(mask) => chunks
            .zip(mask.par_chunks_mut(CHUNK))
            .for_each(|((c, (src, dst)), m)| piece(c, src, dst, Some(m))),
    }
    Ok(())
}

/// Runs `piece` on the job, split into fixed chunks over rayon's threads when it is large; each
/// piece gets the stream index of its first element.
pub(super) fn split<T: Send + Sync>(job: Job<'_, T>, piece: &(dyn Fn(Job<'_, T>, u64) + Sync)) {
    let parallel = job.len() >= PARALLEL_MIN && rayon::current_num_threads() > 1;
    if !parallel {
        return piece(job, 0);
    }
    let base = |chunk: usize| (chunk * CHUNK) as u64;
    match job {
        Job::Quantize(Buffers::Into {
            src,
            dst,
            mask: None,
        }) => src
            .par_chunks(CHUNK)
            .zip(dst.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, (src, dst))| {
                let mask = None;
                piece(Job::Quantize(Buffers::Into { src, dst, mask }), base(c));
            }),
        Job::Quantize(Buffers::Into {
            src,
            dst,
            mask: Some(mask),
        }) => src
            .par_chunks(CHUNK)
            .zip(dst.par_chunks_mut(CHUNK))
            .zip(mask.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, ((src, dst), m))| {
                let mask = Some(m);
                piece(Job::Quantize(Buffers::Into { src, dst, mask }), base(c));
            }),
        Job::Quantize(Buffers::InPlace { buf, mask: None }) => {
            buf.par_chunks_mut(CHUNK).enumerate().for_each(|(c, buf)| {
                piece(Job::Quantize(Buffers::InPlace { buf, mask: None }), base(c));
            });
        }
        Job::Quantize(Buffers::InPlace {
            buf,
            mask: Some(mask),
        }) => buf
            .par_chunks_mut(CHUNK)
            .zip(mask.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, (buf, m))| {
                let mask = Some(m);
                piece(Job::Quantize(Buffers::InPlace { buf, mask }), base(c));
            }),
        Job::Mask { src, mask } => src
            .par_chunks(CHUNK)
            .zip(mask.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, (src, mask))| piece(Job::Mask { src, mask }, base(c))),
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

/// Runs a job on `f32` or `f64` data. A mask-only job is staged block by block: its values go
/// to a buffer in the L1 cache.
pub(crate) fn run_native<T: Native>(plan: &Plan, job: Job<'_, T>) {
    let f = T::sweep_fn(plan);
    split(job, &|job, base| match job {
        Job::Quantize(buffers) => f(buffers, base, plan),
        Job::Mask { src, mask } => {
            let mut values = [T::default(); BLOCK];
            for (i, (src, mask)) in src.chunks(BLOCK).zip(mask.chunks_mut(BLOCK)).enumerate() {
                let dst = &mut values[..src.len()];
                let mask = Some(mask);
                f(
                    Buffers::Into { src, dst, mask },
                    base + (i * BLOCK) as u64,
                    plan,
                );
            }
        }
    });
}

/// A half-precision type, converted to and from the `f32` and `f64` data the sweeps take.
pub(crate) trait Half: Element + Default {
    fn load_f32(src: &[Self], dst: &mut [f32]);
    fn store_f32(src: &[f32], dst: &mut [Self]);
    fn load_f64(src: &[Self], dst: &mut [f64]);
    fn store_f64(src: &[f64], dst: &mut [Self]);
}

/// Runs a job on half-precision data, staged through `f32` buffers where the plan runs in `f32`
/// (every value of the type is exact there, so the result is that of the `f32` lane rounded
/// once), else through `f64` buffers.
pub(crate) fn run_half<H: Half>(plan: &Plan, job: Job<'_, H>) {
    if plan.can_narrow {
        let f = <f32 as Native>::sweep_fn(plan);
        split(job, &|job, base| {
            staged(job, base, f, plan, H::load_f32, H::store_f32)
        });
    } else {
        let f = <f64 as Native>::sweep_fn(plan);
        split(job, &|job, base| {
            staged(job, base, f, plan, H::load_f64, H::store_f64)
        });
    }
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

/// The codes of `src` (exact integer-valued `f64`, NaN for NaN) into `out`, element `i` drawing
/// from stream index `base + i`. Serial and scalar: codes are for deployment, not training loops.
pub(crate) fn codes(plan: &Plan, src: &[f64], out: &mut [f64], base: u64) {
    macro_rules! loop_of {
        ($r:ident, $o:ident) => {
            codes_loop::<$r, $o> as fn(&[f64], &mut [f64], u64, &Plan)
        };
    }
    with_ops!(plan, loop_of)(src, out, base, plan);
}

fn codes_loop<R: RoundOp, O: OverflowOp>(src: &[f64], out: &mut [f64], base: u64, p: &Plan) {
    let draws = Draws::new(p.key, p.start.wrapping_add(base));
    for (i, (x, k)) in src.iter().zip(out).enumerate() {
        let u = if R::STOCHASTIC { draws.exact(i) } else { 0.0 };
        *k = if x.is_nan() {
            f64::NAN
        } else {
            code_of::<f64, R, O>(*x, u, p).0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::lane::draw_down;
    use super::*;
    use crate::format::pow2;
    use crate::random::{draw_high, stream_key};
    use crate::{FixedPoint, QuantSpec, Rounding};
    /// The `f32` lane's draw is the largest `f32` at or below the exact draw, so a fraction is
    /// above it exactly when it is above the exact draw: checked at the draw's neighbours, where
    /// a draw rounded the other way would decide differently.
    #[test]
    fn f32_draw_is_the_exact_draw_rounded_down() {
        let key = stream_key(11);
        let edges = [
            0,
            1,
            2,
            (1 << 24) - 1,
            1 << 24,
            (1 << 24) + 1,
            (1 << 25) + 3,
            (1 << 51) + 1,
            (1 << 52) - 1,
        ]
        .map(|h: u64| h as f64 * pow2(-52));
        let draws = (0..10_000).map(|i| draw(key, i));
        for u in edges.into_iter().chain(draws) {
            let d = draw_down(u);
            let above = f32::from_bits(d.to_bits() + 1);
            assert!(f64::from(d) <= u && f64::from(above) > u, "{u:e} -> {d:e}");
            let below = f32::from_bits(d.to_bits().saturating_sub(1));
            for frac in [below, d, above] {
                assert_eq!(
                    d < frac,
                    u < f64::from(frac),
                    "draw {u:e}, fraction {frac:e}"
                );
            }
        }
    }

    /// Each element's fraction set to its own `f32` draw never rounds up, and to the next `f32`
    /// above it always does: in both lanes, through every loop, with a tail shorter than a
    /// vector. (Were any element's draw wrong, or out of order, this would not hold.)
    #[test]
    fn stochastic_rounding_decides_at_each_elements_draw() {
        let seed = 3;
        let key = stream_key(seed);
        let r = Rounding::Stochastic { seed };
        let fmt = FixedPoint::new(8, 0).unwrap(); // step 1: the scaled value is the input
        let n = 1000 + 13;
        let (x, want): (Vec<f32>, Vec<f32>) = (0..n)
            .map(|i| {
                let d = draw_down(draw(key, i as u64));
                let above = f32::from_bits(d.to_bits() + 1);
                match i % 4 {
                    0 => (d, 0.0),
                    1 => (above, 1.0),
                    2 => (-d, 0.0),
                    _ => (-above, -1.0),
                }
            })
            .unzip();
        let bits = |v: &[f32]| v.iter().map(|q| q.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fmt.quantize(&x, r)), bits(&want));
        let (q, mask) = fmt.quantize_with_mask(&x, r);
        assert_eq!(bits(&q), bits(&want));
        assert!(mask.iter().all(|m| !m));
        let mut in_place = x.clone();
        fmt.quantize_in_place(&mut in_place, r);
        assert_eq!(bits(&in_place), bits(&want));
        let wide: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let q64: Vec<f32> = fmt.quantize(&wide, r).iter().map(|&v| v as f32).collect();
        assert_eq!(bits(&q64), bits(&want));
    }

    /// The lower bounds the vector loops draw hold the exact draw, in both lanes: `floor <=
    /// draw * DRAW_STEPS < floor + 1` with `floor` an integer, and the exact draw's high 32 bits
    /// are the hash's.
    #[test]
    fn draw_floors_bound_the_exact_draws() {
        fn check<F: Lane + std::fmt::Debug>(key: u64, index: u64) {
            let high = draw_high(key, index);
            let u = draw(key, index);
            let (floor, exact) = (F::draw_floor(high), F::draw_exact(u) * F::DRAW_STEPS);
            assert!(floor.floor() == floor, "{index}: {floor:?}");
            assert!(floor <= exact, "{index}: {floor:?} > {exact:?}");
            assert!(exact < floor + F::ONE, "{index}: {exact:?} past {floor:?}");
            assert_eq!((u * pow2(32)) as u32, high);
        }
        for seed in [0, 1, 99] {
            let key = stream_key(seed);
            let near_block = (1u64 << 32) - 100;
            for index in (0..5000)
                .chain(near_block..near_block + 200)
                .chain([u64::MAX])
            {
                check::<f32>(key, index);
                check::<f64>(key, index);
            }
        }
    }

    /// Stochastic rounding decides each element at its own exact draw (the definition, one
    /// element at a time) wherever the stream starts: across a multiple of `2^32` in stream
    /// index (where the hash's keys change), at the end of the index range, in every loop and
    /// both lanes, with fractions at and beside the elements' draws (undecided by the high bits)
    /// and at random.
    #[test]
    fn stochastic_rounding_follows_the_definition_at_any_stream_start() {
        /// The magnitude rounded up when the draw is below its fraction, the sign put back.
        fn reference(v: f64, u: f64) -> f64 {
            let a = v.abs();
            let whole = a.floor();
            (whole + if u < a - whole { 1.0 } else { 0.0 }).copysign(v)
        }
        fn same<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T], start: u64) {
            assert_eq!(got.len(), want.len());
            if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
                panic!(
                    "start {start}, element {i}: {:?}, want {:?}",
                    got[i], want[i]
                );
            }
        }
        /// Into a buffer and in place, each with and without the overflow mask.
        fn every_loop<T: Element>(spec: &QuantSpec, x: &[T], want: &[T], start: u64) {
            same(&spec.quantize(x), want, start);
            let (q, mask) = spec.quantize_with_mask(x);
            same(&q, want, start);
            assert!(mask.iter().all(|m| !m));
            let mut in_place = x.to_vec();
            spec.quantize_in_place(&mut in_place);
            same(&in_place, want, start);
            let mut in_place = x.to_vec();
            let mut mask = vec![true; x.len()];
            spec.quantize_in_place_with_mask(&mut in_place, &mut mask)
                .unwrap();
            same(&in_place, want, start);
            assert!(mask.iter().all(|m| !m));
        }
        let seed = 8;
        let key = stream_key(seed);
        let fmt = FixedPoint::new(12, 0).unwrap();
        let spec = QuantSpec::new(fmt, Rounding::Stochastic { seed });
        let n = 3 * DRAW_BLOCK + 77;
        for start in [0, (1u64 << 32) - 1500, u64::MAX - 2000, (7u64 << 32) + 5] {
            let spec = spec.with_stream_start(start);
            let x: Vec<f64> = (0..n)
                .map(|i| {
                    let u = draw(key, start.wrapping_add(i as u64));
                    let base = (i % 13) as f64 - 6.0;
                    match i % 5 {
                        0 => base + u,
                        1 => base + f64::from(draw_down(u)),
                        2 => base + u + pow2(-40),
                        3 => base + f64::from(f32::from_bits(draw_down(u).to_bits() + 1)),
                        _ => base + 0.37,
                    }
                })
                .collect();
            let want: Vec<f64> = x
                .iter()
                .enumerate()
                .map(|(i, &v)| reference(v, draw(key, start.wrapping_add(i as u64))))
                .collect();
            every_loop(&spec, &x, &want, start);
            // The same values in f32 (those exact there), in the f32 lane.
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let want32: Vec<f32> = x32
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    reference(f64::from(v), draw(key, start.wrapping_add(i as u64))) as f32
                })
                .collect();
            every_loop(&spec, &x32, &want32, start);
        }
    }
}
