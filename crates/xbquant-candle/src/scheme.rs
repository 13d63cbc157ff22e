//! One op for every scheme: [`SchemeF`] quantizes a tensor with any [`Scheme`] of the core
//! (forward through the core, one match on the storage's dtype), and one mask op gives the
//! elements the forward pass clipped, for the clamp-aware gradient. The other ops of this crate
//! are schemes built for their arguments, run by this op.

use candle_core::backend::BackendStorage;
use candle_core::cpu_backend::unary_map;
use candle_core::{CpuStorage, CustomOp1, Error, Layout, Shape, Tensor, WithDType};
use xbquant::{Data, Element, Granularity, Part, Quantizer, Scheme};

use crate::Gradient;

/// Any [`Scheme`] as a candle op, with a straight-through gradient ([`Gradient::StraightThrough`]:
/// the incoming gradient as it is) or a clamp-aware one ([`Gradient::ClampAware`]: zero where
/// the forward pass clipped). A scheme's per-axis groups follow the tensor's dimensions. Each op
/// fixes its noise when it is built, so that the backward pass sees the forward pass's clipping.
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Var};
/// use xbquant_candle::{Gradient, SchemeF};
///
/// let x = Var::new(&[[0.5f32, 10.0], [-2.0, 3.0]], &Device::Cpu)?;
/// // A 4-bit ADC whose range per column is the 50th percentile of its magnitudes.
/// let s = "fixed<4,3> overflow=saturate-symmetric group=axis:1 range=percentile:50".parse()?;
/// let adc = SchemeF::new(s).with_gradient(Gradient::ClampAware);
/// let y = x.as_tensor().apply_op1(adc)?;
/// // Column ranges 1.25 and 6.5: 0.5 -> 1.25 * 3/8; -2 and 10 clip at 7/8 of theirs.
/// assert_eq!(y.to_vec2::<f32>()?, [[0.46875, 5.6875], [-1.09375, 3.25]]);
/// let grads = y.sum_all()?.backward()?;
/// assert_eq!(grads.get(&x).unwrap().to_vec2::<f32>()?, [[1.0, 0.0], [0.0, 1.0]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SchemeF {
    scheme: Scheme,
    gradient: Gradient,
    /// Runs of a granularity lie along the last dimension, which they must divide.
    runs_along_last: bool,
}

impl SchemeF {
    /// The op for one application of `scheme` (its noise fixed now), straight through.
    #[must_use]
    pub fn new(scheme: Scheme) -> Self {
        SchemeF {
            scheme: scheme.resolve(),
            gradient: Gradient::StraightThrough,
            runs_along_last: false,
        }
    }

    /// The same op with another gradient rule.
    #[must_use]
    pub fn with_gradient(mut self, gradient: Gradient) -> Self {
        self.gradient = gradient;
        self
    }

    /// The same op, whose runs must divide the last dimension.
    pub(crate) fn runs_along_last(mut self) -> Self {
        self.runs_along_last = true;
        self
    }

    /// The scheme, with its noise fixed.
    #[must_use]
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The values of a tensor's elements in row-major order, and the clip mask when asked.
    fn run<T: Element + WithDType>(
        &self,
        data: &[T],
        layout: &Layout,
        mask: Option<&mut [bool]>,
    ) -> Result<Vec<T>, xbquant::Error> {
        let dims = layout.shape().dims();
        if let (true, Granularity::Runs(k)) = (self.runs_along_last, self.scheme.granularity()) {
            let last = dims.last().copied().unwrap_or(1);
            if k == 0 || last % k != 0 {
                return Err(xbquant::Error::InvalidBlocks(format!(
                    "runs of {k} along a last dimension of {last}"
                )));
            }
        }
        let mut values = row_major(data, layout);
        let part = Part::shaped(dims)?;
        self.scheme
            .quantize_part(Data::InPlace(&mut values), mask, part)?;
        Ok(values)
    }

    /// The straight-through gradient of `arg`, zero where it clipped when clamp-aware.
    pub(crate) fn gradient(&self, arg: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        match self.gradient {
            Gradient::ClampAware => {
                let mask = arg.apply_op1_no_bwd(&ClipMask(self))?;
                mask.where_cond(&grad.zeros_like()?, grad)
            }
            _ => Ok(grad.clone()),
        }
    }
}

/// An op of this crate built from its arguments: the scheme op, or the error the arguments gave
/// (the ops' constructors are infallible; the error is returned by the forward pass).
#[derive(Debug, Clone)]
pub(crate) struct Built(pub(crate) Result<SchemeF, String>);

impl Built {
    pub(crate) fn new(scheme: Result<Scheme, xbquant::Error>) -> Built {
        Built(
            scheme
                .map(SchemeF::new)
                .map_err(|e| format!("xbquant: {e}")),
        )
    }

    /// The op, or the error its arguments gave.
    pub(crate) fn op(&self) -> candle_core::Result<&SchemeF> {
        self.0.as_ref().map_err(|e| Error::Msg(e.clone()))
    }
}

/// The elements of a tensor in row-major order (a copy of contiguous data, a gather of strided).
pub(crate) fn row_major<T: WithDType>(data: &[T], layout: &Layout) -> Vec<T> {
    match layout.contiguous_offsets() {
        Some((start, end)) => data[start..end].to_vec(),
        None => unary_map(data, layout, |v| v),
    }
}

fn unsupported_device(device: &str) -> Error {
    Error::Msg(format!(
        "xbquant: {device} tensors are not supported yet; move the tensor to the CPU \
         (`tensor.to_device(&Device::Cpu)`) to quantize it"
    ))
}

impl CustomOp1 for SchemeF {
    fn name(&self) -> &'static str {
        "xbquant-scheme"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fallible_map!(self.name(), storage, layout, |data| self
            .run(data, layout, None))
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
        self.gradient(arg, grad).map(Some)
    }
}

/// The backward pass's second op: the forward pass's clip mask, as `U8`.
struct ClipMask<'a>(&'a SchemeF);

impl ClipMask<'_> {
    fn mask<T: Element + WithDType>(
        &self,
        data: &[T],
        layout: &Layout,
    ) -> Result<Vec<u8>, xbquant::Error> {
        let mut mask = vec![false; layout.shape().elem_count()];
        self.0.run(data, layout, Some(&mut mask))?;
        Ok(mask.into_iter().map(u8::from).collect())
    }
}

impl CustomOp1 for ClipMask<'_> {
    fn name(&self) -> &'static str {
        "xbquant-clip-mask"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let mask = match storage {
            CpuStorage::F32(d) => self.mask(d, layout),
            CpuStorage::F64(d) => self.mask(d, layout),
            CpuStorage::F16(d) => self.mask(d, layout),
            CpuStorage::BF16(d) => self.mask(d, layout),
            other => return Err(Error::UnsupportedDTypeForOp(other.dtype(), self.name()).bt()),
        }
        .map_err(|e| Error::Msg(format!("xbquant: {e}")))?;
        Ok((CpuStorage::U8(mask), layout.shape().clone()))
    }
}

/// Implements [`CustomOp1`] for a type through its method `op()`, which gives its [`SchemeF`]
/// (or the error its arguments gave), under the type's own name.
macro_rules! scheme_op {
    ($t:ty, $name:literal) => {
        impl candle_core::CustomOp1 for $t {
            fn name(&self) -> &'static str {
                $name
            }

            fn cpu_fwd(
                &self,
                storage: &candle_core::CpuStorage,
                layout: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                self.op()?.cpu_fwd(storage, layout)
            }

            fn cuda_fwd(
                &self,
                storage: &candle_core::CudaStorage,
                layout: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CudaStorage, candle_core::Shape)> {
                self.op()?.cuda_fwd(storage, layout)
            }

            fn metal_fwd(
                &self,
                storage: &candle_core::MetalStorage,
                layout: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::MetalStorage, candle_core::Shape)> {
                self.op()?.metal_fwd(storage, layout)
            }

            fn bwd(
                &self,
                arg: &candle_core::Tensor,
                res: &candle_core::Tensor,
                grad: &candle_core::Tensor,
            ) -> candle_core::Result<Option<candle_core::Tensor>> {
                self.op()?.bwd(arg, res, grad)
            }
        }
    };
}
pub(crate) use scheme_op;
