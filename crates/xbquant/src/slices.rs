//! Fixed point with a scale per slice: [`FixedPoint::quantize_slices_into`] (a fractional
//! length per slice), [`FixedPoint::choose_frac_lengths`] (picked from the data) and
//! [`Converter`], the ADC/DAC model (an abs-max or given range per slice, optional noise).
//!
//! Slices are [`Blocks`]: the whole tensor, the indices of one axis (per output channel, per
//! crossbar column) or runs of a fixed length.

use crate::block::{exponent, layout};
use crate::blockwise::{self, PerBlock};
use crate::quantize::check_len;
use crate::random::{counter, mix64, stream_key, uniform};
use crate::{Blocks, Element, Error, FixedPoint, Overflow, QuantSpec, Rounding};

/// How [`FixedPoint::choose_frac_lengths`] picks a slice's fractional length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FracLengthRule {
    /// The largest fractional length whose range holds the slice's largest finite magnitude
    /// (a power-of-two scale, as QKeras' `auto_po2` and Brevitas' power-of-two abs-max).
    #[default]
    Max,
    /// Of the [`Max`](FracLengthRule::Max) choice and the four finer ones (which clip the
    /// largest values to gain resolution), the one with the least squared error under nearest
    /// rounding: the highest signal-to-quantization-noise ratio. Ties go to the coarser step.
    Sqnr,
}

/// The work a slice job does, run by the kernels compiled in this crate.
pub enum SliceJob<'a, T> {
    /// The largest finite magnitude of each block.
    Max {
        x: &'a [T],
        inner: usize,
        count: usize,
        top: &'a mut Vec<f64>,
    },
    /// Quantization with a fractional length per block.
    Quantize {
        job: PerBlock<'a>,
        x: &'a [T],
        out: &'a mut [T],
        mask: Option<&'a mut [bool]>,
    },
    /// Each block's sum of squared errors of the quantization `job` (nearest rounding).
    Error {
        job: PerBlock<'a>,
        x: &'a [T],
        sums: &'a mut Vec<f64>,
    },
    /// The largest finite magnitude of each block of a part, merged into `top`.
    MaxPart {
        x: &'a [T],
        start: usize,
        inner: usize,
        count: usize,
        top: &'a mut [f64],
    },
    /// An ADC/DAC conversion.
    Convert {
        converter: &'a Converter,
        ranges: &'a [f64],
        inner: usize,
        x: &'a [T],
        out: &'a mut [T],
        mask: Option<&'a mut [bool]>,
    },
}

impl<T> SliceJob<'_, T> {
    /// Elements of input.
    pub(crate) fn len(&self) -> usize {
        match self {
            SliceJob::Max { x, .. }
            | SliceJob::Quantize { x, .. }
            | SliceJob::Error { x, .. }
            | SliceJob::MaxPart { x, .. }
            | SliceJob::Convert { x, .. } => x.len(),
        }
    }
}

/// Runs a slice job (called from the element types' kernel entry points).
pub(crate) fn run<T: Element>(job: SliceJob<'_, T>) {
    match job {
        SliceJob::Max {
            x,
            inner,
            count,
            top,
        } => *top = blockwise::finite_abs_max(x, inner, count),
        SliceJob::MaxPart {
            x,
            start,
            inner,
            count,
            top,
        } => blockwise::merge_abs_max_part(x, start, inner, count, top),
        SliceJob::Quantize { job, x, out, mask } => blockwise::quantize(&job, x, out, mask),
        SliceJob::Error { job, x, sums } => *sums = squared_errors(&job, x),
        SliceJob::Convert {
            converter,
            ranges,
            inner,
            x,
            out,
            mask,
        } => converter.run(ranges, inner, x, out, mask),
    }
}

fn squared_errors<T: Element>(job: &PerBlock<'_>, x: &[T]) -> Vec<f64> {
    let mut q = vec![T::from_f64(0.0); x.len()];
    blockwise::quantize(job, x, &mut q, None);
    blockwise::block_sums(x.len(), job.inner, job.count, |i| {
        let d = q[i].to_f64() - x[i].to_f64();
        if d.is_finite() {
            d * d
        } else {
            0.0
        }
    })
}

/// A part of a tensor, for going through a tensor part by part (a file in bounded memory): the
/// tensor's slices and length, and the tensor index of the part's first element. Calls on the
/// parts, each with its own `start`, give exactly what one call on the whole tensor gives
/// (stochastic rounding included: element `i` of the tensor draws stream index `i`).
///
/// # Examples
///
/// ```
/// use xbquant::{Blocks, FixedPoint, Rounding, TensorPart};
/// let w: Vec<f32> = (0..12).map(|i| i as f32 * 0.37 - 2.0).collect(); // 3 x 4
/// let cols = Blocks::Axis { shape: vec![3, 4], axis: 1 };
/// let f = FixedPoint::new(6, 0)?;
/// // The slices' maxima, part by part, then the fractional lengths they give.
/// let mut top = vec![0.0; 4];
/// for (k, part) in w.chunks(5).enumerate() {
///     TensorPart { blocks: &cols, len: 12, start: 5 * k }.merge_slice_maxima(part, &mut top)?;
/// }
/// let fls: Vec<i32> = top.iter().map(|&m| f.frac_length_for(m)).collect();
/// let mut whole = vec![0f32; 12];
/// f.quantize_slices_into(&w, &mut whole, None, &cols, &fls, Rounding::NearestEven)?;
/// let mut parts = vec![0f32; 12];
/// for (k, (x, out)) in w.chunks(5).zip(parts.chunks_mut(5)).enumerate() {
///     let part = TensorPart { blocks: &cols, len: 12, start: 5 * k };
///     f.quantize_slices_part_into(x, out, None, part, &fls, Rounding::NearestEven)?;
/// }
/// assert_eq!(parts, whole);
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TensorPart<'a> {
    /// The slices of the whole tensor.
    pub blocks: &'a Blocks,
    /// The whole tensor's length.
    pub len: usize,
    /// The tensor index of the part's first element.
    pub start: usize,
}

impl TensorPart<'_> {
    /// `(inner, count)` of the tensor, after checking that a part of `n` elements fits.
    fn layout(&self, n: usize) -> Result<(usize, usize), Error> {
        let (inner, count) = layout(self.len, self.blocks)?;
        if self.start.checked_add(n).is_none_or(|end| end > self.len) {
            return Err(Error::InvalidBlocks(format!(
                "a part of {n} elements at {} of a tensor of {}",
                self.start, self.len
            )));
        }
        Ok((inner, count))
    }

    /// Merges into `top` (one entry per slice, 0 to begin with) the largest finite magnitude of
    /// each slice's elements in `x`, this part's data.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBlocks`] for a bad layout, a part beyond the tensor, or a `top` that has
    /// not one entry per slice.
    pub fn merge_slice_maxima<T: Element>(&self, x: &[T], top: &mut [f64]) -> Result<(), Error> {
        let (inner, count) = self.layout(x.len())?;
        if top.len() != count {
            return Err(Error::InvalidBlocks(format!(
                "{} maxima for {count} slices",
                top.len()
            )));
        }
        T::run_slices(SliceJob::MaxPart {
            x,
            start: self.start,
            inner,
            count,
            top,
        });
        Ok(())
    }
}

/// The largest finite magnitude of each slice.
pub(crate) fn slice_max<T: Element>(x: &[T], inner: usize, count: usize) -> Vec<f64> {
    let mut top = Vec::new();
    T::run_slices(SliceJob::Max {
        x,
        inner,
        count,
        top: &mut top,
    });
    top
}

impl FixedPoint {
    /// The largest fractional length whose range holds `max` (a finite magnitude): the `fl`
    /// that [`FracLengthRule::Max`] picks for a slice whose largest magnitude is `max`. For 0,
    /// the `fl` whose largest value is just under 1 (any would do: zeros stay zeros). Clamped
    /// to the fractional lengths a format of this word length takes.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::FixedPoint;
    /// let f = FixedPoint::new(8, 0)?; // codes up to 127
    /// assert_eq!(f.frac_length_for(1.0), 6); // 64/64; fl 7 would give at most 127/128
    /// assert_eq!(f.frac_length_for(127.0), 0);
    /// assert_eq!(f.frac_length_for(127.5), -1); // 128 > 127: one step of 2
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn frac_length_for(&self, max: f64) -> i32 {
        self.frac_length_within(max, f64::MAX)
    }

    /// [`frac_length_for`](Self::frac_length_for) for data of an element type whose largest
    /// value is `limit` ([`Element::MAX`]): never an `fl` whose largest value exceeds `limit`,
    /// so that no quantized value is infinite in that type. Where holding `max` would need one,
    /// the coarsest `fl` within `limit` is chosen, and `max` overflows the word (and saturates,
    /// in the saturating modes).
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{Element, FixedPoint};
    /// use xbquant::half::f16;
    /// let f = FixedPoint::new(4, 0)?; // codes up to 7
    /// // Holding 65504 takes a step of 2^14, whose 7 steps exceed float16's largest value;
    /// // a step of 2^13 gives at most 57344.
    /// assert_eq!(f.frac_length_for(65504.0), -14);
    /// assert_eq!(f.frac_length_within(65504.0, <f16 as Element>::MAX), -13);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn frac_length_within(&self, max: f64, limit: f64) -> i32 {
        let wl = i32::try_from(self.word_length()).unwrap_or(64);
        let (lo, hi) = (wl - 1023, crate::MAX_FRAC_LENGTH);
        let (_, code_max) = self.code_range();
        // code_max + 1 = 2^p.
        let p = if self.is_signed() { wl - 1 } else { wl };
        let max = max.abs();
        #[allow(clippy::cast_precision_loss)]
        let top = code_max as f64;
        let fl = if max == 0.0 || !max.is_finite() {
            (p - 1).clamp(lo, hi)
        } else {
            // max * 2^fl < 2^(e + 1 + fl) = 2^p at fl = p - 1 - e; it fits unless it lies
            // above code_max (then one step coarser).
            let fl = (p - 1 - exponent(max)).clamp(lo, hi);
            if max * crate::format::pow2(i64::from(fl)) <= top {
                fl
            } else {
                (fl - 1).max(lo)
            }
        };
        if !(limit.is_finite() && limit > 0.0) || top == 0.0 {
            return fl;
        }
        // The coarsest fl whose largest value, top * 2^-fl, is at most limit: from the exponent
        // of limit / top, one finer where that quotient rounded up past a power of two.
        let mut least = -exponent(limit / top);
        if top * crate::format::pow2(-i64::from(least)) > limit {
            least += 1;
        }
        fl.max(least).min(hi)
    }

    /// A fractional length per slice of `x`, by `rule`, for this format's word length,
    /// signedness and overflow mode.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBlocks`] as for [`BlockFormat::quantize`](crate::BlockFormat::quantize).
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{Blocks, FixedPoint, FracLengthRule};
    /// let f = FixedPoint::new(8, 0)?;
    /// let w = [0.5f32, -0.25, 3.0, 1.0]; // two rows of two
    /// let rows = Blocks::Axis { shape: vec![2, 2], axis: 0 };
    /// assert_eq!(f.choose_frac_lengths(&w, &rows, FracLengthRule::Max)?, [7, 5]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn choose_frac_lengths<T: Element>(
        &self,
        x: &[T],
        blocks: &Blocks,
        rule: FracLengthRule,
    ) -> Result<Vec<i32>, Error> {
        let (inner, count) = layout(x.len(), blocks)?;
        let top = slice_max(x, inner, count);
        let coarsest: Vec<i32> = top
            .iter()
            .map(|&t| self.frac_length_within(t, T::MAX))
            .collect();
        let mut best = coarsest.clone();
        if rule == FracLengthRule::Sqnr {
            let mut least = vec![f64::INFINITY; count];
            for finer in 0..=4 {
                let fls: Vec<i32> = coarsest
                    .iter()
                    .map(|&c| (c + finer).min(crate::MAX_FRAC_LENGTH))
                    .collect();
                let job = PerBlock {
                    inner,
                    count,
                    base: *self,
                    fls: &fls,
                    rounding: Rounding::NearestEven,
                    start: 0,
                };
                let mut sums = Vec::new();
                T::run_slices(SliceJob::Error {
                    job,
                    x,
                    sums: &mut sums,
                });
                for b in 0..count {
                    if sums[b] < least[b] {
                        least[b] = sums[b];
                        best[b] = fls[b];
                    }
                }
            }
        }
        Ok(best)
    }

    /// Quantizes `x` into `out` with fractional length `fls[b]` for the elements of slice `b`
    /// (this format's word length, signedness and overflow; its own fractional length is not
    /// used), writing the overflow mask into `mask` when given. Element `i` draws the noise of
    /// stream index `i`. The same as quantizing each slice alone with its format.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBlocks`] for a bad layout or when `fls` has not one entry per slice;
    /// [`Error::FracLengthOutOfRange`] for a fractional length no format of this word length
    /// takes; [`Error::LengthMismatch`] when `out` or `mask` differ in length from `x`.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{Blocks, FixedPoint, Rounding};
    /// let f = FixedPoint::new(4, 0)?;
    /// let w = [0.3f32, -0.6, 3.3, 1.2]; // rows: steps 1/4 and 1
    /// let mut q = [0f32; 4];
    /// let rows = Blocks::Axis { shape: vec![2, 2], axis: 0 };
    /// f.quantize_slices_into(&w, &mut q, None, &rows, &[2, 0], Rounding::NearestEven)?;
    /// assert_eq!(q, [0.25, -0.5, 3.0, 1.0]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn quantize_slices_into<T: Element>(
        &self,
        x: &[T],
        out: &mut [T],
        mask: Option<&mut [bool]>,
        blocks: &Blocks,
        fls: &[i32],
        rounding: Rounding,
    ) -> Result<(), Error> {
        let part = TensorPart {
            blocks,
            len: x.len(),
            start: 0,
        };
        self.quantize_slices_part_into(x, out, mask, part, fls, rounding)
    }

    /// [`quantize_slices_into`](FixedPoint::quantize_slices_into) on a part of a tensor (see
    /// [`TensorPart`]). Resolve a [`Rounding::StochasticFresh`] once for all parts.
    ///
    /// # Errors
    ///
    /// As [`quantize_slices_into`](FixedPoint::quantize_slices_into), and
    /// [`Error::InvalidBlocks`] for a part beyond the tensor.
    pub fn quantize_slices_part_into<T: Element>(
        &self,
        x: &[T],
        out: &mut [T],
        mask: Option<&mut [bool]>,
        part: TensorPart<'_>,
        fls: &[i32],
        rounding: Rounding,
    ) -> Result<(), Error> {
        check_len(x.len(), out.len())?;
        if let Some(m) = &mask {
            check_len(x.len(), m.len())?;
        }
        let (inner, count) = part.layout(x.len())?;
        if fls.len() != count {
            return Err(Error::InvalidBlocks(format!(
                "{} fractional lengths for {count} slices",
                fls.len()
            )));
        }
        for &fl in fls {
            self.with_frac_length(fl)?;
        }
        let job = PerBlock {
            inner,
            count,
            base: *self,
            fls,
            rounding: rounding.resolve(),
            start: part.start,
        };
        T::run_slices(SliceJob::Quantize { job, x, out, mask });
        Ok(())
    }
}

/// The full-scale range of a [`Converter`].
#[derive(Debug, Clone, PartialEq)]
pub enum ConverterRange {
    /// One range for every element.
    Fixed(f64),
    /// The largest finite magnitude of each slice (XBTorch's and aihwkit's abs-max).
    AbsMax,
    /// A range per slice.
    PerSlice(Vec<f64>),
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
    rounding: Rounding,
    noise: ConverterNoise,
    noise_seed: Option<u64>,
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

    /// The ranges of the slices of `x`: given, or their largest finite magnitudes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBlocks`] for a bad layout or a per-slice list of the wrong length;
    /// [`Error::InvalidRange`] for a negative or non-finite range;
    /// [`Error::NotRepresentable`] for a range that `T` cannot hold (infinite, or a nonzero
    /// range that rounds to 0, in `T`).
    pub fn ranges<T: Element>(
        &self,
        x: &[T],
        blocks: &Blocks,
        range: &ConverterRange,
    ) -> Result<Vec<f64>, Error> {
        let (inner, count) = layout(x.len(), blocks)?;
        let ranges = match range {
            ConverterRange::Fixed(r) => vec![*r; count],
            ConverterRange::AbsMax => slice_max(x, inner, count),
            ConverterRange::PerSlice(r) if r.len() == count => r.clone(),
            ConverterRange::PerSlice(r) => {
                return Err(Error::InvalidBlocks(format!(
                    "{} ranges for {count} slices",
                    r.len()
                )))
            }
        };
        if let Some(&bad) = ranges.iter().find(|r| !(**r >= 0.0 && r.is_finite())) {
            return Err(Error::InvalidRange(bad.to_string()));
        }
        // The formula runs in the element type: a range it cannot hold gives NaN or infinities.
        for &r in &ranges {
            crate::element::check_holds::<T>("range", r, true)?;
        }
        Ok(ranges)
    }

    /// Converts `x` into a new vector.
    ///
    /// # Errors
    ///
    /// As [`ranges`](Converter::ranges).
    pub fn convert<T: Element>(
        &self,
        x: &[T],
        blocks: &Blocks,
        range: &ConverterRange,
    ) -> Result<Vec<T>, Error> {
        let mut out = vec![T::from_f64(0.0); x.len()];
        self.convert_into(x, &mut out, None, blocks, range)?;
        Ok(out)
    }

    /// Converts `x` into `out`, writing into `mask` (when given) which elements saturated: the
    /// clamp-aware straight-through gradient's mask.
    ///
    /// # Errors
    ///
    /// As [`ranges`](Converter::ranges), and [`Error::LengthMismatch`] when `out` or `mask`
    /// differ in length from `x`.
    pub fn convert_into<T: Element>(
        &self,
        x: &[T],
        out: &mut [T],
        mask: Option<&mut [bool]>,
        blocks: &Blocks,
        range: &ConverterRange,
    ) -> Result<(), Error> {
        check_len(x.len(), out.len())?;
        if let Some(m) = &mask {
            check_len(x.len(), m.len())?;
        }
        let ranges = self.ranges(x, blocks, range)?;
        let (inner, count) = layout(x.len(), blocks)?;
        let inner = if count == 1 { x.len().max(1) } else { inner };
        let resolved = self.resolve();
        T::run_slices(SliceJob::Convert {
            converter: &resolved,
            ranges: &ranges,
            inner,
            x,
            out,
            mask,
        });
        Ok(())
    }

    /// The noise of stream index `i`, in units of the range.
    #[inline]
    fn noise_at(&self, key: u64, i: u64) -> f64 {
        match self.noise {
            ConverterNoise::None => 0.0,
            ConverterNoise::Uniform(h) => h * (2.0 * uniform(counter(key, i)) - 1.0),
            ConverterNoise::Gaussian(s) => {
                // Box-Muller on draws 2i and 2i + 1; 1 - u lies in (0, 1].
                let u1 = 1.0 - uniform(counter(key, i.wrapping_mul(2)));
                let u2 = uniform(counter(key, i.wrapping_mul(2).wrapping_add(1)));
                s * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            }
        }
    }

    fn run<T: Element>(
        &self,
        ranges: &[f64],
        inner: usize,
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
        let table: Option<Vec<f64>> = (inner < blockwise::SHORT && period <= blockwise::MAX_PERIOD)
            .then(|| (0..period).map(|p| ranges[(p / inner) % count]).collect());
        // Calls `f(i, n, r)` for stretches of `len` elements from tensor index `offset`, `r` the
        // ranges of the stretch: one value, or one per element.
        let stretches =
            |offset: usize, len: usize, f: &mut dyn FnMut(usize, usize, Ranges<'_>)| match &table {
                Some(t) => blockwise::for_period(offset % period, period, len, |i, p, n| {
                    f(i, n, Ranges::Each(&t[p..p + n]));
                }),
                None => blockwise::for_runs(offset, inner, count, len, |i, b, n| {
                    f(i, n, Ranges::One(ranges[b]));
                }),
            };
        let noisy = self.noise_seed.is_some();
        let piece =
            |offset: usize, xs: &[T], os: &mut [T], ms: Option<&mut [bool]>, buf: &mut Vec<f64>| {
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
        blockwise::in_pieces(x, out, mask, piece);
    }
}
