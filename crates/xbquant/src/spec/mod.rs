//! [`QuantSpec`]: a format and a rounding, the one value that travels from an edge (a command
//! line, an HLS type, a Python call) to the kernels.

mod hls;

use std::fmt;
use std::str::FromStr;

use crate::{Error, FixedPoint, Rounding};

/// A fixed-point format and a rounding mode: everything a quantization needs, checked once.
///
/// Build one from a [`FixedPoint`] and a [`Rounding`], or parse an HLS type, which names both.
/// [`with_seed`](QuantSpec::with_seed) fixes the noise of stochastic rounding. The quantize
/// and codes methods are the same as [`FixedPoint`]'s, with the rounding already chosen.
///
/// `Display` gives the format, its overflow mode and the rounding, as
/// `ap_fixed<8,2> saturate-symmetric, rounding nearest`; [`to_hls`](QuantSpec::to_hls) gives a
/// full HLS type that [`from_hls`](QuantSpec::from_hls) (and `FromStr`) parse back.
///
/// # Examples
///
/// ```
/// use xbquant::{FixedPoint, Overflow, QuantSpec, Rounding};
///
/// let spec: QuantSpec = "ap_fixed<8,3,AP_RND_CONV,AP_SAT>".parse()?;
/// assert_eq!(spec.format().frac_length(), 5);
/// assert_eq!(spec.format().overflow(), Overflow::Saturate);
/// assert_eq!(spec.rounding(), Rounding::NearestEven);
/// assert_eq!(spec.quantize(&[0.1f32, 9.0]), [0.09375, 3.96875]);
/// assert_eq!(spec.to_string(), "ap_fixed<8,3> saturate, rounding nearest");
///
/// let noisy = QuantSpec::new(FixedPoint::new(8, 0)?, Rounding::StochasticFresh).with_seed(7)?;
/// assert_eq!(noisy.rounding(), Rounding::Stochastic { seed: 7 });
/// assert_eq!(noisy.quantize(&[0.5f64; 64]), noisy.quantize(&[0.5f64; 64]));
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuantSpec {
    format: FixedPoint,
    rounding: Rounding,
    /// The stream index of a call's first element (stochastic rounding).
    stream_start: u64,
}

impl QuantSpec {
    /// The format with a rounding mode.
    #[inline]
    #[must_use]
    pub const fn new(format: FixedPoint, rounding: Rounding) -> Self {
        QuantSpec {
            format,
            rounding,
            stream_start: 0,
        }
    }

    /// Parses an HLS fixed-point type, `ap_fixed<W, I, Q, O, N>` or `ap_ufixed<...>`: the format
    /// and the rounding mode it stands for.
    ///
    /// `W` is the word length and `I` the integer bits (the sign included), so `fl = W - I`.
    /// `Q`, `O` and `N` default to the HLS defaults `AP_TRN`, `AP_WRAP` and 0. Whitespace is
    /// tolerated. One HLS quirk is kept: a 1-bit signed `AP_SAT_SYM` type behaves as `AP_SAT`
    /// (its symmetric range would hold zero alone), so it parses to
    /// [`Overflow::Saturate`](crate::Overflow::Saturate).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHlsType`] for anything that is not such a type, and the errors of
    /// [`FixedPoint::new`] and [`FixedPoint::with_overflow`] for values out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{Overflow, QuantSpec, Rounding};
    /// let spec = QuantSpec::from_hls("ap_fixed<8,3,AP_RND_CONV,AP_SAT>")?;
    /// assert_eq!((spec.format().word_length(), spec.format().frac_length()), (8, 5));
    /// assert_eq!(spec.format().overflow(), Overflow::Saturate);
    /// assert_eq!(spec.rounding(), Rounding::NearestEven);
    ///
    /// let u = QuantSpec::from_hls(" ap_ufixed< 6 , 2 > ")?;
    /// assert!(!u.format().is_signed());
    /// assert_eq!(u.rounding(), Rounding::Floor);
    /// assert_eq!(u.format().overflow(), Overflow::Wrap { sat_bits: 0 });
    ///
    /// assert!(QuantSpec::from_hls("ap_fixed<8>").is_err());
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn from_hls(s: &str) -> Result<Self, Error> {
        hls::parse(s)
    }

    /// The full HLS type, as `ap_fixed<8,2,AP_RND_CONV,AP_SAT_SYM,0>`;
    /// [`from_hls`](QuantSpec::from_hls) parses it back.
    ///
    /// # Errors
    ///
    /// [`Error::NotExpressibleInHls`] for stochastic rounding and
    /// [`Overflow::Unbounded`](crate::Overflow::Unbounded).
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, QuantSpec, Rounding};
    /// let spec = QuantSpec::new(FixedPoint::new(8, 6)?, Rounding::NearestEven);
    /// let hls = spec.to_hls()?;
    /// assert_eq!(hls, "ap_fixed<8,2,AP_RND_CONV,AP_SAT_SYM,0>");
    /// assert_eq!(QuantSpec::from_hls(&hls)?, spec);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn to_hls(&self) -> Result<String, Error> {
        hls::write(&self.format, self.rounding)
    }

    /// The same spec with stochastic rounding's noise fixed by `seed`: the one place that checks
    /// that a seed goes with a stochastic rounding.
    ///
    /// # Errors
    ///
    /// [`Error::SeedWithoutStochastic`] when the rounding is not stochastic.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{Error, FixedPoint, QuantSpec, Rounding};
    /// let fmt = FixedPoint::new(8, 4)?;
    /// let spec = QuantSpec::new(fmt, Rounding::StochasticFresh).with_seed(3)?;
    /// assert_eq!(spec.rounding(), Rounding::Stochastic { seed: 3 });
    /// let nearest = QuantSpec::new(fmt, Rounding::NearestEven);
    /// assert!(matches!(nearest.with_seed(3), Err(Error::SeedWithoutStochastic { .. })));
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn with_seed(self, seed: u64) -> Result<Self, Error> {
        Ok(self.with_rounding(self.rounding.with_seed(seed)?))
    }

    /// The same format with another rounding.
    #[inline]
    #[must_use]
    pub const fn with_rounding(self, rounding: Rounding) -> Self {
        QuantSpec { rounding, ..self }
    }

    /// The same spec with another format.
    #[inline]
    #[must_use]
    pub const fn with_format(self, format: FixedPoint) -> Self {
        QuantSpec { format, ..self }
    }

    /// The spec for one application: [`Rounding::StochasticFresh`] becomes
    /// [`Rounding::Stochastic`] with a new seed (see [`Rounding::resolve`]); anything else is
    /// returned unchanged. Resolve once when two calls must see the same noise (a forward pass
    /// and its clamp-aware backward pass).
    #[must_use]
    pub fn resolve(self) -> Self {
        self.with_rounding(self.rounding.resolve())
    }

    /// The same spec for a part of a longer tensor that begins at element `start`: element `i`
    /// of a call draws the noise of stream index `start + i` (by default `start` is 0). With a
    /// seeded stochastic rounding, quantizing a tensor part by part, each part with its own
    /// start, gives exactly the result of one call on the whole tensor: this is how files are
    /// quantized in bounded memory. Other roundings ignore it; [`Rounding::StochasticFresh`]
    /// draws new noise per call, so [`resolve`](QuantSpec::resolve) it first.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, QuantSpec, Rounding};
    /// let spec = QuantSpec::new(FixedPoint::new(8, 2)?, Rounding::Stochastic { seed: 9 });
    /// let x: Vec<f32> = (0..1000).map(|i| i as f32 * 0.013).collect();
    /// let whole = spec.quantize(&x);
    /// let mut parts = spec.quantize(&x[..300]);
    /// parts.extend(spec.with_stream_start(300).quantize(&x[300..]));
    /// assert_eq!(parts, whole);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn with_stream_start(self, start: u64) -> Self {
        QuantSpec {
            stream_start: start,
            ..self
        }
    }

    /// The stream index of a call's first element (see
    /// [`with_stream_start`](QuantSpec::with_stream_start)).
    #[inline]
    #[must_use]
    pub const fn stream_start(&self) -> u64 {
        self.stream_start
    }

    /// The format.
    #[inline]
    #[must_use]
    pub const fn format(&self) -> &FixedPoint {
        &self.format
    }

    /// The rounding mode.
    #[inline]
    #[must_use]
    pub const fn rounding(&self) -> Rounding {
        self.rounding
    }
}

impl From<FixedPoint> for QuantSpec {
    /// The format with the default rounding, [`Rounding::NearestEven`].
    fn from(format: FixedPoint) -> Self {
        QuantSpec::new(format, Rounding::default())
    }
}

impl FixedPoint {
    /// This format with a rounding mode: the [`QuantSpec`] that quantizes.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Rounding};
    /// let spec = FixedPoint::new(4, 2)?.with_rounding(Rounding::Floor);
    /// assert_eq!(spec.quantize(&[0.4f32, -0.1]), [0.25, -0.25]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn with_rounding(self, rounding: Rounding) -> QuantSpec {
        QuantSpec::new(self, rounding)
    }
}

impl fmt::Display for QuantSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, rounding {}", self.format, self.rounding)
    }
}

impl FromStr for QuantSpec {
    type Err = Error;

    /// [`QuantSpec::from_hls`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QuantSpec::from_hls(s)
    }
}
