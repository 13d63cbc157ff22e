//! The floating-point element types the kernels accept. `f64` holds every `f32`, `f16` and `bf16`
//! value exactly, so one definition of the maths, written for `f64`, serves them all; the kernels
//! run it in `f32` for the narrow types where that gives the same bits (see `kernel`).
//!
//! Each type carries its kernel entry point (through the sealed supertrait), implemented here for
//! the four concrete types: the kernels are compiled once, in this crate, and a generic function
//! of another crate compiles to a call.

use crate::kernel::{
    in_pool, run_float, run_float_half, run_half, run_native, run_scaled, Buffers, FloatPlan, Half,
    Job, Plan, ScaledJob,
};

/// A floating-point element type: `f32`, `f64`, and with the `half` feature `f16` and `bf16`.
///
/// Sealed: the kernels rely on `to_f64` being exact and `from_f64` rounding to nearest, even.
pub trait Element:
    Copy + Send + Sync + PartialEq + std::fmt::Debug + sealed::Sealed + 'static
{
    /// The type's name, as `f32`.
    const NAME: &'static str;
    /// Bits of significand, the hidden bit included: codes up to this width are exact.
    const SIGNIFICAND_BITS: u32;
    /// The largest finite value, as `f64`: a result beyond it is infinite in this type.
    const MAX: f64;
    /// The value exactly, as `f64`.
    fn to_f64(self) -> f64;
    /// The nearest value of this type (ties to even).
    fn from_f64(value: f64) -> Self;
}

/// Checks that `value` is held by `T`: finite there, and nonzero where it is nonzero (when
/// `nonzero`); else [`Error::NotRepresentable`](crate::Error::NotRepresentable) naming `what`.
pub(crate) fn check_holds<T: Element>(
    what: &'static str,
    value: f64,
    nonzero: bool,
) -> Result<(), crate::Error> {
    let held = T::from_f64(value).to_f64();
    if held.is_finite() && !(nonzero && held == 0.0 && value != 0.0) {
        Ok(())
    } else {
        Err(crate::Error::NotRepresentable {
            what,
            value: format!("{value:e}"),
            dtype: T::NAME,
            max: format!("{:e}", T::MAX),
        })
    }
}

pub(crate) mod sealed {
    use crate::kernel::{Buffers, FloatPlan, Job, Plan, ScaledJob};

    pub trait Sealed: Sized {
        /// Runs a job with the kernels compiled in this crate (not inlined into callers: that
        /// is what keeps other crates from compiling the kernels again).
        fn run(plan: &Plan, job: Job<'_, Self>);
        /// Runs a floating-point quantization, likewise.
        fn run_float(plan: &FloatPlan, buffers: Buffers<'_, Self>);
        /// Runs a per-slice job, likewise.
        fn run_groups(job: crate::scheme::groups::GroupJob<'_, Self>);
        /// Runs a grid job, likewise.
        fn run_grid(job: crate::grid::GridJob<'_, Self>);
        /// Runs a quantization with a fractional length per element (repeating with a period)
        /// in one pass, or gives the job back where this type has no such kernel (half
        /// precision) or its lane cannot hold a scale exactly.
        fn run_scaled(job: ScaledJob<'_, Self>) -> Result<(), ScaledJob<'_, Self>> {
            Err(job)
        }
    }
}

impl sealed::Sealed for f32 {
    fn run(plan: &Plan, job: Job<'_, f32>) {
        in_pool(job.len(), || run_native(plan, job));
    }
    fn run_groups(job: crate::scheme::groups::GroupJob<'_, f32>) {
        in_pool(job.len(), || crate::scheme::groups::run(job));
    }
    fn run_scaled(job: ScaledJob<'_, f32>) -> Result<(), ScaledJob<'_, f32>> {
        // The f32 lane: every scale a normal f32 and every code exact in f32.
        if job.plan.narrows() && job.fls.iter().all(|fl| (-126..=126).contains(fl)) {
            in_pool(job.x.len(), || run_scaled::<f32, f32>(job))
        } else {
            Err(job)
        }
    }
    fn run_grid(job: crate::grid::GridJob<'_, f32>) {
        in_pool(job.len(), || crate::grid::run(job));
    }
    fn run_float(plan: &FloatPlan, buffers: Buffers<'_, f32>) {
        in_pool(buffers.len(), || run_float(plan, buffers));
    }
}
impl Element for f32 {
    const NAME: &'static str = "f32";
    const SIGNIFICAND_BITS: u32 = 24;
    const MAX: f64 = f32::MAX as f64;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    #[allow(clippy::cast_possible_truncation)]
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl sealed::Sealed for f64 {
    fn run(plan: &Plan, job: Job<'_, f64>) {
        in_pool(job.len(), || run_native(plan, job));
    }
    fn run_groups(job: crate::scheme::groups::GroupJob<'_, f64>) {
        in_pool(job.len(), || crate::scheme::groups::run(job));
    }
    fn run_scaled(job: ScaledJob<'_, f64>) -> Result<(), ScaledJob<'_, f64>> {
        // Every scale a normal f64.
        if job.fls.iter().all(|fl| (-1022..=1022).contains(fl)) {
            in_pool(job.x.len(), || run_scaled::<f64, f64>(job))
        } else {
            Err(job)
        }
    }
    fn run_grid(job: crate::grid::GridJob<'_, f64>) {
        in_pool(job.len(), || crate::grid::run(job));
    }
    fn run_float(plan: &FloatPlan, buffers: Buffers<'_, f64>) {
        in_pool(buffers.len(), || run_float(plan, buffers));
    }
}
impl Element for f64 {
    const NAME: &'static str = "f64";
    const SIGNIFICAND_BITS: u32 = 53;
    const MAX: f64 = f64::MAX;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value
    }
}

/// `x` rounded to `f32` by round-to-odd: toward zero, with the last bit set when inexact. Rounding
/// that to a type with at least two bits less of significand (and no wider exponent range) gives
/// `x` correctly rounded, with no double-rounding error. (`half`'s own `from_f64` goes through
/// `f32` rounded to nearest where the CPU converts in hardware, and ignores the low 32 bits of
/// the significand otherwise: both can misround a value next to a tie.)
#[cfg(feature = "half")]
#[inline]
#[allow(clippy::cast_possible_truncation)]
fn to_odd_f32(x: f64) -> f32 {
    let r = x as f32;
    if r.is_nan() || f64::from(r) == x {
        return r;
    }
    let toward_zero = if f64::from(r).abs() > x.abs() {
        f32::from_bits(r.to_bits() - 1)
    } else {
        r
    };
    f32::from_bits(toward_zero.to_bits() | 1)
}

macro_rules! impl_half {
    ($t:ty, $name:literal, $bits:literal) => {
        #[cfg(feature = "half")]
        impl sealed::Sealed for $t {
            fn run(plan: &Plan, job: Job<'_, $t>) {
                in_pool(job.len(), || run_half(plan, job));
            }
            fn run_groups(job: crate::scheme::groups::GroupJob<'_, $t>) {
                in_pool(job.len(), || crate::scheme::groups::run(job));
            }
            fn run_grid(job: crate::grid::GridJob<'_, $t>) {
                in_pool(job.len(), || crate::grid::run(job));
            }
            fn run_float(plan: &FloatPlan, buffers: Buffers<'_, $t>) {
                in_pool(buffers.len(), || run_float_half(plan, buffers));
            }
        }
        #[cfg(feature = "half")]
        impl Element for $t {
            const NAME: &'static str = $name;
            const SIGNIFICAND_BITS: u32 = $bits;
            const MAX: f64 = <$t>::MAX.to_f64_const();
            #[inline(always)]
            fn to_f64(self) -> f64 {
                <$t>::to_f64(self)
            }
            #[inline]
            fn from_f64(value: f64) -> Self {
                <$t>::from_f32(to_odd_f32(value))
            }
        }
        #[cfg(feature = "half")]
        impl Half for $t {
            fn load_f32(src: &[Self], dst: &mut [f32]) {
                half::slice::HalfFloatSliceExt::convert_to_f32_slice(src, dst);
            }
            fn store_f32(src: &[f32], dst: &mut [Self]) {
                half::slice::HalfFloatSliceExt::convert_from_f32_slice(dst, src);
            }
            fn load_f64(src: &[Self], dst: &mut [f64]) {
                half::slice::HalfFloatSliceExt::convert_to_f64_slice(src, dst);
            }
            fn store_f64(src: &[f64], dst: &mut [Self]) {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = <$t as Element>::from_f64(*s);
                }
            }
        }
    };
}
impl_half!(half::f16, "f16", 11);
impl_half!(half::bf16, "bf16", 8);

#[cfg(all(test, feature = "half"))]
mod tests {
    use super::*;
    use half::{bf16, f16};

    /// Exact rounding of `f64` values to the half types, against the definition: the nearest of
    /// the two neighbours, ties to the even one. The values sit next to ties, where rounding
    /// twice (or ignoring low bits) goes wrong.
    #[test]
    fn half_from_f64_rounds_once() {
        fn check<H: Element>(bits_of: impl Fn(H) -> u16, from_bits: impl Fn(u16) -> H) {
            for b in (0u16..0x7C00).step_by(7) {
                let (lo, hi) = (from_bits(b), from_bits(b + 1));
                let (a, c) = (lo.to_f64(), hi.to_f64());
                if !c.is_finite() {
                    continue;
                }
                let mid = (a + c) / 2.0; // exact in f64
                let even = if b % 2 == 0 { b } else { b + 1 };
                for (x, want) in [
                    (mid, even),
                    (mid + mid * f64::EPSILON, b + 1),
                    (mid - mid * f64::EPSILON, b),
                    (f64::from_bits(mid.to_bits() + 1), b + 1),
                    (f64::from_bits(mid.to_bits() - 1), b),
                ] {
                    assert_eq!(bits_of(H::from_f64(x)), want, "{x:e} near {a:e}");
                }
            }
        }
        check(f16::to_bits, f16::from_bits);
        check(bf16::to_bits, bf16::from_bits);
        assert!(<f16 as Element>::from_f64(f64::NAN).is_nan());
        assert_eq!(<f16 as Element>::from_f64(1e300), f16::INFINITY);
        assert_eq!(<bf16 as Element>::from_f64(-1e300), bf16::NEG_INFINITY);
    }
}
