//! The analog tile's product for Python: arrays and the fields of `xbquant.analog.IOParameters`
//! in, the product's result out, computed by `xbquant-analog` with the GIL released.

use numpy::{PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use xbquant_analog::{BoundManagement, Float, IoParameters, NoiseManagement, WeightNoise};

use crate::call::{dense_shapes, slice_error, typed};

fn field<'py, T: FromPyObjectOwned<'py>>(io: &Bound<'py, PyDict>, name: &str) -> PyResult<T> {
    io.get_item(name)?
        .ok_or_else(|| PyValueError::new_err(format!("io has no field {name}")))?
        .extract::<T>()
        .map_err(|_| PyTypeError::new_err(format!("io.{name} has the wrong type")))
}

fn parameters(io: &Bound<'_, PyDict>) -> PyResult<IoParameters> {
    let noise_management = match field::<String>(io, "noise_management")?.as_str() {
        "none" => NoiseManagement::None,
        "abs_max" => NoiseManagement::AbsMax,
        "max" => NoiseManagement::Max,
        "constant" => NoiseManagement::Constant,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown noise_management {other:?}"
            )))
        }
    };
    let bound_management = match field::<String>(io, "bound_management")?.as_str() {
        "none" => BoundManagement::None,
        "iterative" => BoundManagement::Iterative,
        "iterative_per_vector" => BoundManagement::IterativePerVector,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown bound_management {other:?}"
            )))
        }
    };
    let w_noise_type = match field::<String>(io, "w_noise_type")?.as_str() {
        "none" => WeightNoise::None,
        "additive_constant" => WeightNoise::AdditiveConstant,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown w_noise_type {other:?}"
            )))
        }
    };
    let io = IoParameters {
        is_perfect: field(io, "is_perfect")?,
        inp_bound: field(io, "inp_bound")?,
        inp_res: field(io, "inp_res")?,
        inp_noise: field(io, "inp_noise")?,
        inp_sto_round: field(io, "inp_sto_round")?,
        out_bound: field(io, "out_bound")?,
        out_res: field(io, "out_res")?,
        out_noise: field(io, "out_noise")?,
        out_sto_round: field(io, "out_sto_round")?,
        out_scale: field(io, "out_scale")?,
        noise_management,
        nm_thres: field(io, "nm_thres")?,
        bound_management,
        max_bm_factor: field(io, "max_bm_factor")?,
        max_bm_res: field(io, "max_bm_res")?,
        w_noise: field(io, "w_noise")?,
        w_noise_type,
    };
    io.check()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(io)
}

/// `IOParameters` read and checked once, kept by the Python object (`IOParameters._native`), so
/// that a call does not read its fields again.
#[pyclass(frozen, module = "xbquant._xbquant")]
pub struct AnalogParameters(IoParameters);

#[pymethods]
impl AnalogParameters {
    #[new]
    fn new(fields: &Bound<'_, PyDict>) -> PyResult<Self> {
        parameters(fields).map(AnalogParameters)
    }
}

/// The parameters of a call: an `AnalogParameters`, or the fields of `IOParameters` as a dict.
fn io_of(io: &Bound<'_, PyAny>) -> PyResult<IoParameters> {
    if let Ok(native) = io.cast::<AnalogParameters>() {
        return Ok(native.get().0);
    }
    let fields = io
        .cast::<PyDict>()
        .map_err(|_| PyTypeError::new_err("io must be the fields of an IOParameters"))?;
    parameters(fields)
}

#[allow(clippy::too_many_arguments)]
fn run<T: Float + numpy::Element>(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    w: &Bound<'_, PyAny>,
    out: &Bound<'_, PyAny>,
    io: &IoParameters,
    tile: (usize, usize),
    seed: u64,
    dtype: &str,
    bits: Option<u32>,
) -> PyResult<()> {
    let x = typed::<T>(x, "x", dtype)?.try_readonly()?;
    let w = typed::<T>(w, "w", dtype)?.try_readonly()?;
    let mut out = typed::<T>(out, "out", dtype)?.try_readwrite()?;
    let (rows, n, k) = dense_shapes(x.shape(), w.shape())?;
    let x = x.as_slice().map_err(slice_error)?;
    let w = w.as_slice().map_err(slice_error)?;
    let out = out.as_slice_mut().map_err(slice_error)?;
    if out.len() != rows * k {
        return Err(PyValueError::new_err("out must hold rows x out values"));
    }
    py.detach(|| match bits {
        Some(bits) => xbquant_analog::mvm_bit_sliced(x, rows, n, w, k, io, tile, seed, bits)
            .map(|y| out.copy_from_slice(&y)),
        None => xbquant_analog::mvm_into(x, rows, n, w, k, io, tile, seed, out),
    })
    .map_err(|e| PyValueError::new_err(e.to_string()))
}

#[allow(clippy::too_many_arguments)]
fn gradients<T: Float + numpy::Element>(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    w: &Bound<'_, PyAny>,
    grad: &Bound<'_, PyAny>,
    gx: &Bound<'_, PyAny>,
    gw: &Bound<'_, PyAny>,
    io: &IoParameters,
    tile: (usize, usize),
    seed: u64,
    dtype: &str,
) -> PyResult<()> {
    let x = typed::<T>(x, "x", dtype)?.try_readonly()?;
    let w = typed::<T>(w, "w", dtype)?.try_readonly()?;
    let grad = typed::<T>(grad, "grad", dtype)?.try_readonly()?;
    let mut gx = typed::<T>(gx, "gx", dtype)?.try_readwrite()?;
    let mut gw = typed::<T>(gw, "gw", dtype)?.try_readwrite()?;
    let (rows, n, k) = dense_shapes(x.shape(), w.shape())?;
    let (x, w, grad) = (
        x.as_slice().map_err(slice_error)?,
        w.as_slice().map_err(slice_error)?,
        grad.as_slice().map_err(slice_error)?,
    );
    let (a, b) = py
        .detach(|| xbquant_analog::mvm_gradients(x, rows, n, w, k, io, tile, seed, grad))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    gx.as_slice_mut().map_err(slice_error)?.copy_from_slice(&a);
    gw.as_slice_mut().map_err(slice_error)?.copy_from_slice(&b);
    Ok(())
}

/// The gradients of `analog_mvm` for the output gradient `grad` into `gx` and `gw` (arrays of
/// the shapes of `x` and `w`), zero where a converter clipped.
#[pyfunction]
#[pyo3(signature = (x, w, grad, gx, gw, io, tile, seed, dtype))]
#[allow(clippy::too_many_arguments)]
pub fn analog_gradients(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    w: &Bound<'_, PyAny>,
    grad: &Bound<'_, PyAny>,
    gx: &Bound<'_, PyAny>,
    gw: &Bound<'_, PyAny>,
    io: &Bound<'_, PyDict>,
    tile: (usize, usize),
    seed: u64,
    dtype: &str,
) -> PyResult<()> {
    let io = parameters(io)?;
    match dtype {
        "float32" => gradients::<f32>(py, x, w, grad, gx, gw, &io, tile, seed, dtype),
        "float64" => gradients::<f64>(py, x, w, grad, gx, gw, &io, tile, seed, dtype),
        other => Err(PyTypeError::new_err(format!(
            "analog tiles take float32 or float64, got {other}"
        ))),
    }
}

/// `out = mvm(x, w)` through one analog tile array: `x` (rows, in) and `w` (out, in) C-contiguous
/// float32 or float64 arrays of `dtype`, `out` (rows, out) of the same dtype, `io` the fields of
/// `IOParameters` as a dict; with `bits`, XBTorch's bit-sliced input encoding.
#[pyfunction]
#[pyo3(signature = (x, w, out, io, tile, seed, dtype, bits=None))]
#[allow(clippy::too_many_arguments)]
pub fn analog_mvm(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    w: &Bound<'_, PyAny>,
    out: &Bound<'_, PyAny>,
    io: &Bound<'_, PyAny>,
    tile: (usize, usize),
    seed: u64,
    dtype: &str,
    bits: Option<u32>,
) -> PyResult<()> {
    let io = io_of(io)?;
    match dtype {
        "float32" => run::<f32>(py, x, w, out, &io, tile, seed, dtype, bits),
        "float64" => run::<f64>(py, x, w, out, &io, tile, seed, dtype, bits),
        other => Err(PyTypeError::new_err(format!(
            "analog tiles take float32 or float64, got {other}"
        ))),
    }
}

/// A device model of `xbquant_analog`: aihwkit's PCM model or XBTorch's devices.
enum Device {
    Pcm(xbquant_analog::PcmLikeNoise),
    Xbtorch(xbquant_analog::XbtorchDevice),
}

fn device(model: &str, params: &Bound<'_, PyDict>) -> PyResult<Device> {
    let device = match model {
        "pcm" => Device::Pcm(xbquant_analog::PcmLikeNoise {
            g_max: field(params, "g_max")?,
            g_min: field(params, "g_min")?,
            prog_coeff: field(params, "prog_coeff")?,
            prog_coeff_g_max_reference: field(params, "prog_coeff_g_max_reference")?,
            t_read: field(params, "t_read")?,
            t_0: field(params, "t_0")?,
            prog_noise_scale: field(params, "prog_noise_scale")?,
            read_noise_scale: field(params, "read_noise_scale")?,
            drift_scale: field(params, "drift_scale")?,
        }),
        "xbtorch" => Device::Xbtorch(xbquant_analog::XbtorchDevice {
            g_min: field(params, "g_min")?,
            g_max: field(params, "g_max")?,
            write_noise: field(params, "write_noise")?,
            read_noise: field(params, "read_noise")?,
            drift_coefficient: field(params, "drift_coefficient")?,
            drift_variation: field(params, "drift_variation")?,
            drift_t0: field(params, "drift_t0")?,
            stuck_fraction: field(params, "stuck_fraction")?,
        }),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown device model {other:?}"
            )))
        }
    };
    let checked = match &device {
        Device::Pcm(m) => m.check(),
        Device::Xbtorch(m) => m.check(),
    };
    checked.map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(device)
}

impl Device {
    fn apply<T: Float>(
        &self,
        kind: &str,
        g: &[T],
        nu: Option<&[T]>,
        t: f64,
        seed: u64,
    ) -> Result<Vec<T>, xbquant_analog::Error> {
        use xbquant_analog::Error;
        match (self, kind, nu) {
            (Device::Pcm(m), "programming", _) => m.programming_noise(g, seed),
            (Device::Pcm(m), "drift_coefficients", _) => m.drift_coefficients(g, seed),
            (Device::Pcm(m), "drift", Some(nu)) => m.drift(g, nu, t, seed),
            (Device::Xbtorch(m), "programming", _) => m.programming_noise(g, seed),
            (Device::Xbtorch(m), "drift_coefficients", _) => m.drift_coefficients(g, seed),
            (Device::Xbtorch(m), "drift", Some(nu)) => m.drift(g, nu, t, seed),
            _ => Err(Error::InvalidParameter("kind", kind.to_string())),
        }
    }

    fn split<T: Float>(&self, w: &[T]) -> Result<(Vec<T>, Vec<T>, f64), xbquant_analog::Error> {
        match self {
            Device::Pcm(m) => m.to_conductances(w),
            Device::Xbtorch(m) => m.to_conductances(w),
        }
    }
}

/// Checks the fields of a device model (`model`: "pcm" or "xbtorch"), raising `ValueError`
/// naming the field.
#[pyfunction]
pub fn device_check(model: &str, params: &Bound<'_, PyDict>) -> PyResult<()> {
    device(model, params).map(|_| ())
}

#[allow(clippy::too_many_arguments)]
fn device_run<T: Float + numpy::Element>(
    py: Python<'_>,
    model: &Device,
    kind: &str,
    g: &Bound<'_, PyAny>,
    nu: Option<&Bound<'_, PyAny>>,
    out: &Bound<'_, PyAny>,
    t: f64,
    seed: u64,
    dtype: &str,
) -> PyResult<()> {
    let g = typed::<T>(g, "g", dtype)?.try_readonly()?;
    let mut out = typed::<T>(out, "out", dtype)?.try_readwrite()?;
    let g = g.as_slice().map_err(slice_error)?;
    let nu_array = match nu {
        Some(nu) => Some(typed::<T>(nu, "nu", dtype)?.try_readonly()?),
        None => None,
    };
    let nu = match &nu_array {
        Some(a) => Some(a.as_slice().map_err(slice_error)?),
        None => None,
    };
    let out = out.as_slice_mut().map_err(slice_error)?;
    let values = py
        .detach(|| model.apply(kind, g, nu, t, seed))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    if values.len() != out.len() {
        return Err(PyValueError::new_err(
            "out must hold one value per conductance",
        ));
    }
    out.copy_from_slice(&values);
    Ok(())
}

/// One of a device model's draws (`kind`: "programming", "drift_coefficients" or "drift") on
/// the conductances `g` (C-contiguous float32 or float64 of `dtype`) into `out`; `nu` and `t`
/// for the drift.
#[pyfunction]
#[pyo3(signature = (model, params, kind, g, nu, out, t, seed, dtype))]
#[allow(clippy::too_many_arguments)]
pub fn device_apply(
    py: Python<'_>,
    model: &str,
    params: &Bound<'_, PyDict>,
    kind: &str,
    g: &Bound<'_, PyAny>,
    nu: Option<&Bound<'_, PyAny>>,
    out: &Bound<'_, PyAny>,
    t: f64,
    seed: u64,
    dtype: &str,
) -> PyResult<()> {
    let model = device(model, params)?;
    match dtype {
        "float32" => device_run::<f32>(py, &model, kind, g, nu, out, t, seed, dtype),
        "float64" => device_run::<f64>(py, &model, kind, g, nu, out, t, seed, dtype),
        other => Err(PyTypeError::new_err(format!(
            "conductances must be float32 or float64, got {other}"
        ))),
    }
}

fn device_split<T: Float + numpy::Element>(
    py: Python<'_>,
    model: &Device,
    w: &Bound<'_, PyAny>,
    plus: &Bound<'_, PyAny>,
    minus: &Bound<'_, PyAny>,
    dtype: &str,
) -> PyResult<f64> {
    let w = typed::<T>(w, "w", dtype)?.try_readonly()?;
    let mut plus = typed::<T>(plus, "plus", dtype)?.try_readwrite()?;
    let mut minus = typed::<T>(minus, "minus", dtype)?.try_readwrite()?;
    let w = w.as_slice().map_err(slice_error)?;
    let (p, m, ratio) = py
        .detach(|| model.split(w))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    plus.as_slice_mut()
        .map_err(slice_error)?
        .copy_from_slice(&p);
    minus
        .as_slice_mut()
        .map_err(slice_error)?
        .copy_from_slice(&m);
    Ok(ratio)
}

/// The weights `w` as a pair of conductances (the single-pair mapping) into `plus` and `minus`;
/// returns the scale ratio.
#[pyfunction]
#[pyo3(signature = (model, params, w, plus, minus, dtype))]
pub fn device_to_conductances(
    py: Python<'_>,
    model: &str,
    params: &Bound<'_, PyDict>,
    w: &Bound<'_, PyAny>,
    plus: &Bound<'_, PyAny>,
    minus: &Bound<'_, PyAny>,
    dtype: &str,
) -> PyResult<f64> {
    let model = device(model, params)?;
    match dtype {
        "float32" => device_split::<f32>(py, &model, w, plus, minus, dtype),
        "float64" => device_split::<f64>(py, &model, w, plus, minus, dtype),
        other => Err(PyTypeError::new_err(format!(
            "weights must be float32 or float64, got {other}"
        ))),
    }
}
