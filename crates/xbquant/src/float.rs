//! Low-precision binary floating point: [`FloatFormat`], from `float16` and `bfloat16` to the
//! 8-bit `e5m2` and `e4m3fn`, with values rounded exactly as torch's casts round them.

use std::fmt;
use std::str::FromStr;

use crate::kernel::{float_value_of, Buffers, FloatConsts, FloatPlan};
use crate::quantizer::check_len;
use crate::random::stream_key;
use crate::{Element, Error, Rounding};

/// What a format does with its largest exponent field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FloatEncoding {
    /// IEEE 754: the largest exponent field holds the infinities and NaN (`float16`,
    /// `bfloat16`, `e5m2`).
    Ieee,
    /// No infinities: the largest exponent field holds numbers, except the pattern with every
    /// mantissa bit set, which is NaN (`e4m3fn`, the `fn` of "finite, NaN").
    FiniteNan,
    /// Every exponent field holds numbers: no infinities and no NaN pattern, so the largest
    /// binade is one above IEEE's. QPyTorch's `FloatingPoint(exp, man)`. (NaN inputs still give
    /// NaN in the input's type.)
    AllFinite,
}

/// What a magnitude beyond the largest finite value becomes, once rounded.
///
/// The defaults are what torch's casts do: [`Infinity`](FloatOverflow::Infinity) for IEEE-style
/// formats (`float16`, `bfloat16`, `e5m2`), [`Saturate`](FloatOverflow::Saturate) for formats
/// without infinities (`e4m3fn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FloatOverflow {
    /// Infinity with the input's sign; NaN in a format without infinities (the OCP 8-bit
    /// formats' non-saturating mode).
    Infinity,
    /// The largest finite value, with the input's sign (infinite inputs too; NaN stays NaN).
    Saturate,
}

/// A binary floating-point format: a sign bit, `exponent_bits` of exponent with the IEEE bias
/// `2^(exponent_bits - 1) - 1`, and `mantissa_bits` stored mantissa bits, with subnormals.
///
/// Quantizing rounds each value to the format's grid: the step of its binade, or the subnormal
/// step below the normal range. Rounding is to nearest, ties to even, or stochastic (up with
/// probability equal to the distance from the value below, in steps). A result beyond the
/// largest finite value overflows as [`FloatOverflow`] says. NaN stays NaN, zeros keep their
/// sign. Rounded to nearest with the default overflow, the result is what a cast to the format
/// gives: `float16`, `bfloat16`, `e5m2` and `e4m3fn` equal torch's `x.to(torch.float16)`,
/// `torch.bfloat16`, `torch.float8_e5m2` and `torch.float8_e4m3fn`, read back as `float32`, for
/// every `f32` input (tested bit for bit against data generated with torch).
///
/// Formats have 2 to 8 exponent bits and 1 to 23 mantissa bits, so that every value is exact in
/// `f32`: the result is returned in the input's type, exactly
/// for `f32` and `f64` data; `f16` and `bf16` data get it rounded once to their type.
///
/// # Examples
///
/// ```
/// use xbquant::{FloatFormat, Rounding};
/// let e4m3: FloatFormat = "e4m3fn".parse()?;
/// assert_eq!(e4m3.max(), 448.0);
/// let x = [0.3f32, 450.0, 1e6, -1e-3, 1e-4];
/// let q = e4m3.quantize(&x, Rounding::NearestEven)?;
/// assert_eq!(&q[..3], &[0.3125, 448.0, 448.0]); // saturating, as torch's cast
/// assert_eq!(&q[3..], &[-0.001953125, 0.0]); // subnormal steps of 2^-9
/// let e5m2: FloatFormat = "e5m2".parse()?;
/// assert_eq!(e5m2.quantize(&[1e6f32], Rounding::NearestEven)?, [f32::INFINITY]);
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FloatFormat {
    exponent_bits: u32,
    mantissa_bits: u32,
    encoding: FloatEncoding,
    overflow: FloatOverflow,
}

impl FloatFormat {
    /// IEEE half precision: 5 exponent bits, 10 mantissa bits.
    pub const FLOAT16: FloatFormat = FloatFormat::ieee(5, 10);
    /// bfloat16: 8 exponent bits, 7 mantissa bits.
    pub const BFLOAT16: FloatFormat = FloatFormat::ieee(8, 7);
    /// 8-bit `e5m2` (IEEE-style, with infinities).
    pub const E5M2: FloatFormat = FloatFormat::ieee(5, 2);
    /// 8-bit `e4m3fn`: no infinities, largest value 448, overflow saturating (as torch's cast).
    pub const E4M3FN: FloatFormat = FloatFormat {
        exponent_bits: 4,
        mantissa_bits: 3,
        encoding: FloatEncoding::FiniteNan,
        overflow: FloatOverflow::Saturate,
    };

    const fn ieee(exponent_bits: u32, mantissa_bits: u32) -> FloatFormat {
        FloatFormat {
            exponent_bits,
            mantissa_bits,
            encoding: FloatEncoding::Ieee,
            overflow: FloatOverflow::Infinity,
        }
    }

    /// An IEEE-style format (infinities and NaN in the largest exponent field).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidFloatFormat`] unless `exponent_bits` is 2 to 8 and `mantissa_bits` 1 to
    /// 23 (with no mantissa bit, ties to even are not defined).
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::FloatFormat;
    /// let f = FloatFormat::new(5, 10)?;
    /// assert_eq!(f, FloatFormat::FLOAT16);
    /// assert_eq!(f.max(), 65504.0);
    /// assert!(FloatFormat::new(9, 2).is_err());
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn new(exponent_bits: u32, mantissa_bits: u32) -> Result<Self, Error> {
        let bad = |reason| Error::InvalidFloatFormat {
            exponent_bits,
            mantissa_bits,
            reason,
        };
        if !(2..=8).contains(&exponent_bits) {
            return Err(bad("exponent bits must be 2 to 8"));
        }
        if !(1..=23).contains(&mantissa_bits) {
            return Err(bad("mantissa bits must be 1 to 23"));
        }
        Ok(FloatFormat::ieee(exponent_bits, mantissa_bits))
    }

    /// The same format without infinities: the largest exponent field holds numbers, and only
    /// the pattern with every mantissa bit set is NaN (as `e4m3fn`). Overflow saturates, as
    /// torch's cast to `float8_e4m3fn` does; [`with_overflow`](FloatFormat::with_overflow)
    /// [`FloatOverflow::Infinity`] makes it NaN instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::FloatFormat;
    /// assert_eq!(FloatFormat::new(4, 3)?.without_infinities(), FloatFormat::E4M3FN);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub const fn without_infinities(self) -> Self {
        FloatFormat {
            encoding: FloatEncoding::FiniteNan,
            overflow: FloatOverflow::Saturate,
            ..self
        }
    }

    /// The same format with no special values at all: every exponent field, the largest
    /// included, holds numbers (QPyTorch's `FloatingPoint(exp, man)`, which reserves nothing
    /// for infinities or NaN). Overflow saturates, as QPyTorch's does. With 8 exponent bits the
    /// largest binade lies beyond `f32`'s range: `f32` results there are infinite, `f64` ones
    /// are not.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FloatFormat, Rounding};
    /// let qpytorch = FloatFormat::new(2, 2)?.without_specials(); // values up to 7
    /// assert_eq!(qpytorch.max(), 7.0);
    /// let q = qpytorch.quantize(&[0.3f32, 5.4, 100.0, f32::INFINITY], Rounding::NearestEven)?;
    /// assert_eq!(q, [0.25, 5.0, 7.0, 7.0]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub const fn without_specials(self) -> Self {
        FloatFormat {
            encoding: FloatEncoding::AllFinite,
            overflow: FloatOverflow::Saturate,
            ..self
        }
    }

    /// The same format with another overflow behaviour.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FloatFormat, FloatOverflow, Rounding};
    /// let sat = FloatFormat::E5M2.with_overflow(FloatOverflow::Saturate);
    /// let q = sat.quantize(&[1e6f32, f32::NEG_INFINITY], Rounding::NearestEven)?;
    /// assert_eq!(q, [57344.0, -57344.0]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub const fn with_overflow(self, overflow: FloatOverflow) -> Self {
        FloatFormat { overflow, ..self }
    }

    /// Exponent bits.
    #[must_use]
    pub const fn exponent_bits(&self) -> u32 {
        self.exponent_bits
    }

    /// Stored mantissa bits (the hidden bit not counted).
    #[must_use]
    pub const fn mantissa_bits(&self) -> u32 {
        self.mantissa_bits
    }

    /// The encoding of the largest exponent field.
    #[must_use]
    pub const fn encoding(&self) -> FloatEncoding {
        self.encoding
    }

    /// What overflow gives.
    #[must_use]
    pub const fn overflow(&self) -> FloatOverflow {
        self.overflow
    }

    fn bias(&self) -> i64 {
        (1i64 << (self.exponent_bits - 1)) - 1
    }

    /// The exponent of the largest binade.
    fn emax(&self) -> i64 {
        match self.encoding {
            FloatEncoding::Ieee => self.bias(),
            FloatEncoding::FiniteNan | FloatEncoding::AllFinite => self.bias() + 1,
        }
    }

    /// The largest finite value.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::FloatFormat;
    /// assert_eq!(FloatFormat::E5M2.max(), 57344.0);
    /// assert_eq!(FloatFormat::BFLOAT16.max(), f64::from(f32::MAX) * (1.0 - 2f64.powi(-8)) / (1.0 - 2f64.powi(-24)));
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn max(&self) -> f64 {
        let m = i32::try_from(self.mantissa_bits).unwrap_or(23);
        let top = match self.encoding {
            FloatEncoding::Ieee | FloatEncoding::AllFinite => 2.0 - 2f64.powi(-m),
            FloatEncoding::FiniteNan => 2.0 - 2f64.powi(1 - m),
        };
        top * 2f64.powi(i32::try_from(self.emax()).unwrap_or(0))
    }

    /// The exponent of the largest binade: the bias for IEEE-style formats, one more without
    /// infinities or special values.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::FloatFormat;
    /// assert_eq!(FloatFormat::FLOAT16.max_exponent(), 15);
    /// assert_eq!(FloatFormat::E4M3FN.max_exponent(), 8);
    /// ```
    #[must_use]
    pub fn max_exponent(&self) -> i32 {
        i32::try_from(self.emax()).unwrap_or(0)
    }

    /// What a magnitude beyond [`max`](FloatFormat::max) becomes (before its sign is applied):
    /// infinity, NaN (overflow to "infinity" in a format without infinities) or the largest
    /// value (saturation).
    #[must_use]
    pub fn overflow_value(&self) -> f64 {
        match (self.overflow, self.encoding) {
            (FloatOverflow::Saturate, _) => self.max(),
            (FloatOverflow::Infinity, FloatEncoding::FiniteNan) => f64::NAN,
            (FloatOverflow::Infinity, _) => f64::INFINITY,
        }
    }

    /// The smallest positive normal value, `2^(1 - bias)`.
    #[must_use]
    pub fn min_normal(&self) -> f64 {
        2f64.powi(i32::try_from(1 - self.bias()).unwrap_or(0))
    }

    /// The smallest positive value, the subnormal step `2^(1 - bias - mantissa_bits)`.
    #[must_use]
    pub fn min_positive(&self) -> f64 {
        self.min_normal() * 2f64.powi(-i32::try_from(self.mantissa_bits).unwrap_or(0))
    }

    /// Checks that floating point offers `rounding`: nearest (ties to even) or stochastic.
    pub(crate) fn check_rounding(&self, rounding: Rounding) -> Result<(), Error> {
        match rounding {
            Rounding::NearestEven | Rounding::Stochastic { .. } | Rounding::StochasticFresh => {
                Ok(())
            }
            other => Err(Error::UnsupportedFloatRounding {
                rounding: other.name(),
            }),
        }
    }

    fn plan(&self, rounding: Rounding) -> Result<FloatPlan, Error> {
        self.check_rounding(rounding)?;
        let (stochastic, key) = match rounding.resolve() {
            Rounding::Stochastic { seed } => (true, stream_key(seed)),
            _ => (false, 0),
        };
        let max = self.max();
        let overflow = self.overflow_value();
        let m = u64::from(self.mantissa_bits);
        let pow2 = |k: i64| 2f64.powi(i32::try_from(k).unwrap_or(0));
        let wide = FloatConsts::wide(
            pow2(1 - self.bias()),
            pow2(self.emax() + 1),
            m,
            max,
            overflow,
        );
        Ok(FloatPlan {
            wide,
            narrow: wide.to_f32(),
            // 7 exponent bits at most: steps from 2^-85 and binades up to 2^65, all normal f32.
            can_narrow: self.exponent_bits <= 7,
            stochastic,
            key,
            start: 0,
        })
    }

    /// Quantizes `x` into a new vector of the same type.
    ///
    /// `rounding` is [`Rounding::NearestEven`] (a cast) or stochastic
    /// ([`Rounding::Stochastic`] with a seed, or [`Rounding::StochasticFresh`]): element `i`
    /// rounds up when its draw, the same `(seed, i)` noise as fixed point (see [`noise`](crate::noise)),
    /// is below its distance from the value below, in steps. Large inputs are split over
    /// rayon's threads; the result never depends on the thread count.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedFloatRounding`] for other rounding modes.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FloatFormat, Rounding};
    /// let q = FloatFormat::BFLOAT16.quantize(&[1.0f64 + 2f64.powi(-8), 1.0 + 3.0 * 2f64.powi(-8)], Rounding::NearestEven)?;
    /// assert_eq!(q, [1.0, 1.0 + 2f64.powi(-6)]); // ties to even
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn quantize<T: Element>(&self, x: &[T], rounding: Rounding) -> Result<Vec<T>, Error> {
        let mut out = x.to_vec();
        self.quantize_in_place(&mut out, rounding)?;
        Ok(out)
    }

    /// [`quantize`](FloatFormat::quantize) into the caller's buffer.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `out` differs in length from `x`;
    /// [`Error::UnsupportedFloatRounding`].
    pub fn quantize_into<T: Element>(
        &self,
        x: &[T],
        out: &mut [T],
        rounding: Rounding,
    ) -> Result<(), Error> {
        self.quantize_part_into(x, out, rounding, 0)
    }

    /// [`quantize_into`](FloatFormat::quantize_into) for the part of a longer tensor that begins
    /// at element `start`: element `i` draws the noise of stream index `start + i`, so a tensor
    /// quantized part by part (with a seeded rounding) equals one call on the whole of it.
    ///
    /// # Errors
    ///
    /// As [`quantize_into`](FloatFormat::quantize_into).
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FloatFormat, Rounding};
    /// let f = FloatFormat::E5M2;
    /// let r = Rounding::Stochastic { seed: 4 };
    /// let x: Vec<f32> = (0..100).map(|i| i as f32 * 0.37).collect();
    /// let mut parts = vec![0f32; 100];
    /// f.quantize_part_into(&x[..40], &mut parts[..40], r, 0)?;
    /// f.quantize_part_into(&x[40..], &mut parts[40..], r, 40)?;
    /// assert_eq!(parts, f.quantize(&x, r)?);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn quantize_part_into<T: Element>(
        &self,
        x: &[T],
        out: &mut [T],
        rounding: Rounding,
        start: u64,
    ) -> Result<(), Error> {
        check_len(x.len(), out.len())?;
        let mut plan = self.plan(rounding)?;
        plan.start = start;
        T::run_float(
            &plan,
            Buffers::Into {
                src: x,
                dst: out,
                mask: None,
            },
        );
        Ok(())
    }

    /// [`quantize_part_into`](FloatFormat::quantize_part_into) in place.
    pub(crate) fn quantize_part_in_place<T: Element>(
        &self,
        x: &mut [T],
        rounding: Rounding,
        start: u64,
    ) -> Result<(), Error> {
        let mut plan = self.plan(rounding)?;
        plan.start = start;
        T::run_float(&plan, Buffers::InPlace { buf: x, mask: None });
        Ok(())
    }

    /// Marks in `mask` the finite values of `x` beyond the format's largest finite magnitude:
    /// those that saturate or overflow.
    pub(crate) fn clip_mask<T: Element>(&self, x: &[T], mask: &mut [bool]) {
        let max = self.max();
        for (m, v) in mask.iter_mut().zip(x) {
            let a = v.to_f64().abs();
            *m = a.is_finite() && a > max;
        }
    }

    /// [`quantize`](FloatFormat::quantize) in place.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedFloatRounding`].
    pub fn quantize_in_place<T: Element>(
        &self,
        x: &mut [T],
        rounding: Rounding,
    ) -> Result<(), Error> {
        let plan = self.plan(rounding)?;
        T::run_float(&plan, Buffers::InPlace { buf: x, mask: None });
        Ok(())
    }

    /// One value, exactly (stochastic rounding draws stream index 0).
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedFloatRounding`].
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FloatFormat, Rounding};
    /// assert_eq!(FloatFormat::FLOAT16.quantize_value(65519.0, Rounding::NearestEven)?, 65504.0);
    /// assert_eq!(FloatFormat::FLOAT16.quantize_value(65520.0, Rounding::NearestEven)?, f64::INFINITY);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn quantize_value(&self, x: f64, rounding: Rounding) -> Result<f64, Error> {
        Ok(float_value_of(x, &self.plan(rounding)?))
    }
}

impl fmt::Display for FloatFormat {
    /// `float16`, `bfloat16`, `e5m2`, `e4m3fn` for the named formats, else `eXmY` (`eXmYfn`
    /// without infinities, `eXmYnx` with no special values), then the overflow when it differs
    /// from the encoding's default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (e, m) = (self.exponent_bits, self.mantissa_bits);
        match (self.encoding, e, m) {
            (FloatEncoding::Ieee, 5, 10) => f.write_str("float16")?,
            (FloatEncoding::Ieee, 8, 7) => f.write_str("bfloat16")?,
            (FloatEncoding::Ieee, ..) => write!(f, "e{e}m{m}")?,
            (FloatEncoding::FiniteNan, ..) => write!(f, "e{e}m{m}fn")?,
            (FloatEncoding::AllFinite, ..) => write!(f, "e{e}m{m}nx")?,
        }
        match (self.encoding, self.overflow) {
            (FloatEncoding::Ieee, FloatOverflow::Saturate) => f.write_str(", saturating"),
            (FloatEncoding::FiniteNan, FloatOverflow::Infinity) => f.write_str(", overflow to NaN"),
            (FloatEncoding::AllFinite, FloatOverflow::Infinity) => {
                f.write_str(", overflow to infinity")
            }
            _ => Ok(()),
        }
    }
}

impl FromStr for FloatFormat {
    type Err = Error;

    /// `float16` (also `fp16`, `half`), `bfloat16` (`bf16`), `e5m2` (`float8_e5m2`), `e4m3fn`
    /// (`float8_e4m3fn`), or `eXmY` / `eXmYfn` / `eXmYnx` (no special values) for any other size;
    /// case is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        let name = name.strip_prefix("float8_").unwrap_or(&name);
        match name {
            "float16" | "fp16" | "half" | "f16" => return Ok(FloatFormat::FLOAT16),
            "bfloat16" | "bf16" => return Ok(FloatFormat::BFLOAT16),
            _ => {}
        }
        let unknown = || Error::UnknownFloatFormat(s.to_string());
        let (body, encoding) = if let Some(b) = name.strip_suffix("fn") {
            (b, FloatEncoding::FiniteNan)
        } else if let Some(b) = name.strip_suffix("nx") {
            (b, FloatEncoding::AllFinite)
        } else {
            (name, FloatEncoding::Ieee)
        };
        let body = body.strip_prefix('e').ok_or_else(unknown)?;
        let (e, m) = body.split_once('m').ok_or_else(unknown)?;
        let e: u32 = e.parse().map_err(|_| unknown())?;
        let m: u32 = m.parse().map_err(|_| unknown())?;
        let format = FloatFormat::new(e, m)?;
        Ok(match encoding {
            FloatEncoding::Ieee => format,
            FloatEncoding::FiniteNan => format.without_infinities(),
            FloatEncoding::AllFinite => format.without_specials(),
        })
    }
}
