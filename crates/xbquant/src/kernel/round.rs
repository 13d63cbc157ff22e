//! Rounding: `t` is the exactly scaled value, `u` a uniform draw in [0, 1) (stochastic only).
//! Every operation used is exact: round_ties_even, floor, trunc, and `a - floor(a)` for `a >= 0`.
//! Values at or beyond 2^(significand bits - 1) are integers already and pass through unchanged.

use super::lane::Lane;

/// One rounding rule, fixed at compile time so that the loops have no branch on the mode.
pub(crate) trait RoundOp {
    const STOCHASTIC: bool = false;
    /// Whether the sign of a nonzero input whose scaled value underflows to zero changes the
    /// code (floor: -1 for a negative one; stochastic: a draw of 0 rounds it away from zero).
    /// The other modes give 0 either way, so their loops skip the test.
    const NEEDS_TINY: bool = false;
    /// The code of `t`; `u` is the element's draw, which only stochastic rounding reads.
    fn round<F: Lane>(t: F, u: F) -> F;
    /// Whether the code of `t` with `u` the lower bound of a draw ([`Lane::draw_floor`]) may
    /// differ from its code with the exact draw: never for the deterministic rules.
    #[inline(always)]
    fn undecided<F: Lane>(_t: F, _u: F) -> bool {
        false
    }
}

/// Nearest code, ties to even (`AP_RND_CONV`): one instruction, so it keeps a kernel of its own.
pub(crate) struct NearestEven;
impl RoundOp for NearestEven {
    #[inline(always)]
    fn round<F: Lane>(t: F, _: F) -> F {
        t.round_ties_even()
    }
}

/// Nearest code, with `TIE` choosing the code at exact ties: the other modes' rounding applied
/// to the tie alone. (Each tie rule is a kernel of its own: with the rule chosen at run time, a
/// 1K call took up to twice as long.)
pub(crate) struct NearestTies<const TIE: u8>;
pub(crate) const TIE_UP: u8 = 0;
pub(crate) const TIE_DOWN: u8 = 1;
pub(crate) const TIE_TOWARD_ZERO: u8 = 2;
impl<const TIE: u8> RoundOp for NearestTies<TIE> {
    #[inline(always)]
    fn round<F: Lane>(t: F, _: F) -> F {
        let a = t.abs();
        // Never true for infinities, NaN, or magnitudes whose fraction is lost (integers already).
        if a - a.floor() == F::narrow(0.5) {
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
pub(crate) type NearestUp = NearestTies<TIE_UP>;
pub(crate) type NearestDown = NearestTies<TIE_DOWN>;
pub(crate) type NearestTowardZero = NearestTies<TIE_TOWARD_ZERO>;

/// Nearest code, ties away from zero (`AP_RND_INF`): `round` itself.
pub(crate) struct NearestAway;
impl RoundOp for NearestAway {
    #[inline(always)]
    fn round<F: Lane>(t: F, _: F) -> F {
        t.round()
    }
}

/// Round down (`AP_TRN`).
pub(crate) struct Floor;
impl RoundOp for Floor {
    const NEEDS_TINY: bool = true;
    #[inline(always)]
    fn round<F: Lane>(t: F, _: F) -> F {
        t.floor()
    }
}

/// Round toward zero (`AP_TRN_ZERO`).
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
    const NEEDS_TINY: bool = true;
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

    /// With `u` a lower bound, `round` decides as the exact draw would unless the fraction lies
    /// strictly between `u` and `u + DRAW_GAP` (compared branch-free: both tests always run).
    #[inline(always)]
    fn undecided<F: Lane>(t: F, u: F) -> bool {
        let a = t.abs();
        let frac = a - a.floor();
        (u < frac) & (frac < u + F::DRAW_GAP)
    }
}
