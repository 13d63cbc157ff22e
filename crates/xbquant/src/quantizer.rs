//! The interface of every quantizer: [`Quantizer`], the [`Data`] of a call and the [`Part`] of
//! a tensor it covers. The bottom layer of the crate's quantizers: fixed point, floating point,
//! grids and schemes all implement or take it, and it depends on none of them.

use crate::{Element, Error};

#[inline]
pub(crate) fn check_len(input: usize, output: usize) -> Result<(), Error> {
    if input == output {
        Ok(())
    } else {
        Err(Error::LengthMismatch { input, output })
    }
}

/// Where a call's data sits in its tensor: the tensor's shape (or only its length, for a flat
/// tensor) and the index of the data's first element. Per-axis and per-run groups follow the
/// tensor's layout, and element `i` of the tensor draws stream index `i` for its noise, so calls
/// on the parts of a tensor give what one call on the whole tensor gives.
///
/// # Examples
///
/// ```
/// use xbquant::Part;
/// let p = Part::shaped(&[2, 3])?.at(4);
/// assert_eq!((p.len(), p.start()), (6, 4));
/// assert!(Part::shaped(&[usize::MAX, 3]).is_err()); // more elements than a usize counts
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'a> {
    len: usize,
    shape: Option<&'a [usize]>,
    start: usize,
}

impl<'a> Part<'a> {
    /// A flat tensor of `len` elements, from its first.
    #[must_use]
    pub const fn flat(len: usize) -> Part<'static> {
        Part {
            len,
            shape: None,
            start: 0,
        }
    }

    /// A tensor of `shape`, from its first element.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBlocks`] when the shape holds more elements than a `usize` counts.
    pub fn shaped(shape: &'a [usize]) -> Result<Part<'a>, Error> {
        let len = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| Error::InvalidBlocks(format!("a shape {shape:?} too large to count")))?;
        Ok(Part {
            len,
            shape: Some(shape),
            start: 0,
        })
    }

    /// The same tensor, the data beginning at its element `start`.
    #[must_use]
    pub const fn at(self, start: usize) -> Self {
        Part { start, ..self }
    }

    /// The tensor's length.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the tensor is empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The index in the tensor of the data's first element.
    #[must_use]
    pub const fn start(&self) -> usize {
        self.start
    }

    /// The tensor's shape (`[len]` for a flat tensor).
    #[must_use]
    pub fn shape(&self) -> Vec<usize> {
        self.shape.map_or_else(|| vec![self.len], <[usize]>::to_vec)
    }

    /// Whether `n` elements from the start are the whole tensor.
    pub(crate) const fn is_whole(&self, n: usize) -> bool {
        self.start == 0 && n == self.len
    }

    /// Checks that `n` elements from the start lie in the tensor.
    pub(crate) fn check(&self, n: usize) -> Result<(), Error> {
        if self.start.checked_add(n).is_none_or(|end| end > self.len) {
            return Err(Error::InvalidBlocks(format!(
                "a part of {n} elements at {} of a tensor of {}",
                self.start, self.len
            )));
        }
        Ok(())
    }
}

/// The data of one call: read from `x` into `out`, or quantized where it lies.
#[derive(Debug)]
pub enum Data<'a, T> {
    /// `x` quantized into `out` (the same length).
    Into {
        /// The input.
        x: &'a [T],
        /// The output.
        out: &'a mut [T],
    },
    /// The buffer quantized in place.
    InPlace(&'a mut [T]),
}

impl<T> Data<'_, T> {
    /// Elements of input.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Data::Into { x, .. } => x.len(),
            Data::InPlace(buf) => buf.len(),
        }
    }

    /// Whether there are no elements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A quantizer: a value checked once when built that quantizes any part of a tensor, writing an
/// optional mask of the elements it clipped (the clamp-aware straight-through gradient's mask).
///
/// Implementors write [`quantize_part`](Quantizer::quantize_part); the conveniences (a new
/// vector, into a buffer, in place, with the mask, one value) are provided on top of it.
///
/// # Examples
///
/// ```
/// use xbquant::{Part, Quantizer, Scheme};
/// let s: Scheme = "fixed<8,4> rounding=nearest".parse()?;
/// assert_eq!(s.quantize(&[0.1f32, 9.0])?, [0.125, 7.9375]);
/// // A tensor in two parts gives what one call gives: element i draws stream index i.
/// let s: Scheme = "fixed<8,4> rounding=stochastic:7".parse()?;
/// let x: Vec<f64> = (0..10).map(|i| f64::from(i) * 0.37).collect();
/// let mut out = vec![0.0; 10];
/// let (a, b) = out.split_at_mut(4);
/// s.quantize_part(xbquant::Data::Into { x: &x[..4], out: a }, None, Part::flat(10))?;
/// s.quantize_part(xbquant::Data::Into { x: &x[4..], out: b }, None, Part::flat(10).at(4))?;
/// assert_eq!(out, s.quantize(&x)?);
/// # Ok::<(), xbquant::Error>(())
/// ```
pub trait Quantizer {
    /// Quantizes `data`, the elements of a tensor laid out as `part` says from `part.start()`,
    /// writing into `mask` (when given, the data's length) which elements were clipped.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when the output or mask differ in length from the input;
    /// [`Error::InvalidBlocks`] for data beyond the part's tensor, or groups the tensor does not
    /// have; the quantizer's own errors (a scale chosen from data given only a part, a value the
    /// element type cannot hold).
    fn quantize_part<T: Element>(
        &self,
        data: Data<'_, T>,
        mask: Option<&mut [bool]>,
        part: Part<'_>,
    ) -> Result<(), Error>;

    /// `x` (a whole flat tensor) quantized into a new vector.
    ///
    /// # Errors
    ///
    /// As [`quantize_part`](Quantizer::quantize_part).
    fn quantize<T: Element>(&self, x: &[T]) -> Result<Vec<T>, Error> {
        let mut out = x.to_vec();
        self.quantize_part(Data::InPlace(&mut out), None, Part::flat(x.len()))?;
        Ok(out)
    }

    /// `x`, a whole tensor of `shape`, quantized into a new vector.
    ///
    /// # Errors
    ///
    /// As [`quantize_part`](Quantizer::quantize_part).
    fn quantize_shaped<T: Element>(&self, x: &[T], shape: &[usize]) -> Result<Vec<T>, Error> {
        let mut out = x.to_vec();
        self.quantize_part(Data::InPlace(&mut out), None, Part::shaped(shape)?)?;
        Ok(out)
    }

    /// `x` (a whole flat tensor) quantized into `out`.
    ///
    /// # Errors
    ///
    /// As [`quantize_part`](Quantizer::quantize_part).
    fn quantize_into<T: Element>(&self, x: &[T], out: &mut [T]) -> Result<(), Error> {
        self.quantize_part(Data::Into { x, out }, None, Part::flat(x.len()))
    }

    /// `x` (a whole flat tensor) quantized in place.
    ///
    /// # Errors
    ///
    /// As [`quantize_part`](Quantizer::quantize_part).
    fn quantize_in_place<T: Element>(&self, x: &mut [T]) -> Result<(), Error> {
        let part = Part::flat(x.len());
        self.quantize_part(Data::InPlace(x), None, part)
    }

    /// `x` (a whole flat tensor) quantized into a new vector, with the mask of clipped elements.
    ///
    /// # Errors
    ///
    /// As [`quantize_part`](Quantizer::quantize_part).
    fn quantize_with_mask<T: Element>(&self, x: &[T]) -> Result<(Vec<T>, Vec<bool>), Error> {
        let mut out = x.to_vec();
        let mut mask = vec![false; x.len()];
        self.quantize_part(
            Data::InPlace(&mut out),
            Some(&mut mask),
            Part::flat(x.len()),
        )?;
        Ok((out, mask))
    }

    /// One value, as element 0 of a tensor of one element.
    ///
    /// # Errors
    ///
    /// As [`quantize_part`](Quantizer::quantize_part).
    fn quantize_value(&self, x: f64) -> Result<f64, Error> {
        let mut v = [x];
        self.quantize_part(Data::InPlace(&mut v), None, Part::flat(1))?;
        Ok(v[0])
    }
}

/// Checks the lengths of a call: output and mask against the input, the data against its part.
pub(crate) fn check_call<T>(
    data: &Data<'_, T>,
    mask: Option<&[bool]>,
    part: Part<'_>,
) -> Result<(), Error> {
    if let Data::Into { x, out } = data {
        check_len(x.len(), out.len())?;
    }
    if let Some(m) = mask {
        check_len(data.len(), m.len())?;
    }
    part.check(data.len())
}
