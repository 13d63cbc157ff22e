//! The fixed-point format: word length, fractional length, signedness and overflow mode, checked
//! once at construction; its range, step and code bounds.

use std::fmt;

use crate::{Error, Overflow};

/// The largest word length: codes are 64-bit integers.
pub const MAX_WORD_LENGTH: u32 = 64;
/// The largest fractional length: the step `2^-fl` stays a normal `f64`.
pub const MAX_FRAC_LENGTH: i32 = 1022;

/// The seed's duck-typed `num_format`: anything with a word length, a fractional length and a
/// symmetric flag. [`FixedPoint`] implements it, and so can any user type.
///
/// # Examples
///
/// ```
/// use xbquant::{get_range_fixed_point, FixedPointFormat};
///
/// struct MyFormat;
/// impl FixedPointFormat for MyFormat {
///     fn wl(&self) -> u32 { 8 }
///     fn fl(&self) -> i32 { 6 }
///     fn symmetric(&self) -> bool { false }
/// }
/// assert_eq!(get_range_fixed_point(&MyFormat), (-2.0, 1.984375));
/// ```
pub trait FixedPointFormat {
    /// Word length in bits, including the sign bit of a signed format.
    fn wl(&self) -> u32;
    /// Fractional length: the step is `2^-fl`. May be negative or larger than `wl`.
    fn fl(&self) -> i32;
    /// Whether the range is symmetric (the most negative code is left out).
    fn symmetric(&self) -> bool;
    /// Whether the format is signed. Defaults to `true`, as in the seed.
    fn signed(&self) -> bool {
        true
    }
}

/// `2^e` as an `f64`, exact wherever it is representable, `inf` above and 0 below.
#[inline]
#[must_use]
pub(crate) fn pow2(e: i64) -> f64 {
    if e > 1023 {
        f64::INFINITY
    } else if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else if e >= -1074 {
        f64::from_bits(1u64 << (e + 1074))
    } else {
        0.0
    }
}

/// The `(min, max)` a format can represent: XBTorch's `get_range_fixed_point`, exactly.
///
/// For a signed format, `max = 2^(wl-fl-1) - 2^-fl` and `min = -max` when symmetric, else
/// `-2^(wl-fl-1)`; for an unsigned one, `(0, 2^(wl-fl) - 2^-fl)`. Computed from exact powers of
/// two and rounded once to `f64`. Formats beyond the `f64` range give infinities, never a panic.
///
/// # Examples
///
/// ```
/// use xbquant::{get_range_fixed_point, FixedPoint};
/// let fmt = FixedPoint::new(8, 6)?;
/// assert_eq!(get_range_fixed_point(&fmt), (-1.984375, 1.984375));
/// assert_eq!(get_range_fixed_point(&fmt.with_symmetric(false)), (-2.0, 1.984375));
/// # Ok::<(), xbquant::Error>(())
/// ```
#[must_use]
pub fn get_range_fixed_point<T: FixedPointFormat + ?Sized>(format: &T) -> (f64, f64) {
    let wl = i64::from(format.wl());
    let fl = i64::from(format.fl());
    let step = pow2(-fl);
    if format.signed() {
        let top = pow2(wl - fl - 1);
        let max = top - step;
        let min = if format.symmetric() { 0.0 - max } else { -top };
        (min, max)
    } else {
        (0.0, pow2(wl - fl) - step)
    }
}

/// A fixed-point number format: `wl` bits of which `fl` are fractional, signed or not, and what
/// happens on overflow.
///
/// A signed format has integer codes `k` in `[-2^(wl-1), 2^(wl-1) - 1]`, an unsigned one
/// `[0, 2^wl - 1]`; the value of a code is `k * 2^-fl`. `fl` may be negative (a step larger
/// than one) or larger than `wl` (every value below one in magnitude). In HLS notation,
/// `ap_fixed<W, I>` is `wl = W, fl = W - I`.
///
/// The defaults are the seed's: signed, symmetric, clamping
/// ([`Overflow::SaturateSymmetric`]). The seed's `symmetric` and `clamp` flags are
/// [`with_symmetric`](FixedPoint::with_symmetric) and [`with_clamp`](FixedPoint::with_clamp);
/// the full set of hardware modes is [`with_overflow`](FixedPoint::with_overflow).
///
/// # Exactness
///
/// Quantization is exact: the scaled value is rounded exactly, and the result `k * 2^-fl` is
/// exact whenever the code fits the significand of the output type (`wl <= 24` for `f32`,
/// `wl <= 53` for `f64`, `wl <= 11` for `f16`, `wl <= 8` for `bf16`); otherwise it is the
/// nearest value of that type. So `f64` buffers simulate words wider than 24 bits exactly,
/// which QPyTorch (float32 only) cannot.
///
/// # Examples
///
/// ```
/// use xbquant::{FixedPoint, Rounding};
///
/// let fmt = FixedPoint::new(8, 6)?; // step 1/64, seed defaults
/// assert_eq!(fmt.range(), (-1.984375, 1.984375));
/// assert_eq!(fmt.step(), 0.015625);
/// let y = fmt.quantize(&[0.1f32, -3.0, 1.0], Rounding::NearestEven);
/// assert_eq!(y, [0.09375, -1.984375, 1.0]);
///
/// let asym = fmt.with_symmetric(false);
/// assert_eq!(asym.quantize(&[-3.0f32], Rounding::NearestEven), [-2.0]);
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FixedPoint {
    word_length: u32,
    frac_length: i32,
    signed: bool,
    symmetric: bool,
    overflow: Overflow,
}

impl FixedPoint {
    /// A signed format with the seed's defaults: symmetric range, clamping
    /// ([`Overflow::SaturateSymmetric`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWordLength`] unless `1 <= wl <= 64`; [`Error::FracLengthOutOfRange`]
    /// unless `wl - 1023 <= fl <= 1022` (so that the step and the range are normal `f64`).
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{Error, FixedPoint};
    /// assert!(FixedPoint::new(8, 6).is_ok());
    /// assert!(FixedPoint::new(4, -3).is_ok()); // step 8
    /// assert!(matches!(FixedPoint::new(0, 0), Err(Error::InvalidWordLength { .. })));
    /// assert!(matches!(FixedPoint::new(65, 0), Err(Error::InvalidWordLength { .. })));
    /// assert!(matches!(FixedPoint::new(8, 5000), Err(Error::FracLengthOutOfRange { .. })));
    /// ```
    pub fn new(wl: u32, fl: i32) -> Result<Self, Error> {
        if wl == 0 || wl > MAX_WORD_LENGTH {
            return Err(Error::InvalidWordLength {
                word_length: wl,
                min: 1,
            });
        }
        let min = wl as i32 - 1023;
        if fl < min || fl > MAX_FRAC_LENGTH {
            return Err(Error::FracLengthOutOfRange {
                frac_length: fl,
                min,
                max: MAX_FRAC_LENGTH,
            });
        }
        Ok(FixedPoint {
            word_length: wl,
            frac_length: fl,
            signed: true,
            symmetric: true,
            overflow: Overflow::SaturateSymmetric,
        })
    }

    /// The seed's `symmetric` flag. `true` leaves the most negative code out of the range; when
    /// the format clamps, this switches between [`Overflow::SaturateSymmetric`] and
    /// [`Overflow::Saturate`]. Other overflow modes keep their behaviour.
    #[must_use]
    pub fn with_symmetric(mut self, symmetric: bool) -> Self {
        self.symmetric = symmetric;
        self.overflow = match (self.overflow, symmetric) {
            (Overflow::Saturate, true) => Overflow::SaturateSymmetric,
            (Overflow::SaturateSymmetric, false) => Overflow::Saturate,
            (other, _) => other,
        };
        self
    }

    /// QPyTorch's `clamp` flag: `true` saturates (symmetric or not, after
    /// [`is_symmetric`](FixedPoint::is_symmetric)), `false` is [`Overflow::Unbounded`]: only the
    /// step applies.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Overflow, Rounding};
    /// let fmt = FixedPoint::new(4, 2)?.with_clamp(false);
    /// assert_eq!(fmt.overflow(), Overflow::Unbounded);
    /// assert_eq!(fmt.quantize(&[9.1f32], Rounding::NearestEven), [9.0]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn with_clamp(mut self, clamp: bool) -> Self {
        self.overflow = match (clamp, self.symmetric) {
            (false, _) => Overflow::Unbounded,
            (true, true) => Overflow::SaturateSymmetric,
            (true, false) => Overflow::Saturate,
        };
        self
    }

    /// Any overflow mode. The symmetric flag follows it: `true` for
    /// [`Overflow::SaturateSymmetric`], `false` otherwise (kept for [`Overflow::Unbounded`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSatBits`] when the saturation bits exceed the word length;
    /// [`Error::SignedOnly`] for [`Overflow::WrapSignMagnitude`], or [`Overflow::Wrap`] with
    /// saturation bits, on an unsigned format.
    pub fn with_overflow(mut self, overflow: Overflow) -> Result<Self, Error> {
        check_overflow(overflow, self.word_length, self.signed)?;
        match overflow {
            Overflow::Unbounded => {}
            other => self.symmetric = matches!(other, Overflow::SaturateSymmetric),
        }
        self.overflow = overflow;
        Ok(self)
    }

    /// Signed (the default) or unsigned codes. An unsigned format has codes `0 ..= 2^wl - 1`.
    ///
    /// # Errors
    ///
    /// [`Error::SignedOnly`] when the overflow mode is only defined for signed formats.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Overflow, Rounding};
    /// let fmt = FixedPoint::new(4, 2)?.with_signed(false)?.with_overflow(Overflow::Saturate)?;
    /// assert_eq!(fmt.range(), (0.0, 3.75));
    /// assert_eq!(fmt.quantize(&[-1.0f32, 2.6, 7.0], Rounding::NearestEven), [0.0, 2.5, 3.75]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn with_signed(mut self, signed: bool) -> Result<Self, Error> {
        check_overflow(self.overflow, self.word_length, signed)?;
        self.signed = signed;
        Ok(self)
    }

    /// The same format with another fractional length (word length, signedness and overflow
    /// kept).
    ///
    /// # Errors
    ///
    /// [`Error::FracLengthOutOfRange`] as for [`FixedPoint::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Overflow};
    /// let f = FixedPoint::new(8, 4)?.with_overflow(Overflow::Saturate)?.with_frac_length(6)?;
    /// assert_eq!((f.word_length(), f.frac_length(), f.overflow()), (8, 6, Overflow::Saturate));
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn with_frac_length(self, fl: i32) -> Result<Self, Error> {
        let checked = FixedPoint::new(self.word_length, fl)?;
        Ok(FixedPoint {
            frac_length: checked.frac_length,
            ..self
        })
    }

    /// Word length in bits.
    #[inline]
    #[must_use]
    pub const fn word_length(&self) -> u32 {
        self.word_length
    }

    /// Fractional length in bits.
    #[inline]
    #[must_use]
    pub const fn frac_length(&self) -> i32 {
        self.frac_length
    }

    /// Whether the codes are signed.
    #[inline]
    #[must_use]
    pub const fn is_signed(&self) -> bool {
        self.signed
    }

    /// The seed's symmetric flag (see [`with_symmetric`](FixedPoint::with_symmetric)).
    #[inline]
    #[must_use]
    pub const fn is_symmetric(&self) -> bool {
        self.symmetric
    }

    /// Whether the result is bounded to the word (QPyTorch's `clamp`; true for every overflow
    /// mode but [`Overflow::Unbounded`]).
    #[inline]
    #[must_use]
    pub const fn clamps(&self) -> bool {
        self.overflow.is_bounded()
    }

    /// The overflow mode.
    #[inline]
    #[must_use]
    pub const fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// The step `2^-fl`: the distance between neighbouring values.
    #[inline]
    #[must_use]
    pub fn step(&self) -> f64 {
        pow2(-i64::from(self.frac_length))
    }

    /// `(min, max)`, exactly the seed's `get_range_fixed_point`. With
    /// [`Overflow::Unbounded`], quantized values can lie beyond it.
    #[inline]
    #[must_use]
    pub fn range(&self) -> (f64, f64) {
        get_range_fixed_point(self)
    }

    /// The full code range of the word, `[-2^(wl-1), 2^(wl-1) - 1]` or `[0, 2^wl - 1]`.
    #[must_use]
    pub fn word_codes(&self) -> (i128, i128) {
        let wl = self.word_length;
        if self.signed {
            (-(1i128 << (wl - 1)), (1i128 << (wl - 1)) - 1)
        } else {
            (0, (1i128 << wl) - 1)
        }
    }

    /// The codes quantization can produce when it clamps: the word's codes, less the most
    /// negative one for a symmetric format.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::FixedPoint;
    /// assert_eq!(FixedPoint::new(8, 0)?.code_range(), (-127, 127));
    /// assert_eq!(FixedPoint::new(8, 0)?.with_symmetric(false).code_range(), (-128, 127));
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn code_range(&self) -> (i128, i128) {
        let (kmin, kmax) = self.word_codes();
        if self.signed && self.symmetric {
            (-kmax, kmax)
        } else {
            (kmin, kmax)
        }
    }

    /// The number of distinct values in [`code_range`](FixedPoint::code_range).
    #[must_use]
    pub fn levels(&self) -> u128 {
        let (lo, hi) = self.code_range();
        (hi - lo + 1) as u128
    }

    /// The HLS type name of the word alone, `ap_fixed<W,I>` or `ap_ufixed<W,I>`.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::FixedPoint;
    /// assert_eq!(FixedPoint::new(8, 6)?.hls_name(), "ap_fixed<8,2>");
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn hls_name(&self) -> String {
        let integer = i64::from(self.word_length) - i64::from(self.frac_length);
        let kind = if self.signed { "ap_fixed" } else { "ap_ufixed" };
        format!("{kind}<{},{integer}>", self.word_length)
    }
}

impl FixedPointFormat for FixedPoint {
    fn wl(&self) -> u32 {
        self.word_length
    }
    fn fl(&self) -> i32 {
        self.frac_length
    }
    fn symmetric(&self) -> bool {
        self.symmetric
    }
    fn signed(&self) -> bool {
        self.signed
    }
}

impl fmt::Display for FixedPoint {
    /// The HLS type name and our overflow name, such as `ap_fixed<8,2> saturate-symmetric`.
    /// [`QuantSpec::to_hls`](crate::QuantSpec::to_hls) gives a full HLS type that parses back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.hls_name(), self.overflow)
    }
}

fn check_overflow(overflow: Overflow, word_length: u32, signed: bool) -> Result<(), Error> {
    let sat_bits = overflow.sat_bits();
    if sat_bits > word_length {
        return Err(Error::InvalidSatBits {
            sat_bits,
            word_length,
        });
    }
    let signed_only = matches!(overflow, Overflow::WrapSignMagnitude { .. })
        || matches!(overflow, Overflow::Wrap { sat_bits } if sat_bits > 0);
    if signed_only && !signed {
        return Err(Error::SignedOnly {
            overflow: overflow.name(),
        });
    }
    Ok(())
}

/// The exponent of the leading bit of `t` (0 for zero).
pub(crate) fn exponent(t: f64) -> i32 {
    if t == 0.0 {
        return 0;
    }
    let bits = t.to_bits();
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    let field = ((bits >> 52) & 0x7FF) as i32;
    if field == 0 {
        // Subnormal: the leading bit's position within the significand.
        #[allow(clippy::cast_possible_wrap)]
        let lz = (bits << 12).leading_zeros() as i32;
        -1023 - lz
    } else {
        field - 1023
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow2_is_exact_at_every_exponent() {
        for e in -1074..=1023i64 {
            let half = (e / 2) as i32;
            let want = 2f64.powi(half) * 2f64.powi(e as i32 - half);
            assert_eq!(pow2(e), want, "2^{e}");
        }
        assert_eq!(pow2(1024), f64::INFINITY);
        assert_eq!(pow2(-1075), 0.0);
    }

    #[test]
    fn flags_map_onto_overflow_modes() {
        let f = FixedPoint::new(8, 4).unwrap();
        assert_eq!(f.overflow(), Overflow::SaturateSymmetric);
        assert_eq!(f.with_symmetric(false).overflow(), Overflow::Saturate);
        assert_eq!(f.with_clamp(false).overflow(), Overflow::Unbounded);
        assert!(f.with_clamp(false).is_symmetric());
        assert_eq!(
            f.with_clamp(false)
                .with_symmetric(false)
                .with_clamp(true)
                .overflow(),
            Overflow::Saturate
        );
    }

    #[test]
    fn unsigned_rejects_signed_only_modes() {
        let u = FixedPoint::new(8, 4).unwrap().with_signed(false).unwrap();
        assert!(matches!(
            u.with_overflow(Overflow::WrapSignMagnitude { sat_bits: 0 }),
            Err(Error::SignedOnly { .. })
        ));
        assert!(matches!(
            u.with_overflow(Overflow::Wrap { sat_bits: 1 }),
            Err(Error::SignedOnly { .. })
        ));
        assert!(u.with_overflow(Overflow::Wrap { sat_bits: 0 }).is_ok());
        let s = FixedPoint::new(4, 0)
            .unwrap()
            .with_overflow(Overflow::WrapSignMagnitude { sat_bits: 1 })
            .unwrap();
        assert!(matches!(
            s.with_signed(false),
            Err(Error::SignedOnly { .. })
        ));
        assert!(matches!(
            s.with_overflow(Overflow::Wrap { sat_bits: 5 }),
            Err(Error::InvalidSatBits { .. })
        ));
    }
}
