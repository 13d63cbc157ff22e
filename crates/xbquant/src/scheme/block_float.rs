//! Block floating point: [`BlockFormat`], a power-of-two scale shared by each block of values
//! (the whole tensor, the slices along an axis, or runs of a fixed length), each value a
//! fixed-point code of its block's scale.

use crate::format::exponent;
use crate::{Error, FixedPoint, Overflow};

/// Block floating point of `word_length` bits: a block shares the exponent `e` of its largest
/// finite magnitude, and each value becomes a signed code of `word_length` bits with step
/// `2^(e + 2 - word_length)`, so that the largest magnitude keeps its leading bit; codes
/// saturate symmetrically at `+-(2^(word_length - 1) - 1)`. QPyTorch's `BlockFloatingPoint`,
/// rounded exactly (QPyTorch rounds ties away from zero after adding `6 * 2^e` in `f32`, which
/// can round twice).
///
/// A block of zeros stays zero; NaN stays NaN and infinities saturate (a block's exponent comes
/// from its finite values, and is 0 when it has none). Rounding is any mode of [`Rounding`](crate::Rounding); stochastic rounding draws the
/// noise of each element's index in the whole tensor, so the result never depends on the blocks'
/// order or the thread count.
///
/// # Examples
///
/// ```
/// use xbquant::{BlockFormat, Blocks, Rounding};
/// let b = BlockFormat::new(4)?;
/// // The largest magnitude, 5, has exponent 2: steps of 2^(2 + 2 - 4) = 1.
/// let q = b.quantize(&[0.3f32, 5.0, -2.6], &Blocks::Whole, Rounding::NearestEven)?;
/// assert_eq!(q, [0.0, 5.0, -3.0]);
/// // Two rows, one block each: the second row has steps of 2^-5.
/// let rows = Blocks::Axis { shape: vec![2, 2], axis: 0 };
/// let q = b.quantize(&[0.3f32, 5.0, 0.1, 0.2], &rows, Rounding::NearestEven)?;
/// assert_eq!(q, [0.0, 5.0, 0.09375, 0.1875]);
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockFormat {
    word_length: u32,
}

impl BlockFormat {
    /// A block format of `word_length` bits.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWordLength`] unless `word_length` is 2 to 64.
    pub fn new(word_length: u32) -> Result<Self, Error> {
        if !(2..=crate::MAX_WORD_LENGTH).contains(&word_length) {
            return Err(Error::InvalidWordLength {
                word_length,
                min: 2,
            });
        }
        Ok(BlockFormat { word_length })
    }

    /// The word length.
    #[must_use]
    pub const fn word_length(&self) -> u32 {
        self.word_length
    }

    /// The fixed-point format of a block whose largest finite magnitude is `max`: quantizing
    /// the block with it (and any rounding) is quantizing it as this block format. For code that
    /// finds the maximum itself, such as a pass over a file.
    ///
    /// # Errors
    ///
    /// [`Error::FracLengthOutOfRange`] for a magnitude so far from 1 that no fixed-point format
    /// has its step (beyond about `2^-1000` or `2^1000`).
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::BlockFormat;
    /// let f = BlockFormat::new(8)?.format_for(5.0)?; // exponent 2: step 2^(2 + 2 - 8)
    /// assert_eq!((f.word_length(), f.frac_length()), (8, 4));
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn format_for(&self, max: f64) -> Result<FixedPoint, Error> {
        self.block_format(exponent(max.abs()))
    }

    /// The fixed-point format of a block whose largest magnitude has exponent `e`.
    fn block_format(&self, e: i32) -> Result<FixedPoint, Error> {
        let fl = shared_frac_length(self.word_length, e);
        FixedPoint::new(self.word_length, fl)?.with_overflow(Overflow::SaturateSymmetric)
    }
}

/// The fractional length of a shared exponent: a signed word of `word_length` bits whose group's
/// largest magnitude has exponent `e` keeps that magnitude's leading bit in its top magnitude
/// bit.
pub(crate) fn shared_frac_length(word_length: u32, e: i32) -> i32 {
    i32::try_from(word_length).unwrap_or(64) - 2 - e
}
