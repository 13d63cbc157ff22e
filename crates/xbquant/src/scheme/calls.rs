//! The per-call API of the types that schemes compose: block floating point
//! ([`BlockFormat::quantize`]), the converter ([`Converter::convert`]) and fixed point with a
//! fractional length per slice ([`FixedPoint::quantize_slices_into`]). Each call builds the
//! type's [`Scheme`] for its arguments and runs it: one engine for all of them.

use crate::scheme::converter::{Converter, ConverterRange};
use crate::scheme::granularity::Granularity;
use crate::scheme::groups::TensorPart;
use crate::scheme::{Scale, Scheme};
use crate::{BlockFormat, Blocks, Data, Element, Error, FixedPoint, Overflow, Quantizer, Rounding};

impl BlockFormat {
    /// The [`Scheme`] of this format with blocks of `granularity` (nearest rounding): fixed
    /// point of the word length, saturating symmetrically, with a shared exponent per block.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBlocks`] for runs of 0 elements.
    pub fn scheme(&self, granularity: Granularity) -> Result<Scheme, Error> {
        let element =
            FixedPoint::new(self.word_length(), 0)?.with_overflow(Overflow::SaturateSymmetric)?;
        Scheme::new(element)
            .with_granularity(granularity)?
            .with_scale(Scale::SharedExponent)
    }
    /// Quantizes `x` into a new vector.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBlocks`] when an [`Blocks::Axis`] shape does not hold `x.len()`
    /// elements, for an axis past the shape, or for a run length of 0.
    pub fn quantize<T: Element>(
        &self,
        x: &[T],
        blocks: &Blocks,
        rounding: Rounding,
    ) -> Result<Vec<T>, Error> {
        let mut out = x.to_vec();
        self.quantize_into(x, &mut out, blocks, rounding)?;
        Ok(out)
    }
    /// [`quantize`](BlockFormat::quantize) into the caller's buffer.
    ///
    /// # Errors
    ///
    /// As [`quantize`](BlockFormat::quantize), and [`Error::LengthMismatch`] when `out`
    /// differs in length from `x`.
    pub fn quantize_into<T: Element>(
        &self,
        x: &[T],
        out: &mut [T],
        blocks: &Blocks,
        rounding: Rounding,
    ) -> Result<(), Error> {
        self.quantize_into_with_mask(x, out, None, blocks, rounding)
    }
    /// [`quantize_into`](BlockFormat::quantize_into), writing into `mask` (when given) which
    /// elements saturated (an infinity, or a value that rounded past the largest code).
    ///
    /// # Errors
    ///
    /// As [`quantize_into`](BlockFormat::quantize_into), and [`Error::LengthMismatch`] when
    /// `mask` differs in length from `x`.
    pub fn quantize_into_with_mask<T: Element>(
        &self,
        x: &[T],
        out: &mut [T],
        mask: Option<&mut [bool]>,
        blocks: &Blocks,
        rounding: Rounding,
    ) -> Result<(), Error> {
        let (granularity, part) = blocks.split(x.len())?;
        let scheme = self.scheme(granularity)?.with_rounding(rounding)?;
        scheme.quantize_part(Data::Into { x, out }, mask, part)
    }
}

impl Converter {
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
        let (granularity, part) = blocks.split(x.len())?;
        let count = granularity.groups(part)?;
        let scheme = self.scheme(granularity, range.clone())?;
        let ranges = match scheme.calibrated_on(x, part)?.scale() {
            Scale::Range(ConverterRange::Fixed(r)) => vec![*r; count],
            Scale::Range(ConverterRange::PerSlice(r)) if r.len() == count => r.clone(),
            _ => {
                return Err(Error::InvalidBlocks(format!(
                    "a list of ranges for {count} slices of another length"
                )))
            }
        };
        // The formula runs in the element type: a range it cannot hold gives NaN or infinities.
        for &r in &ranges {
            crate::element::check_holds::<T>("range", r, true)?;
        }
        Ok(ranges)
    }
    /// The [`Scheme`] of this converter with groups of `granularity` and ranges by `range`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRange`] for a negative or non-finite range, or a percentile outside
    /// `[0, 100]`; [`Error::InvalidBlocks`] for runs of 0 elements.
    pub fn scheme(&self, granularity: Granularity, range: ConverterRange) -> Result<Scheme, Error> {
        Scheme::new(*self.format())
            .with_granularity(granularity)?
            .with_scale(Scale::Range(range))?
            .with_noise(self.noise, self.noise_seed)?
            .with_rounding(self.rounding)
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
        let (granularity, part) = blocks.split(x.len())?;
        let scheme = self.scheme(granularity, range.clone())?;
        scheme.quantize_part(Data::Into { x, out }, mask, part)
    }
}

impl FixedPoint {
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
        let (granularity, _) = part.blocks.split(part.len)?;
        let layout = part.layout(x.len())?;
        if fls.len() != layout.1 {
            return Err(Error::InvalidBlocks(format!(
                "{} fractional lengths for {} slices",
                fls.len(),
                layout.1
            )));
        }
        let scheme = Scheme::new(*self)
            .with_granularity(granularity)?
            .with_scale(Scale::FracLengths(fls.to_vec()))?
            .with_rounding(rounding)?;
        let shape = match part.blocks {
            Blocks::Axis { shape, .. } => shape.clone(),
            _ => vec![part.len],
        };
        let whole = crate::Part::shaped(&shape)?.at(part.start);
        scheme.quantize_part(Data::Into { x, out }, mask, whole)
    }
}
