//! Overflow modes: what happens to a rounded code that does not fit the word. Owns the mode names,
//! ours and the HLS `ap_fixed` ones.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// What happens to a rounded code `k` outside the code range `[kmin, kmax]`.
///
/// Overflow is judged on the *rounded* code: with 4 bits and a step of 0.25, `1.875` rounds to
/// code 8, which overflows.
///
/// | variant | our name | HLS name | result when `k` is out of range |
/// |---|---|---|---|
/// | [`Saturate`](Overflow::Saturate) | `saturate` | `AP_SAT` | `clamp(k, kmin, kmax)` |
/// | [`SaturateSymmetric`](Overflow::SaturateSymmetric) | `saturate-symmetric` | `AP_SAT_SYM` | `clamp(k, -kmax, kmax)`; `kmin` is never produced |
/// | [`SaturateZero`](Overflow::SaturateZero) | `saturate-zero` | `AP_SAT_ZERO` | 0 |
/// | [`Wrap`](Overflow::Wrap) | `wrap` / `wrap:N` | `AP_WRAP` | two's complement wrap; with N saturation bits the top N bits are set from the sign |
/// | [`WrapSignMagnitude`](Overflow::WrapSignMagnitude) | `wrap-sign-magnitude` / `wrap-sign-magnitude:N` | `AP_WRAP_SM` | sign-magnitude wrap (signed formats only) |
/// | [`Unbounded`](Overflow::Unbounded) | `unbounded` (`none`) | none | `k` unchanged: only the step applies |
///
/// The seed's flags map onto these: `clamp = true, symmetric = true` is `SaturateSymmetric`,
/// `clamp = true, symmetric = false` is `Saturate`, `clamp = false` is `Unbounded`.
///
/// Special values: NaN stays NaN in every mode and is never counted as an overflow. `+-inf`
/// saturates in the saturating modes (0 for `SaturateZero`) and stays `+-inf` with `Unbounded`.
/// The wrap modes treat `+-inf` as a value beyond every finite one that is a multiple of every
/// power of two, exactly as they treat finite inputs too large for `f64` to hold a fraction:
/// its low bits are all zero, so `Wrap { sat_bits: 0 }` maps it to 0 and the other wrap modes
/// to what their rules give for low bits of zero.
///
/// # Examples
///
/// ```
/// use xbquant::{FixedPoint, Overflow, Rounding};
///
/// // 4 bits, step 0.25: codes -8..=7, values -2.0..=1.75.
/// let x = [2.5f64, -2.375, 9.0];
/// let q = |o: Overflow| FixedPoint::new(4, 2)?.with_overflow(o).map(|f| f.quantize(&x, Rounding::Floor));
/// assert_eq!(q(Overflow::Saturate)?, [1.75, -2.0, 1.75]);
/// assert_eq!(q(Overflow::SaturateSymmetric)?, [1.75, -1.75, 1.75]);
/// assert_eq!(q(Overflow::SaturateZero)?, [0.0, 0.0, 0.0]);
/// assert_eq!(q(Overflow::Wrap { sat_bits: 0 })?, [-1.5, 1.5, 1.0]);
/// assert_eq!(q(Overflow::Wrap { sat_bits: 1 })?, [0.5, -0.5, 1.0]);
/// assert_eq!(q(Overflow::WrapSignMagnitude { sat_bits: 0 })?, [1.25, -1.75, 1.0]);
/// assert_eq!(q(Overflow::Unbounded)?, [2.5, -2.5, 9.0]);
///
/// assert_eq!("AP_SAT_SYM".parse::<Overflow>()?, Overflow::SaturateSymmetric);
/// assert_eq!("wrap:2".parse::<Overflow>()?, Overflow::Wrap { sat_bits: 2 });
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Overflow {
    /// Clamp to the code range (`AP_SAT`; QPyTorch `clamp=True, symmetric=False`).
    Saturate,
    /// Clamp to `[-kmax, kmax]`, so the range is symmetric (`AP_SAT_SYM`; the seed's default,
    /// `clamp=True, symmetric=True`). For unsigned formats this is [`Saturate`](Overflow::Saturate).
    SaturateSymmetric,
    /// An overflowing code becomes 0 (`AP_SAT_ZERO`).
    SaturateZero,
    /// Two's complement wrap-around (`AP_WRAP`). With `sat_bits = N > 0` (signed formats only),
    /// an overflowing code keeps its low `wl - N` bits, its top bit is set to the sign of the
    /// source and the next `N - 1` bits to the complement of that sign.
    Wrap {
        /// Saturation bits `N` (0 for a plain wrap).
        sat_bits: u32,
    },
    /// Sign-magnitude wrap-around (`AP_WRAP_SM`, signed formats only), bit-exact with the HLS
    /// header: the code folds back at the ends of the range instead of jumping to the other end.
    WrapSignMagnitude {
        /// Saturation bits `N`.
        sat_bits: u32,
    },
    /// No overflow handling: the word length is ignored and only the step applies
    /// (QPyTorch `clamp=False`).
    Unbounded,
}

impl Overflow {
    /// Whether the mode bounds the result to the code range.
    #[inline]
    #[must_use]
    pub const fn is_bounded(self) -> bool {
        !matches!(self, Overflow::Unbounded)
    }

    /// The saturation bits of a wrap mode, 0 for the other modes.
    #[inline]
    #[must_use]
    pub const fn sat_bits(self) -> u32 {
        match self {
            Overflow::Wrap { sat_bits } | Overflow::WrapSignMagnitude { sat_bits } => sat_bits,
            _ => 0,
        }
    }

    /// The HLS `ap_fixed` name of the mode (without the saturation bits), or `None` for
    /// [`Unbounded`](Overflow::Unbounded).
    #[must_use]
    pub const fn hls_name(self) -> Option<&'static str> {
        match self {
            Overflow::Saturate => Some("AP_SAT"),
            Overflow::SaturateSymmetric => Some("AP_SAT_SYM"),
            Overflow::SaturateZero => Some("AP_SAT_ZERO"),
            Overflow::Wrap { .. } => Some("AP_WRAP"),
            Overflow::WrapSignMagnitude { .. } => Some("AP_WRAP_SM"),
            Overflow::Unbounded => None,
        }
    }

    /// Our name of the mode, as accepted by [`FromStr`] (saturation bits as `:N` when not 0).
    #[must_use]
    pub fn name(self) -> String {
        match self {
            Overflow::Saturate => "saturate".into(),
            Overflow::SaturateSymmetric => "saturate-symmetric".into(),
            Overflow::SaturateZero => "saturate-zero".into(),
            Overflow::Wrap { sat_bits: 0 } => "wrap".into(),
            Overflow::Wrap { sat_bits } => format!("wrap:{sat_bits}"),
            Overflow::WrapSignMagnitude { sat_bits: 0 } => "wrap-sign-magnitude".into(),
            Overflow::WrapSignMagnitude { sat_bits } => format!("wrap-sign-magnitude:{sat_bits}"),
            Overflow::Unbounded => "unbounded".into(),
        }
    }

    /// The same mode with `sat_bits` saturation bits (only the wrap modes have them).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownOverflow`] when `sat_bits > 0` for a mode without saturation bits.
    pub fn with_sat_bits(self, sat_bits: u32) -> Result<Overflow, Error> {
        match self {
            Overflow::Wrap { .. } => Ok(Overflow::Wrap { sat_bits }),
            Overflow::WrapSignMagnitude { .. } => Ok(Overflow::WrapSignMagnitude { sat_bits }),
            other if sat_bits == 0 => Ok(other),
            other => Err(Error::UnknownOverflow(format!(
                "{}:{sat_bits}",
                other.name()
            ))),
        }
    }
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Overflow {
    type Err = Error;

    /// Parses our names (any case, `-` or `_`), `none` and `no-clamp` for
    /// [`Unbounded`](Overflow::Unbounded), the HLS names, and `:N` saturation bits after a wrap
    /// mode (`wrap:1`, `AP_WRAP_SM:2`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        let unknown = || Error::UnknownOverflow(trimmed.to_string());
        let key = trimmed.to_ascii_lowercase().replace('_', "-");
        let (mode, sat_bits) = match key.split_once(':') {
            Some((mode, n)) => (mode.trim(), n.trim().parse::<u32>().map_err(|_| unknown())?),
            None => (key.as_str(), 0),
        };
        let overflow = match mode {
            "saturate" | "sat" | "clamp" | "ap-sat" => Overflow::Saturate,
            "saturate-symmetric" | "symmetric" | "ap-sat-sym" => Overflow::SaturateSymmetric,
            "saturate-zero" | "ap-sat-zero" => Overflow::SaturateZero,
            "wrap" | "ap-wrap" => Overflow::Wrap { sat_bits },
            "wrap-sign-magnitude" | "wrap-sm" | "ap-wrap-sm" => {
                Overflow::WrapSignMagnitude { sat_bits }
            }
            "unbounded" | "none" | "no-clamp" => Overflow::Unbounded,
            _ => return Err(unknown()),
        };
        if sat_bits > 0 && overflow.sat_bits() == 0 {
            return Err(unknown());
        }
        Ok(overflow)
    }
}
