//! The floating-point kernel: each value rounded on the grid of a binary floating-point format
//! (its binade's step, or the subnormal step below the normal range), then checked against the
//! format's largest finite value. All of it in `f64`, where every step is exact for the formats
//! [`FloatFormat`](crate::FloatFormat) accepts (at most 8 exponent and 23 mantissa bits).

use std::marker::PhantomData;

use super::driver::{split, Buffers, Half, Job, BLOCK};
use super::lane::Lane;
use super::round::{NearestEven, RoundOp, Stochastic};
use crate::random::{counter, STEP};
use crate::Element;

/// Everything the kernel needs, derived once per call.
#[derive(Debug, Clone, Copy)]
pub struct FloatPlan {
    /// `2^emin`, the smallest normal value, and `2^(emax + 1)`, the binade past the largest.
    pub(crate) min_normal: f64,
    pub(crate) top: f64,
    /// The stored mantissa bits `m`, shifted into the exponent field: a binade's exponent field
    /// less this is its step's.
    pub(crate) mantissa_field: u64,
    /// The bits of `2^m * 2^(1023 - ...)`: this less a binade's exponent field is the inverse
    /// of its step (`(2046 + m) << 52`).
    pub(crate) inverse_base: u64,
    /// The largest finite value, and what a magnitude beyond it becomes (infinity, NaN or the
    /// largest value itself), signed like the input.
    pub(crate) max: f64,
    pub(crate) overflow: f64,
    pub(crate) stochastic: bool,
    pub(crate) key: u64,
}

/// The exponent field of an `f64`.
const EXPONENT: u64 = 0x7FF0_0000_0000_0000;

/// The value of `x` in the format; `u` is its draw for stochastic rounding.
///
/// The step is that of the binade of `|x|`, with `|x|` first held between the smallest normal
/// value `2^emin` (below it the step stays that of the subnormals) and `2^(emax + 1)` (from
/// there up everything overflows): the exponent field of the held value, less `m`, is the
/// step's, and its inverse's is the mirror image. Only float compares and 64-bit integer
/// additions, which vectorize on AVX2 too. `x / step` is exact, so is rounding it to an integer
/// and scaling back. NaN passes through (every comparison with it is false); infinities scale to
/// infinities and overflow.
#[inline(always)]
pub(crate) fn float_value<R: RoundOp>(x: f64, u: f64, p: &FloatPlan) -> f64 {
    // Plain comparisons (one `vmaxpd` / `vminpd` each), not `f64::max`, whose NaN rule costs a
    // blend: a NaN `x` gives a NaN `held`, whose step is garbage, but `x * inverse` is NaN and
    // so is the result.
    let a = x.abs();
    let low = if a < p.min_normal { p.min_normal } else { a };
    let held = if low > p.top { p.top } else { low };
    let field = held.to_bits() & EXPONENT;
    let step = f64::from_bits(field - p.mantissa_field);
    let inverse = f64::from_bits(p.inverse_base - field);
    let q = R::round(x * inverse, u) * step;
    if q.abs() > p.max {
        p.overflow.copysign(x)
    } else {
        q
    }
}

/// The data types the kernel runs on natively.
pub(crate) trait FloatNative: Element + Default {}
impl FloatNative for f32 {}
impl FloatNative for f64 {}

type FloatSweepFn<T> = fn(Buffers<'_, T>, u64, &FloatPlan);

fn sweep_fn<T: FloatNative>(plan: &FloatPlan) -> FloatSweepFn<T> {
    if plan.stochastic {
        sweep::<T, Stochastic>
    } else {
        sweep::<T, NearestEven>
    }
}

/// Runs a job on `f32` or `f64` data.
pub(crate) fn run_float<T: FloatNative>(plan: &FloatPlan, buffers: Buffers<'_, T>) {
    let f = sweep_fn::<T>(plan);
    split(Job::Quantize(buffers), &|job, base| {
        // Only quantize jobs are built here.
        if let Job::Quantize(buffers) = job {
            f(buffers, base, plan);
        }
    });
}

/// Runs a job on half-precision data, staged through `f32` buffers: every value of the type and
/// of the format is exact there, so the result is the `f32` result rounded once.
pub(crate) fn run_float_half<H: Half>(plan: &FloatPlan, buffers: Buffers<'_, H>) {
    let f = sweep_fn::<f32>(plan);
    split(Job::Quantize(buffers), &|job, base| {
        let Job::Quantize(buffers) = job else { return };
        let mut input = [0f32; BLOCK];
        let mut output = [0f32; BLOCK];
        let mut block = |src: &[H], dst: &mut [H], start: usize| {
            let n = src.len();
            H::load_f32(src, &mut input[..n]);
            let (src, dst32) = (&input[..n], &mut output[..n]);
            f(
                Buffers::Into {
                    src,
                    dst: dst32,
                    mask: None,
                },
                base + start as u64,
                plan,
            );
            H::store_f32(&output[..n], dst);
        };
        match buffers {
            Buffers::Into { src, dst, .. } => {
                for (i, (s, d)) in src.chunks(BLOCK).zip(dst.chunks_mut(BLOCK)).enumerate() {
                    block(s, d, i * BLOCK);
                }
            }
            Buffers::InPlace { buf, .. } => {
                let mut copy = [H::default(); BLOCK];
                for (i, d) in buf.chunks_mut(BLOCK).enumerate() {
                    let n = d.len();
                    copy[..n].copy_from_slice(d);
                    block(&copy[..n], d, i * BLOCK);
                }
            }
        }
    });
}

fn sweep<T: FloatNative, R: RoundOp>(buffers: Buffers<'_, T>, base: u64, plan: &FloatPlan) {
    crate::isa::arch().dispatch(Sweep::<T, R> {
        buffers,
        base,
        plan,
        rounding: PhantomData,
    });
}

struct Sweep<'a, T, R> {
    buffers: Buffers<'a, T>,
    base: u64,
    plan: &'a FloatPlan,
    rounding: PhantomData<R>,
}

impl<T: FloatNative, R: RoundOp> Sweep<'_, T, R> {
    #[inline(always)]
    fn run(self, draws: impl Iterator<Item = f64>) {
        let p = self.plan;
        match self.buffers {
            Buffers::Into { src, dst, .. } => {
                for ((x, y), u) in src.iter().zip(dst).zip(draws) {
                    *y = T::from_f64(float_value::<R>(x.to_f64(), u, p));
                }
            }
            Buffers::InPlace { buf, .. } => {
                for (y, u) in buf.iter_mut().zip(draws) {
                    *y = T::from_f64(float_value::<R>(y.to_f64(), u, p));
                }
            }
        }
    }
}

impl<T: FloatNative, R: RoundOp> pulp::WithSimd for Sweep<'_, T, R> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        if !R::STOCHASTIC {
            return self.run(std::iter::repeat(0.0));
        }
        let mut next = counter(self.plan.key, self.base);
        self.run(std::iter::repeat_with(move || {
            let u = <f64 as Lane>::draw(next);
            next = next.wrapping_add(STEP);
            u
        }));
    }
}

/// The value of one `x`, drawing stream index 0: the scalar reference.
pub(crate) fn float_value_of(x: f64, plan: &FloatPlan) -> f64 {
    if plan.stochastic {
        float_value::<Stochastic>(x, <f64 as Lane>::draw(counter(plan.key, 0)), plan)
    } else {
        float_value::<NearestEven>(x, 0.0, plan)
    }
}
