//! The slice kernels: quantize into a buffer, in place, with a saturation mask. One per-element
//! definition of the maths (`code_of`), generic over the float type it runs in and specialised
//! per rounding and overflow mode at compile time, split over threads in fixed chunks above a
//! size threshold.
//!
//! The maths runs in `f64` by default. For `f32`, `f16` and `bf16` data it runs in `f32` (twice
//! the vector width) whenever that gives the same bits: when `2^fl` and `2^-fl` are normal `f32`
//! numbers and every code of the word is exact in `f32` (see [`Plan::can_narrow`]).

use std::ops::{Add, Mul, Sub};

use rayon::prelude::*;

use crate::format::pow2;
use crate::random::{counter, stream_key, uniform, STEP};
use crate::{Element, Error, FixedPoint, Overflow, Rounding};

/// Elements per parallel task. Fixed, so that the work split never depends on the thread count.
const CHUNK: usize = 1 << 15;
/// Below this many elements a call stays on the calling thread (no hand-off cost).
const PARALLEL_MIN: usize = 1 << 17;

/// The float type the per-element maths runs in: `f64`, or `f32` where [`Plan::can_narrow`] allows.
pub(crate) trait Lane:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Send
    + Sync
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    /// The smallest positive subnormal: stands in for an input scaled below it, whose sign is all
    /// that any deterministic rounding needs.
    const TINY: Self;
    fn abs(self) -> Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
    fn trunc(self) -> Self;
    fn round(self) -> Self;
    fn round_ties_even(self) -> Self;
    fn copysign(self, sign: Self) -> Self;
    fn is_nan(self) -> bool;
    fn is_finite(self) -> bool;
    fn is_infinite(self) -> bool;
    /// The value as `f64` (exact).
    fn widen(self) -> f64;
    /// `v` in this lane; exact for the values the kernels pass (codes of an eligible word).
    fn narrow(v: f64) -> Self;
    fn bounds(p: &Plan) -> &Bounds<Self>;
    /// The stochastic draw of a stream counter ([`uniform`]) in this lane, rounded down when it
    /// is not exact. For a fraction `f` of this lane, `draw < f` then holds exactly when the
    /// exact draw is below `f` (a number of the lane below `f` is at most the largest one at or
    /// below the draw), so both lanes make the same choice.
    fn draw(counter: u64) -> Self;
    /// An element of the data, in this lane (exact: only types that fit are run narrow).
    #[inline(always)]
    fn load<T: Element>(x: T) -> Self {
        Self::narrow(x.to_f64())
    }
    /// A result back to the element type, rounded once (nearest, ties to even).
    #[inline(always)]
    fn store<T: Element>(self) -> T {
        T::from_f64(self.widen())
    }
}

macro_rules! impl_lane {
    ($t:ty, $field:ident, $draw:expr) => {
        impl Lane for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const TINY: Self = <$t>::from_bits(1);
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            #[inline(always)]
            fn ceil(self) -> Self {
                <$t>::ceil(self)
            }
            #[inline(always)]
            fn trunc(self) -> Self {
                <$t>::trunc(self)
            }
            #[inline(always)]
            fn round(self) -> Self {
                <$t>::round(self)
            }
            #[inline(always)]
            fn round_ties_even(self) -> Self {
                <$t>::round_ties_even(self)
            }
            #[inline(always)]
            fn copysign(self, sign: Self) -> Self {
                <$t>::copysign(self, sign)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn is_infinite(self) -> bool {
                <$t>::is_infinite(self)
            }
            #[inline(always)]
            fn widen(self) -> f64 {
                f64::from(self)
            }
            #[inline(always)]
            #[allow(clippy::cast_possible_truncation)]
            fn narrow(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn bounds(p: &Plan) -> &Bounds<Self> {
                &p.$field
            }
            #[inline(always)]
            fn draw(counter: u64) -> Self {
                $draw(uniform(counter))
            }
        }
    };
}
impl_lane!(f64, wide, std::convert::identity);
impl_lane!(f32, narrow, draw_down);

/// `u`, a multiple of `2^-52` in `[0, 1)`, rounded toward zero to an `f32`: clearing the low 29
/// bits of its significand leaves 24 significant bits, an `f32` number since a nonzero `u` is at
/// least 2^-52, in `f32`'s normal range. (Cheaper than converting to nearest, then stepping down
/// where that went up.)
#[inline(always)]
#[allow(clippy::cast_possible_truncation)]
fn draw_down(u: f64) -> f32 {
    f64::from_bits(u.to_bits() & !((1 << 29) - 1)) as f32
}

/// The format's constants in one lane type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds<F> {
    scale: F,
    inv_scale: F,
    /// Code bounds for the overflow test and for clamping (nearest `f64` beyond 53 bits).
    lo: F,
    hi: F,
    /// `2^wl`, `2^-wl` and `2^(wl-1)`, for the wrap modes.
    modulus: F,
    inv_modulus: F,
    half_modulus: F,
    /// `2^(wl-N)` and its inverse: the bits the saturation-bit wrap modes keep.
    kept_modulus: F,
    inv_kept: F,
}

impl Bounds<f64> {
    fn to_f32(self) -> Bounds<f32> {
        let n = <f32 as Lane>::narrow;
        Bounds {
            scale: n(self.scale),
            inv_scale: n(self.inv_scale),
            lo: n(self.lo),
            hi: n(self.hi),
            modulus: n(self.modulus),
            inv_modulus: n(self.inv_modulus),
            half_modulus: n(self.half_modulus),
            kept_modulus: n(self.kept_modulus),
            inv_kept: n(self.inv_kept),
        }
    }
}

/// Everything a kernel needs, derived once per call from the format and the rounding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    wide: Bounds<f64>,
    narrow: Bounds<f32>,
    /// Whether the `f32` lane gives the same bits as the `f64` lane for data that fits `f32`:
    /// `2^fl` and `2^-fl` are normal `f32` numbers (so scaling is exact except below the normal
    /// range, which the rounding ops handle), and the word's codes are exact in `f32` (or the
    /// format is unbounded, where a rounded `f32` is its own code).
    can_narrow: bool,
    /// For the sign-magnitude wrap with N > 1: the first forced bit is the complement of the
    /// sign.
    flip_forced: bool,
    key: u64,
}

impl Plan {
    pub(crate) fn new(format: &FixedPoint, rounding: Rounding) -> (Plan, Rounding) {
        let rounding = rounding.resolve();
        let key = match rounding {
            Rounding::Stochastic { seed } => stream_key(seed),
            _ => 0,
        };
        let (lo, hi) = format.code_range();
        let wl = i64::from(format.word_length());
        let fl = i64::from(format.frac_length());
        let sat_bits = i64::from(format.overflow().sat_bits());
        let wide = Bounds {
            scale: pow2(fl),
            inv_scale: pow2(-fl),
            lo: lo as f64,
            hi: hi as f64,
            modulus: pow2(wl),
            inv_modulus: pow2(-wl),
            half_modulus: pow2(wl - 1),
            kept_modulus: pow2(wl - sat_bits),
            inv_kept: pow2(sat_bits - wl),
        };
        let plan = Plan {
            wide,
            narrow: wide.to_f32(),
            can_narrow: (-126..=126).contains(&fl)
                && (wl <= 24 || format.overflow() == Overflow::Unbounded),
            flip_forced: format.overflow().sat_bits() > 1,
            key,
        };
        (plan, rounding)
    }
}

// ---------------------------------------------------------------------------------------------
// Rounding: `t` is the exactly scaled value, `u` a uniform draw in [0, 1) (stochastic only).
// Every operation used is exact: round_ties_even, floor, trunc, round, and `a - floor(a)` for `a >= 0`.
// Values at or beyond 2^(significand bits - 1) are integers already and pass through unchanged.

pub(crate) trait RoundOp {
    const STOCHASTIC: bool = false;
    fn round<F: Lane>(t: F, u: F) -> F;
}

/// Whether `t` lies exactly halfway between two integers.
#[inline(always)]
fn is_tie<F: Lane>(t: F) -> bool {
    let a = t.abs();
    a - a.floor() == F::narrow(0.5)
}

pub(crate) struct NearestEven;
impl RoundOp for NearestEven {
    #[inline(always)]
    fn round<F: Lane>(t: F, _: F) -> F {
        t.round_ties_even()
    }
}

/// Nearest code, with `TIE` choosing the code at exact ties: the other modes' rounding applied
/// to the tie alone.
pub(crate) struct NearestTies<const TIE: u8>;
const TIE_UP: u8 = 0;
const TIE_DOWN: u8 = 1;
const TIE_TOWARD_ZERO: u8 = 2;
impl<const TIE: u8> RoundOp for NearestTies<TIE> {
    #[inline(always)]
    fn round<F: Lane>(t: F, _: F) -> F {
        if is_tie(t) {
            match TIE {
                TIE_UP => t.ceil(),
                TIE_DOWN => t.floor(),
                _ => t.trunc(),
            }
        } else {
            t.round_ties_even()
        }
    }
}
type NearestUp = NearestTies<TIE_UP>;
type NearestDown = NearestTies<TIE_DOWN>;
type NearestTowardZero = NearestTies<TIE_TOWARD_ZERO>;

pub(crate) struct NearestAway;
impl RoundOp for NearestAway {
    #[inline(always)]
    fn round<F: Lane>(t: F, _: F) -> F {
        t.round()
    }
}

pub(crate) struct Floor;
impl RoundOp for Floor {
    #[inline(always)]
    fn round<F: Lane>(t: F, _: F) -> F {
        t.floor()
    }
}

pub(crate) struct TowardZero;
impl RoundOp for TowardZero {
    #[inline(always)]
    fn round<F: Lane>(t: F, _: F) -> F {
        t.trunc()
    }
}

/// Rounds the magnitude up with probability equal to its fraction, then puts the sign back:
/// `P(up) = t - floor(t)` for either sign, since rounding `-a` down is rounding `a` up. The
/// fraction is compared with the draw in the lane (see [`Lane::draw`]), so both lanes make the
/// same choice.
pub(crate) struct Stochastic;
impl RoundOp for Stochastic {
    const STOCHASTIC: bool = true;
    #[inline(always)]
    fn round<F: Lane>(t: F, u: F) -> F {
        let a = t.abs();
        let whole = a.floor();
        // Exact for a >= 0; NaN for inf, which never rounds up. Below `f32`'s normal range the
        // narrow lane's `t` may have lost bits, but it is still positive (see `code_of`) and below
        // the smallest positive draw, 2^-52, as the exact fraction is: both round up iff u == 0.
        let frac = a - whole;
        let up = if u < frac { F::ONE } else { F::ZERO };
        (whole + up).copysign(t)
    }
}

// ---------------------------------------------------------------------------------------------
// Overflow: maps a rounded code `k` to the code the format produces, and reports whether `k` was
// out of range. `t` is the scaled value before rounding (the sign-magnitude wrap needs it).

pub(crate) trait OverflowOp {
    const UNBOUNDED: bool = false;
    fn apply<F: Lane>(k: F, t: F, p: &Plan) -> (F, bool);
}

#[inline(always)]
fn out_of_range<F: Lane>(k: F, b: &Bounds<F>) -> bool {
    (k < b.lo) | (k > b.hi)
}

/// Saturate and saturate-symmetric: the plan's bounds already differ.
pub(crate) struct Clamp;
impl OverflowOp for Clamp {
    #[inline(always)]
    fn apply<F: Lane>(k: F, _: F, p: &Plan) -> (F, bool) {
        let b = F::bounds(p);
        // Plain compare-and-select rather than `max`/`min`, whose NaN rules cost two more
        // instructions each: a NaN code only comes from a NaN input, whose result is the input.
        let above_lo = if k < b.lo { b.lo } else { k };
        let clamped = if above_lo > b.hi { b.hi } else { above_lo };
        (clamped, out_of_range(k, b))
    }
}

pub(crate) struct Zero;
impl OverflowOp for Zero {
    #[inline(always)]
    fn apply<F: Lane>(k: F, _: F, p: &Plan) -> (F, bool) {
        let over = out_of_range(k, F::bounds(p));
        (if over { F::ZERO } else { k }, over)
    }
}

/// `k` reduced modulo `2^wl` into the word's code range, exactly (every step is an exact float
/// operation: a power-of-two scale, a rounding, and a subtraction whose result is representable).
/// Infinities, multiples of every power of two, reduce to 0.
#[inline(always)]
fn wrapped<F: Lane>(k: F, signed: bool, b: &Bounds<F>) -> F {
    let r = if signed {
        let r = k - b.modulus * (k * b.inv_modulus).round_ties_even();
        if r >= b.half_modulus {
            r - b.modulus
        } else {
            r
        }
    } else {
        k - b.modulus * (k * b.inv_modulus).floor()
    };
    if k.is_finite() {
        r
    } else {
        F::ZERO
    }
}

/// Wrap (`AP_WRAP`, no saturation bits), for signed or unsigned words: fixed at compile time so
/// that the loop has no branch left.
pub(crate) struct Wrap<const SIGNED: bool>;
impl<const SIGNED: bool> OverflowOp for Wrap<SIGNED> {
    #[inline(always)]
    fn apply<F: Lane>(k: F, _: F, p: &Plan) -> (F, bool) {
        let b = F::bounds(p);
        let over = out_of_range(k, b);
        let w = wrapped(k, SIGNED, b);
        (if over { w } else { k }, over)
    }
}
type WrapSigned = Wrap<true>;
type WrapUnsigned = Wrap<false>;

/// The bit-level wrap modes of [`wrap_bits`]: `MODE` is one of [`SATURATING_WRAP`],
/// [`SIGN_MAGNITUDE_SAT`] and [`SIGN_MAGNITUDE`], fixed at compile time.
pub(crate) struct WrapBits<const MODE: u8>;
/// `AP_WRAP` with N > 0 saturation bits (signed formats only).
const SATURATING_WRAP: u8 = 0;
/// `AP_WRAP_SM` with N > 0.
const SIGN_MAGNITUDE_SAT: u8 = 1;
/// `AP_WRAP_SM` with N = 0.
const SIGN_MAGNITUDE: u8 = 2;
impl<const MODE: u8> OverflowOp for WrapBits<MODE> {
    #[inline(always)]
    fn apply<F: Lane>(k: F, t: F, p: &Plan) -> (F, bool) {
        let over = out_of_range(k, F::bounds(p));
        let code = wrap_bits::<F, MODE>(k, t, p);
        (if over { code } else { k }, over)
    }
}
type WrapSaturating = WrapBits<SATURATING_WRAP>;
type WrapSignMagnitudeSat = WrapBits<SIGN_MAGNITUDE_SAT>;
type WrapSignMagnitude = WrapBits<SIGN_MAGNITUDE>;

pub(crate) struct Unbounded;
impl OverflowOp for Unbounded {
    const UNBOUNDED: bool = true;
    #[inline(always)]
    fn apply<F: Lane>(k: F, _: F, _: &Plan) -> (F, bool) {
        (k, false)
    }
}

/// Whether the integer-valued `v` is odd (false for infinities and NaN).
#[inline(always)]
fn is_odd<F: Lane>(v: F) -> bool {
    v - F::narrow(2.0) * (v * F::narrow(0.5)).floor() == F::ONE
}

/// The bit-level overflow rules of `AP_WRAP` with `N > 0` and of `AP_WRAP_SM`, for an
/// overflowing code `k` of a signed word, written as exact float operations so that they
/// vectorize. With `v` the word's bits of `k` (`k` modulo `2^wl`) and `kept = wl - N`:
///
/// - `AP_WRAP`, N > 0: the low `kept` bits of `v`, and above them N bits that all carry the sign
///   of `k` (`1 0...0` when negative, `0 1...1` otherwise).
/// - `AP_WRAP_SM`, N > 0: the same, but the low bits are inverted (ones' complement) when bit
///   `kept` of `v` differs from the first forced bit.
/// - `AP_WRAP_SM`, N = 0: compare the bit just above the word in the truncated source with the
///   new sign bit; when they differ the magnitude has wrapped: invert the low `wl - 1` bits and
///   take the source's sign.
///
/// Infinities (and, in the `f32` lane, scaled values beyond `f32`, which stand for multiples of
/// `2^(wl+1)`) have every word bit and the bit above it clear.
#[inline(always)]
fn wrap_bits<F: Lane, const MODE: u8>(k: F, t: F, p: &Plan) -> F {
    let b = F::bounds(p);
    let negative = k < F::ZERO;
    if MODE == SIGN_MAGNITUDE {
        let w = wrapped(k, true, b); // the word as a two's-complement code
        let beyond = is_odd((t.floor() * b.inv_modulus).floor());
        let sign = w < F::ZERO;
        // The low wl - 1 bits of the word, inverted.
        let low = w + if sign { b.half_modulus } else { F::ZERO };
        let folded = b.half_modulus - F::ONE - low - if beyond { b.half_modulus } else { F::ZERO };
        if beyond == sign {
            w
        } else {
            folded
        }
    } else {
        let above = (k * b.inv_kept).floor();
        let low = k - b.kept_modulus * above; // k modulo 2^kept, as an unsigned number
        let mut low = if k.is_finite() { low } else { F::ZERO };
        if MODE == SIGN_MAGNITUDE_SAT {
            // The first forced bit is the sign for N = 1, its complement for N > 1.
            let forced = negative ^ p.flip_forced;
            let inverted = b.kept_modulus - F::ONE - low;
            low = if is_odd(above) == forced {
                low
            } else {
                inverted
            };
        }
        low + if negative {
            F::ZERO - b.half_modulus
        } else {
            b.half_modulus - b.kept_modulus
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The per-element maths, and the loops.

/// The code of `x` (as an exact integer-valued float), the scaled value, and whether it
/// overflowed. `u` is the element's draw for stochastic rounding (see [`Lane::draw`]).
#[inline(always)]
fn code_of<F: Lane, R: RoundOp, O: OverflowOp>(x: F, u: F, p: &Plan) -> (F, F, bool) {
    let b = F::bounds(p);
    let scaled = x * b.scale;
    let t = if scaled == F::ZERO && x != F::ZERO {
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
    let (k, t, over) = code_of::<F, R, O>(x, u, p);
    // `+ 0.0` turns -0.0 into +0.0: hardware has no negative zero.
    let mut q = k * F::bounds(p).inv_scale + F::ZERO;
    if O::UNBOUNDED && t.is_infinite() {
        // x * 2^fl overflowed, so x is a multiple of the step already.
        q = x;
    }
    if x.is_nan() {
        (x, false)
    } else {
        (q, over)
    }
}

/// The buffers of one call. `mask`, when present, has the same length as the data.
pub(crate) enum Job<'a, T> {
    Into {
        src: &'a [T],
        dst: &'a mut [T],
        mask: Option<&'a mut [bool]>,
    },
    InPlace {
        buf: &'a mut [T],
        mask: Option<&'a mut [bool]>,
    },
}

impl<T> Job<'_, T> {
    fn len(&self) -> usize {
        match self {
            Job::Into { src, .. } => src.len(),
            Job::InPlace { buf, .. } => buf.len(),
        }
    }
}

/// One serial piece of work: a job whose first element has stream index `base`.
struct Piece<'a, 'p, T, F, R, O> {
    job: Job<'a, T>,
    base: u64,
    plan: &'p Plan,
    ops: std::marker::PhantomData<(F, R, O)>,
}

impl<T: Element, F: Lane, R: RoundOp, O: OverflowOp> Piece<'_, '_, T, F, R, O> {
    /// Quantizes the job's elements, the `i`-th with the `i`-th of `draws`.
    #[inline(always)]
    fn sweep(self, draws: impl Iterator<Item = F>) {
        let p = self.plan;
        let value = |x: T, u: F| value_of::<F, R, O>(F::load(x), u, p);
        match self.job {
            Job::Into {
                src,
                dst,
                mask: None,
            } => {
                for ((x, y), u) in src.iter().zip(dst).zip(draws) {
                    *y = value(*x, u).0.store();
                }
            }
            Job::Into {
                src,
                dst,
                mask: Some(mask),
            } => {
                for ((x, (y, m)), u) in src.iter().zip(dst.iter_mut().zip(mask)).zip(draws) {
                    let (q, over) = value(*x, u);
                    *y = q.store();
                    *m = over;
                }
            }
            Job::InPlace { buf, mask: None } => {
                for (y, u) in buf.iter_mut().zip(draws) {
                    *y = value(*y, u).0.store();
                }
            }
            Job::InPlace {
                buf,
                mask: Some(mask),
            } => {
                for ((y, m), u) in buf.iter_mut().zip(mask).zip(draws) {
                    let (q, over) = value(*y, u);
                    *y = q.store();
                    *m = over;
                }
            }
        }
    }
}

impl<T: Element, F: Lane, R: RoundOp, O: OverflowOp> pulp::WithSimd for Piece<'_, '_, T, F, R, O> {
    type Output = ();

    /// Inlined (always) into the copy `pulp` compiles for each instruction set, so the loops are
    /// compiled with that set's features: `vroundps`, `vminps`, ... rather than calls to `libm`.
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        if !R::STOCHASTIC {
            return self.sweep(std::iter::repeat(F::ZERO));
        }
        // The stream's counter steps by one addition per element, not a multiplication.
        let mut next = counter(self.plan.key, self.base);
        self.sweep(std::iter::repeat_with(move || {
            let u = F::draw(next);
            next = next.wrapping_add(STEP);
            u
        }));
    }
}

/// Runs one piece in a copy compiled for the best instruction set of this CPU (AVX-512 as in
/// x86-64-v4, AVX2+FMA as in x86-64-v3, or the baseline), chosen at run time, so that the
/// per-element maths compiles to vector instructions even in a default build. AVX-512 matters
/// most to stochastic rounding: its random generator multiplies 64-bit integers, which only
/// AVX-512 does in vector registers.
#[inline(always)]
fn piece<T: Element, F: Lane, R: RoundOp, O: OverflowOp>(job: Job<'_, T>, base: u64, plan: &Plan) {
    pulp::Arch::new().dispatch(Piece::<T, F, R, O> {
        job,
        base,
        plan,
        ops: std::marker::PhantomData,
    });
}

fn run<T: Element, F: Lane, R: RoundOp, O: OverflowOp>(job: Job<'_, T>, p: &Plan) {
    let parallel = job.len() >= PARALLEL_MIN && rayon::current_num_threads() > 1;
    if !parallel {
        return piece::<T, F, R, O>(job, 0, p);
    }
    let base = |chunk: usize| (chunk * CHUNK) as u64;
    match job {
        Job::Into {
            src,
            dst,
            mask: None,
        } => src
            .par_chunks(CHUNK)
            .zip(dst.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, (src, dst))| {
                piece::<T, F, R, O>(
                    Job::Into {
                        src,
                        dst,
                        mask: None,
                    },
                    base(c),
                    p,
                );
            }),
        Job::Into {
            src,
            dst,
            mask: Some(mask),
        } => src
            .par_chunks(CHUNK)
            .zip(dst.par_chunks_mut(CHUNK))
            .zip(mask.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, ((src, dst), m))| {
                let job = Job::Into {
                    src,
                    dst,
                    mask: Some(m),
                };
                piece::<T, F, R, O>(job, base(c), p);
            }),
        Job::InPlace { buf, mask: None } => {
            buf.par_chunks_mut(CHUNK).enumerate().for_each(|(c, buf)| {
                piece::<T, F, R, O>(Job::InPlace { buf, mask: None }, base(c), p);
            });
        }
        Job::InPlace {
            buf,
            mask: Some(mask),
        } => buf
            .par_chunks_mut(CHUNK)
            .zip(mask.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, (buf, m))| {
                piece::<T, F, R, O>(Job::InPlace { buf, mask: Some(m) }, base(c), p);
            }),
    }
}

/// Picks the compiled kernel for a rounding and an overflow mode: `$body` is instantiated with
/// the type aliases `R` and `O` set to the two operation types.
macro_rules! with_ops {
    ($rounding:expr, $format:expr, $body:ident ! ()) => {
        match $rounding {
            Rounding::NearestEven => with_ops!(@o NearestEven, $format, $body),
            Rounding::NearestUp => with_ops!(@o NearestUp, $format, $body),
            Rounding::NearestDown => with_ops!(@o NearestDown, $format, $body),
            Rounding::NearestTowardZero => with_ops!(@o NearestTowardZero, $format, $body),
            Rounding::NearestAway => with_ops!(@o NearestAway, $format, $body),
            Rounding::Floor => with_ops!(@o Floor, $format, $body),
            Rounding::TowardZero => with_ops!(@o TowardZero, $format, $body),
            Rounding::Stochastic { .. } | Rounding::StochasticFresh => {
                with_ops!(@o Stochastic, $format, $body)
            }
        }
    };
    (@o $r:ident, $format:expr, $body:ident) => {
        match $format.overflow() {
            Overflow::Saturate | Overflow::SaturateSymmetric => $body!($r, Clamp),
            Overflow::SaturateZero => $body!($r, Zero),
            Overflow::Wrap { sat_bits: 0 } if $format.is_signed() => $body!($r, WrapSigned),
            Overflow::Wrap { sat_bits: 0 } => $body!($r, WrapUnsigned),
            Overflow::Wrap { .. } => $body!($r, WrapSaturating),
            Overflow::WrapSignMagnitude { sat_bits: 0 } => $body!($r, WrapSignMagnitude),
            Overflow::WrapSignMagnitude { .. } => $body!($r, WrapSignMagnitudeSat),
            Overflow::Unbounded => $body!($r, Unbounded),
        }
    };
}

pub(crate) fn execute<T: Element>(format: &FixedPoint, rounding: Rounding, job: Job<'_, T>) {
    let (plan, rounding) = Plan::new(format, rounding);
    macro_rules! go {
        ($r:ident, $o:ident) => {
            if T::SIGNIFICAND_BITS <= 24 && plan.can_narrow {
                run::<T, f32, $r, $o>(job, &plan)
            } else {
                run::<T, f64, $r, $o>(job, &plan)
            }
        };
    }
    with_ops!(rounding, format, go!())
}

/// Codes for [`crate::codes`]: the rounded, overflow-handled code of each element, as an exact
/// integer-valued `f64`, through `sink(index, x, code)`.
pub(crate) fn codes_with<T: Element>(
    format: &FixedPoint,
    rounding: Rounding,
    src: &[T],
    mut sink: impl FnMut(usize, f64, f64) -> Result<(), Error>,
) -> Result<(), Error> {
    let (plan, rounding) = Plan::new(format, rounding);
    macro_rules! go {
        ($r:ident, $o:ident) => {{
            for (i, x) in src.iter().enumerate() {
                let x = x.to_f64();
                let u = if $r::STOCHASTIC {
                    <f64 as Lane>::draw(counter(plan.key, i as u64))
                } else {
                    0.0
                };
                let (k, _, _) = code_of::<f64, $r, $o>(x, u, &plan);
                sink(i, x, k)?;
            }
            Ok(())
        }};
    }
    with_ops!(rounding, format, go!())
}

impl FixedPoint {
    /// Quantizes `x` into a new vector of the same type.
    ///
    /// `T` is `f32` or `f64` (and `f16`, `bf16` with the `half` feature). NaN stays NaN, zero
    /// comes out as `+0.0`, `+-inf` follows the overflow mode (see [`Overflow`]). Large inputs
    /// are split over rayon's threads; the result never depends on the thread count.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Rounding};
    /// let fmt = FixedPoint::new(8, 4)?; // step 1/16, range +-7.9375
    /// let y = fmt.quantize(&[0.03125f64, 0.09375, 100.0, f64::NAN], Rounding::NearestEven);
    /// assert_eq!(&y[..3], &[0.0, 0.125, 7.9375]); // ties to even, then saturate
    /// assert!(y[3].is_nan());
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn quantize<T: Element>(&self, x: &[T], rounding: Rounding) -> Vec<T> {
        let mut out = vec![T::from_f64(0.0); x.len()];
        execute(
            self,
            rounding,
            Job::Into {
                src: x,
                dst: &mut out,
                mask: None,
            },
        );
        out
    }

    /// Quantizes `x` into the caller's buffer `out`.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `out.len() != x.len()`; nothing is written then.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Rounding};
    /// let fmt = FixedPoint::new(4, 2)?;
    /// let mut y = [0.0f32; 3];
    /// fmt.quantize_into(&[0.3f32, -0.6, 5.0], &mut y, Rounding::NearestEven)?;
    /// assert_eq!(y, [0.25, -0.5, 1.75]);
    /// assert!(fmt.quantize_into(&[1.0f32], &mut y, Rounding::NearestEven).is_err());
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn quantize_into<T: Element>(
        &self,
        x: &[T],
        out: &mut [T],
        rounding: Rounding,
    ) -> Result<(), Error> {
        check_len(x.len(), out.len())?;
        execute(
            self,
            rounding,
            Job::Into {
                src: x,
                dst: out,
                mask: None,
            },
        );
        Ok(())
    }

    /// Quantizes `x` in place.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Rounding};
    /// let fmt = FixedPoint::new(8, 0)?;
    /// let mut x = vec![0.5f32; 10_000];
    /// fmt.quantize_in_place(&mut x, Rounding::Stochastic { seed: 7 });
    /// assert!(x.iter().all(|&v| v == 0.0 || v == 1.0));
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn quantize_in_place<T: Element>(&self, x: &mut [T], rounding: Rounding) {
        execute(self, rounding, Job::InPlace { buf: x, mask: None });
    }

    /// Quantizes `x` and reports which elements overflowed (their rounded code was outside the
    /// range, so the overflow mode changed it): the mask for a clamp-aware straight-through
    /// gradient. NaN is never marked; with [`Overflow::Unbounded`] nothing is.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Rounding};
    /// let fmt = FixedPoint::new(4, 2)?; // values -1.75..=1.75 (symmetric)
    /// let (y, saturated) = fmt.quantize_with_mask(&[0.5f32, 1.9, -2.0], Rounding::NearestEven);
    /// assert_eq!(y, [0.5, 1.75, -1.75]);
    /// assert_eq!(saturated, [false, true, true]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn quantize_with_mask<T: Element>(
        &self,
        x: &[T],
        rounding: Rounding,
    ) -> (Vec<T>, Vec<bool>) {
        let mut out = vec![T::from_f64(0.0); x.len()];
        let mut mask = vec![false; x.len()];
        execute(
            self,
            rounding,
            Job::Into {
                src: x,
                dst: &mut out,
                mask: Some(&mut mask),
            },
        );
        (out, mask)
    }

    /// [`quantize_with_mask`](FixedPoint::quantize_with_mask) into the caller's buffers.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `out` or `mask` differs in length from `x`.
    pub fn quantize_into_with_mask<T: Element>(
        &self,
        x: &[T],
        out: &mut [T],
        mask: &mut [bool],
        rounding: Rounding,
    ) -> Result<(), Error> {
        check_len(x.len(), out.len())?;
        check_len(x.len(), mask.len())?;
        execute(
            self,
            rounding,
            Job::Into {
                src: x,
                dst: out,
                mask: Some(mask),
            },
        );
        Ok(())
    }

    /// [`quantize_in_place`](FixedPoint::quantize_in_place) that also writes the overflow mask.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `mask` differs in length from `x`.
    pub fn quantize_in_place_with_mask<T: Element>(
        &self,
        x: &mut [T],
        mask: &mut [bool],
        rounding: Rounding,
    ) -> Result<(), Error> {
        check_len(x.len(), mask.len())?;
        execute(
            self,
            rounding,
            Job::InPlace {
                buf: x,
                mask: Some(mask),
            },
        );
        Ok(())
    }

    /// One value, quantized (a convenience for scalars; use the slice functions for arrays).
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Rounding};
    /// assert_eq!(FixedPoint::new(4, 2)?.quantize_value(0.375, Rounding::NearestEven), 0.5);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn quantize_value(&self, x: f64, rounding: Rounding) -> f64 {
        let mut one = [x];
        self.quantize_in_place(&mut one, rounding);
        one[0]
    }
}

#[inline]
pub(crate) fn check_len(input: usize, output: usize) -> Result<(), Error> {
    if input == output {
        Ok(())
    } else {
        Err(Error::LengthMismatch { input, output })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let draws = (0..10_000).map(|i| uniform(counter(key, i)));
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
                let d = draw_down(uniform(counter(key, i as u64)));
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
}
