//! An HLS fixed-point type (`ap_fixed<W,I,Q,O,N>`, `ap_ufixed<...>`) and exact casts of values
//! into it, in integer arithmetic: a value is an integer code `c` at `f` fractional bits
//! (`c * 2^-f`), and a cast rounds it to the type's step with the type's rounding mode, then
//! applies the type's overflow mode to the word, as the `ap_types` headers do.

use std::cmp::Ordering;

use rayon::prelude::*;

use xbquant::{Element, Overflow, QuantSpec, Rounding};

use crate::Error;

/// The widest word this crate computes: 64 bits (codes and their products fit `i128`).
pub const MAX_WIDTH: u32 = 64;
/// The largest magnitude of a type's fractional bits (`W - I`).
pub const MAX_FRAC: i32 = 512;

/// An HLS fixed-point type: the word's width and fractional bits, its sign, and what a cast
/// into it does with the bits below its step (rounding) and above its range (overflow).
///
/// # Examples
///
/// ```
/// use xbquant_fixed::FixedType;
/// let t = FixedType::parse("ap_fixed<8,3,AP_RND_CONV,AP_SAT>")?;
/// assert_eq!((t.width(), t.frac(), t.signed()), (8, 5, true));
/// // 1.03125 (code 33 at 5 fractional bits) is exact; 100.0 saturates to 127 / 32.
/// assert_eq!(t.cast_f64(1.03125)?, (33, false));
/// assert_eq!(t.cast_f64(100.0)?, (127, true));
/// # Ok::<(), xbquant_fixed::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedType {
    width: u32,
    frac: i32,
    signed: bool,
    rounding: Rounding,
    overflow: Overflow,
    /// The core's spec of the type (its vectorized quantization, for many values at once).
    spec: QuantSpec,
}

impl FixedType {
    /// The type of an HLS type string, as `xbquant::QuantSpec::from_hls` reads it (the defaults
    /// `AP_TRN` and `AP_WRAP`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidType`] for a string that is not an HLS type, a word wider than
    /// [`MAX_WIDTH`], or fractional bits beyond [`MAX_FRAC`].
    pub fn parse(hls: &str) -> Result<FixedType, Error> {
        let spec = QuantSpec::from_hls(hls)
            .map_err(|e| Error::InvalidType(hls.to_string(), e.to_string()))?;
        FixedType::from_spec(&spec).map_err(|e| match e {
            Error::InvalidType(_, why) => Error::InvalidType(hls.to_string(), why),
            other => other,
        })
    }

    /// The type of a format and a rounding of the core.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidType`] for a word wider than [`MAX_WIDTH`], fractional bits beyond
    /// [`MAX_FRAC`], stochastic rounding or an unbounded word (neither is an HLS type).
    pub fn from_spec(spec: &QuantSpec) -> Result<FixedType, Error> {
        let format = spec.format();
        let invalid = |why: &str| Error::InvalidType(format.hls_name(), why.to_string());
        if format.word_length() > MAX_WIDTH {
            return Err(invalid("words wider than 64 bits are not supported"));
        }
        if format.frac_length().abs() > MAX_FRAC {
            return Err(invalid("fractional bits beyond 512 are not supported"));
        }
        if spec.rounding().hls_name().is_none() {
            return Err(invalid("stochastic rounding is not an HLS rounding mode"));
        }
        if !format.overflow().is_bounded() {
            return Err(invalid("an unbounded word is not an HLS type"));
        }
        Ok(FixedType {
            width: format.word_length(),
            frac: format.frac_length(),
            signed: format.is_signed(),
            rounding: spec.rounding(),
            overflow: format.overflow(),
            spec: *spec,
        })
    }

    /// The word's width `W`.
    #[must_use]
    pub const fn width(&self) -> u32 {
        self.width
    }

    /// The fractional bits `W - I`: a code `c` stands for `c * 2^-frac`.
    #[must_use]
    pub const fn frac(&self) -> i32 {
        self.frac
    }

    /// Whether the type is `ap_fixed` (true) or `ap_ufixed`.
    #[must_use]
    pub const fn signed(&self) -> bool {
        self.signed
    }

    /// The rounding of a cast into the type.
    #[must_use]
    pub const fn rounding(&self) -> Rounding {
        self.rounding
    }

    /// The overflow of a cast into the type.
    #[must_use]
    pub const fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// The type as a full HLS string, `ap_fixed<W,I,Q,O,N>`.
    #[must_use]
    pub fn hls(&self) -> String {
        let sign = if self.signed { "ap_fixed" } else { "ap_ufixed" };
        let q = self.rounding.hls_name().unwrap_or("AP_TRN");
        let o = self.overflow.hls_name().unwrap_or("AP_WRAP");
        let integer = i64::from(self.width) - i64::from(self.frac);
        format!(
            "{sign}<{},{integer},{q},{o},{}>",
            self.width,
            self.overflow.sat_bits()
        )
    }

    /// The smallest and largest codes of the word.
    #[must_use]
    pub fn word_codes(&self) -> (i128, i128) {
        if self.signed {
            (
                -(1i128 << (self.width - 1)),
                (1i128 << (self.width - 1)) - 1,
            )
        } else {
            (0, (1i128 << self.width) - 1)
        }
    }

    /// The codes of many values in this type, as [`FixedType::cast_f64`] gives them, and whether
    /// the overflow mode changed each: by the core's vectorized quantization for words of up to
    /// 53 bits (whose codes `f64` holds exactly), by the integer cast otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::NotFinite`] naming `what` for NaN and infinities.
    pub fn cast_all<T: Element>(
        &self,
        values: &[T],
        what: &'static str,
    ) -> Result<(Vec<i128>, Vec<bool>), Error> {
        let wide: Vec<f64> = values.iter().map(|&v| v.to_f64()).collect();
        if wide.iter().any(|v| !v.is_finite()) {
            return Err(Error::NotFinite(what));
        }
        if self.width <= 53 {
            let (q, mask) = self.spec.quantize_with_mask(&wide);
            let scale = 2f64.powi(self.frac);
            return Ok((q.into_iter().map(|v| (v * scale) as i128).collect(), mask));
        }
        Ok(wide
            .into_iter()
            .map(|v| self.cast_f64(v).expect("finite"))
            .unzip())
    }

    /// The codes of many values, as [`FixedType::cast_all`] gives them, each passed through
    /// `narrow` (as `i64`, modulo `2^64` for an unsigned 64-bit word): by the core's vectorized
    /// quantization, in the values' own type where it holds the codes exactly.
    ///
    /// # Errors
    ///
    /// [`Error::NotFinite`] naming `what` for NaN and infinities.
    pub(crate) fn codes<T: Element, C: Copy + Default + Send>(
        &self,
        values: &[T],
        what: &'static str,
        narrow: impl Fn(i64) -> C + Sync,
    ) -> Result<Vec<C>, Error> {
        if values.iter().any(|v| !v.to_f64().is_finite()) {
            return Err(Error::NotFinite(what));
        }
        let scale = 2f64.powi(self.frac);
        // An integer-valued f64 below 2^51 in magnitude to its integer without a conversion
        // instruction (which does not vectorize): added to 1.5 * 2^52, the integer is the low
        // bits of the sum's significand.
        const MAGIC: f64 = 6_755_399_441_055_744.0;
        let small = self.width <= 51;
        let code = |v: f64| {
            narrow(if small {
                (v + MAGIC).to_bits() as i64 - MAGIC.to_bits() as i64
            } else {
                v as i64
            })
        };
        // In pieces on threads, each through a small buffer: no second copy of the data in
        // memory.
        const PIECE: usize = 1 << 16;
        let mut out = vec![C::default(); values.len()];
        let pieces = values.par_chunks(PIECE).zip(out.par_chunks_mut(PIECE));
        if self.width <= T::SIGNIFICAND_BITS {
            pieces.for_each(|(piece, dst)| {
                let mut q = vec![T::from_f64(0.0); piece.len()];
                self.spec
                    .quantize_into(piece, &mut q)
                    .expect("the same lengths");
                for (d, v) in dst.iter_mut().zip(&q) {
                    *d = code(v.to_f64() * scale);
                }
            });
            return Ok(out);
        }
        if self.width <= 53 {
            pieces.for_each(|(piece, dst)| {
                let wide: Vec<f64> = piece.iter().map(|v| v.to_f64()).collect();
                let mut q = vec![0.0f64; piece.len()];
                self.spec
                    .quantize_into(&wide, &mut q)
                    .expect("the same lengths");
                for (d, &v) in dst.iter_mut().zip(&q) {
                    *d = code(v * scale);
                }
            });
            return Ok(out);
        }
        let (codes, _) = self.cast_all(values, what)?;
        Ok(codes.into_iter().map(|c| narrow(c as i64)).collect())
    }

    /// [`FixedType::codes`] in 32 bits, with whether the overflow mode changed each (words of up
    /// to 31 bits).
    ///
    /// # Errors
    ///
    /// [`Error::NotFinite`] naming `what` for NaN and infinities.
    pub(crate) fn codes_with_overflows<T: Element>(
        &self,
        values: &[T],
        what: &'static str,
    ) -> Result<(Vec<i32>, Vec<bool>), Error> {
        debug_assert!(self.width <= 31);
        if values.iter().any(|v| !v.to_f64().is_finite()) {
            return Err(Error::NotFinite(what));
        }
        let scale = 2f64.powi(self.frac);
        // In pieces on threads.
        const PIECE: usize = 1 << 16;
        let (mut codes, mut over) = (vec![0i32; values.len()], vec![false; values.len()]);
        values
            .par_chunks(PIECE)
            .zip(codes.par_chunks_mut(PIECE))
            .zip(over.par_chunks_mut(PIECE))
            .for_each(|((piece, codes), over)| {
                let wide: Vec<f64> = piece.iter().map(|&v| v.to_f64()).collect();
                let (q, mask) = self.spec.quantize_with_mask(&wide);
                for ((c, o), (v, m)) in codes.iter_mut().zip(over).zip(q.into_iter().zip(mask)) {
                    (*c, *o) = ((v * scale) as i32, m);
                }
            });
        Ok((codes, over))
    }

    /// The core's spec of the type.
    pub(crate) const fn spec(&self) -> &QuantSpec {
        &self.spec
    }

    /// The code of `v` in this type: `v` exactly (every finite `f64` is an integer times a power
    /// of two), rounded and overflowed as the type's cast from a `double` does. Returns the code
    /// and whether the overflow mode changed it.
    ///
    /// # Errors
    ///
    /// [`Error::NotFinite`] for NaN and infinities.
    pub fn cast_f64(&self, v: f64) -> Result<(i128, bool), Error> {
        let (code, frac) = exact(v).ok_or(Error::NotFinite("the value"))?;
        Ok(self.cast(code, frac))
    }

    /// The code of the exact value `code * 2^-frac` in this type: rounded to the type's step with
    /// its rounding mode, then its overflow mode applied to the word. Returns the code and whether
    /// the overflow mode changed it. Exact for any `frac` (shifts beyond 127 bits included).
    #[must_use]
    pub fn cast(&self, code: i128, frac: i32) -> (i128, bool) {
        let shift = i64::from(frac) - i64::from(self.frac);
        let source = if shift > 0 {
            self.round(code, shift as u32)
        } else {
            widen(code, shift.unsigned_abs())
        };
        self.overflow_of(&source)
    }

    /// `code / 2^shift` rounded with the type's mode.
    fn round(&self, code: i128, shift: u32) -> Rounded {
        // q = floor(code / 2^shift); the remainder against half of 2^shift.
        let (q, against_half, exact) = if shift < 128 {
            let q = code >> shift.min(127);
            let rem = (code as u128) & ((1u128 << shift) - 1);
            let half = 1u128 << (shift - 1);
            (q, rem.cmp(&half), rem == 0)
        } else if code >= 0 {
            // Below 2^127 <= half.
            (0, Ordering::Less, code == 0)
        } else {
            // q = -1 and the remainder 2^shift + code is above half, or equal to it at
            // code = -2^127 and shift 128.
            let tie = shift == 128 && code == i128::MIN;
            (
                -1,
                if tie {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                },
                false,
            )
        };
        let negative = code < 0;
        let up = match self.rounding {
            Rounding::Floor => false,
            Rounding::TowardZero => negative && !exact,
            Rounding::NearestUp => against_half != Ordering::Less,
            Rounding::NearestDown => against_half == Ordering::Greater,
            Rounding::NearestTowardZero => {
                against_half == Ordering::Greater || (against_half == Ordering::Equal && negative)
            }
            Rounding::NearestAway => {
                against_half == Ordering::Greater || (against_half == Ordering::Equal && !negative)
            }
            // Ties to even (the type never holds a stochastic mode: see `from_spec`).
            _ => {
                against_half == Ordering::Greater || (against_half == Ordering::Equal && q & 1 == 1)
            }
        };
        Rounded {
            low: q + i128::from(up),
            negative: q + i128::from(up) < 0,
            huge: false,
            truncated: q,
        }
    }

    fn overflow_of(&self, k: &Rounded) -> (i128, bool) {
        let (lo, hi) = self.word_codes();
        let symmetric = self.signed && self.overflow == Overflow::SaturateSymmetric;
        let lowest = if symmetric { -hi } else { lo };
        if !k.huge && k.low >= lowest && k.low <= hi {
            return (k.low, false);
        }
        let w = self.width;
        let code = match self.overflow {
            Overflow::Saturate | Overflow::SaturateSymmetric => {
                if k.negative {
                    lowest
                } else {
                    hi
                }
            }
            Overflow::SaturateZero => 0,
            Overflow::Wrap { sat_bits: 0 } => self.wrapped(k.low),
            Overflow::Wrap { sat_bits } => self.wrap_bits(k, sat_bits, false),
            Overflow::WrapSignMagnitude { sat_bits: 0 } => {
                // The word as two's complement; when the bit above it in the truncated source
                // differs from the new sign, the magnitude has wrapped: fold it back.
                let wrapped = self.wrapped(k.low);
                let beyond = (k.truncated >> w) & 1 == 1;
                let sign = wrapped < 0;
                let half = 1i128 << (w - 1);
                let low = wrapped + if sign { half } else { 0 };
                let folded = half - 1 - low - if beyond { half } else { 0 };
                if beyond == sign {
                    wrapped
                } else {
                    folded
                }
            }
            Overflow::WrapSignMagnitude { sat_bits } => self.wrap_bits(k, sat_bits, true),
            // Unbounded words are not HLS types (see `from_spec`).
            _ => k.low,
        };
        (code, code != k.low || k.huge)
    }

    /// The low `W` bits of `v` as a code of the word (two's complement when signed).
    fn wrapped(&self, v: i128) -> i128 {
        let w = self.width;
        let bits = v & ((1i128 << w) - 1);
        if self.signed && bits >= 1i128 << (w - 1) {
            bits - (1i128 << w)
        } else {
            bits
        }
    }

    /// `AP_WRAP` and `AP_WRAP_SM` with `n > 0` saturation bits (signed words): the low
    /// `W - n` bits of the source, and above them `n` bits that carry its sign (`1 0...0` when
    /// negative, `0 1...1` otherwise); `AP_WRAP_SM` inverts the low bits when the bit above them
    /// differs from the first forced bit (the sign for n = 1, its complement for n > 1).
    fn wrap_bits(&self, k: &Rounded, n: u32, sign_magnitude: bool) -> i128 {
        let kept = self.width - n;
        let kept_modulus = 1i128 << kept;
        let half = 1i128 << (self.width - 1);
        let low = k.low & (kept_modulus - 1);
        let above_odd = (k.low >> kept) & 1 == 1;
        let low = if sign_magnitude && above_odd != (k.negative ^ (n > 1)) {
            kept_modulus - 1 - low
        } else {
            low
        };
        low + if k.negative {
            -half
        } else {
            half - kept_modulus
        }
    }
}

/// A rounded source code: `low` the code (or, when `huge`, its low 128 bits), its sign, and the
/// source truncated to the type's step (for `AP_WRAP_SM`'s fold).
struct Rounded {
    low: i128,
    negative: bool,
    huge: bool,
    truncated: i128,
}

/// `code * 2^shift` (exactly when it fits; its low 128 bits and sign otherwise).
fn widen(code: i128, shift: u64) -> Rounded {
    let magnitude_bits = 128 - code.unsigned_abs().leading_zeros();
    let huge = code != 0 && u64::from(magnitude_bits) + shift > 126;
    let low = if shift < 128 {
        code.wrapping_shl(shift as u32)
    } else {
        0
    };
    Rounded {
        low,
        negative: code < 0,
        huge,
        truncated: low,
    }
}

/// A finite `f64` as an integer code and its fractional bits: `v = code * 2^-frac`.
pub(crate) fn exact(v: f64) -> Option<(i128, i32)> {
    if !v.is_finite() {
        return None;
    }
    if v == 0.0 {
        return Some((0, 0));
    }
    let bits = v.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mantissa, exponent) = if exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), exponent - 1075)
    };
    let code = i128::from(mantissa);
    Some((if v < 0.0 { -code } else { code }, -exponent))
}

/// The value of `code * 2^-frac` as the nearest `f64` (exact up to 53 significant bits).
pub(crate) fn value(code: i128, frac: i32) -> f64 {
    (code as f64) * 2f64.powi(-frac)
}
