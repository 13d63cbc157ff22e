//! A quantization-aware linear layer.

use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::Quantizer;

/// A linear layer `y = x W^T + b` whose weights pass through a [`Quantizer`] on every forward
/// pass (and optionally its inputs through another): quantization-aware training with the float
/// weights kept as the trainable variables, as in XBTorch and QPyTorch. It works with candle-nn's
/// optimizers like [`candle_nn::Linear`]; the bias stays in floating point.
///
/// # Examples
///
/// A quantization-aware training step:
///
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// use candle_nn::{loss, Optimizer, VarBuilder, VarMap};
/// use xbquant::{FixedPoint, Rounding};
/// use xbquant_candle::{quant_linear, Quantizer};
///
/// let device = Device::Cpu;
/// let varmap = VarMap::new();
/// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
/// let weights = Quantizer::new(FixedPoint::new(4, 3)?.with_rounding(Rounding::NearestEven));
/// let layer = quant_linear(2, 2, weights, None, vb.pp("fc"))?;
/// let mut opt = candle_nn::SGD::new(varmap.all_vars(), 0.1)?;
///
/// let x = Tensor::new(&[[1.0f32, 0.0], [0.0, 1.0]], &device)?;
/// let labels = Tensor::new(&[0u32, 1], &device)?;
/// let before = loss::cross_entropy(&layer.forward(&x)?, &labels)?.to_scalar::<f32>()?;
/// for _ in 0..20 {
///     let loss = loss::cross_entropy(&layer.forward(&x)?, &labels)?;
///     opt.backward_step(&loss)?;
/// }
/// let after = loss::cross_entropy(&layer.forward(&x)?, &labels)?.to_scalar::<f32>()?;
/// assert!(after < before);
/// // The weights the layer computes with are on the 4-bit grid.
/// let w = layer.quantized_weight()?.flatten_all()?.to_vec1::<f32>()?;
/// assert!(w.iter().all(|v| (v * 8.0).fract() == 0.0 && v.abs() <= 0.875));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct QuantLinear {
    weight: Tensor,
    bias: Option<Tensor>,
    weight_quantizer: Quantizer,
    input_quantizer: Option<Quantizer>,
}

impl QuantLinear {
    /// A layer from its float weight (`out x in`), bias and quantizers.
    #[must_use]
    pub fn new(
        weight: Tensor,
        bias: Option<Tensor>,
        weight_quantizer: Quantizer,
        input_quantizer: Option<Quantizer>,
    ) -> Self {
        QuantLinear {
            weight,
            bias,
            weight_quantizer,
            input_quantizer,
        }
    }

    /// The float (trainable) weight.
    #[must_use]
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, if any.
    #[must_use]
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The weight as the forward pass uses it, quantized.
    ///
    /// # Errors
    ///
    /// As [`Quantizer::apply`].
    pub fn quantized_weight(&self) -> candle_core::Result<Tensor> {
        self.weight_quantizer.apply(&self.weight)
    }
}

impl Module for QuantLinear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = match &self.input_quantizer {
            Some(q) => q.apply(x)?,
            None => x.clone(),
        };
        Linear::new(self.quantized_weight()?, self.bias.clone()).forward(&x)
    }
}

/// A [`QuantLinear`] with candle-nn's default initialisation (that of [`candle_nn::linear()`]),
/// its variables named `weight` and `bias` under `vb`.
///
/// # Errors
///
/// As [`candle_nn::linear()`].
pub fn quant_linear(
    in_dim: usize,
    out_dim: usize,
    weight_quantizer: Quantizer,
    input_quantizer: Option<Quantizer>,
    vb: VarBuilder,
) -> candle_core::Result<QuantLinear> {
    let linear = candle_nn::linear(in_dim, out_dim, vb)?;
    Ok(QuantLinear::new(
        linear.weight().clone(),
        linear.bias().cloned(),
        weight_quantizer,
        input_quantizer,
    ))
}
