//! The per-element maths: one definition of a code and a value, generic over the lane `F`
//! (`f32` or `f64`), the rounding rule `R` and the overflow rule `O`, inlined into every loop.

use super::lane::Lane;
use super::overflow::OverflowOp;
use super::round::RoundOp;
use super::Plan;

/// The code of `x` (as an exact integer-valued float), the scaled value, and whether it
/// overflowed. `u` is the element's draw for stochastic rounding (see [`Lane::draw`]).
#[inline(always)]
pub(super) fn code_of<F: Lane, R: RoundOp, O: OverflowOp>(x: F, u: F, p: &Plan) -> (F, F, bool) {
    code_with::<F, R, O>(x, u, p, F::bounds(p).scale)
}

/// [`code_of`] with a scale of the element's own (`2^fl` of its slice).
#[inline(always)]
pub(super) fn code_with<F: Lane, R: RoundOp, O: OverflowOp>(
    x: F,
    u: F,
    p: &Plan,
    scale: F,
) -> (F, F, bool) {
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
pub(super) fn value_of<F: Lane, R: RoundOp, O: OverflowOp>(x: F, u: F, p: &Plan) -> (F, bool) {
    let b = F::bounds(p);
    value_with::<F, R, O>(x, u, p, b.scale, b.inv_scale)
}

/// [`value_of`] with a scale and its inverse of the element's own.
#[inline(always)]
pub(super) fn value_with<F: Lane, R: RoundOp, O: OverflowOp>(
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
pub(super) fn finish<F: Lane, O: OverflowOp>(
    x: F,
    k: F,
    t: F,
    over: bool,
    inv_scale: F,
) -> (F, bool) {
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
pub(super) fn value_full<F: Lane, R: RoundOp, O: OverflowOp>(
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
