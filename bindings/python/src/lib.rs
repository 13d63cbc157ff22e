//! The Rust side of the `xbquant` Python package: a thin layer that turns numpy buffers into calls
//! of the core kernels. Everything users see is written in Python (`python/xbquant/`); this
//! module is `xbquant._xbquant`, a private implementation detail.
//!
//! A format and its rounding cross the boundary once, as a `Spec` (the core's `QuantSpec` in a
//! frozen Python object that the Python layer caches per distinct format); each call passes the
//! spec, the buffers and, for stochastic rounding without a fixed seed, the seed of that call.
//!
//! Buffers arrive as C-contiguous numpy arrays: `float32`, `float64`, or `uint16` holding the bits
//! of `float16` / `bfloat16` (numpy has no `bfloat16`; the Python layer makes the zero-copy view).
//! The kernels run with the GIL released.

use half::slice::HalfBitsSliceExt;
use half::{bf16, f16};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use xbquant::{
    noise, BitSlicing, BlockFormat, Blocks, Converter, ConverterNoise, ConverterRange, Element,
    FixedPoint, FloatEncoding, FloatFormat, FloatOverflow, FracLengthRule, Grid, Levels, Overflow,
    QuantSpec, Rounding, SliceEncoding,
};

/// A core error as the Python exception users expect: every core error is about a bad value.
fn value_error(err: xbquant::Error) -> PyErr {
    PyValueError::new_err(err.to_string())
}

fn word_length(value: i64) -> PyResult<u32> {
    u32::try_from(value).map_err(|_| {
        PyValueError::new_err(format!(
            "invalid word length {value}: expected 1 to {}",
            xbquant::MAX_WORD_LENGTH
        ))
    })
}

fn frac_length(value: i64) -> PyResult<i32> {
    i32::try_from(value).map_err(|_| {
        PyValueError::new_err(format!(
            "fractional length {value} is out of range: expected -{m} to {m}",
            m = xbquant::MAX_FRAC_LENGTH
        ))
    })
}

/// A checked fixed-point format and rounding mode: what every quantize call of the Python layer
/// takes. Immutable and hashable.
#[pyclass(frozen, eq, hash, module = "xbquant._xbquant")]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Spec(QuantSpec);

#[pymethods]
impl Spec {
    /// Parses the names once: `overflow` is a mode name (ours or HLS, optionally `name:N`),
    /// `sat_bits` the saturation bits of a wrap mode (0 keeps those of the name), `rounding` a
    /// rounding name and `seed` fixes stochastic rounding's noise.
    #[new]
    #[pyo3(signature = (wl, fl, signed, overflow, sat_bits, rounding, seed))]
    fn new(
        wl: i64,
        fl: i64,
        signed: bool,
        overflow: &str,
        sat_bits: u32,
        rounding: &str,
        seed: Option<u64>,
    ) -> PyResult<Spec> {
        let mut overflow: Overflow = overflow.parse().map_err(value_error)?;
        if sat_bits > 0 {
            overflow = overflow.with_sat_bits(sat_bits).map_err(value_error)?;
        }
        let format = FixedPoint::new(word_length(wl)?, frac_length(fl)?)
            .and_then(|f| f.with_signed(signed))
            .and_then(|f| f.with_overflow(overflow))
            .map_err(value_error)?;
        let rounding: Rounding = rounding.parse().map_err(value_error)?;
        let spec = QuantSpec::new(format, rounding);
        Ok(Spec(match seed {
            Some(seed) => spec.with_seed(seed).map_err(value_error)?,
            None => spec,
        }))
    }

    /// The spec of an HLS type such as `ap_fixed<8,3,AP_RND_CONV,AP_SAT>`.
    #[staticmethod]
    fn from_hls(name: &str) -> PyResult<Spec> {
        QuantSpec::from_hls(name).map(Spec).map_err(value_error)
    }

    /// The same spec with stochastic rounding's noise fixed by `seed`.
    fn with_seed(&self, seed: u64) -> PyResult<Spec> {
        self.0.with_seed(seed).map(Spec).map_err(value_error)
    }

    /// Word length in bits.
    #[getter]
    fn wl(&self) -> u32 {
        self.0.format().word_length()
    }

    /// Fractional length in bits.
    #[getter]
    fn fl(&self) -> i32 {
        self.0.format().frac_length()
    }

    /// Whether the codes are signed.
    #[getter]
    fn signed(&self) -> bool {
        self.0.format().is_signed()
    }

    /// The overflow mode's name, without its saturation bits (`"wrap"`, `"saturate"`, ...).
    #[getter]
    fn overflow(&self) -> String {
        // Every mode takes zero saturation bits, so this never falls back.
        let overflow = self.0.format().overflow();
        overflow.with_sat_bits(0).unwrap_or(overflow).name()
    }

    /// The saturation bits of a wrap mode (0 otherwise).
    #[getter]
    fn sat_bits(&self) -> u32 {
        self.0.format().overflow().sat_bits()
    }

    /// The rounding mode's name, without a seed (`"nearest"`, ..., `"stochastic"`).
    #[getter]
    fn rounding(&self) -> String {
        match self.0.rounding() {
            Rounding::Stochastic { .. } => "stochastic".to_string(),
            other => other.name(),
        }
    }

    /// Whether the rounding is stochastic.
    #[getter]
    fn stochastic(&self) -> bool {
        self.0.rounding().is_stochastic()
    }

    /// The fixed seed of stochastic rounding, or `None`.
    #[getter]
    fn seed(&self) -> Option<u64> {
        match self.0.rounding() {
            Rounding::Stochastic { seed } => Some(seed),
            _ => None,
        }
    }

    /// The smallest code quantization produces when it clamps, as the kernels hold it (`float`).
    #[getter]
    #[allow(clippy::cast_precision_loss)]
    fn code_min(&self) -> f64 {
        self.0.format().code_range().0 as f64
    }

    /// The largest code, as [`code_min`](Spec::code_min).
    #[getter]
    #[allow(clippy::cast_precision_loss)]
    fn code_max(&self) -> f64 {
        self.0.format().code_range().1 as f64
    }

    /// `(min, max)` of the format: XBTorch's `get_range_fixed_point`.
    #[getter]
    fn range(&self) -> (f64, f64) {
        self.0.format().range()
    }

    /// The full HLS type, or a `ValueError` where none expresses the spec.
    #[pyo3(name = "to_hls")]
    fn hls_type(&self) -> PyResult<String> {
        self.0.to_hls().map_err(value_error)
    }

    fn __repr__(&self) -> String {
        format!("Spec({})", self.0)
    }
}

/// A checked floating-point format and rounding (nearest or stochastic): what every float
/// quantize call of the Python layer takes. Immutable and hashable.
#[pyclass(frozen, eq, hash, module = "xbquant._xbquant")]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct FloatSpec {
    format: FloatFormat,
    rounding: Rounding,
}

#[pymethods]
impl FloatSpec {
    /// `format` is a name (`float16`, `bfloat16`, `e5m2`, `e4m3fn`, `eXmY`, `eXmYfn`);
    /// `overflow` is `None` (the format's default), `"infinity"` or `"saturate"`; `rounding` is
    /// `"nearest"` or `"stochastic"`; `seed` fixes stochastic rounding's noise.
    #[new]
    #[pyo3(signature = (format, rounding, overflow, seed))]
    fn new(
        format: &str,
        rounding: &str,
        overflow: Option<&str>,
        seed: Option<u64>,
    ) -> PyResult<FloatSpec> {
        let mut format: FloatFormat = format.parse().map_err(value_error)?;
        if let Some(overflow) = overflow {
            format = format.with_overflow(match overflow.to_ascii_lowercase().as_str() {
                "infinity" | "inf" => FloatOverflow::Infinity,
                "saturate" => FloatOverflow::Saturate,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "unknown float overflow {other:?}: expected \"infinity\" or \"saturate\""
                    )))
                }
            });
        }
        let mut rounding: Rounding = rounding.parse().map_err(value_error)?;
        if let Some(seed) = seed {
            rounding = rounding.with_seed(seed).map_err(value_error)?;
        }
        // Refuses a rounding that floating point does not offer.
        format.quantize_value(0.0, rounding).map_err(value_error)?;
        Ok(FloatSpec { format, rounding })
    }

    /// The format's name (`e4m3fn`, ...).
    #[getter]
    fn name(&self) -> String {
        self.format.to_string()
    }

    /// Exponent bits.
    #[getter]
    fn exponent_bits(&self) -> u32 {
        self.format.exponent_bits()
    }

    /// Stored mantissa bits.
    #[getter]
    fn mantissa_bits(&self) -> u32 {
        self.format.mantissa_bits()
    }

    /// Whether the format has no infinities (`fn`, or no special values at all).
    #[getter]
    fn finite(&self) -> bool {
        self.format.encoding() != FloatEncoding::Ieee
    }

    /// Whether overflow saturates (else it gives infinity, or NaN without infinities).
    #[getter]
    fn saturate(&self) -> bool {
        self.format.overflow() == FloatOverflow::Saturate
    }

    /// The largest finite value.
    #[getter]
    fn max(&self) -> f64 {
        self.format.max()
    }

    /// The exponent of the largest binade.
    #[getter]
    fn max_exponent(&self) -> i32 {
        self.format.max_exponent()
    }

    /// What a magnitude beyond `max` becomes: infinity, NaN or `max` itself.
    #[getter]
    fn overflow_value(&self) -> f64 {
        self.format.overflow_value()
    }

    /// The smallest positive normal value.
    #[getter]
    fn min_normal(&self) -> f64 {
        self.format.min_normal()
    }

    /// The smallest positive value.
    #[getter]
    fn min_positive(&self) -> f64 {
        self.format.min_positive()
    }

    /// Whether the rounding is stochastic.
    #[getter]
    fn stochastic(&self) -> bool {
        self.rounding.is_stochastic()
    }

    /// The fixed seed of stochastic rounding, or `None`.
    #[getter]
    fn seed(&self) -> Option<u64> {
        match self.rounding {
            Rounding::Stochastic { seed } => Some(seed),
            _ => None,
        }
    }

    fn __repr__(&self) -> String {
        format!("FloatSpec({}, rounding {})", self.format, self.rounding)
    }
}

/// Runs one float call on buffers of one layout.
fn run_float<L: Layout>(
    py: Python<'_>,
    format: &FloatFormat,
    rounding: Rounding,
    src: &Bound<'_, PyAny>,
    dst: Option<&Bound<'_, PyAny>>,
    dtype: &str,
) -> PyResult<()> {
    let src = typed::<L::Numpy>(src, "the input", dtype)?;
    let slice_err = |e: numpy::AsSliceError| PyValueError::new_err(e.to_string());
    match dst {
        None => {
            let mut buf = src.try_readwrite().map_err(|_| overlap("the input"))?;
            let buf = L::view_mut(buf.as_slice_mut().map_err(slice_err)?);
            py.detach(|| format.quantize_in_place(buf, rounding))
        }
        Some(dst) => {
            let dst = typed::<L::Numpy>(dst, "the output", dtype)?;
            let input = src.try_readonly().map_err(|_| overlap("the input"))?;
            let mut output = dst.try_readwrite().map_err(|_| overlap("the output"))?;
            let x = L::view(input.as_slice().map_err(slice_err)?);
            let out = L::view_mut(output.as_slice_mut().map_err(slice_err)?);
            py.detach(|| format.quantize_into(x, out, rounding))
        }
    }
    .map_err(value_error)
}

/// Rounds `src` to the floating-point format of `spec` into `dst` (in place when `dst` is
/// `None`). `dtype` and `seed` as for [`quantize`].
#[pyfunction]
#[pyo3(signature = (spec, src, dst, dtype, seed))]
fn quantize_float(
    py: Python<'_>,
    spec: &FloatSpec,
    src: &Bound<'_, PyAny>,
    dst: Option<&Bound<'_, PyAny>>,
    dtype: &str,
    seed: Option<u64>,
) -> PyResult<()> {
    let rounding = match seed {
        Some(seed) if spec.rounding.is_stochastic() => Rounding::Stochastic { seed },
        _ => spec.rounding,
    };
    let f = &spec.format;
    match dtype {
        "float32" => run_float::<Same<f32>>(py, f, rounding, src, dst, dtype),
        "float64" => run_float::<Same<f64>>(py, f, rounding, src, dst, dtype),
        "float16" => run_float::<F16Bits>(py, f, rounding, src, dst, "uint16"),
        "bfloat16" => run_float::<Bf16Bits>(py, f, rounding, src, dst, "uint16"),
        other => Err(PyTypeError::new_err(format!(
            "unsupported dtype {other}: expected float32, float64, float16 or bfloat16"
        ))),
    }
}

/// Runs one block call on buffers of one layout.
fn run_block<L: Layout>(
    py: Python<'_>,
    format: BlockFormat,
    blocks: &Blocks,
    rounding: Rounding,
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    dtype: &str,
) -> PyResult<()> {
    let src = typed::<L::Numpy>(src, "the input", dtype)?;
    let dst = typed::<L::Numpy>(dst, "the output", dtype)?;
    let slice_err = |e: numpy::AsSliceError| PyValueError::new_err(e.to_string());
    let input = src.try_readonly().map_err(|_| overlap("the input"))?;
    let mut output = dst.try_readwrite().map_err(|_| overlap("the output"))?;
    let x = L::view(input.as_slice().map_err(slice_err)?);
    let out = L::view_mut(output.as_slice_mut().map_err(slice_err)?);
    py.detach(|| format.quantize_into(x, out, blocks, rounding))
        .map_err(value_error)
}

/// Block floating point of `spec`'s word length and rounding (its fractional length and
/// overflow are not used) from `src` into `dst`, one block for the whole array (`axis` and
/// `block_size` both `None`), per index of `axis`, or per `block_size` consecutive elements.
/// `dtype` and `seed` as for [`quantize`].
#[pyfunction]
#[pyo3(signature = (spec, src, dst, dtype, seed, axis, block_size))]
#[allow(clippy::too_many_arguments)]
fn quantize_block(
    py: Python<'_>,
    spec: &Spec,
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    dtype: &str,
    seed: Option<u64>,
    axis: Option<usize>,
    block_size: Option<usize>,
) -> PyResult<()> {
    let format = BlockFormat::new(spec.0.format().word_length()).map_err(value_error)?;
    let rounding = match seed {
        Some(seed) => spec.0.with_seed(seed).map_err(value_error)?.rounding(),
        None => spec.0.rounding(),
    };
    let shape = src
        .cast::<numpy::PyUntypedArray>()
        .map_err(|_| PyTypeError::new_err("the input must be a numpy array"))?
        .shape()
        .to_vec();
    let blocks = match (axis, block_size) {
        (_, Some(k)) => Blocks::Runs(k),
        (Some(axis), None) => Blocks::Axis { shape, axis },
        (None, None) => Blocks::Whole,
    };
    let b = &blocks;
    match dtype {
        "float32" => run_block::<Same<f32>>(py, format, b, rounding, src, dst, dtype),
        "float64" => run_block::<Same<f64>>(py, format, b, rounding, src, dst, dtype),
        "float16" => run_block::<F16Bits>(py, format, b, rounding, src, dst, "uint16"),
        "bfloat16" => run_block::<Bf16Bits>(py, format, b, rounding, src, dst, "uint16"),
        other => Err(PyTypeError::new_err(format!(
            "unsupported dtype {other}: expected float32, float64, float16 or bfloat16"
        ))),
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
    spec: &QuantSpec,
    src: &Bound<'_, PyAny>,
    dst: Option<&Bound<'_, PyAny>>,
    mask: Option<&Bound<'_, PyAny>>,
    dtype: &str,
) -> PyResult<()> {
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
                    spec.quantize_in_place(buf);
                    Ok(())
                }
                Some(mask) => spec.quantize_in_place_with_mask(buf, mask),
            })
        }
        Some(dst) => {
            let dst = typed::<L::Numpy>(dst, "the output", dtype)?;
            let input = src.try_readonly().map_err(|_| overlap("the input"))?;
            let mut output = dst.try_readwrite().map_err(|_| overlap("the output"))?;
            let x = L::view(input.as_slice().map_err(slice_err)?);
            let out = L::view_mut(output.as_slice_mut().map_err(slice_err)?);
            py.detach(|| match mask {
                None => spec.quantize_into(x, out),
                Some(mask) => spec.quantize_into_with_mask(x, out, mask),
            })
        }
    }
    .map_err(value_error)
}

/// Quantizes `src` into `dst` (or in place when `dst` is `None`) with `spec`, writing the
/// overflow mask into `mask` when given. `dtype` names the element type: `float32`, `float64`,
/// or `float16` / `bfloat16` for `uint16` arrays of their bits. `seed` fixes the noise of a
/// stochastic spec without a seed of its own for this call.
#[pyfunction]
#[pyo3(signature = (spec, src, dst, mask, dtype, seed))]
fn quantize(
    py: Python<'_>,
    spec: &Spec,
    src: &Bound<'_, PyAny>,
    dst: Option<&Bound<'_, PyAny>>,
    mask: Option<&Bound<'_, PyAny>>,
    dtype: &str,
    seed: Option<u64>,
) -> PyResult<()> {
    let spec = match seed {
        Some(seed) => spec.0.with_seed(seed).map_err(value_error)?,
        None => spec.0,
    };
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

/// `src` quantized into a new array of its shape and dtype: the short path of the common call (a
/// C-contiguous `float32` or `float64` array, no mask), one crossing of the boundary.
#[pyfunction]
#[pyo3(signature = (spec, src, seed))]
fn quantized<'py>(
    py: Python<'py>,
    spec: &Spec,
    src: &Bound<'py, PyAny>,
    seed: Option<u64>,
) -> PyResult<Bound<'py, PyAny>> {
    let spec = match seed {
        Some(seed) => spec.0.with_seed(seed).map_err(value_error)?,
        None => spec.0,
    };
    if let Ok(a) = src.cast::<PyArrayDyn<f32>>() {
        return fresh(py, &spec, a).map(Bound::into_any);
    }
    if let Ok(a) = src.cast::<PyArrayDyn<f64>>() {
        return fresh(py, &spec, a).map(Bound::into_any);
    }
    Err(PyTypeError::new_err(
        "the input must be a numpy array of dtype float32 or float64",
    ))
}

fn fresh<'py, T: Element + numpy::Element>(
    py: Python<'py>,
    spec: &QuantSpec,
    src: &Bound<'py, PyArrayDyn<T>>,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    // (`as_slice` takes Fortran order too, whose elements the result's C order would permute.)
    let input = src.try_readonly().map_err(|_| overlap("the input"))?;
    let x = match input.as_slice() {
        Ok(x) if src.is_c_contiguous() => x,
        _ => return Err(PyValueError::new_err("the input must be C-contiguous")),
    };
    // The result is computed into a vector that the new array then owns: no zeroed array to
    // borrow back for writing. Small inputs keep the interpreter's lock, which costs more to
    // release and take back than their kernel takes.
    let y = if x.len() < DETACH_FROM {
        spec.quantize(x)
    } else {
        py.detach(|| spec.quantize(x))
    };
    let y = numpy::ndarray::Array::from_shape_vec(src.dims(), y)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(PyArrayDyn::from_owned_array(py, y))
}

/// The element count from which a call releases the interpreter's lock while the kernel runs.
const DETACH_FROM: usize = 1 << 14;

fn unsupported(dtype: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "unsupported dtype {dtype}: expected float32, float64, float16 or bfloat16"
    ))
}

/// Calls `$f::<Layout>(args.., numpy_dtype)` for the layout of `$dtype`.
macro_rules! by_dtype {
    ($dtype:expr, $f:ident ( $($arg:expr),* )) => {
        match $dtype {
            "float32" => $f::<Same<f32>>($($arg),*, "float32"),
            "float64" => $f::<Same<f64>>($($arg),*, "float64"),
            "float16" => $f::<F16Bits>($($arg),*, "uint16"),
            "bfloat16" => $f::<Bf16Bits>($($arg),*, "uint16"),
            other => Err(unsupported(other)),
        }
    };
}

/// The input, output and optional mask of a call as slices, handed to `f` with the GIL released.
fn with_buffers<L: Layout, R: Send>(
    py: Python<'_>,
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    mask: Option<&Bound<'_, PyAny>>,
    dtype: &str,
    f: impl FnOnce(&[L::Core], &mut [L::Core], Option<&mut [bool]>) -> Result<R, xbquant::Error> + Send,
) -> PyResult<R> {
    let slice_err = |e: numpy::AsSliceError| PyValueError::new_err(e.to_string());
    let src = typed::<L::Numpy>(src, "the input", dtype)?;
    let dst = typed::<L::Numpy>(dst, "the output", dtype)?;
    let mut mask = match mask {
        Some(m) => Some(
            typed::<bool>(m, "the mask", "bool")?
                .try_readwrite()
                .map_err(|_| overlap("the mask"))?,
        ),
        None => None,
    };
    let input = src.try_readonly().map_err(|_| overlap("the input"))?;
    let mut output = dst.try_readwrite().map_err(|_| overlap("the output"))?;
    let x = L::view(input.as_slice().map_err(slice_err)?);
    let out = L::view_mut(output.as_slice_mut().map_err(slice_err)?);
    let mask = match mask.as_mut() {
        Some(m) => Some(m.as_slice_mut().map_err(slice_err)?),
        None => None,
    };
    py.detach(|| f(x, out, mask)).map_err(value_error)
}

/// The slices of an array of `shape`: the whole array, or the indices of `axis`.
fn slices_of(src: &Bound<'_, PyAny>, axis: Option<usize>) -> PyResult<Blocks> {
    let shape = src
        .cast::<numpy::PyUntypedArray>()
        .map_err(|_| PyTypeError::new_err("the input must be a numpy array"))?
        .shape()
        .to_vec();
    Ok(match axis {
        None => Blocks::Whole,
        Some(axis) => Blocks::Axis { shape, axis },
    })
}

/// A rounding by name, with the seed of this call for stochastic rounding.
fn rounding_of(name: &str, seed: Option<u64>) -> PyResult<Rounding> {
    let r: Rounding = name.parse().map_err(value_error)?;
    Ok(match seed {
        Some(seed) => r.with_seed(seed).map_err(value_error)?,
        None => r,
    })
}

#[allow(clippy::too_many_arguments)]
fn slices_call<L: Layout>(
    py: Python<'_>,
    spec: &QuantSpec,
    blocks: &Blocks,
    fls: &[i32],
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    mask: Option<&Bound<'_, PyAny>>,
    dtype: &str,
) -> PyResult<()> {
    let (format, rounding) = (*spec.format(), spec.rounding());
    with_buffers::<L, ()>(py, src, dst, mask, dtype, |x, out, mask| {
        format.quantize_slices_into(x, out, mask, blocks, fls, rounding)
    })
}

/// Fixed point with a fractional length per slice (`fls`, one per index of `axis`, or one for
/// the whole array when `axis` is `None`): `spec`'s word length, signedness, overflow and
/// rounding. `dtype`, `mask` and `seed` as for [`quantize`].
#[pyfunction]
#[pyo3(signature = (spec, src, dst, mask, dtype, seed, axis, fls))]
#[allow(clippy::too_many_arguments)]
fn quantize_slices(
    py: Python<'_>,
    spec: &Spec,
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    mask: Option<&Bound<'_, PyAny>>,
    dtype: &str,
    seed: Option<u64>,
    axis: Option<usize>,
    fls: Vec<i32>,
) -> PyResult<()> {
    let spec = match seed {
        Some(seed) => spec.0.with_seed(seed).map_err(value_error)?,
        None => spec.0,
    };
    let blocks = slices_of(src, axis)?;
    let (b, f) = (&blocks, fls.as_slice());
    by_dtype!(dtype, slices_call(py, &spec, b, f, src, dst, mask))
}

fn choose_call<L: Layout>(
    py: Python<'_>,
    format: &FixedPoint,
    blocks: &Blocks,
    rule: FracLengthRule,
    src: &Bound<'_, PyAny>,
    dtype: &str,
) -> PyResult<Vec<i32>> {
    let src = typed::<L::Numpy>(src, "the input", dtype)?;
    let input = src.try_readonly().map_err(|_| overlap("the input"))?;
    let x = L::view(
        input
            .as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?,
    );
    py.detach(|| format.choose_frac_lengths(x, blocks, rule))
        .map_err(value_error)
}

/// The fractional length of each slice of `src` (the whole array when `axis` is `None`) for
/// `spec`'s word length, signedness and overflow, by `method`: `"max"` or `"sqnr"`.
#[pyfunction]
#[pyo3(signature = (spec, src, dtype, axis, method))]
fn choose_fl(
    py: Python<'_>,
    spec: &Spec,
    src: &Bound<'_, PyAny>,
    dtype: &str,
    axis: Option<usize>,
    method: &str,
) -> PyResult<Vec<i32>> {
    let rule = match method {
        "max" => FracLengthRule::Max,
        "sqnr" => FracLengthRule::Sqnr,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown method {other:?}: expected \"max\" or \"sqnr\""
            )))
        }
    };
    let blocks = slices_of(src, axis)?;
    let (f, b) = (spec.0.format(), &blocks);
    by_dtype!(dtype, choose_call(py, f, b, rule, src))
}

#[allow(clippy::too_many_arguments)]
fn convert_call<L: Layout>(
    py: Python<'_>,
    converter: &Converter,
    blocks: &Blocks,
    range: &ConverterRange,
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    mask: Option<&Bound<'_, PyAny>>,
    dtype: &str,
) -> PyResult<()> {
    with_buffers::<L, ()>(py, src, dst, mask, dtype, |x, out, mask| {
        converter.convert_into(x, out, mask, blocks, range)
    })
}

/// An ADC/DAC conversion of `bits` bits: `range` is `"absmax"`, `"fixed"` (one value in
/// `ranges`) or `"per-slice"` (one per index of `axis`); `noise` is `"none"`, `"gaussian"` or
/// `"uniform"` of width `width` (in units of the range), drawn from `noise_seed`.
#[pyfunction]
#[pyo3(signature = (bits, rounding, seed, range, ranges, noise, width, noise_seed, src, dst, mask, dtype, axis))]
#[allow(clippy::too_many_arguments)]
fn convert(
    py: Python<'_>,
    bits: u32,
    rounding: &str,
    seed: Option<u64>,
    range: &str,
    ranges: Vec<f64>,
    noise: &str,
    width: f64,
    noise_seed: Option<u64>,
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    mask: Option<&Bound<'_, PyAny>>,
    dtype: &str,
    axis: Option<usize>,
) -> PyResult<()> {
    let noise = match noise {
        "none" => ConverterNoise::None,
        "gaussian" => ConverterNoise::Gaussian(width),
        "uniform" => ConverterNoise::Uniform(width),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown noise {other:?}: expected \"gaussian\" or \"uniform\""
            )))
        }
    };
    let converter = Converter::new(bits)
        .map_err(value_error)?
        .with_rounding(rounding_of(rounding, seed)?)
        .with_noise(noise, noise_seed)
        .map_err(value_error)?;
    let range = converter_range(range, ranges)?;
    let blocks = slices_of(src, axis)?;
    let (c, b, r) = (&converter, &blocks, &range);
    by_dtype!(dtype, convert_call(py, c, b, r, src, dst, mask))
}

/// A range by kind: `"absmax"`, `"fixed"` (one value) or `"per-slice"`.
fn converter_range(kind: &str, ranges: Vec<f64>) -> PyResult<ConverterRange> {
    Ok(match (kind, ranges.as_slice()) {
        ("absmax", _) => ConverterRange::AbsMax,
        ("fixed", [r]) => ConverterRange::Fixed(*r),
        ("per-slice", _) => ConverterRange::PerSlice(ranges),
        _ => return Err(PyValueError::new_err("invalid converter range")),
    })
}

/// Scaled fixed point: `r * Q(x / r)` with `Q` the format and rounding of `spec` and the
/// scales `r` as the ranges of [`convert`].
#[pyfunction]
#[pyo3(signature = (spec, seed, range, ranges, src, dst, mask, dtype, axis))]
#[allow(clippy::too_many_arguments)]
fn quantize_scaled(
    py: Python<'_>,
    spec: &Spec,
    seed: Option<u64>,
    range: &str,
    ranges: Vec<f64>,
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    mask: Option<&Bound<'_, PyAny>>,
    dtype: &str,
    axis: Option<usize>,
) -> PyResult<()> {
    let spec = match seed {
        Some(seed) => spec.0.with_seed(seed).map_err(value_error)?,
        None => spec.0,
    };
    let converter = Converter::from_format(*spec.format()).with_rounding(spec.rounding());
    let range = converter_range(range, ranges)?;
    let blocks = slices_of(src, axis)?;
    let (c, b, r) = (&converter, &blocks, &range);
    by_dtype!(dtype, convert_call(py, c, b, r, src, dst, mask))
}

/// A grid or a table of levels: what `quantize_grid` and `quantize_levels` round to.
#[derive(Clone, Copy)]
enum Points<'a> {
    Grid(&'a Grid),
    Levels(&'a Levels),
}

fn points_call<L: Layout>(
    py: Python<'_>,
    points: Points<'_>,
    rounding: Rounding,
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    dtype: &str,
) -> PyResult<()> {
    with_buffers::<L, ()>(py, src, dst, None, dtype, |x, out, _| match points {
        Points::Grid(g) => g.quantize_into(x, out, rounding),
        Points::Levels(t) => t.quantize_into(x, out, rounding),
    })
}

/// Rounds `src` to the grid `offset + k * step` (`0 <= k < levels` when `levels` is given).
#[pyfunction]
#[pyo3(signature = (step, offset, levels, rounding, seed, src, dst, dtype))]
#[allow(clippy::too_many_arguments)]
fn quantize_grid(
    py: Python<'_>,
    step: f64,
    offset: f64,
    levels: Option<u64>,
    rounding: &str,
    seed: Option<u64>,
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    dtype: &str,
) -> PyResult<()> {
    let grid = Grid::new(step, offset, levels).map_err(value_error)?;
    let rounding = rounding_of(rounding, seed)?;
    let g = Points::Grid(&grid);
    by_dtype!(dtype, points_call(py, g, rounding, src, dst))
}

/// A table of levels, sorted once: a frozen Python object the Python layer caches.
#[pyclass(frozen, module = "xbquant._xbquant")]
struct LevelTable(Levels);

#[pymethods]
impl LevelTable {
    #[new]
    fn new(levels: Vec<f64>) -> PyResult<Self> {
        Levels::new(levels).map(LevelTable).map_err(value_error)
    }

    /// The levels, ascending.
    #[getter]
    fn levels(&self) -> Vec<f64> {
        self.0.levels().to_vec()
    }
}

/// Rounds `src` to the nearest (or by `rounding`) level of `table`.
#[pyfunction]
#[pyo3(signature = (table, rounding, seed, src, dst, dtype))]
fn quantize_levels(
    py: Python<'_>,
    table: &LevelTable,
    rounding: &str,
    seed: Option<u64>,
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    dtype: &str,
) -> PyResult<()> {
    let rounding = rounding_of(rounding, seed)?;
    let t = Points::Levels(&table.0);
    by_dtype!(dtype, points_call(py, t, rounding, src, dst))
}

fn slicing(bits: u32, slice_bits: u32, encoding: &str) -> PyResult<BitSlicing> {
    let encoding: SliceEncoding = encoding.parse().map_err(value_error)?;
    BitSlicing::new(bits, slice_bits, encoding).map_err(value_error)
}

/// The bit planes of `codes` (int64, C-contiguous) into `out` (int64, `count x len`).
#[pyfunction]
#[pyo3(signature = (codes, bits, slice_bits, encoding, out))]
fn bit_slices(
    codes: &Bound<'_, PyAny>,
    bits: u32,
    slice_bits: u32,
    encoding: &str,
    out: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let s = slicing(bits, slice_bits, encoding)?;
    let codes = typed::<i64>(codes, "the codes", "int64")?.try_readonly()?;
    let mut out = typed::<i64>(out, "the planes", "int64")?.try_readwrite()?;
    let codes = codes
        .as_slice()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let out = out
        .as_slice_mut()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let mut planes: Vec<&mut [i64]> = out.chunks_mut(codes.len().max(1)).collect();
    if codes.is_empty() {
        planes = (0..s.count()).map(|_| <&mut [i64]>::default()).collect();
    }
    s.planes_into(codes, &mut planes).map_err(value_error)
}

/// The codes of `planes` (int64, `count x len`, C-contiguous).
#[pyfunction]
#[pyo3(signature = (planes, bits, slice_bits, encoding, length))]
fn from_bit_slices(
    planes: &Bound<'_, PyAny>,
    bits: u32,
    slice_bits: u32,
    encoding: &str,
    length: usize,
) -> PyResult<Vec<i64>> {
    let s = slicing(bits, slice_bits, encoding)?;
    let planes = typed::<i64>(planes, "the planes", "int64")?.try_readonly()?;
    let planes = planes
        .as_slice()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let rows: Vec<&[i64]> = if length == 0 {
        (0..s.count()).map(|_| <&[i64]>::default()).collect()
    } else {
        planes.chunks(length).collect()
    };
    s.join(&rows).map_err(value_error)
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
    let format = FixedPoint::new(
        self::word_length(word_length)?,
        self::frac_length(frac_length)?,
    )
    .map_err(value_error)?
    .with_symmetric(symmetric)
    .with_signed(signed)
    .map_err(value_error)?;
    Ok(xbquant::get_range_fixed_point(&format))
}

/// The stream key of a seed (see the core's `noise` module).
#[pyfunction]
fn stream_key(seed: u64) -> u64 {
    noise::stream_key(seed)
}

/// The two keys of the 32-bit hash of a seed's stream for the indices `block * 2^32` on (see
/// the core's `noise` module).
#[pyfunction]
fn hash_keys(seed: u64, block: u64) -> [u32; 2] {
    noise::hash_keys(seed, block)
}

/// The private extension module of the `xbquant` package.
#[pymodule]
fn _xbquant(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Spec>()?;
    m.add_class::<FloatSpec>()?;
    m.add_function(wrap_pyfunction!(quantize_float, m)?)?;
    m.add_function(wrap_pyfunction!(quantize_block, m)?)?;
    m.add_class::<LevelTable>()?;
    m.add_function(wrap_pyfunction!(quantize_slices, m)?)?;
    m.add_function(wrap_pyfunction!(choose_fl, m)?)?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(quantize_scaled, m)?)?;
    m.add_function(wrap_pyfunction!(quantize_grid, m)?)?;
    m.add_function(wrap_pyfunction!(quantize_levels, m)?)?;
    m.add_function(wrap_pyfunction!(bit_slices, m)?)?;
    m.add_function(wrap_pyfunction!(from_bit_slices, m)?)?;
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add_function(wrap_pyfunction!(quantized, m)?)?;
    m.add_function(wrap_pyfunction!(format_range, m)?)?;
    m.add_function(wrap_pyfunction!(stream_key, m)?)?;
    m.add_function(wrap_pyfunction!(hash_keys, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The noise generator's constants, for the torch operations that redraw it on other devices.
    m.add("NOISE_STEP", noise::STEP)?;
    m.add("NOISE_MIX", noise::MIX.to_vec())?;
    m.add("NOISE_SHIFTS", noise::SHIFTS.to_vec())?;
    m.add("NOISE_DRAW_BITS", noise::DRAW_BITS)?;
    m.add("NOISE_HIGH_BITS", noise::HIGH_BITS)?;
    m.add("NOISE_WEYL", noise::WEYL)?;
    m.add("NOISE_HASH_MUL", noise::HASH_MUL.to_vec())?;
    m.add("NOISE_HASH_SHIFTS", noise::HASH_SHIFTS.to_vec())?;
    Ok(())
}
