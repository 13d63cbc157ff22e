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
    /// The code of `t` from the lower bound `n` of its draw ([`Lane::draw_floor`]), and whether
    /// that leaves it undecided: the code with the exact draw may differ, and the caller must
    /// round again with it. The deterministic rules never read a draw.
    #[inline(always)]
    fn round_bounded<F: Lane>(t: F, _n: F) -> (F, bool) {
        (Self::round(t, F::ZERO), false)
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
        (whole + up).or_sign(t)
    }

    /// With the draw known to lie in `[n, n + 1) / DRAW_STEPS`, the fraction is compared in
    /// steps of the draw (`frac * DRAW_STEPS` is exact: a power-of-two scale): at `n + 1` steps
    /// or more it rounds up, below `n` steps down, and in between, where the integer part of its
    /// steps is `n`, it is undecided. That also covers a nonzero input whose scaled value
    /// underflowed to zero (or, in the `f32` lane, to a subnormal): its true fraction is below
    /// every positive draw, so it rounds down unless `n` is zero, where it is undecided. NaN
    /// and infinities are never undecided: every comparison with their NaN fraction is false.
    #[inline(always)]
    fn round_bounded<F: Lane>(t: F, n: F) -> (F, bool) {
        let a = t.abs();
        let whole = a.floor();
        let steps = (a - whole) * F::DRAW_STEPS;
        let up = if n <= steps { F::ONE } else { F::ZERO };
        ((whole + up).or_sign(t), steps.floor() == n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lane whose numbers can be stepped down.
    trait Steps: Lane + std::fmt::Debug {
        /// The largest number of the lane below the positive `self`.
        fn below(self) -> Self;
    }
    impl Steps for f32 {
        fn below(self) -> Self {
            f32::from_bits(self.to_bits() - 1)
        }
    }
    impl Steps for f64 {
        fn below(self) -> Self {
            f64::from_bits(self.to_bits() - 1)
        }
    }

    fn same<F: Lane>(a: F, b: F) -> bool {
        a.widen().to_bits() == b.widen().to_bits() || (a.widen().is_nan() && b.widen().is_nan())
    }

    /// Where the lower bound `n` decides, stochastic rounding with any draw in `[n, n + 1)`
    /// steps gives the same code, the bounded one (checked at both ends of that interval); it
    /// leaves undecided only fractions in that interval.
    fn check<F: Steps>(t: F, n: F) {
        let step = F::narrow(1.0 / F::DRAW_STEPS.widen());
        let (code, undecided) = Stochastic::round_bounded(t, n);
        let (lo, hi) = (n * step, ((n + F::ONE) * step).below());
        let (at_lo, at_hi) = (Stochastic::round(t, lo), Stochastic::round(t, hi));
        if undecided {
            // Only where the fraction lies in the interval: in about one element in
            // `DRAW_STEPS` for fractions spread evenly.
            let a = t.widen().abs();
            let in_steps = (a - a.floor()) * F::DRAW_STEPS.widen();
            assert!(
                in_steps.floor() == n.widen(),
                "{t:?} {n:?}: flagged, {in_steps} steps"
            );
        } else {
            assert!(
                same(code, at_lo),
                "{t:?} {n:?}: {code:?}, {at_lo:?} at the low end"
            );
            assert!(
                same(code, at_hi),
                "{t:?} {n:?}: {code:?}, {at_hi:?} at the high end"
            );
        }
    }

    fn sweep<F: Steps>() {
        let steps = F::DRAW_STEPS.widen();
        let ns = [0.0, 1.0, 2.0, steps / 2.0, steps - 1.0];
        let mut ts: Vec<F> = [0.0, -0.0, 3.0, f64::INFINITY, f64::NAN]
            .into_iter()
            .map(F::narrow)
            .chain([F::TINY, F::ZERO - F::TINY])
            .collect();
        for n in ns {
            for whole in [0.0, 5.0] {
                // Fractions at the ends of the interval and beside them.
                for at in [n, n + 1.0] {
                    let f = F::narrow(at / steps);
                    if f > F::ZERO && f < F::ONE {
                        let whole = F::narrow(whole);
                        for frac in [f, f.below(), f + (f - f.below())] {
                            ts.push(whole + frac);
                            ts.push(F::ZERO - (whole + frac));
                        }
                    }
                }
            }
        }
        for &t in &ts {
            for n in ns {
                check(t, F::narrow(n));
            }
        }
        // A zero or underflowed scaled value is undecided only at the zero bound.
        for t in [F::ZERO, F::TINY] {
            assert!(Stochastic::round_bounded(t, F::ZERO).1);
            let (code, undecided) = Stochastic::round_bounded(t, F::ONE);
            assert!(!undecided && same(code, F::ZERO));
        }
    }

    #[test]
    fn bounded_stochastic_rounding_decides_as_every_draw_in_its_interval() {
        sweep::<f32>();
        sweep::<f64>();
    }
}
