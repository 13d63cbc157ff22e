//! The analog tile for candle: [`AnalogLinear`], a linear layer whose product runs on analog
//! tiles (`xbquant_analog::mvm`: aihwkit's `IOParameters`, tiles, reproducible noise), with the
//! gradient of `xbquant_analog::mvm_gradients` (straight through the converters, zero where one
//! clipped).

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Error, Layout, Module, Shape, Tensor};
use xbquant_analog::{mvm, mvm_gradients, IoParameters};

use crate::scheme::row_major;

/// The op of one product: the tile parameters and the call's seed.
struct AnalogMvm {
    io: IoParameters,
    tile: (usize, usize),
    seed: u64,
}

fn analog_error(e: xbquant_analog::Error) -> Error {
    Error::Msg(format!("xbquant-analog: {e}"))
}

fn dims(l1: &Layout, l2: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    match (l1.dims(), l2.dims()) {
        (&[rows, n], &[k, n2]) if n == n2 => Ok((rows, n, k)),
        (a, b) => Err(Error::Msg(format!(
            "xbquant-analog: x must be (rows, in) and w (out, in), got {a:?} and {b:?}"
        ))),
    }
}

impl AnalogMvm {
    /// The tile's product of `x` and `w` (any layouts), `rows x k`.
    fn product<T: xbquant_analog::Float + candle_core::WithDType>(
        &self,
        x: &[T],
        l1: &Layout,
        w: &[T],
        l2: &Layout,
        (rows, n, k): (usize, usize, usize),
    ) -> candle_core::Result<Vec<T>> {
        let (x, w) = (row_major(x, l1), row_major(w, l2));
        mvm(&x, rows, n, &w, k, &self.io, self.tile, self.seed).map_err(analog_error)
    }
}

impl CustomOp2 for AnalogMvm {
    fn name(&self) -> &'static str {
        "xbquant-analog-mvm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, n, k) = dims(l1, l2)?;
        let storage = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(w)) => {
                CpuStorage::F32(self.product(x, l1, w, l2, (rows, n, k))?)
            }
            (CpuStorage::F64(x), CpuStorage::F64(w)) => {
                CpuStorage::F64(self.product(x, l1, w, l2, (rows, n, k))?)
            }
            _ => return Err(Error::UnsupportedDTypeForOp(s1.dtype(), self.name())),
        };
        Ok((storage, Shape::from((rows, k))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (rows, n) = x.dims2()?;
        let k = w.dims2()?.0;
        macro_rules! gradients {
            ($t:ty) => {{
                let (gx, gw) = mvm_gradients(
                    &x.flatten_all()?.to_vec1::<$t>()?,
                    rows,
                    n,
                    &w.flatten_all()?.to_vec1::<$t>()?,
                    k,
                    &self.io,
                    self.tile,
                    self.seed,
                    &grad.flatten_all()?.to_vec1::<$t>()?,
                )
                .map_err(analog_error)?;
                (
                    Tensor::from_vec(gx, (rows, n), x.device())?,
                    Tensor::from_vec(gw, (k, n), w.device())?,
                )
            }};
        }
        let (gx, gw) = match x.dtype() {
            candle_core::DType::F32 => gradients!(f32),
            candle_core::DType::F64 => gradients!(f64),
            other => return Err(Error::UnsupportedDTypeForOp(other, self.name())),
        };
        Ok((Some(gx), Some(gw)))
    }
}

/// A linear layer on analog tiles: `y = mvm(x, weight) + bias`, the product through the
/// converters and noise of `io` on tiles of at most `tile` (inputs, outputs), the bias added
/// digitally. Each call draws its noise from the layer's seed and a call counter, so a run
/// repeats. The gradient passes straight through the converters, zero where one clipped, and is
/// the ideal product's elsewhere (`xbquant_analog::mvm_gradients`), so a model trains
/// hardware-aware.
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Module, Tensor, Var};
/// use xbquant_analog::IoParameters;
/// use xbquant_candle::AnalogLinear;
///
/// let w = Var::from_tensor(&Tensor::new(&[[0.5f32, -0.25], [1.0, 0.5]], &Device::Cpu)?)?;
/// let io = IoParameters { out_noise: 0.0, ..IoParameters::default() };
/// let layer = AnalogLinear::new(w.as_tensor().clone(), None, io, (512, 512), 7);
/// let x = Tensor::new(&[[1.0f32, 1.0]], &Device::Cpu)?;
/// let y = layer.forward(&x)?;
/// let exact = [0.25f32, 1.5];
/// for (a, b) in y.flatten_all()?.to_vec1::<f32>()?.iter().zip(exact) {
///     assert!((a - b).abs() < 0.05);
/// }
/// let grads = y.sum_all()?.backward()?;
/// assert_eq!(grads.get(&w).unwrap().to_vec2::<f32>()?, [[1.0, 1.0], [1.0, 1.0]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub struct AnalogLinear {
    weight: Tensor,
    bias: Option<Tensor>,
    io: IoParameters,
    tile: (usize, usize),
    seed: u64,
    calls: AtomicU64,
}

impl AnalogLinear {
    /// The layer of `weight` (`out x in`) and `bias`, with the tile parameters `io` and `tile`,
    /// drawing its noise from `seed`.
    #[must_use]
    pub fn new(
        weight: Tensor,
        bias: Option<Tensor>,
        io: IoParameters,
        tile: (usize, usize),
        seed: u64,
    ) -> Self {
        AnalogLinear {
            weight,
            bias,
            io,
            tile,
            seed,
            calls: AtomicU64::new(0),
        }
    }
}

impl Module for AnalogLinear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.io.check().map_err(analog_error)?;
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let op = AnalogMvm {
            io: self.io,
            tile: self.tile,
            seed: xbquant::noise::stream_key(self.seed ^ call.wrapping_mul(xbquant::noise::STEP)),
        };
        let dims = x.dims().to_vec();
        let n = *dims
            .last()
            .ok_or_else(|| Error::Msg("xbquant-analog: x has no axes".into()))?;
        let rows = dims[..dims.len() - 1].iter().product::<usize>();
        let y = x.reshape((rows, n))?.apply_op2(&self.weight, op)?;
        let mut shape = dims[..dims.len() - 1].to_vec();
        shape.push(self.weight.dim(0)?);
        let y = y.reshape(shape)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}
