//! The quantization op: forward through the core kernels, backward straight through (optionally
//! clamp-aware, optionally quantizing the gradient).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use xbquant::half::{bf16, f16};
use xbquant::{Element, FixedPoint, Rounding};

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
/// second format and rounding (WAGE-style error quantization).
///
/// Build one with [`FixedPointQuantF::new`] and apply it with [`Tensor::apply_op1`], or use
/// [`Quantizer`], which also draws fresh stochastic noise on every application.
///
/// Forward accepts `F32`, `F64`, `F16` and `BF16` CPU tensors of any layout (strided, transposed,
/// offset) and returns a contiguous tensor of the same dtype and shape. Other dtypes, and CUDA and
/// Metal tensors, give a candle error.
#[derive(Debug, Clone, Copy)]
pub struct FixedPointQuantF {
    format: FixedPoint,
    rounding: Rounding,
    gradient: Gradient,
    backward: Option<(FixedPoint, Rounding)>,
}

impl FixedPointQuantF {
    /// The op for one application. `Rounding::StochasticFresh` is resolved here to a fixed seed,
    /// so that the backward pass of a clamp-aware op sees the same overflow mask as the forward
    /// pass; build a new op (or use [`Quantizer`]) for new noise.
    #[must_use]
    pub fn new(format: FixedPoint, rounding: Rounding) -> Self {
        FixedPointQuantF {
            format,
            rounding: rounding.resolve(),
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

    /// The same op, whose backward pass also quantizes the gradient with `format` and
    /// `rounding` (fresh noise on every backward pass for `Rounding::StochasticFresh`).
    #[must_use]
    pub fn with_backward(mut self, format: FixedPoint, rounding: Rounding) -> Self {
        self.backward = Some((format, rounding));
        self
    }

    /// The forward format.
    #[must_use]
    pub fn format(&self) -> FixedPoint {
        self.format
    }

    /// The forward rounding (stochastic rounding with its seed fixed).
    #[must_use]
    pub fn rounding(&self) -> Rounding {
        self.rounding
    }
}

fn unsupported_device(device: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!(
        "xbquant: {device} tensors are not supported yet; move the tensor to the CPU \
         (`tensor.to_device(&Device::Cpu)`) to quantize it"
    ))
}

fn unsupported_dtype(dtype: DType) -> candle_core::Error {
    candle_core::Error::Msg(format!(
        "xbquant: cannot quantize a {dtype:?} tensor; fixed-point quantization takes F32, F64, F16 \
         or BF16"
    ))
}

/// The elements of a tensor in row-major order: a borrowed slice when the layout is contiguous,
/// a gathered copy otherwise.
fn elements<'a, T: Copy>(data: &'a [T], layout: &Layout) -> std::borrow::Cow<'a, [T]> {
    if let Some((start, end)) = layout.contiguous_offsets() {
        return std::borrow::Cow::Borrowed(&data[start..end]);
    }
    let dims = layout.dims();
    let stride = layout.stride();
    let n: usize = dims.iter().product();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return std::borrow::Cow::Owned(out);
    }
    let mut index = vec![0usize; dims.len()];
    let mut offset = layout.start_offset();
    for _ in 0..n {
        out.push(data[offset]);
        // Advance the multi-index (last axis fastest), keeping the storage offset in step.
        for axis in (0..dims.len()).rev() {
            index[axis] += 1;
            offset += stride[axis];
            if index[axis] < dims[axis] {
                break;
            }
            offset -= stride[axis] * dims[axis];
            index[axis] = 0;
        }
    }
    std::borrow::Cow::Owned(out)
}

fn quantize_storage(
    format: &FixedPoint,
    rounding: Rounding,
    storage: &CpuStorage,
    layout: &Layout,
) -> candle_core::Result<CpuStorage> {
    fn go<T: Element>(format: &FixedPoint, rounding: Rounding, data: &[T], l: &Layout) -> Vec<T> {
        format.quantize(&elements(data, l), rounding)
    }
    Ok(match storage {
        CpuStorage::F32(d) => CpuStorage::F32(go::<f32>(format, rounding, d, layout)),
        CpuStorage::F64(d) => CpuStorage::F64(go::<f64>(format, rounding, d, layout)),
        CpuStorage::F16(d) => CpuStorage::F16(go::<f16>(format, rounding, d, layout)),
        CpuStorage::BF16(d) => CpuStorage::BF16(go::<bf16>(format, rounding, d, layout)),
        other => return Err(unsupported_dtype(other.dtype())),
    })
}

/// The overflow mask of quantizing `x` (contiguous or not), as a `U8` tensor of its shape.
fn overflow_mask(
    format: &FixedPoint,
    rounding: Rounding,
    x: &Tensor,
) -> candle_core::Result<Tensor> {
    fn go<T: Element + candle_core::WithDType>(
        format: &FixedPoint,
        rounding: Rounding,
        x: &Tensor,
    ) -> candle_core::Result<Vec<u8>> {
        let values = x.flatten_all()?.to_vec1::<T>()?;
        let (_, mask) = format.quantize_with_mask(&values, rounding);
        Ok(mask.into_iter().map(u8::from).collect())
    }
    let mask = match x.dtype() {
        DType::F32 => go::<f32>(format, rounding, x)?,
        DType::F64 => go::<f64>(format, rounding, x)?,
        DType::F16 => go::<f16>(format, rounding, x)?,
        DType::BF16 => go::<bf16>(format, rounding, x)?,
        other => return Err(unsupported_dtype(other)),
    };
    Tensor::from_vec(mask, x.shape(), x.device())
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
        let out = quantize_storage(&self.format, self.rounding, storage, layout)?;
        Ok((out, layout.shape().clone()))
    }

    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        Err(unsupported_device("CUDA"))
    }

    fn metal_fwd(
        &self,
        _: &candle_core::MetalStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::MetalStorage, Shape)> {
        Err(unsupported_device("Metal"))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let mut grad = grad.clone();
        if self.gradient == Gradient::ClampAware {
            let mask = overflow_mask(&self.format, self.rounding, arg)?;
            grad = mask.where_cond(&grad.zeros_like()?, &grad)?;
        }
        if let Some((format, rounding)) = self.backward {
            grad = grad.apply_op1_no_bwd(&FixedPointQuantF::new(format, rounding))?;
        }
        Ok(Some(grad))
    }
}

/// A reusable quantizer: a format, a rounding, a gradient rule and an optional gradient
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
/// let q = Quantizer::new(FixedPoint::new(4, 2)?, Rounding::NearestEven)
///     .with_gradient(Gradient::ClampAware);
/// let y = q.apply(w.as_tensor())?;
/// assert_eq!(y.to_vec1::<f32>()?, [0.25, -0.75, 1.75]);
/// let grads = y.sum_all()?.backward()?;
/// // Straight through, but zero where the forward pass saturated.
/// assert_eq!(grads.get(&w).unwrap().to_vec1::<f32>()?, [1.0, 1.0, 0.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Quantizer {
    /// The op's settings, with the rounding as given (stochastic noise is drawn per `op()`).
    spec: FixedPointQuantF,
}

impl Quantizer {
    /// A straight-through quantizer to `format` with `rounding`.
    #[must_use]
    pub fn new(format: FixedPoint, rounding: Rounding) -> Self {
        Quantizer {
            spec: FixedPointQuantF {
                format,
                rounding,
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

    /// The same quantizer, whose backward pass also quantizes the gradient.
    #[must_use]
    pub fn with_backward(self, format: FixedPoint, rounding: Rounding) -> Self {
        Quantizer {
            spec: self.spec.with_backward(format, rounding),
        }
    }

    /// The forward format.
    #[must_use]
    pub fn format(&self) -> FixedPoint {
        self.spec.format
    }

    /// The op for one application (stochastic noise drawn now).
    #[must_use]
    pub fn op(&self) -> FixedPointQuantF {
        FixedPointQuantF {
            rounding: self.spec.rounding.resolve(),
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
        .map_err(candle_core::Error::wrap)?
        .with_symmetric(symmetric);
    x.apply_op1(FixedPointQuantF::new(format, rounding))
}
