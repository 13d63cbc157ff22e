//! The sweeps: a call's buffers quantized by the per-element maths in a loop compiled for the
//! CPU's best instruction set, deterministic roundings in one pass and stochastic rounding
//! through the engine of [`super::stochastic`]; the entry points for `f32`, `f64` and the half
//! types.

use std::marker::PhantomData;
use std::ops::Range;

use super::buffers::{staged, Buffers, Half, Job, BLOCK};
use super::lane::Lane;
use super::maths::{value_full, value_of};
use super::overflow::OverflowOp;
use super::round::RoundOp;
use super::stochastic::{stochastic, Body, Draws};
use super::threads::split;
use super::{with_ops, Plan};
use crate::Element;

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
    fn run(mut self) {
        let p = self.plan;
        let len = self.buffers.len();
        self.buffers.each(0..len, std::iter::repeat(()), |x, ()| {
            let (q, over) = value_of::<F, R, O>(F::narrow(x.to_f64()), F::ZERO, p);
            (T::from_f64(q.widen()), over, false)
        });
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
        self.buffers.each(r, floors, |x, u| {
            let (q, over, undecided) = value(x, u);
            any += u32::from(undecided);
            (T::from_f64(q.widen()), over, undecided)
        });
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
