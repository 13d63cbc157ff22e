//! The floating-point kernel: each value rounded on the grid of a binary floating-point format
//! (its binade's step, or the subnormal step below the normal range), then checked against the
//! format's largest finite value. In `f64`, where every step is exact for the formats
//! [`FloatFormat`](crate::FloatFormat) accepts (at most 8 exponent and 23 mantissa bits), or in
//! `f32` for `f32` data and formats of at most 7 exponent bits, where every step, its inverse and
//! the binade past the largest are normal `f32` numbers, so that the same bits come out at twice
//! the vector width.

use std::marker::PhantomData;
use std::ops::Range;

use super::buffers::{staged, Buffers, Half, Job};
use super::lane::Lane;
use super::round::{NearestEven, RoundOp, Stochastic};
use super::stochastic::{stochastic, Body, Draws};
use super::threads::split;
use crate::Element;

/// Everything the kernel needs, derived once per call.
#[derive(Debug, Clone, Copy)]
pub struct FloatPlan {
    /// The constants in `f64`, and in `f32` where [`FloatPlan::can_narrow`] allows.
    pub(crate) wide: FloatConsts<f64>,
    pub(crate) narrow: FloatConsts<f32>,
    /// Whether `f32` data can run in `f32` lanes with the same bits: every step, its inverse and
    /// the binade past the largest are normal `f32` numbers (formats of at most 7 exponent bits).
    pub(crate) can_narrow: bool,
    pub(crate) stochastic: bool,
    pub(crate) key: u64,
    /// The stream index of the call's first element.
    pub(crate) start: u64,
}

/// A format's constants in one lane type.
#[derive(Debug, Clone, Copy)]
pub struct FloatConsts<F> {
    /// `2^emin`, the smallest normal value, and `2^(emax + 1)`, the binade past the largest.
    pub(crate) min_normal: F,
    pub(crate) top: F,
    /// The stored mantissa bits `m`, shifted into the lane's exponent field: a binade's
    /// exponent field less this is its step's.
    pub(crate) mantissa_field: u64,
    /// This less a binade's exponent field is the exponent field of the inverse of its step
    /// (`(2 * bias + m) << mantissa width` of the lane).
    pub(crate) inverse_base: u64,
    /// The largest finite value, and what a magnitude beyond it becomes (infinity, NaN or the
    /// largest value itself), signed like the input.
    pub(crate) max: F,
    pub(crate) overflow: F,
}

impl FloatConsts<f64> {
    /// The constants of a format with `m` stored mantissa bits.
    pub(crate) fn wide(min_normal: f64, top: f64, m: u64, max: f64, overflow: f64) -> Self {
        FloatConsts {
            min_normal,
            top,
            mantissa_field: m << 52,
            inverse_base: (2046 + m) << 52,
            max,
            overflow,
        }
    }

    /// The same constants in `f32` (exact where the plan can narrow).
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) fn to_f32(self) -> FloatConsts<f32> {
        let m = self.mantissa_field >> 52;
        FloatConsts {
            min_normal: self.min_normal as f32,
            top: self.top as f32,
            mantissa_field: m << 23,
            inverse_base: (254 + m) << 23,
            max: self.max as f32,
            overflow: self.overflow as f32,
        }
    }
}

/// A lane the float kernel runs in: its constants and the split of a binade's exponent field
/// into the step and its inverse.
pub(crate) trait FloatLane: Lane {
    fn consts(p: &FloatPlan) -> &FloatConsts<Self>;
    /// `(step, 1 / step)` of the binade of `held`, a positive normal number.
    fn step_and_inverse(held: Self, c: &FloatConsts<Self>) -> (Self, Self);
}

impl FloatLane for f64 {
    #[inline(always)]
    fn consts(p: &FloatPlan) -> &FloatConsts<f64> {
        &p.wide
    }
    #[inline(always)]
    fn step_and_inverse(held: f64, c: &FloatConsts<f64>) -> (f64, f64) {
        let field = held.to_bits() & 0x7FF0_0000_0000_0000;
        (
            f64::from_bits(field - c.mantissa_field),
            f64::from_bits(c.inverse_base - field),
        )
    }
}

impl FloatLane for f32 {
    #[inline(always)]
    fn consts(p: &FloatPlan) -> &FloatConsts<f32> {
        &p.narrow
    }
    #[inline(always)]
    #[allow(clippy::cast_possible_truncation)]
    fn step_and_inverse(held: f32, c: &FloatConsts<f32>) -> (f32, f32) {
        let field = held.to_bits() & 0x7F80_0000;
        (
            f32::from_bits(field - c.mantissa_field as u32),
            f32::from_bits(c.inverse_base as u32 - field),
        )
    }
}

/// The value of `x` in the format; `u` is its draw for stochastic rounding.
///
/// The step is that of the binade of `|x|`, with `|x|` first held between the smallest normal
/// value `2^emin` (below it the step stays that of the subnormals) and `2^(emax + 1)` (from
/// there up everything overflows): the exponent field of the held value, less `m`, is the
/// step's, and its inverse's is the mirror image. Only float compares and integer subtractions
/// of the lane's width, which vectorize on AVX2 too. `x / step` is exact, so is rounding it to an integer
/// and scaling back. NaN passes through (every comparison with it is false); infinities scale to
/// infinities and overflow.
#[inline(always)]
pub(crate) fn float_value<F: FloatLane, R: RoundOp>(x: F, u: F, c: &FloatConsts<F>) -> F {
    float_value_by(x, c, |t| (R::round(t, u), false)).0
}

/// [`float_value`] for a vector loop of stochastic rounding, `n` the lower bound of the draw,
/// and whether that leaves the rounding undecided (see [`RoundOp::round_bounded`]).
#[inline(always)]
fn float_value_full<F: FloatLane, R: RoundOp>(x: F, n: F, c: &FloatConsts<F>) -> (F, bool) {
    float_value_by(x, c, |t| R::round_bounded(t, n))
}

/// [`float_value`] with `round` giving the code of the scaled value and whether it is undecided.
#[inline(always)]
fn float_value_by<F: FloatLane>(
    x: F,
    c: &FloatConsts<F>,
    round: impl FnOnce(F) -> (F, bool),
) -> (F, bool) {
    // Plain comparisons (one `vmaxpd` / `vminpd` each), not `f64::max`, whose NaN rule costs a
    // blend: a NaN `x` gives a NaN `held`, whose step is garbage, but `x * inverse` is NaN and
    // so is the result.
    let a = x.abs();
    let low = if a < c.min_normal { c.min_normal } else { a };
    let held = if low > c.top { c.top } else { low };
    let (step, inverse) = F::step_and_inverse(held, c);
    let (k, undecided) = round(x * inverse);
    let q = k * step;
    let q = if q.abs() > c.max {
        c.overflow.copysign(x)
    } else {
        q
    };
    (q, undecided)
}

/// The data types the kernel runs on natively.
pub(crate) trait FloatNative: Element + Default {
    /// Whether the data fits `f32` lanes (where the plan allows them).
    const NARROW: bool;
}
impl FloatNative for f32 {
    const NARROW: bool = true;
}
impl FloatNative for f64 {
    const NARROW: bool = false;
}

type FloatSweepFn<T> = fn(Buffers<'_, T>, u64, &FloatPlan);

fn sweep_fn<T: FloatNative>(plan: &FloatPlan) -> FloatSweepFn<T> {
    let narrow = T::NARROW && plan.can_narrow;
    match (narrow, plan.stochastic) {
        (true, true) => sweep::<T, f32, Stochastic>,
        (true, false) => sweep::<T, f32, NearestEven>,
        (false, true) => sweep::<T, f64, Stochastic>,
        (false, false) => sweep::<T, f64, NearestEven>,
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
        staged(job, base, f, plan, H::load_f32, H::store_f32);
    });
}

fn sweep<T: FloatNative, F: FloatLane, R: RoundOp>(
    buffers: Buffers<'_, T>,
    base: u64,
    plan: &FloatPlan,
) {
    crate::isa::arch().dispatch(Sweep::<T, F, R> {
        buffers,
        base,
        plan,
        ops: PhantomData,
    });
}

struct Sweep<'a, T, F, R> {
    buffers: Buffers<'a, T>,
    base: u64,
    plan: &'a FloatPlan,
    ops: PhantomData<(F, R)>,
}

impl<T: FloatNative, F: FloatLane, R: RoundOp> Sweep<'_, T, F, R> {
    /// Quantizes the elements with nearest rounding (stochastic rounding takes [`stochastic`]).
    #[inline(always)]
    fn run(self) {
        // A copy on the stack: the loop then holds the constants in registers (read through
        // the plan, the compiler reloaded them and kept the AVX2 loop scalar).
        let c = *F::consts(self.plan);
        let p = &c;
        match self.buffers {
            Buffers::Into { src, dst, .. } => {
                for (x, y) in src.iter().zip(dst) {
                    *y =
                        T::from_f64(float_value::<F, R>(F::narrow(x.to_f64()), F::ZERO, p).widen());
                }
            }
            Buffers::InPlace { buf, .. } => {
                for y in buf.iter_mut() {
                    *y =
                        T::from_f64(float_value::<F, R>(F::narrow(y.to_f64()), F::ZERO, p).widen());
                }
            }
        }
    }
}

impl<T: FloatNative, F: FloatLane, R: RoundOp> pulp::WithSimd for Sweep<'_, T, F, R> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(mut self, simd: S) {
        if !R::STOCHASTIC {
            return self.run();
        }
        let draws = Draws::new(self.plan.key, self.plan.start.wrapping_add(self.base));
        let len = self.buffers.len();
        stochastic(len, draws, &mut self, simd);
    }
}

/// The stochastic loops (a float sweep has no overflow mask).
impl<T: FloatNative, F: FloatLane, R: RoundOp> Body<F> for Sweep<'_, T, F, R> {
    #[inline(always)]
    fn fast(&mut self, r: Range<usize>, floors: impl Iterator<Item = F>) -> bool {
        let c = *F::consts(self.plan);
        let p = &c;
        let value = |x: T, u: F| float_value_full::<F, R>(F::narrow(x.to_f64()), u, p);
        let mut any = 0u32;
        match &mut self.buffers {
            Buffers::Into { src, dst, .. } => {
                let ys = &mut dst[r.clone()];
                for ((x, y), u) in src[r].iter().zip(ys).zip(floors) {
                    let (q, undecided) = value(*x, u);
                    *y = T::from_f64(q.widen());
                    any += u32::from(undecided);
                }
            }
            Buffers::InPlace { buf, .. } => {
                for (y, u) in buf[r].iter_mut().zip(floors) {
                    let (q, undecided) = value(*y, u);
                    if !undecided {
                        *y = T::from_f64(q.widen());
                    }
                    any += u32::from(undecided);
                }
            }
        }
        any != 0
    }

    fn undecided(&self, i: usize, n: F) -> bool {
        let x = self.buffers.input(i);
        float_value_full::<F, R>(F::narrow(x.to_f64()), n, F::consts(self.plan)).1
    }

    fn exact(&mut self, i: usize, u: F) {
        let c = F::consts(self.plan);
        let value = |x: T| T::from_f64(float_value::<F, R>(F::narrow(x.to_f64()), u, c).widen());
        match &mut self.buffers {
            Buffers::Into { src, dst, .. } => dst[i] = value(src[i]),
            Buffers::InPlace { buf, .. } => buf[i] = value(buf[i]),
        }
    }
}

/// The value of one `x`, drawing stream index 0: the scalar reference.
pub(crate) fn float_value_of(x: f64, plan: &FloatPlan) -> f64 {
    if plan.stochastic {
        let u = crate::random::draw(plan.key, plan.start);
        float_value::<f64, Stochastic>(x, u, &plan.wide)
    } else {
        float_value::<f64, NearestEven>(x, 0.0, &plan.wide)
    }
}
