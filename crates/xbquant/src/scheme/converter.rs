//! The ADC/DAC model, [`Converter`]: fixed point of a real range per group (abs-max, given, or a
//! percentile), with optional noise. A converter is the [`Scheme`] of its format with a
//! [`Scale::Range`]; this module holds its engine and its per-call API.

use crate::random::{counter, mix64, stream_key, uniform};
use crate::scheme::grouped;
use crate::{Element, Error, FixedPoint, Overflow, QuantSpec, Rounding};

/// The full-scale range of a [`Converter`].
#[derive(Debug, Clone, PartialEq)]
pub enum ConverterRange {
    /// One range for every element.
    Fixed(f64),
    /// The largest finite magnitude of each slice (XBTorch's and aihwkit's abs-max).
    AbsMax,
    /// A range per slice.
    PerSlice(Vec<f64>),
    /// The `p`-th percentile (0 to 100) of each group's finite magnitudes, interpolated
    /// linearly between order statistics as `numpy.percentile` does by default: a range that
    /// lets the largest outliers clip. `Percentile(100.0)` is [`AbsMax`](ConverterRange::AbsMax).
    Percentile(f64),
}

/// Noise added by a [`Converter`] before it quantizes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ConverterNoise {
    /// None.
    #[default]
    None,
    /// Gaussian, with this standard deviation in units of the range.
    Gaussian(f64),
    /// Uniform on `[-h, h]`, `h` in units of the range.
    Uniform(f64),
}

/// An ADC or DAC model: `bits` of resolution over a full-scale range `r` (per tensor or per
/// slice), as XBTorch's `SimpleFixedPoint` and aihwkit's `IOParameters` model them. An element
/// `x` of a slice with range `r` becomes
///
/// `y = r * Q(x / r + n)`
///
/// where `Q` is the signed fixed point of `bits` bits and `bits - 1` fractional bits, saturating
/// symmetrically (levels `k / 2^(bits-1)` for `|k| <= 2^(bits-1) - 1`), with any rounding, and
/// `n` the optional noise, drawn from the `(seed, index)` counter generator: the same on any
/// number of threads. `x / r` and `r * Q` are rounded to the element type, as the float
/// arithmetic of XBTorch's formula does (a given range is rounded to the element type too), so that with nearest rounding and no noise the result
/// equals XBTorch's bit for bit. A slice whose range is 0 gives zeros (not NaN); NaN stays NaN.
///
/// # Examples
///
/// ```
/// use xbquant::{Blocks, Converter, ConverterRange, Rounding};
/// let adc = Converter::new(3)?.with_rounding(Rounding::NearestEven); // levels k/4, |k| <= 3
/// let y = adc.convert(&[0.5f32, -2.0, 1.2, 0.0], &Blocks::Whole, &ConverterRange::AbsMax)?;
/// assert_eq!(y, [0.5, -1.5, 1.0, 0.0]); // range 2: steps of 0.5
/// let zeros = adc.convert(&[0.0f32; 3], &Blocks::Whole, &ConverterRange::AbsMax)?;
/// assert_eq!(zeros, [0.0; 3]);
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Converter {
    format: FixedPoint,
    pub(crate) rounding: Rounding,
    pub(crate) noise: ConverterNoise,
    pub(crate) noise_seed: Option<u64>,
}

/// The ranges of a stretch of elements: one for all, or one each.
enum Ranges<'a> {
    One(f64),
    Each(&'a [f64]),
}

/// Keeps the noise stream apart from the rounding stream of the same seed.
const NOISE_SALT: u64 = 0xD1B5_4A32_D192_ED03;

impl Converter {
    /// A converter of `bits` bits (2 to 64), nearest rounding, no noise.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWordLength`] for fewer than 2 bits or more than 64.
    pub fn new(bits: u32) -> Result<Self, Error> {
        if bits < 2 {
            return Err(Error::InvalidWordLength {
                word_length: bits,
                min: 2,
            });
        }
        let bits_i = i32::try_from(bits).unwrap_or(64);
        let format =
            FixedPoint::new(bits, bits_i - 1)?.with_overflow(Overflow::SaturateSymmetric)?;
        Ok(Converter {
            format,
            rounding: Rounding::NearestEven,
            noise: ConverterNoise::None,
            noise_seed: None,
        })
    }

    /// Scaled fixed point: `r * Q(x / r)` with `Q` any fixed-point format (any word, fractional
    /// length and overflow mode) and the ranges of [`ConverterRange`] as the scales (abs-max,
    /// given, per slice). [`Converter::new`] is the format of `bits` bits and `bits - 1`
    /// fractional bits, saturating symmetrically.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{Blocks, Converter, ConverterRange, FixedPoint, Overflow};
    /// // Unsigned 4-bit codes of a scale per row: each row's largest value maps to 15/16.
    /// let q = FixedPoint::new(4, 4)?.with_signed(false)?.with_overflow(Overflow::Saturate)?;
    /// let rows = Blocks::Axis { shape: vec![2, 2], axis: 0 };
    /// let y = Converter::from_format(q).convert(&[0.5f32, 1.0, 3.0, 6.0], &rows, &ConverterRange::AbsMax)?;
    /// assert_eq!(y, [0.5, 0.9375, 3.0, 5.625]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn from_format(format: FixedPoint) -> Self {
        Converter {
            format,
            rounding: Rounding::NearestEven,
            noise: ConverterNoise::None,
            noise_seed: None,
        }
    }

    /// The rounding of the conversion.
    #[must_use]
    pub const fn with_rounding(mut self, rounding: Rounding) -> Self {
        self.rounding = rounding;
        self
    }

    /// Noise added before quantization. With a seed, the noise of element `i` is the `i`-th
    /// draw of that seed's stream (a stream apart from stochastic rounding's); without one, each
    /// call draws a fresh seed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidNoise`] for a negative or non-finite width.
    pub fn with_noise(mut self, noise: ConverterNoise, seed: Option<u64>) -> Result<Self, Error> {
        let width = match noise {
            ConverterNoise::None => 0.0,
            ConverterNoise::Gaussian(w) | ConverterNoise::Uniform(w) => w,
        };
        if !(width >= 0.0 && width.is_finite()) {
            return Err(Error::InvalidNoise(width.to_string()));
        }
        self.noise = noise;
        self.noise_seed = seed;
        Ok(self)
    }

    /// The same converter with its noise fixed: stochastic rounding without a seed and noise
    /// without a seed get fresh seeds, so that two calls of the result see the same noise (a
    /// forward pass and its clamp-aware backward pass).
    #[must_use]
    pub fn resolve(self) -> Self {
        Converter {
            rounding: self.rounding.resolve(),
            noise_seed: match (self.noise, self.noise_seed) {
                (ConverterNoise::None, _) => None,
                (_, Some(seed)) => Some(seed),
                (_, None) => Some(crate::rounding::fresh_seed()),
            },
            ..self
        }
    }

    /// The bits of resolution.
    #[must_use]
    pub const fn bits(&self) -> u32 {
        self.format.word_length()
    }

    /// The fixed-point format `Q` of `x / r`.
    #[must_use]
    pub const fn format(&self) -> &FixedPoint {
        &self.format
    }

    /// The noise of stream index `i`, in units of the range.
    #[inline]
    fn noise_at(&self, key: u64, i: u64) -> f64 {
        match self.noise {
            ConverterNoise::None => 0.0,
            ConverterNoise::Uniform(h) => h * (2.0 * uniform(counter(key, i)) - 1.0),
            ConverterNoise::Gaussian(s) => s * crate::random::noise::gaussian(key, i),
        }
    }

    pub(crate) fn run<T: Element>(
        &self,
        ranges: &[f64],
        inner: usize,
        start: usize,
        x: &[T],
        out: &mut [T],
        mask: Option<&mut [bool]>,
    ) {
        // The ranges in the element type, as the formula's float arithmetic has them.
        let ranges: Vec<f64> = ranges.iter().map(|&r| T::from_f64(r).to_f64()).collect();
        let ranges = ranges.as_slice();
        let count = ranges.len().max(1);
        let key = self
            .noise_seed
            .map_or(0, |seed| mix64(stream_key(seed) ^ NOISE_SALT));
        let spec = QuantSpec::new(self.format, self.rounding);
        // Short runs: the range of every position of one period, so that the loops below run
        // over contiguous stretches with a range each, not a division per element.
        let period = inner.saturating_mul(count);
        let table: Option<Vec<f64>> = (inner < grouped::SHORT && period <= grouped::MAX_PERIOD)
            .then(|| (0..period).map(|p| ranges[(p / inner) % count]).collect());
        // Calls `f(i, n, r)` for stretches of `len` elements from tensor index `offset`, `r` the
        // ranges of the stretch: one value, or one per element.
        let stretches =
            |offset: usize, len: usize, f: &mut dyn FnMut(usize, usize, Ranges<'_>)| match &table {
                Some(t) => grouped::for_period(offset % period, period, len, |i, p, n| {
                    f(i, n, Ranges::Each(&t[p..p + n]));
                }),
                None => grouped::for_runs(offset, inner, count, len, |i, b, n| {
                    f(i, n, Ranges::One(ranges[b]));
                }),
            };
        let noisy = self.noise_seed.is_some();
        let piece =
            |offset: usize, xs: &[T], os: &mut [T], ms: Option<&mut [bool]>, buf: &mut Vec<f64>| {
                let offset = start + offset;
                buf.clear();
                buf.resize(xs.len(), 0.0);
                // x / r, rounded to the element type (0 where the range is 0).
                stretches(offset, xs.len(), &mut |i, n, r| {
                    let (b, v) = (&mut buf[i..i + n], &xs[i..i + n]);
                    match r {
                        Ranges::One(0.0) => b.fill(0.0),
                        Ranges::One(r) => {
                            for (s, v) in b.iter_mut().zip(v) {
                                *s = T::from_f64(v.to_f64() / r).to_f64();
                            }
                        }
                        Ranges::Each(rs) => {
                            for ((s, v), r) in b.iter_mut().zip(v).zip(rs) {
                                let t = T::from_f64(v.to_f64() / r).to_f64();
                                *s = if *r == 0.0 { 0.0 } else { t };
                            }
                        }
                    }
                });
                if noisy {
                    for (j, s) in buf.iter_mut().enumerate() {
                        *s += self.noise_at(key, (offset + j) as u64);
                    }
                }
                let spec = spec.with_stream_start(offset as u64);
                match ms {
                    None => spec.quantize_in_place(buf.as_mut_slice()),
                    Some(ms) => {
                        let _ = spec.quantize_in_place_with_mask(buf.as_mut_slice(), ms);
                    }
                }
                // r * Q, rounded to the element type; a zero range gives zeros (NaN stays NaN).
                let zero = |v: &T| T::from_f64(if v.to_f64().is_nan() { f64::NAN } else { 0.0 });
                stretches(offset, xs.len(), &mut |i, n, r| {
                    let (o, q, v) = (&mut os[i..i + n], &buf[i..i + n], &xs[i..i + n]);
                    match r {
                        Ranges::One(0.0) => {
                            for (o, v) in o.iter_mut().zip(v) {
                                *o = zero(v);
                            }
                        }
                        Ranges::One(r) => {
                            for (o, q) in o.iter_mut().zip(q) {
                                *o = T::from_f64(r * q);
                            }
                        }
                        Ranges::Each(rs) => {
                            for (((o, q), v), r) in o.iter_mut().zip(q).zip(v).zip(rs) {
                                *o = if *r == 0.0 {
                                    zero(v)
                                } else {
                                    T::from_f64(r * q)
                                };
                            }
                        }
                    }
                });
            };
        grouped::in_pieces(x, out, mask, piece);
    }
}
