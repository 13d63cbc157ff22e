//! The floating-point element types the kernels accept. `f64` holds every `f32`, `f16` and `bf16`
//! value exactly, so one definition of the maths, written for `f64`, serves them all; the kernels
//! run it in `f32` for the narrow types where that gives the same bits (see `kernel`).

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
    /// The value exactly, as `f64`.
    fn to_f64(self) -> f64;
    /// The nearest value of this type (ties to even).
    fn from_f64(value: f64) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

impl sealed::Sealed for f32 {}
impl Element for f32 {
    const NAME: &'static str = "f32";
    const SIGNIFICAND_BITS: u32 = 24;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl sealed::Sealed for f64 {}
impl Element for f64 {
    const NAME: &'static str = "f64";
    const SIGNIFICAND_BITS: u32 = 53;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value
    }
}

#[cfg(feature = "half")]
impl sealed::Sealed for half::f16 {}
#[cfg(feature = "half")]
impl Element for half::f16 {
    const NAME: &'static str = "f16";
    const SIGNIFICAND_BITS: u32 = 11;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        half::f16::to_f64(self)
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        half::f16::from_f64(value)
    }
}

#[cfg(feature = "half")]
impl sealed::Sealed for half::bf16 {}
#[cfg(feature = "half")]
impl Element for half::bf16 {
    const NAME: &'static str = "bf16";
    const SIGNIFICAND_BITS: u32 = 8;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        half::bf16::to_f64(self)
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        half::bf16::from_f64(value)
    }
}
