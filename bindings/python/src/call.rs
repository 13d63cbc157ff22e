//! The one entry point of every scheme, [`quantize`], and [`calibrate`]: numpy buffers turned into
//! calls of the core, with the element type matched once ([`by_dtype!`]).
//!
//! Buffers arrive as C-contiguous numpy arrays: `float32`, `float64`, or `uint16` holding the
//! bits of `float16` / `bfloat16` (numpy has no `bfloat16`; the Python layer makes the zero-copy
//! view). The kernels run with the interpreter's lock released, except for small calls.

use half::slice::HalfBitsSliceExt;
use half::{bf16, f16};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use xbquant::{Data, Element, Part, Quantizer, Scheme};

use crate::scheme::{value_error, PyScheme};

/// How the elements of a numpy buffer are read: the numpy element type `Numpy` and the core
/// element type `Core` it holds (the same type, or a half-precision float held as `u16` bits).
trait Layout {
    type Numpy: numpy::Element + Send + Sync + Copy + Default;
    type Core: Element;
    fn view(s: &[Self::Numpy]) -> &[Self::Core];
    fn view_mut(s: &mut [Self::Numpy]) -> &mut [Self::Core];
}

/// A numpy type the core handles directly.
struct Same<T>(std::marker::PhantomData<T>);
impl<T: numpy::Element + Element + Default> Layout for Same<T> {
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

/// Calls `$f::<Layout>(args.., numpy_dtype)` for the layout of the dtype name `$dtype`: the one
/// match on the element type.
macro_rules! by_dtype {
    ($dtype:expr, $f:ident ( $($arg:expr),* )) => {
        match $dtype {
            "float32" => $f::<Same<f32>>($($arg),*, "float32"),
            "float64" => $f::<Same<f64>>($($arg),*, "float64"),
            "float16" => $f::<F16Bits>($($arg),*, "uint16"),
            "bfloat16" => $f::<Bf16Bits>($($arg),*, "uint16"),
            other => Err(PyTypeError::new_err(format!(
                "unsupported dtype {other}: expected float32, float64, float16 or bfloat16"
            ))),
        }
    };
}

/// A typed numpy array of `obj`, or a `TypeError` that names what was expected.
pub fn typed<'a, 'py, E: numpy::Element>(
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
        "{what} shares memory with another buffer of the call; quantize in place by passing the \
         input as the output"
    ))
}

/// The element count from which a call releases the interpreter's lock while the kernel runs
/// (small calls cost more to release and take it back than their kernel takes).
const DETACH_FROM: usize = 1 << 14;

/// Runs `f` without the interpreter's lock when the call is large.
fn detached<R: Send>(py: Python<'_>, len: usize, f: impl FnOnce() -> R + Send) -> R {
    if len < DETACH_FROM {
        f()
    } else {
        py.detach(f)
    }
}

/// A `ValueError` for an array that is not one contiguous slice.
pub fn slice_error(e: numpy::AsSliceError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// The sizes `(rows, in, out)` of a layer's input `x` (`rows x in`) and weights `w`
/// (`out x in`), from their shapes, or a `ValueError` that gives both.
pub fn dense_shapes(x: &[usize], w: &[usize]) -> PyResult<(usize, usize, usize)> {
    match (x, w) {
        (&[rows, n], &[k, n2]) if n == n2 => Ok((rows, n, k)),
        _ => Err(PyValueError::new_err(format!(
            "x must be (rows, in) and w (out, in), got {x:?} and {w:?}"
        ))),
    }
}

/// One call on buffers of one layout: into a new array (returned), into `dst`, or in place
/// (`dst` the input itself).
fn run<'py, L: Layout>(
    py: Python<'py>,
    scheme: &Scheme,
    src: &Bound<'py, PyAny>,
    dst: Option<&Bound<'py, PyAny>>,
    mask: Option<&Bound<'py, PyAny>>,
    dtype: &str,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let source = typed::<L::Numpy>(src, "the input", dtype)?;
    let shape = source.shape().to_vec();
    let part = Part::shaped(&shape).map_err(value_error)?;
    let mut mask = match mask {
        Some(m) => Some(
            typed::<bool>(m, "the mask", "bool")?
                .try_readwrite()
                .map_err(|_| overlap("the mask"))?,
        ),
        None => None,
    };
    let mask = match mask.as_mut() {
        Some(m) => Some(m.as_slice_mut().map_err(slice_error)?),
        None => None,
    };
    match dst {
        None => {
            // Computed into a vector that the new array then owns.
            let input = source.try_readonly().map_err(|_| overlap("the input"))?;
            let x = L::view(input.as_slice().map_err(slice_error)?);
            let mut out = vec![L::Numpy::default(); x.len()];
            let data = Data::Into {
                x,
                out: L::view_mut(&mut out),
            };
            detached(py, x.len(), || scheme.quantize_part(data, mask, part))
                .map_err(value_error)?;
            let out = numpy::ndarray::Array::from_shape_vec(shape, out)
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            Ok(Some(PyArrayDyn::from_owned_array(py, out).into_any()))
        }
        Some(dst) if dst.is(src) => {
            let mut buf = source.try_readwrite().map_err(|_| overlap("the input"))?;
            let buf = L::view_mut(buf.as_slice_mut().map_err(slice_error)?);
            let n = buf.len();
            detached(py, n, || {
                scheme.quantize_part(Data::InPlace(buf), mask, part)
            })
            .map_err(value_error)?;
            Ok(None)
        }
        Some(dst) => {
            let dst = typed::<L::Numpy>(dst, "the output", dtype)?;
            let input = source.try_readonly().map_err(|_| overlap("the input"))?;
            let mut output = dst.try_readwrite().map_err(|_| overlap("the output"))?;
            let x = L::view(input.as_slice().map_err(slice_error)?);
            let out = L::view_mut(output.as_slice_mut().map_err(slice_error)?);
            detached(py, x.len(), || {
                scheme.quantize_part(Data::Into { x, out }, mask, part)
            })
            .map_err(value_error)?;
            Ok(None)
        }
    }
}

/// The dtype name of a typed `float32` or `float64` array.
fn float_dtype(src: &Bound<'_, PyAny>) -> PyResult<&'static str> {
    if src.cast::<PyArrayDyn<f32>>().is_ok() {
        Ok("float32")
    } else if src.cast::<PyArrayDyn<f64>>().is_ok() {
        Ok("float64")
    } else {
        Err(PyTypeError::new_err(
            "the input must be a numpy array of dtype float32 or float64",
        ))
    }
}

/// Quantizes `src` (a C-contiguous numpy array; its shape is the tensor's) with `scheme`: into
/// a new array, which is returned (`dst` None), into `dst`, or in place (`dst` is `src`), writing
/// the clip mask into `mask` when given. `dtype` names the element type: `float32`, `float64`,
/// or `float16` / `bfloat16` for `uint16` arrays of their bits (None: that of a `float32` or
/// `float64` array). `seed` fixes the noise of a scheme that draws it, for this call.
#[pyfunction]
#[pyo3(signature = (scheme, src, dst=None, mask=None, dtype=None, seed=None))]
pub fn quantize<'py>(
    py: Python<'py>,
    scheme: &PyScheme,
    src: &Bound<'py, PyAny>,
    dst: Option<&Bound<'py, PyAny>>,
    mask: Option<&Bound<'py, PyAny>>,
    dtype: Option<&str>,
    seed: Option<u64>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let seeded;
    let scheme = match seed {
        Some(seed) => {
            seeded = scheme.0.with_seed(seed).map_err(value_error)?;
            &seeded
        }
        None => &scheme.0,
    };
    let dtype = match dtype {
        Some(d) => d,
        None => float_dtype(src)?,
    };
    by_dtype!(dtype, run(py, scheme, src, dst, mask))
}

fn calibrate_call<L: Layout>(
    py: Python<'_>,
    scheme: &Scheme,
    src: &Bound<'_, PyAny>,
    dtype: &str,
) -> PyResult<PyScheme> {
    let source = typed::<L::Numpy>(src, "the input", dtype)?;
    let shape = source.shape().to_vec();
    let part = Part::shaped(&shape).map_err(value_error)?;
    let input = source.try_readonly().map_err(|_| overlap("the input"))?;
    let x = L::view(input.as_slice().map_err(slice_error)?);
    detached(py, x.len(), || scheme.calibrated_on(x, part))
        .map(PyScheme)
        .map_err(value_error)
}

/// `scheme` with the scales its rule chooses for `src` (a whole tensor) given: fractional
/// lengths (`Scheme.fls`) or ranges. `dtype` as for [`quantize`].
#[pyfunction]
#[pyo3(signature = (scheme, src, dtype=None))]
pub fn calibrate(
    py: Python<'_>,
    scheme: &PyScheme,
    src: &Bound<'_, PyAny>,
    dtype: Option<&str>,
) -> PyResult<PyScheme> {
    let dtype = match dtype {
        Some(d) => d,
        None => float_dtype(src)?,
    };
    by_dtype!(dtype, calibrate_call(py, &scheme.0, src))
}
