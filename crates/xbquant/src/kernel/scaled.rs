//! The scaled sweep: elements with fractional lengths of their own (a scale per group, repeating
//! with a period), in one pass, for the modes per-group formats are used with.

use std::marker::PhantomData;
use std::ops::Range;

use rayon::prelude::*;

use super::buffers::{CHUNK, PARALLEL_MIN};
use super::lane::Lane;
use super::maths::{value_full, value_with};
use super::overflow::OverflowOp;
use super::round::RoundOp;
use super::stochastic::{stochastic, Body, Draws};
use super::sweep::Native;
use super::Plan;
use crate::format::pow2;

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
