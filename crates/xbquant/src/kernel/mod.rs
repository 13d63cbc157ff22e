//! The slice kernels. One per-element definition of the maths ([`maths`]' `code_of`), generic
//! over the float type it runs in ([`lane`]) and specialised per rounding rule ([`round`]) and
//! overflow rule ([`overflow`]) at compile time, split over threads in fixed chunks.
//!
//! Every kernel is compiled here, once, for `f32` and `f64` data: other crates call the entry
//! points of [`Element`](crate::Element), never a generic kernel. `f16` and `bf16` data are
//! staged through `f32` (or `f64`) buffers, and so are the values of a mask-only job, so that
//! each mode has four loops (into a buffer or in place, with or without the overflow mask) in
//! three (data, lane) pairs: `f32` in `f32`, `f32` in `f64`, `f64` in `f64`.
//!
//! The maths runs in `f64` by default. For `f32` data (and halves staged as `f32`) it runs in
//! `f32`, twice the vector width, whenever that gives the same bits: when `2^fl` and `2^-fl` are
//! normal `f32` numbers and every code of the word is exact in `f32` (see [`Plan::can_narrow`]).
//!
//! The maths is written a second time, with torch operations, in the Python package
//! (`bindings/python/python/xbquant/_torch_ops.py`) for tensors on GPUs; its tests prove the two
//! equal bit for bit in every mode. A change here is a change there.

mod buffers;
mod codes;
mod float;
mod lane;
mod maths;
mod overflow;
mod round;
mod scaled;
mod stochastic;
mod sweep;
#[cfg(test)]
mod tests;
mod threads;

pub(crate) use buffers::{Buffers, Half, Job};
pub(crate) use codes::codes;
pub(crate) use float::{float_value_of, run_float, run_float_half, FloatConsts, FloatPlan};
pub(crate) use scaled::{run_scaled, ScaledJob};
pub(crate) use sweep::{run_half, run_native};
pub(crate) use threads::in_pool;

use crate::format::pow2;
use crate::random::stream_key;
use crate::{FixedPoint, Overflow, Rounding};
use lane::Bounds;

/// Everything a kernel needs, derived once per call from the format and the rounding.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
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
    /// The stream index of the call's first element.
    start: u64,
    /// The rounding, resolved (fresh noise drawn), and the overflow mode and signedness: what
    /// picks the compiled kernel.
    rounding: Rounding,
    overflow: Overflow,
    signed: bool,
}

impl Plan {
    /// The plan of one call of a spec: its stream begins at the spec's stream start.
    pub(crate) fn of(spec: &crate::QuantSpec) -> Plan {
        let mut plan = Plan::new(spec.format(), spec.rounding());
        plan.start = spec.stream_start();
        plan
    }

    /// Whether the `f32` lane gives the `f64` lane's bits for `f32` data (see the field).
    pub(crate) const fn narrows(&self) -> bool {
        self.can_narrow
    }

    /// The plan of one call: `rounding` is resolved here (fresh noise drawn once per call).
    pub(crate) fn new(format: &FixedPoint, rounding: Rounding) -> Plan {
        let rounding = rounding.resolve();
        let key = match rounding {
            Rounding::Stochastic { seed } => stream_key(seed),
            _ => 0,
        };
        let overflow = format.overflow();
        let (lo, hi) = format.code_range();
        let wl = i64::from(format.word_length());
        let fl = i64::from(format.frac_length());
        let sat_bits = i64::from(overflow.sat_bits());
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
        Plan {
            wide,
            narrow: wide.to_f32(),
            can_narrow: (-126..=126).contains(&fl) && (wl <= 24 || overflow == Overflow::Unbounded),
            flip_forced: sat_bits > 1,
            key,
            start: 0,
            rounding,
            overflow,
            signed: format.is_signed(),
        }
    }
}

/// Expands `$body!(R, O)` for the plan's rounding and overflow rules: the one place where a
/// mode becomes a compiled kernel.
macro_rules! with_ops {
    ($plan:expr, $body:ident) => {{
        use $crate::kernel::overflow::*;
        use $crate::kernel::round::*;
        use $crate::{Overflow, Rounding};
        match $plan.rounding {
            Rounding::NearestEven => with_ops!(@o $plan, NearestEven, $body),
            Rounding::NearestUp => with_ops!(@o $plan, NearestUp, $body),
            Rounding::NearestDown => with_ops!(@o $plan, NearestDown, $body),
            Rounding::NearestTowardZero => with_ops!(@o $plan, NearestTowardZero, $body),
            Rounding::NearestAway => with_ops!(@o $plan, NearestAway, $body),
            Rounding::Floor => with_ops!(@o $plan, Floor, $body),
            Rounding::TowardZero => with_ops!(@o $plan, TowardZero, $body),
            Rounding::Stochastic { .. } | Rounding::StochasticFresh => {
                with_ops!(@o $plan, Stochastic, $body)
            }
        }
    }};
    (@o $plan:expr, $r:ident, $body:ident) => {
        match $plan.overflow {
            Overflow::Saturate | Overflow::SaturateSymmetric => $body!($r, Clamp),
            Overflow::SaturateZero => $body!($r, Zero),
            Overflow::Wrap { sat_bits: 0 } if $plan.signed => $body!($r, WrapSigned),
            Overflow::Wrap { sat_bits: 0 } => $body!($r, WrapUnsigned),
            Overflow::Wrap { .. } => $body!($r, WrapSaturating),
            Overflow::WrapSignMagnitude { sat_bits: 0 } => $body!($r, WrapSignMagnitude),
            Overflow::WrapSignMagnitude { .. } => $body!($r, WrapSignMagnitudeSat),
            Overflow::Unbounded => $body!($r, Unbounded),
        }
    };
}
use with_ops;
