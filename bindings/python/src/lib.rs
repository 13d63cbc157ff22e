//! The Rust side of the `xbquant` Python package: a thin layer that turns numpy buffers and
//! mode names into calls of the core kernels. Everything users see is written in Python
//! (`python/xbquant/`); this module is `xbquant._xbquant`, a private implementation detail.
//!
//! Buffers arrive as C-contiguous numpy arrays: `float32`, `float64`, or `uint16` holding the bits
//! of `float16` / `bfloat16` (numpy has no `bfloat16`; the Python layer makes the zero-copy view).
//! The kernels run with the GIL released.

use half::slice::HalfBitsSliceExt;
use half::{bf16, f16};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use xbquant::{Element, FixedPoint, Overflow, Rounding};

/// A core error as the Python exception users expect: every core error is about a bad value.
fn value_error(err: xbquant::Error) -> PyErr {
    PyValueError::new_err(err.to_string())
}

/// The format and rounding of one call, checked.
struct Spec {
    format: FixedPoint,
    rounding: Rounding,
}

impl Spec {
    fn new(
        word_length: i64,
        frac_length: i64,
        signed: bool,
        overflow: &str,
        rounding: &str,
        seed: Option<u64>,
    ) -> PyResult<Spec> {
        let wl = u32::try_from(word_length).map_err(|_| {
            PyValueError::new_err(format!(
                "invalid word length {word_length}: expected 1 to {}",
                xbquant::MAX_WORD_LENGTH
            ))
        })?;
        let fl = i32::try_from(frac_length).map_err(|_| {
            PyValueError::new_err(format!(
                "fractional length {frac_length} is out of range: expected -{m} to {m}",
                m = xbquant::MAX_FRAC_LENGTH
            ))
        })?;
        let overflow: Overflow = overflow.parse().map_err(value_error)?;
        let format = FixedPoint::new(wl, fl)
            .and_then(|f| f.with_signed(signed))
            .and_then(|f| f.with_overflow(overflow))
            .map_err(value_error)?;
        let mut rounding: Rounding = rounding.parse().map_err(value_error)?;
        if let Some(seed) = seed {
            if !rounding.is_stochastic() {
                return Err(PyValueError::new_err(format!(
                    "a seed was given, but rounding {rounding} is not stochastic"
                )));
            }
            rounding = Rounding::Stochastic { seed };
        }
        Ok(Spec { format, rounding })
    }
}

/// How the elements of a numpy buffer are read: the numpy element type `Numpy` and the core
/// element type `Core` it holds (the same type, or a half-precision float held as `u16` bits).
trait Layout {
    type Numpy: numpy::Element + Send + Sync;
    type Core: Element;
    fn view(s: &[Self::Numpy]) -> &[Self::Core];
    fn view_mut(s: &mut [Self::Numpy]) -> &mut [Self::Core];
}

/// A numpy type the core handles directly.
struct Same<T>(std::marker::PhantomData<T>);
impl<T: numpy::Element + Element> Layout for Same<T> {
    type Numpy = T;
    type Core = T;
    fn view(s: &[T]) -> &[T] {
        s
    }
    fn view_mut(s: &mut [T]) -> &mut [T] {
        s
    }
}

/// `uint16` arrays holding the bits of a half-precision type (`half`'s reinterpreting casts
/// are only defined for the concrete types, hence one struct each).
macro_rules! bits_layout {
    ($name:ident, $half:ty) => {
        /// `uint16` bits of the half-precision type.
        struct $name;
        impl Layout for $name {
            type Numpy = u16;
            type Core = $half;
            fn view(s: &[u16]) -> &[$half] {
                s.reinterpret_cast()
            }
            fn view_mut(s: &mut [u16]) -> &mut [$half] {
                s.reinterpret_cast_mut()
            }
        }
    };
}
bits_layout!(F16Bits, f16);
bits_layout!(Bf16Bits, bf16);

/// A typed numpy array of `obj`, or a `TypeError` that names what was expected.
fn typed<'a, 'py, E: numpy::Element>(
    obj: &'a Bound<'py, PyAny>,
    what: &str,
    dtype: &str,
) -> PyResult<&'a Bound<'py, PyArrayDyn<E>>> {
    let array = obj.cast::<PyArrayDyn<E>>().map_err(|_| {
        PyTypeError::new_err(format!("{what} must be a numpy array of dtype {dtype}"))
    })?;
    if !array.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{what} must be C-contiguous"
        )));
    }
    Ok(array)
}

fn overlap(what: &str) -> PyErr {
    PyValueError::new_err(format!(
        "{what} shares memory with another buffer of the call; quantize in place by passing no output"
    ))
}

/// Runs one call on buffers of one layout.
fn run<L: Layout>(
    py: Python<'_>,
    spec: &Spec,
    src: &Bound<'_, PyAny>,
    dst: Option<&Bound<'_, PyAny>>,
    mask: Option<&Bound<'_, PyAny>>,
    dtype: &str,
) -> PyResult<()> {
    let (format, rounding) = (spec.format, spec.rounding);
    let src = typed::<L::Numpy>(src, "the input", dtype)?;
    let mut mask = match mask {
        Some(m) => Some(
            typed::<bool>(m, "the mask", "bool")?
                .try_readwrite()
                .map_err(|_| overlap("the mask"))?,
        ),
        None => None,
    };
    let mask = match mask.as_mut() {
        Some(m) => Some(
            m.as_slice_mut()
                .map_err(|e| PyValueError::new_err(e.to_string()))?,
        ),
        None => None,
    };
    let slice_err = |e: numpy::AsSliceError| PyValueError::new_err(e.to_string());
    match dst {
        None => {
            let mut buf = src.try_readwrite().map_err(|_| overlap("the input"))?;
            let buf = L::view_mut(buf.as_slice_mut().map_err(slice_err)?);
            py.detach(|| match mask {
                None => {
                    format.quantize_in_place(buf, rounding);
                    Ok(())
                }
                Some(mask) => format.quantize_in_place_with_mask(buf, mask, rounding),
            })
        }
        Some(dst) => {
            let dst = typed::<L::Numpy>(dst, "the output", dtype)?;
            let input = src.try_readonly().map_err(|_| overlap("the input"))?;
            let mut output = dst.try_readwrite().map_err(|_| overlap("the output"))?;
            let x = L::view(input.as_slice().map_err(slice_err)?);
            let out = L::view_mut(output.as_slice_mut().map_err(slice_err)?);
            py.detach(|| match mask {
                None => format.quantize_into(x, out, rounding),
                Some(mask) => format.quantize_into_with_mask(x, out, mask, rounding),
            })
        }
    }
    .map_err(value_error)
}

/// Quantizes `src` into `dst` (or in place when `dst` is `None`), writing the overflow mask into
/// `mask` when given. `dtype` names the element type: `float32`, `float64`, or `float16` /
/// `bfloat16` for `uint16` arrays of their bits.
#[pyfunction]
#[pyo3(signature = (src, dst, mask, dtype, word_length, frac_length, signed, overflow, rounding, seed))]
#[allow(clippy::too_many_arguments)]
fn quantize(
    py: Python<'_>,
    src: &Bound<'_, PyAny>,
    dst: Option<&Bound<'_, PyAny>>,
    mask: Option<&Bound<'_, PyAny>>,
    dtype: &str,
    word_length: i64,
    frac_length: i64,
    signed: bool,
    overflow: &str,
    rounding: &str,
    seed: Option<u64>,
) -> PyResult<()> {
    let spec = Spec::new(word_length, frac_length, signed, overflow, rounding, seed)?;
    match dtype {
        "float32" => run::<Same<f32>>(py, &spec, src, dst, mask, dtype),
        "float64" => run::<Same<f64>>(py, &spec, src, dst, mask, dtype),
        "float16" => run::<F16Bits>(py, &spec, src, dst, mask, "uint16"),
        "bfloat16" => run::<Bf16Bits>(py, &spec, src, dst, mask, "uint16"),
        other => Err(PyTypeError::new_err(format!(
            "unsupported dtype {other}: expected float32, float64, float16 or bfloat16"
        ))),
    }
}

/// Checks a format and a rounding, and returns what the pure-torch path needs to compute the
/// same result: the canonical overflow and rounding names, the saturation bits, the code bounds
/// (as the kernels hold them, in `float64`) and the seed (`None` unless stochastic with a seed).
#[pyfunction]
#[pyo3(signature = (word_length, frac_length, signed, overflow, rounding, seed))]
fn describe(
    word_length: i64,
    frac_length: i64,
    signed: bool,
    overflow: &str,
    rounding: &str,
    seed: Option<u64>,
) -> PyResult<(String, String, u32, f64, f64, Option<u64>)> {
    let spec = Spec::new(word_length, frac_length, signed, overflow, rounding, seed)?;
    let overflow = spec.format.overflow();
    let (lo, hi) = spec.format.code_range();
    let (name, seed) = match spec.rounding {
        Rounding::Stochastic { seed } => ("stochastic".to_string(), Some(seed)),
        other => (other.name(), None),
    };
    #[allow(clippy::cast_precision_loss)]
    Ok((
        overflow.name(),
        name,
        overflow.sat_bits(),
        lo as f64,
        hi as f64,
        seed,
    ))
}

/// The `(min, max)` of a format by the seed's formula (`get_range_fixed_point`).
#[pyfunction]
#[pyo3(signature = (word_length, frac_length, symmetric, signed))]
fn format_range(
    word_length: i64,
    frac_length: i64,
    symmetric: bool,
    signed: bool,
) -> PyResult<(f64, f64)> {
    let overflow = if symmetric {
        "saturate-symmetric"
    } else {
        "saturate"
    };
    let spec = Spec::new(word_length, frac_length, signed, overflow, "nearest", None)?;
    Ok(xbquant::get_range_fixed_point(&spec.format))
}

/// Parses an HLS type such as `ap_fixed<8,3,AP_RND_CONV,AP_SAT>` into
/// `(word_length, frac_length, signed, overflow, rounding)`.
#[pyfunction]
fn parse_hls(name: &str) -> PyResult<(u32, i32, bool, String, String)> {
    let (format, rounding) = FixedPoint::from_hls(name).map_err(value_error)?;
    Ok((
        format.word_length(),
        format.frac_length(),
        format.is_signed(),
        format.overflow().name(),
        rounding.name(),
    ))
}

/// The private extension module of the `xbquant` package.
#[pymodule]
fn _xbquant(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add_function(wrap_pyfunction!(describe, m)?)?;
    m.add_function(wrap_pyfunction!(format_range, m)?)?;
    m.add_function(wrap_pyfunction!(parse_hls, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
