//! The float type the per-element maths runs in (`f64`, or `f32` where the plan allows it), and
//! the format's constants held in that type.

use std::ops::{Add, Mul, Sub};

use super::Plan;

/// The float type the per-element maths runs in: `f64`, or `f32` where [`Plan::can_narrow`]
/// allows.
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
    fn round(self) -> Self;
    fn trunc(self) -> Self;
    fn round_ties_even(self) -> Self;
    fn copysign(self, sign: Self) -> Self;
    /// `self`, not negative (or NaN), with the sign of `sign`: one OR of the sign bit, where
    /// [`Lane::copysign`] first clears it.
    fn or_sign(self, sign: Self) -> Self;
    fn is_finite(self) -> bool;
    fn is_infinite(self) -> bool;
    /// The value as `f64` (exact).
    fn widen(self) -> f64;
    /// `v` in this lane; exact for the values the kernels pass (codes of an eligible word).
    fn narrow(v: f64) -> Self;
    fn bounds(p: &Plan) -> &Bounds<Self>;
    /// The number of lower bounds of [`Lane::draw_floor`] in `[0, 1)`: `2^31` in `f64`, `2^24`
    /// in `f32`.
    const DRAW_STEPS: Self;
    /// A lower bound of a draw from its high 32 bits (see [`crate::random::draw`]), counted in
    /// steps of `1 / DRAW_STEPS`: the integer `n` with `n <= draw * DRAW_STEPS < n + 1`. So the
    /// draw is below a fraction `f` of this lane when `n + 1 <= f * DRAW_STEPS` and not below it
    /// when `f * DRAW_STEPS < n`. Exact, and cheap in vector registers: a shift and a 32-bit
    /// integer conversion.
    fn draw_floor(high: u32) -> Self;
    /// Whether a stochastic loop hashes a block's draws in a loop of their own first, where
    /// vectors hold at most 256 bits (AVX2; see the driver's `stochastic`). In `f64` it does:
    /// that loop runs the 32-bit hash eight lanes to a 256-bit vector, where beside the `f64`
    /// maths it ran four (a 1K call, AVX2: 1.00 -> 0.79 us at best). In `f32` the lanes match,
    /// and the round trip through memory made a 16M call slower.
    const STAGE_DRAWS: bool;
    /// An exact draw ([`crate::random::draw`]) in this lane, rounded down when it is not exact.
    /// For a fraction `f` of this lane, `draw < f` then holds exactly when the exact draw is
    /// below `f` (a number of the lane below `f` is at most the largest one at or below the
    /// draw), so both lanes make the same choice.
    fn draw_exact(u: f64) -> Self;
}

macro_rules! impl_lane {
    ($t:ty, $field:ident, $bits:ty, $steps:expr, $stage:expr, $floor:expr, $draw:expr) => {
        impl Lane for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const TINY: Self = <$t>::from_bits(1);
            const DRAW_STEPS: Self = $steps;
            const STAGE_DRAWS: bool = $stage;
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
            fn round(self) -> Self {
                <$t>::round(self)
            }
            #[inline(always)]
            fn trunc(self) -> Self {
                <$t>::trunc(self)
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
            fn or_sign(self, sign: Self) -> Self {
                const SIGN: $bits = 1 << (<$bits>::BITS - 1);
                <$t>::from_bits(self.to_bits() | (sign.to_bits() & SIGN))
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
            fn draw_floor(high: u32) -> Self {
                $floor(high)
            }
            #[inline(always)]
            fn draw_exact(u: f64) -> Self {
                $draw(u)
            }
        }
    };
}
impl_lane!(
    f64,
    wide,
    u64,
    2_147_483_648.0,
    true,
    floor_f64,
    std::convert::identity
);
impl_lane!(f32, narrow, u32, 16_777_216.0, false, floor_f32, draw_down);

/// The top 31 high bits (below `2^31` the signed conversion, one vector instruction, applies).
#[inline(always)]
#[allow(clippy::cast_possible_wrap)]
fn floor_f64(high: u32) -> f64 {
    f64::from((high >> 1) as i32)
}

/// The top 24 high bits (24 bits are exact in `f32`, and below `2^31` the signed conversion, one
/// vector instruction, applies).
#[inline(always)]
#[allow(clippy::cast_possible_wrap, clippy::cast_precision_loss)]
fn floor_f32(high: u32) -> f32 {
    ((high >> 8) as i32) as f32
}

/// `u`, a multiple of `2^-52` in `[0, 1)`, rounded toward zero to an `f32`: clearing the low 29
/// bits of its significand leaves 24 significant bits, an `f32` number since a nonzero `u` is at
/// least 2^-52, in `f32`'s normal range. (Cheaper than converting to nearest, then stepping down
/// where that went up.)
#[inline(always)]
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn draw_down(u: f64) -> f32 {
    f64::from_bits(u.to_bits() & !((1 << 29) - 1)) as f32
}

/// The format's constants in one lane type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds<F> {
    pub(crate) scale: F,
    pub(crate) inv_scale: F,
    /// Code bounds for the overflow test and for clamping (nearest `f64` beyond 53 bits).
    pub(crate) lo: F,
    pub(crate) hi: F,
    /// `2^wl`, `2^-wl` and `2^(wl-1)`, for the wrap modes.
    pub(crate) modulus: F,
    pub(crate) inv_modulus: F,
    pub(crate) half_modulus: F,
    /// `2^(wl-N)` and its inverse: the bits the saturation-bit wrap modes keep.
    pub(crate) kept_modulus: F,
    pub(crate) inv_kept: F,
}

impl Bounds<f64> {
    pub(crate) fn to_f32(self) -> Bounds<f32> {
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
