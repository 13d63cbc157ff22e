//! Overflow: maps a rounded code `k` to the code the format produces, and reports whether `k` was
//! out of range. `t` is the scaled value before rounding (the sign-magnitude wrap needs it).

use super::lane::{Bounds, Lane};
use super::Plan;

/// One overflow rule, fixed at compile time: each variant (signed or unsigned wrap, `AP_WRAP` or
/// `AP_WRAP_SM` with saturation bits) is a kernel of its own: with the variant chosen at run time,
/// a 1K call took up to 14 times as long.
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

/// Saturate to zero (`AP_SAT_ZERO`).
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
pub(crate) type WrapSigned = Wrap<true>;
pub(crate) type WrapUnsigned = Wrap<false>;

/// Whether the integer-valued `v` is odd (false for infinities and NaN).
#[inline(always)]
fn is_odd<F: Lane>(v: F) -> bool {
    v - F::narrow(2.0) * (v * F::narrow(0.5)).floor() == F::ONE
}

/// `AP_WRAP` and `AP_WRAP_SM` with N > 0 saturation bits (signed words), for an overflowing code
/// `k`, as exact float operations so that they vectorize. With `v` the word's bits of `k` (`k`
/// modulo `2^wl`) and `kept = wl - N`: the low `kept` bits of `v`, and above them N bits that all
/// carry the sign of `k` (`1 0...0` when negative, `0 1...1` otherwise). `AP_WRAP_SM` inverts the
/// low bits (ones' complement) when bit `kept` of `v` differs from the first forced bit, which is
/// the sign for N = 1 and its complement for N > 1. `SIGN_MAGNITUDE` selects `AP_WRAP_SM`.
pub(crate) struct WrapBits<const SIGN_MAGNITUDE: bool>;
pub(crate) type WrapSaturating = WrapBits<false>;
pub(crate) type WrapSignMagnitudeSat = WrapBits<true>;
impl<const SIGN_MAGNITUDE: bool> OverflowOp for WrapBits<SIGN_MAGNITUDE> {
    #[inline(always)]
    fn apply<F: Lane>(k: F, _: F, p: &Plan) -> (F, bool) {
        let b = F::bounds(p);
        let over = out_of_range(k, b);
        let negative = k < F::ZERO;
        let above = (k * b.inv_kept).floor();
        let low = k - b.kept_modulus * above; // k modulo 2^kept, as an unsigned number
        let low = if k.is_finite() { low } else { F::ZERO };
        let low = if SIGN_MAGNITUDE && is_odd(above) != (negative ^ p.flip_forced) {
            b.kept_modulus - F::ONE - low
        } else {
            low
        };
        let code = low
            + if negative {
                F::ZERO - b.half_modulus
            } else {
                b.half_modulus - b.kept_modulus
            };
        (if over { code } else { k }, over)
    }
}

/// `AP_WRAP_SM` with N = 0, for an overflowing code `k` of a signed word: compare the bit just
/// above the word in the truncated source with the new sign bit; when they differ the magnitude
/// has wrapped: invert the low `wl - 1` bits and take the source's sign.
///
/// Infinities (and, in the `f32` lane, scaled values beyond `f32`, which stand for multiples of
/// `2^(wl+1)`) have every word bit and the bit above it clear.
pub(crate) struct WrapSignMagnitude;
impl OverflowOp for WrapSignMagnitude {
    #[inline(always)]
    fn apply<F: Lane>(k: F, t: F, p: &Plan) -> (F, bool) {
        let b = F::bounds(p);
        let over = out_of_range(k, b);
        let w = wrapped(k, true, b); // the word as a two's-complement code
        let beyond = is_odd((t.floor() * b.inv_modulus).floor());
        let sign = w < F::ZERO;
        // The low wl - 1 bits of the word, inverted.
        let low = w + if sign { b.half_modulus } else { F::ZERO };
        let folded = b.half_modulus - F::ONE - low - if beyond { b.half_modulus } else { F::ZERO };
        let code = if beyond == sign { w } else { folded };
        (if over { code } else { k }, over)
    }
}

/// No bound: the rounded code is the result.
pub(crate) struct Unbounded;
impl OverflowOp for Unbounded {
    const UNBOUNDED: bool = true;
    #[inline(always)]
    fn apply<F: Lane>(k: F, _: F, _: &Plan) -> (F, bool) {
        (k, false)
    }
}
