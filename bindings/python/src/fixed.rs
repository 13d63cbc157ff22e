//! The bit-exact fixed-point layers for Python (`xbquant.fixed`): hls4ml's dense layer and its
//! accumulator precision, computed by `xbquant-fixed` with the GIL released.

use numpy::{PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use xbquant_fixed::{DenseTypes, FixedType};

use crate::call::{dense_shapes, slice_error, typed};

fn value_error(e: xbquant_fixed::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// An HLS type string checked and written in full (`ap_fixed<W,I,Q,O,N>`).
#[pyfunction]
pub fn fixed_type(hls: &str) -> PyResult<String> {
    FixedType::parse(hls).map(|t| t.hls()).map_err(value_error)
}

/// hls4ml's accumulator type for `n` inputs, as a full HLS string.
#[pyfunction]
#[pyo3(signature = (input_type, weight_type, n, bias_type=None))]
pub fn fixed_accum_type(
    input_type: &str,
    weight_type: &str,
    n: usize,
    bias_type: Option<&str>,
) -> PyResult<String> {
    let (x, w) = (
        FixedType::parse(input_type).map_err(value_error)?,
        FixedType::parse(weight_type).map_err(value_error)?,
    );
    let b = bias_type
        .map(FixedType::parse)
        .transpose()
        .map_err(value_error)?;
    xbquant_fixed::accum_type(&x, &w, n, b.as_ref())
        .map(|t| t.hls())
        .map_err(value_error)
}

/// hls4ml's dense layer: `x` (rows, in), `w` (out, in), `b` (out,) or None, the five types
/// (input, weight, bias, accum, result); the result values into `out` (rows, out); returns the
/// overflow counts when `count` (each step then as hls4ml takes it), else an empty dict (a
/// wrapping accumulator then takes the vectorized dot products).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn fixed_dense<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    b: Option<&Bound<'py, PyAny>>,
    types: (String, String, String, String, String),
    out: &Bound<'py, PyAny>,
    dtype: &str,
    count: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let types =
        DenseTypes::parse(&types.0, &types.1, &types.2, &types.3, &types.4).map_err(value_error)?;
    match dtype {
        "float32" => dense::<f32>(py, x, w, b, &types, out, dtype, count),
        "float64" => dense::<f64>(py, x, w, b, &types, out, dtype, count),
        other => Err(PyTypeError::new_err(format!(
            "fixed-point layers take float32 or float64 values, got {other}"
        ))),
    }
}

trait Narrow: xbquant::Element + numpy::Element {
    fn narrow(v: f64) -> Self;
}

impl Narrow for f32 {
    fn narrow(v: f64) -> Self {
        v as f32
    }
}

impl Narrow for f64 {
    fn narrow(v: f64) -> Self {
        v
    }
}

#[allow(clippy::too_many_arguments)]
fn dense<'py, T: Narrow>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    b: Option<&Bound<'py, PyAny>>,
    types: &DenseTypes,
    out: &Bound<'py, PyAny>,
    dtype: &str,
    count: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let x = typed::<T>(x, "x", dtype)?.try_readonly()?;
    let w = typed::<T>(w, "w", dtype)?.try_readonly()?;
    let b = b.map(|b| typed::<T>(b, "b", dtype)).transpose()?;
    let b = b.map(|b| b.try_readonly()).transpose()?;
    let mut out = typed::<T>(out, "out", dtype)?.try_readwrite()?;
    let (rows, n, k) = dense_shapes(x.shape(), w.shape())?;
    let (x, w) = (
        x.as_slice().map_err(slice_error)?,
        w.as_slice().map_err(slice_error)?,
    );
    let b = b
        .as_ref()
        .map(|b| b.as_slice())
        .transpose()
        .map_err(slice_error)?;
    let out = out.as_slice_mut().map_err(slice_error)?;
    if out.len() != rows * k {
        return Err(PyValueError::new_err("out must hold rows x out values"));
    }
    let frac = types.result.frac();
    let overflows = py
        .detach(|| {
            let step = 2f64.powi(-frac);
            if !count {
                let values = xbquant_fixed::dense(x, rows, n, w, k, b, types)?;
                for (o, v) in out.iter_mut().zip(values) {
                    *o = T::narrow(v);
                }
                return Ok(None);
            }
            let (codes, overflows) =
                xbquant_fixed::dense_with_overflows(x, rows, n, w, k, b, types)?;
            for (o, c) in out.iter_mut().zip(codes) {
                *o = T::narrow((c as f64) * step);
            }
            let overflows = Some(overflows);
            Ok::<_, xbquant_fixed::Error>(overflows)
        })
        .map_err(value_error)?;
    let counts = PyDict::new(py);
    let Some(overflows) = overflows else {
        return Ok(counts);
    };
    counts.set_item("inputs", overflows.inputs)?;
    counts.set_item("weights", overflows.weights)?;
    counts.set_item("biases", overflows.biases)?;
    counts.set_item("products", overflows.products)?;
    counts.set_item("accumulations", overflows.accumulations)?;
    counts.set_item("results", overflows.results)?;
    Ok(counts)
}

/// Integer codes of `values`: cast to `ty` when given, else the values themselves, which must be
/// integers.
fn integer_codes(values: &[f64], ty: Option<&str>, what: &'static str) -> PyResult<Vec<i64>> {
    match ty {
        Some(ty) => {
            let t = FixedType::parse(ty).map_err(value_error)?;
            let (codes, _) = t.cast_all(values, what).map_err(value_error)?;
            Ok(codes.into_iter().map(|c| c as i64).collect())
        }
        None => values
            .iter()
            .map(|&v| {
                if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e18 {
                    Ok(v as i64)
                } else {
                    Err(PyValueError::new_err(format!(
                        "{what} must hold integer codes (or give its type), got {v}"
                    )))
                }
            })
            .collect(),
    }
}

/// The accumulator width per output channel that no input of `input_type` can overflow, for the
/// weights `w` (out, in; float64): integer codes, or values cast to `weight_type`.
#[pyfunction]
#[pyo3(signature = (w, input_type, weight_type=None))]
pub fn fixed_accum_bits(
    w: &Bound<'_, PyAny>,
    input_type: &str,
    weight_type: Option<&str>,
) -> PyResult<Vec<u32>> {
    let w = typed::<f64>(w, "w", "float64")?.try_readonly()?;
    let shape = w.shape().to_vec();
    if shape.len() != 2 {
        return Err(PyValueError::new_err(format!(
            "w must be (out, in), got {shape:?}"
        )));
    }
    let codes = integer_codes(w.as_slice().map_err(slice_error)?, weight_type, "w")?;
    let input = FixedType::parse(input_type).map_err(value_error)?;
    xbquant_fixed::accum_bits(&codes, shape[0], shape[1], &input).map_err(value_error)
}

/// The accumulator width per output channel the inputs `x` (rows, in; float64, cast to
/// `input_type`) needed with the weights `w`, the partial sums in hls4ml's order.
#[pyfunction]
#[pyo3(signature = (x, w, input_type, weight_type=None))]
pub fn fixed_accum_bits_used(
    x: &Bound<'_, PyAny>,
    w: &Bound<'_, PyAny>,
    input_type: &str,
    weight_type: Option<&str>,
) -> PyResult<Vec<u32>> {
    let x = typed::<f64>(x, "x", "float64")?.try_readonly()?;
    let w = typed::<f64>(w, "w", "float64")?.try_readonly()?;
    let (rows, n, k) = dense_shapes(x.shape(), w.shape())?;
    let wc = integer_codes(w.as_slice().map_err(slice_error)?, weight_type, "w")?;
    let xc = integer_codes(x.as_slice().map_err(slice_error)?, Some(input_type), "x")?;
    xbquant_fixed::accum_bits_used(&xc, rows, n, &wc, k).map_err(value_error)
}
