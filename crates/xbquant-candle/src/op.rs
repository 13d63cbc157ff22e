//! The quantization op: forward through the core kernels, backward straight through (optionally
//! clamp-aware, optionally quantizing the gradient).

use candle_core::{CpuStorage, CustomOp1, Error, Layout, Shape, Tensor};
use xbquant::{FixedPoint, QuantSpec, Rounding, Scheme};

use crate::SchemeF;

/// What the backward pass does with the upstream gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Gradient {
    /// Pass it through unchanged (the straight-through estimator; the seed's behaviour).
    #[default]
    StraightThrough,
    /// Pass it through where the forward pass did not overflow, and give exactly zero where it
    /// did (QPyTorch's `clamping_grad_zero`): saturated weights stop receiving updates that push
    /// them further out.
    ClampAware,
}

/// The op itself, XBTorch's `FixedPointQuantF` as a candle [`CustomOp1`]: forward quantizes with
/// the core kernels, backward applies [`Gradient`] and, when given, quantizes the gradient with a
/// second spec (WAGE-style error quantization).
///
/// Build one with [`FixedPointQuantF::new`] and apply it with [`Tensor::apply_op1`], or use
/// [`Quantizer`], which also draws fresh stochastic noise on every application.
///
/// Forward accepts `F32`, `F64`, `F16` and `BF16` CPU tensors of any layout (strided, transposed,
/// offset) and returns a contiguous tensor of the same dtype and shape. Other dtypes, and CUDA and
/// Metal tensors, give a candle error.
#[derive(Debug, Clone, Copy)]
pub struct FixedPointQuantF {
    spec: QuantSpec,
    gradient: Gradient,
    backward: Option<QuantSpec>,
}

impl FixedPointQuantF {
    /// The op for one application. `Rounding::StochasticFresh` is resolved here to a fixed seed,
    /// so that the backward pass of a clamp-aware op sees the same overflow mask as the forward
    /// pass; build a new op (or use [`Quantizer`]) for new noise.
    #[must_use]
    pub fn new(spec: QuantSpec) -> Self {
        FixedPointQuantF {
            spec: spec.resolve(),
            gradient: Gradient::StraightThrough,
            backward: None,
        }
    }

    /// The same op with another gradient rule.
    #[must_use]
    pub fn with_gradient(mut self, gradient: Gradient) -> Self {
        self.gradient = gradient;
        self
    }

    /// The same op, whose backward pass also quantizes the gradient with `spec` (fresh noise on
    /// every backward pass for `Rounding::StochasticFresh`).
    #[must_use]
    pub fn with_backward(mut self, spec: QuantSpec) -> Self {
        self.backward = Some(spec);
        self
    }

    /// The forward spec (stochastic rounding with its seed fixed).
    #[must_use]
    pub fn spec(&self) -> QuantSpec {
        self.spec
    }
}

impl FixedPointQuantF {
    /// The scheme op of the spec: the forward pass and the clip mask.
    fn op(&self) -> SchemeF {
        SchemeF::new(Scheme::from(self.spec)).with_gradient(self.gradient)
    }
}

impl CustomOp1 for FixedPointQuantF {
    fn name(&self) -> &'static str {
        "xbquant-fixed-point"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.op().cpu_fwd(storage, layout)
    }

    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        self.op().cuda_fwd(storage, layout)
    }

    fn metal_fwd(
        &self,
        storage: &candle_core::MetalStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::MetalStorage, Shape)> {
        self.op().metal_fwd(storage, layout)
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let mut grad = self.op().gradient(arg, grad)?;
        if let Some(spec) = self.backward {
            grad = grad.apply_op1_no_bwd(&FixedPointQuantF::new(spec))?;
        }
        Ok(Some(grad))
    }
}

/// A reusable quantizer: a spec (format and rounding), a gradient rule and an optional gradient
/// quantization. Each [`apply`](Quantizer::apply) builds a fresh [`FixedPointQuantF`], so
/// `Rounding::StochasticFresh` draws new noise on every application (every training step),
/// while `Rounding::Stochastic { seed }` repeats the same noise on purpose.
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Tensor, Var};
/// use xbquant::{FixedPoint, Rounding};
/// use xbquant_candle::{Gradient, Quantizer};
///
/// let w = Var::new(&[0.3f32, -0.8, 5.0], &Device::Cpu)?;
/// let q = Quantizer::new(FixedPoint::new(4, 2)?.with_rounding(Rounding::NearestEven))
///     .with_gradient(Gradient::ClampAware);
/// let y = q.apply(w.as_tensor())?;
/// assert_eq!(y.to_vec1::<f32>()?, [0.25, -0.75, 1.75]);
/// let grads = y.sum_all()?.backward()?;
/// // Straight through, but zero where the forward pass overflowed.
/// assert_eq!(grads.get(&w).unwrap().to_vec1::<f32>()?, [1.0, 1.0, 0.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Quantizer {
    /// The op's settings, with the rounding as given (stochastic noise is drawn per `op()`).
    spec: FixedPointQuantF,
}

impl Quantizer {
    /// A straight-through quantizer with `spec`.
    #[must_use]
    pub fn new(spec: QuantSpec) -> Self {
        Quantizer {
            spec: FixedPointQuantF {
                spec,
                gradient: Gradient::StraightThrough,
                backward: None,
            },
        }
    }

    /// The same quantizer with another gradient rule.
    #[must_use]
    pub fn with_gradient(self, gradient: Gradient) -> Self {
        Quantizer {
            spec: self.spec.with_gradient(gradient),
        }
    }

    /// The same quantizer, whose backward pass also quantizes the gradient with `spec`.
    #[must_use]
    pub fn with_backward(self, spec: QuantSpec) -> Self {
        Quantizer {
            spec: self.spec.with_backward(spec),
        }
    }

    /// The forward spec, with the rounding as given.
    #[must_use]
    pub fn spec(&self) -> QuantSpec {
        self.spec.spec
    }

    /// The op for one application (stochastic noise drawn now).
    #[must_use]
    pub fn op(&self) -> FixedPointQuantF {
        FixedPointQuantF {
            spec: self.spec.spec.resolve(),
            ..self.spec
        }
    }

    /// Quantizes `x`, recording the op for backpropagation.
    ///
    /// # Errors
    ///
    /// A candle error for dtypes other than F32, F64, F16 and BF16, and for CUDA and Metal
    /// tensors.
    pub fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.apply_op1(self.op())
    }
}

/// XBTorch's `fixed_point_quantize_wrapper`: quantizes `x` to a word of `wl` bits with `fl`
/// fractional bits, with a straight-through gradient.
///
/// The seed's defaults are `symmetric = true` (the most negative code is left out, so the range
/// is `[-max, max]`) and nearest rounding (`Rounding::NearestEven`, ties to even); values beyond
/// the range saturate. Unlike the seed, `rounding` is honoured (the seed always rounds
/// stochastically whatever it is passed).
///
/// # Errors
///
/// A candle error when `wl`/`fl` do not make a valid format (wl 1..=64, fl within
/// [wl - 1023, 1022]), for dtypes other than F32, F64, F16 and BF16, and for CUDA and Metal
/// tensors.
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Tensor};
/// use xbquant::Rounding;
/// use xbquant_candle::fixed_point_quantize_wrapper;
///
/// let x = Tensor::new(&[0.3f32, -0.6, 5.0, -5.0], &Device::Cpu)?;
/// let y = fixed_point_quantize_wrapper(&x, 4, 2, true, Rounding::NearestEven)?;
/// assert_eq!(y.to_vec1::<f32>()?, [0.25, -0.5, 1.75, -1.75]);
/// let y = fixed_point_quantize_wrapper(&x, 4, 2, false, Rounding::NearestEven)?;
/// assert_eq!(y.to_vec1::<f32>()?, [0.25, -0.5, 1.75, -2.0]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn fixed_point_quantize_wrapper(
    x: &Tensor,
    wl: u32,
    fl: i32,
    symmetric: bool,
    rounding: Rounding,
) -> candle_core::Result<Tensor> {
    let format = FixedPoint::new(wl, fl)
        .map_err(Error::wrap)?
        .with_symmetric(symmetric);
    x.apply_op1(FixedPointQuantF::new(format.with_rounding(rounding)))
}
