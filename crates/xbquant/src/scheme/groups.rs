//! Fixed point with a fractional length per group: [`FixedPoint::quantize_slices_into`] (given
//! fractional lengths), [`FixedPoint::choose_frac_lengths`] (chosen from the data by a
//! [`FracLengthRule`]), the maxima of groups, and the group jobs the element types run.

use crate::format::exponent;
use crate::scheme::converter::Converter;
use crate::scheme::granularity::layout;
use crate::scheme::grouped::{self, PerBlock};
use crate::{Blocks, Element, Error, FixedPoint, Rounding};

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
pub enum GroupJob<'a, T> {
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
        start: usize,
        x: &'a [T],
        out: &'a mut [T],
        mask: Option<&'a mut [bool]>,
    },
}

impl<T> GroupJob<'_, T> {
    /// Elements of input.
    pub(crate) fn len(&self) -> usize {
        match self {
            GroupJob::Max { x, .. }
            | GroupJob::Quantize { x, .. }
            | GroupJob::Error { x, .. }
            | GroupJob::MaxPart { x, .. }
            | GroupJob::Convert { x, .. } => x.len(),
        }
    }
}

/// Runs a slice job (called from the element types' kernel entry points).
pub(crate) fn run<T: Element>(job: GroupJob<'_, T>) {
    match job {
        GroupJob::Max {
            x,
            inner,
            count,
            top,
        } => *top = grouped::finite_abs_max(x, inner, count),
        GroupJob::MaxPart {
            x,
            start,
            inner,
            count,
            top,
        } => grouped::merge_abs_max_part(x, start, inner, count, top),
        GroupJob::Quantize { job, x, out, mask } => grouped::quantize(&job, x, out, mask),
        GroupJob::Error { job, x, sums } => *sums = squared_errors(&job, x),
        GroupJob::Convert {
            converter,
            ranges,
            inner,
            start,
            x,
            out,
            mask,
        } => converter.run(ranges, inner, start, x, out, mask),
    }
}

fn squared_errors<T: Element>(job: &PerBlock<'_>, x: &[T]) -> Vec<f64> {
    let mut q = vec![T::from_f64(0.0); x.len()];
    grouped::quantize(job, x, &mut q, None);
    grouped::block_sums(x.len(), job.inner, job.count, |i| {
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
    pub(crate) fn layout(&self, n: usize) -> Result<(usize, usize), Error> {
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
        T::run_groups(GroupJob::MaxPart {
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
pub(crate) fn group_maxima<T: Element>(x: &[T], inner: usize, count: usize) -> Vec<f64> {
    let mut top = Vec::new();
    T::run_groups(GroupJob::Max {
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
        Ok(self.choose_fls(x, inner, count, rule))
    }

    /// [`choose_frac_lengths`](Self::choose_frac_lengths) for groups laid out as `(inner,
    /// count)`.
    pub(crate) fn choose_fls<T: Element>(
        &self,
        x: &[T],
        inner: usize,
        count: usize,
        rule: FracLengthRule,
    ) -> Vec<i32> {
        let top = group_maxima(x, inner, count);
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
                T::run_groups(GroupJob::Error {
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
        best
    }
}
