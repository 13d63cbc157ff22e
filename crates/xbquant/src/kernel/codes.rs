//! The serial loop of integer codes: deployment, not training loops.

use super::maths::code_of;
use super::overflow::OverflowOp;
use super::round::RoundOp;
use super::stochastic::Draws;
use super::{with_ops, Plan};

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
