//! hls4ml's fixed-point dense layer for candle: [`FixedLinear`] and [`fixed_linear`], the forward
//! pass of `xbquant_fixed::dense` (every type an HLS `ap_fixed`, the accumulator's overflow at
//! every addition, bit for bit with hls4ml's C++), the gradient straight through (the float
//! layer's), so a model trains with the hardware's arithmetic in its forward pass.

use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Error, Layout, Module, Shape, Tensor};
use xbquant_fixed::{dense, dense_with_overflows, DenseTypes, Overflows};

use crate::scheme::row_major;

fn fixed_error(e: xbquant_fixed::Error) -> Error {
    Error::Msg(format!("xbquant-fixed: {e}"))
}

/// The op of one call: the layer's types, and where the overflow counts go when asked for.
struct FixedDense {
    types: DenseTypes,
    counts: Option<Arc<Mutex<Option<Overflows>>>>,
}

impl FixedDense {
    /// The layer's outputs (`rows x k`) for `x`, `w` and `b` (storages of `T`) in any layouts.
    fn values<T: xbquant::Element + candle_core::WithDType>(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
        (rows, n, k): (usize, usize, usize),
    ) -> candle_core::Result<Vec<T>> {
        let major = |(s, l): (&CpuStorage, &Layout)| s.as_slice::<T>().map(|d| row_major(d, l));
        let (x, w) = (major(x)?, major(w)?);
        let b = b.map(major).transpose()?;
        let values = match &self.counts {
            None => dense(&x, rows, n, &w, k, b.as_deref(), &self.types).map_err(fixed_error)?,
            Some(slot) => {
                let (codes, overflows) =
                    dense_with_overflows(&x, rows, n, &w, k, b.as_deref(), &self.types)
                        .map_err(fixed_error)?;
                *slot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(overflows);
                let step = 2f64.powi(-self.types.result.frac());
                codes.into_iter().map(|c| c as f64 * step).collect()
            }
        };
        Ok(values
            .into_iter()
            .map(<T as xbquant::Element>::from_f64)
            .collect())
    }

    fn forward(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, n, k) = match (x.1.dims(), w.1.dims()) {
            (&[rows, n], &[k, n2]) if n == n2 => (rows, n, k),
            (a, c) => {
                return Err(Error::Msg(format!(
                    "xbquant-fixed: x must be (rows, in) and w (out, in), got {a:?} and {c:?}"
                )))
            }
        };
        if let Some((_, l)) = b {
            if l.dims() != [k] {
                return Err(Error::Msg(format!(
                    "xbquant-fixed: the bias must be ({k},), got {:?}",
                    l.dims()
                )));
            }
        }
        let shape = (rows, n, k);
        let storage = match (x.0.dtype(), w.0.dtype(), b.map(|b| b.0.dtype())) {
            (DType::F32, DType::F32, None | Some(DType::F32)) => {
                CpuStorage::F32(self.values(x, w, b, shape)?)
            }
            (DType::F64, DType::F64, None | Some(DType::F64)) => {
                CpuStorage::F64(self.values(x, w, b, shape)?)
            }
            (xd, wd, bd) => {
                let bias = bd.map_or(String::new(), |d| format!(", b {d:?}"));
                return Err(Error::Msg(format!(
                    "xbquant-fixed: x, w and b must all be F32 or all F64, got x {xd:?}, w {wd:?}{bias}"
                )));
            }
        };
        Ok((storage, Shape::from((rows, k))))
    }
}

/// The float layer's gradients: `grad w`, `grad^T x` and the sum of `grad` over the rows.
fn straight_through(
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    Ok((grad.matmul(w)?, grad.t()?.matmul(x)?, grad.sum(0)?))
}

impl CustomOp2 for FixedDense {
    fn name(&self) -> &'static str {
        "xbquant-fixed-dense"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.forward((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (gx, gw, _) = straight_through(x, w, grad)?;
        Ok((Some(gx), Some(gw)))
    }
}

impl CustomOp3 for FixedDense {
    fn name(&self) -> &'static str {
        "xbquant-fixed-dense"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.forward((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (gx, gw, gb) = straight_through(x, w, grad)?;
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}

/// `x` (`(..., in)`) through hls4ml's dense layer of weight `w` (`(out, in)`, as
/// `candle_nn::Linear`) and bias `b` with the layer's `types`, and where the counts go.
fn apply(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    types: DenseTypes,
    counts: Option<Arc<Mutex<Option<Overflows>>>>,
) -> candle_core::Result<Tensor> {
    for t in [Some(x), Some(w), b].into_iter().flatten() {
        if !matches!(t.dtype(), DType::F32 | DType::F64) {
            return Err(Error::Msg(format!(
                "xbquant-fixed: the layer takes F32 and F64 tensors, got {:?}",
                t.dtype()
            )));
        }
    }
    let dims = x.dims().to_vec();
    let n = *dims
        .last()
        .ok_or_else(|| Error::Msg("xbquant-fixed: x has no axes".into()))?;
    let rows = dims[..dims.len() - 1].iter().product::<usize>();
    let op = FixedDense { types, counts };
    let x2 = x.reshape((rows, n))?;
    let y = match b {
        Some(b) => x2.apply_op3(w, b, op)?,
        None => x2.apply_op2(w, op)?,
    };
    let mut shape = dims[..dims.len() - 1].to_vec();
    shape.push(y.dim(1)?);
    y.reshape(shape)
}

/// hls4ml's dense layer (`nnet::dense_latency`) on `x` (`(..., in)`), weight `w` (`(out, in)`)
/// and bias `b`, every type of `types` an HLS `ap_fixed` (`xbquant_fixed::dense`): the result
/// type's values, in the input's dtype (F32 or F64; exact in F32 for results of up to 24 bits).
/// The gradient is the float layer's (straight through the casts).
///
/// # Errors
///
/// Shapes that do not match, dtypes other than F32 and F64 (all three alike), non-finite values,
/// non-CPU tensors.
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Tensor};
/// use xbquant_candle::fixed_linear;
/// use xbquant_fixed::DenseTypes;
///
/// let types = DenseTypes::parse(
///     "ap_fixed<8,4>", "ap_fixed<8,4>", "ap_fixed<8,4>",
///     "ap_fixed<8,5,AP_TRN,AP_SAT>", "ap_fixed<8,5>",
/// )?;
/// let x = Tensor::new(&[[6.0f32, 6.0, 6.0]], &Device::Cpu)?;
/// let w = Tensor::new(&[[1.0f32, 1.0, 1.0]], &Device::Cpu)?;
/// // 6 + 6 + 6 = 18 is beyond the accumulator's 15.875: it saturates there.
/// assert_eq!(fixed_linear(&x, &w, None, types)?.to_vec2::<f32>()?, [[15.875]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn fixed_linear(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    types: DenseTypes,
) -> candle_core::Result<Tensor> {
    apply(x, w, b, types, None)
}

/// A linear layer computed as hls4ml's fixed-point dense layer: [`fixed_linear`] with the layer's
/// weight, bias and types, as a `candle_core::Module`; the gradient passes straight through, so
/// the weights train with the fixed-point forward pass (`candle_nn`'s optimizers).
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// use xbquant_candle::FixedLinear;
/// use xbquant_fixed::DenseTypes;
///
/// let types = DenseTypes::parse(
///     "ap_fixed<16,6>", "ap_fixed<8,3>", "ap_fixed<8,3>", "ap_fixed<12,4,AP_TRN,AP_SAT>",
///     "ap_fixed<16,6>",
/// )?;
/// let w = Tensor::new(&[[0.5f32, -0.25], [1.0, 0.5]], &Device::Cpu)?;
/// let layer = FixedLinear::new(w, None, types);
/// let x = Tensor::new(&[[1.0f32, 1.0], [7.0, 7.0]], &Device::Cpu)?;
/// let (y, overflows) = layer.forward_with_overflows(&x)?;
/// // 7 + 3.5 = 10.5 is beyond the accumulator's 7.99: it saturates, once.
/// assert_eq!(y.to_vec2::<f32>()?, [[0.25, 1.5], [1.75, 7.99609375]]);
/// assert_eq!(overflows.accumulations, [0, 1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FixedLinear {
    weight: Tensor,
    bias: Option<Tensor>,
    types: DenseTypes,
}

impl FixedLinear {
    /// The layer of `weight` (`out x in`) and `bias` (`out`) with hls4ml's `types`.
    #[must_use]
    pub fn new(weight: Tensor, bias: Option<Tensor>, types: DenseTypes) -> Self {
        FixedLinear {
            weight,
            bias,
            types,
        }
    }

    /// The weight (`out x in`).
    #[must_use]
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, if any.
    #[must_use]
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The layer's types.
    #[must_use]
    pub fn types(&self) -> &DenseTypes {
        &self.types
    }

    /// The forward pass and how many casts overflowed, per output channel
    /// (`xbquant_fixed::Overflows`, over the batch).
    ///
    /// # Errors
    ///
    /// As [`fixed_linear`].
    pub fn forward_with_overflows(&self, x: &Tensor) -> candle_core::Result<(Tensor, Overflows)> {
        let slot = Arc::new(Mutex::new(None));
        let y = apply(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.types,
            Some(Arc::clone(&slot)),
        )?;
        let counts = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .ok_or_else(|| Error::Msg("xbquant-fixed: the layer ran on no CPU".into()))?;
        Ok((y, counts))
    }
}

impl Module for FixedLinear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        fixed_linear(x, &self.weight, self.bias.as_ref(), self.types)
    }
}
