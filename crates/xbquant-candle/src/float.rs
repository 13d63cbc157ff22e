//! Low-precision floating point and block floating point as candle ops: forward through the
//! core's [`FloatFormat`] and [`BlockFormat`], backward straight through.

use xbquant::{BlockFormat, FloatFormat, Rounding, Scheme};

use crate::scheme::{scheme_op, Built};
use crate::SchemeF;

/// Rounds to a [`FloatFormat`] (nearest, ties to even, or stochastic) with the straight-through
/// gradient: the op of a training loop that simulates `e4m3fn` weights or `bfloat16`
/// activations. Each op fixes its noise: `Rounding::StochasticFresh` is resolved when it is
/// built, so build one per application for new noise.
///
/// Forward accepts `F32`, `F64`, `F16` and `BF16` CPU tensors of any layout and returns a
/// contiguous tensor of the same dtype and shape.
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Var};
/// use xbquant::{FloatFormat, Rounding};
/// use xbquant_candle::FloatQuantF;
///
/// let w = Var::new(&[0.3f32, 500.0], &Device::Cpu)?;
/// let op = FloatQuantF::new(FloatFormat::E4M3FN, Rounding::NearestEven)?;
/// let y = w.as_tensor().apply_op1(op)?;
/// assert_eq!(y.to_vec1::<f32>()?, [0.3125, 448.0]);
/// let grads = y.sum_all()?.backward()?;
/// assert_eq!(grads.get(&w).unwrap().to_vec1::<f32>()?, [1.0, 1.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FloatQuantF {
    format: FloatFormat,
    rounding: Rounding,
}

impl FloatQuantF {
    /// The op for one application.
    ///
    /// # Errors
    ///
    /// [`xbquant::Error::UnsupportedFloatRounding`] for a rounding other than nearest (ties to
    /// even) or stochastic.
    pub fn new(format: FloatFormat, rounding: Rounding) -> Result<Self, xbquant::Error> {
        // Checks the rounding once, here, rather than in every forward pass.
        let scheme = Scheme::new(format).with_rounding(rounding.resolve())?;
        Ok(FloatQuantF {
            format,
            rounding: scheme.rounding(),
        })
    }

    /// The format.
    #[must_use]
    pub fn format(&self) -> FloatFormat {
        self.format
    }

    /// The rounding (stochastic with its seed fixed).
    #[must_use]
    pub fn rounding(&self) -> Rounding {
        self.rounding
    }

    /// The scheme op (checked when built).
    fn op(&self) -> candle_core::Result<SchemeF> {
        Built::new(Scheme::new(self.format).with_rounding(self.rounding))
            .op()
            .cloned()
    }
}

scheme_op!(FloatQuantF, "xbquant-float");

/// Block floating point ([`BlockFormat`]) with the straight-through gradient: blocks are the
/// whole tensor, the indices of one dimension (QPyTorch's `dim`), or runs of a fixed length
/// along the last dimension. As [`FloatQuantF`], each op fixes its noise.
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Tensor};
/// use xbquant::{BlockFormat, Rounding};
/// use xbquant_candle::{BlockQuantF, BlockShape};
///
/// let x = Tensor::new(&[[0.3f32, 5.0], [0.1, 0.2]], &Device::Cpu)?;
/// let op = BlockQuantF::new(BlockFormat::new(4)?, BlockShape::Dim(0), Rounding::NearestEven);
/// let y = x.apply_op1(op)?;
/// assert_eq!(y.to_vec2::<f32>()?, [[0.0, 5.0], [0.09375, 0.1875]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct BlockQuantF {
    format: BlockFormat,
    shape: BlockShape,
    rounding: Rounding,
}

/// Which elements of a tensor share a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockShape {
    /// The whole tensor.
    Whole,
    /// One block per index of this dimension.
    Dim(usize),
    /// Runs of this many elements along the last dimension.
    Runs(usize),
}

impl BlockQuantF {
    /// The op for one application (`Rounding::StochasticFresh` is resolved here).
    #[must_use]
    pub fn new(format: BlockFormat, shape: BlockShape, rounding: Rounding) -> Self {
        BlockQuantF {
            format,
            shape,
            rounding: rounding.resolve(),
        }
    }

    /// The scheme op.
    fn op(&self) -> candle_core::Result<SchemeF> {
        let scheme = self
            .format
            .scheme(self.shape.granularity())
            .and_then(|s| s.with_rounding(self.rounding));
        Ok(Built::new(scheme).op()?.clone().runs_along_last())
    }
}
scheme_op!(BlockQuantF, "xbquant-block");
