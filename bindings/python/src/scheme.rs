//! `Scheme`: the core's [`xbquant::Scheme`] as a frozen Python object, built and checked once per
//! distinct set of arguments (the Python layer caches them) and passed to every call. Mode names
//! are parsed here, by the core's parsers, once; the modes cross back as typed enums
//! (`RoundingMode`, `OverflowMode`) for the torch operations that follow the kernels on other
//! devices.

use std::hash::{Hash, Hasher};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use xbquant::{
    BlockFormat, ConverterNoise, ConverterRange, ElementFormat, FixedPoint, FloatEncoding,
    FloatFormat, FloatOverflow, FracLengthRule, Granularity, Grid, Levels, Overflow, Rounding,
    Scale, Scheme,
};

pub fn value_error(err: xbquant::Error) -> PyErr {
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

/// A rounding by name, with `seed` for stochastic rounding.
fn rounding_of(name: &str, seed: Option<u64>) -> PyResult<Rounding> {
    let r: Rounding = name.parse().map_err(value_error)?;
    match seed {
        Some(seed) => r.with_seed(seed).map_err(value_error),
        None => Ok(r),
    }
}

/// The rounding rules, as the torch operations branch on them.
#[pyclass(eq, eq_int, frozen, hash, module = "xbquant._xbquant")]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoundingMode {
    Nearest,
    NearestUp,
    NearestDown,
    NearestTowardZero,
    NearestAway,
    Floor,
    TowardZero,
    Stochastic,
}

/// The overflow rules, as the torch operations branch on them.
#[pyclass(eq, eq_int, frozen, hash, module = "xbquant._xbquant")]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverflowMode {
    Saturate,
    SaturateSymmetric,
    SaturateZero,
    Wrap,
    WrapSignMagnitude,
    Unbounded,
}

/// A quantization scheme (see the core's `Scheme`): frozen, compared and hashed by value,
/// pickled as its text form.
#[pyclass(frozen, eq, name = "Scheme", module = "xbquant._xbquant")]
#[derive(Clone, PartialEq)]
pub struct PyScheme(pub Scheme);

impl PyScheme {
    fn fixed_point(&self) -> PyResult<FixedPoint> {
        match self.0.element() {
            ElementFormat::Fixed(f) => Ok(*f),
            _ => Err(PyValueError::new_err(format!(
                "{} is not a fixed-point scheme",
                self.0
            ))),
        }
    }

    fn float_format(&self) -> PyResult<FloatFormat> {
        match self.0.element() {
            ElementFormat::Float(f) => Ok(*f),
            _ => Err(PyValueError::new_err(format!(
                "{} is not a floating-point scheme",
                self.0
            ))),
        }
    }

    fn map(&self, f: impl FnOnce(Scheme) -> Result<Scheme, xbquant::Error>) -> PyResult<Self> {
        f(self.0.clone()).map(PyScheme).map_err(value_error)
    }
}

#[pymethods]
impl PyScheme {
    /// A scheme from its text form.
    #[new]
    fn new(text: &Bound<'_, PyAny>) -> PyResult<Self> {
        let text: String = text.extract().map_err(|_| {
            let kind = text
                .get_type()
                .name()
                .map_or_else(|_| String::from("?"), |n| n.to_string());
            pyo3::exceptions::PyTypeError::new_err(format!(
                "text must be a string (a scheme's text form), got {kind}"
            ))
        })?;
        text.parse()
            .map(PyScheme)
            .map_err(|e: xbquant::Error| PyValueError::new_err(format!("text: {e}")))
    }

    /// Fixed point of `wl` bits, `fl` fractional bits.
    #[staticmethod]
    #[pyo3(name = "_fixed", signature = (wl, fl, signed, overflow, sat_bits, rounding, seed))]
    fn fixed(
        wl: i64,
        fl: i64,
        signed: bool,
        overflow: &str,
        sat_bits: u32,
        rounding: &str,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let mut overflow: Overflow = overflow.parse().map_err(value_error)?;
        if sat_bits > 0 {
            overflow = overflow.with_sat_bits(sat_bits).map_err(value_error)?;
        }
        let format = FixedPoint::new(word_length(wl)?, frac_length(fl)?)
            .and_then(|f| f.with_signed(signed))
            .and_then(|f| f.with_overflow(overflow))
            .map_err(value_error)?;
        let rounding = rounding_of(rounding, seed)?;
        Scheme::new(format)
            .with_rounding(rounding)
            .map(PyScheme)
            .map_err(value_error)
    }

    /// The fixed point of an HLS type, with its rounding.
    #[staticmethod]
    #[pyo3(name = "_from_hls")]
    fn from_hls(name: &str) -> PyResult<Self> {
        xbquant::QuantSpec::from_hls(name)
            .map(|s| PyScheme(Scheme::from(s)))
            .map_err(value_error)
    }

    /// A floating-point format by name; `overflow` "infinity" or "saturate" (None: the
    /// format's default).
    #[staticmethod]
    #[pyo3(name = "_floating", signature = (name, rounding, overflow, seed))]
    fn floating(
        name: &str,
        rounding: &str,
        overflow: Option<&str>,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let mut format: FloatFormat = name.parse().map_err(value_error)?;
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
        Scheme::new(format)
            .with_rounding(rounding_of(rounding, seed)?)
            .map(PyScheme)
            .map_err(value_error)
    }

    /// Block floating point of `wl` bits, one block for the whole tensor.
    #[staticmethod]
    #[pyo3(name = "_block", signature = (wl, rounding, seed))]
    fn block(wl: u32, rounding: &str, seed: Option<u64>) -> PyResult<Self> {
        let rounding = rounding_of(rounding, seed)?;
        BlockFormat::new(wl)
            .and_then(|b| b.scheme(Granularity::Tensor))
            .and_then(|s| s.with_rounding(rounding))
            .map(PyScheme)
            .map_err(value_error)
    }

    /// The grid `offset + k * step`, for all `k` or `0 <= k < levels`.
    #[staticmethod]
    #[pyo3(name = "_grid", signature = (step, offset, levels, rounding, seed))]
    fn grid(
        step: f64,
        offset: f64,
        levels: Option<u64>,
        rounding: &str,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let grid = Grid::new(step, offset, levels).map_err(value_error)?;
        Scheme::new(grid)
            .with_rounding(rounding_of(rounding, seed)?)
            .map(PyScheme)
            .map_err(value_error)
    }

    /// A table of levels (sorted here).
    #[staticmethod]
    #[pyo3(name = "_levels", signature = (values, rounding, seed))]
    fn levels(values: Vec<f64>, rounding: &str, seed: Option<u64>) -> PyResult<Self> {
        let levels = Levels::new(values).map_err(value_error)?;
        Scheme::new(levels)
            .with_rounding(rounding_of(rounding, seed)?)
            .map(PyScheme)
            .map_err(value_error)
    }

    /// The same scheme with `seed` for its noise (see the core's seeds: rounding and noise
    /// draw two streams of it).
    #[pyo3(name = "_with_seed")]
    fn with_seed(&self, seed: u64) -> PyResult<Self> {
        self.0.with_seed(seed).map(PyScheme).map_err(value_error)
    }

    /// The same scheme with groups along `axis` (None: one group for the whole tensor).
    #[pyo3(name = "_with_axis", signature = (axis))]
    fn with_axis(&self, axis: Option<i64>) -> PyResult<Self> {
        let g = axis.map_or(Granularity::Tensor, Granularity::Axis);
        self.map(|s| s.with_granularity(g))
    }

    /// The same scheme with groups of `size` consecutive elements.
    #[pyo3(name = "_with_runs")]
    fn with_runs(&self, size: usize) -> PyResult<Self> {
        self.map(|s| s.with_granularity(Granularity::Runs(size)))
    }

    /// The same scheme with a given fractional length per group.
    #[pyo3(name = "_with_fls")]
    fn with_fls(&self, fls: Vec<i32>) -> PyResult<Self> {
        self.map(|s| s.with_scale(Scale::FracLengths(fls)))
    }

    /// The same scheme with power-of-two scales chosen per group: "max" or "sqnr".
    #[pyo3(name = "_with_pow2")]
    fn with_pow2(&self, method: &str) -> PyResult<Self> {
        let rule = match method {
            "max" => FracLengthRule::Max,
            "sqnr" => FracLengthRule::Sqnr,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown method {other:?}: expected \"max\" or \"sqnr\""
                )))
            }
        };
        self.map(|s| s.with_scale(Scale::PowerOfTwo(rule)))
    }

    /// The same scheme with a real range per group: `kind` "absmax", "percentile" (one value:
    /// the percentile), "fixed" (one value) or "per-slice" (one per group).
    #[pyo3(name = "_with_range")]
    fn with_range(&self, kind: &str, values: Vec<f64>) -> PyResult<Self> {
        let range = match (kind, values.as_slice()) {
            ("absmax" | "abs-max", []) => ConverterRange::AbsMax,
            ("percentile", [p]) => ConverterRange::Percentile(*p),
            ("fixed", [r]) => ConverterRange::Fixed(*r),
            ("per-slice" | "each", _) => ConverterRange::PerSlice(values),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "invalid range {kind:?} with {} values",
                    values.len()
                )))
            }
        };
        self.map(|s| s.with_scale(Scale::Range(range)))
    }

    /// The same scheme with noise before rounding, in units of the range: `kind` "none",
    /// "gaussian" (`width` the standard deviation) or "uniform" (on `[-width, width]`).
    #[pyo3(name = "_with_noise", signature = (kind, width, seed))]
    fn with_noise(&self, kind: &str, width: f64, seed: Option<u64>) -> PyResult<Self> {
        let noise = match kind {
            "none" => ConverterNoise::None,
            "gaussian" => ConverterNoise::Gaussian(width),
            "uniform" => ConverterNoise::Uniform(width),
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown noise {other:?}: expected \"gaussian\" or \"uniform\""
                )))
            }
        };
        self.map(|s| s.with_noise(noise, seed))
    }

    /// The text form.
    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self) -> String {
        format!("Scheme({:?})", self.0.to_string())
    }

    fn __hash__(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.0.to_string().hash(&mut h);
        h.finish()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let text = slf.get().0.to_string();
        Ok((slf.get_type().into_any(), PyTuple::new(slf.py(), [text])?))
    }

    /// "fixed", "float", "grid" or "levels".
    #[getter]
    fn kind(&self) -> &'static str {
        match self.0.element() {
            ElementFormat::Fixed(_) => "fixed",
            ElementFormat::Float(_) => "float",
            ElementFormat::Grid(_) => "grid",
            ElementFormat::Levels(_) => "levels",
        }
    }

    /// Whether the scheme is its element format alone (no scale, one group).
    #[getter]
    fn plain(&self) -> bool {
        self.0.scale() == &Scale::None && self.0.granularity() == Granularity::Tensor
    }

    /// Whether a call draws noise without a seed of its own (then each call gets a fresh one).
    #[getter]
    fn draws(&self) -> bool {
        let (noise, seed) = self.0.noise();
        matches!(self.0.rounding(), Rounding::StochasticFresh)
            || (noise != ConverterNoise::None && seed.is_none())
    }

    /// The scale rule's name: "none", "pow2", "shared-exponent", "fl" or "range".
    #[getter]
    fn scale(&self) -> &'static str {
        match self.0.scale() {
            Scale::None => "none",
            Scale::PowerOfTwo(_) => "pow2",
            Scale::SharedExponent => "shared-exponent",
            Scale::FracLengths(_) => "fl",
            Scale::Range(_) => "range",
        }
    }

    /// The fractional lengths of a calibrated scheme: one per group (one for plain fixed point).
    #[getter]
    fn fls(&self) -> Option<Vec<i32>> {
        match (self.0.scale(), self.0.element()) {
            (Scale::FracLengths(fls), _) => Some(fls.clone()),
            (Scale::None, ElementFormat::Fixed(f)) => Some(vec![f.frac_length()]),
            _ => None,
        }
    }

    /// The ranges of a calibrated converter: one per group (None for other schemes).
    #[getter]
    fn ranges(&self) -> Option<Vec<f64>> {
        match self.0.scale() {
            Scale::Range(ConverterRange::PerSlice(r)) => Some(r.clone()),
            Scale::Range(ConverterRange::Fixed(r)) => Some(vec![*r]),
            _ => None,
        }
    }

    /// The groups' run length, if the scheme has runs.
    #[getter]
    fn runs(&self) -> Option<usize> {
        match self.0.granularity() {
            Granularity::Runs(k) => Some(k),
            _ => None,
        }
    }

    /// The groups' axis, if the scheme has one.
    #[getter]
    fn axis(&self) -> Option<i64> {
        match self.0.granularity() {
            Granularity::Axis(a) => Some(a),
            _ => None,
        }
    }

    #[getter]
    fn wl(&self) -> PyResult<u32> {
        Ok(self.fixed_point()?.word_length())
    }

    #[getter]
    fn fl(&self) -> PyResult<i32> {
        Ok(self.fixed_point()?.frac_length())
    }

    #[getter]
    fn signed(&self) -> PyResult<bool> {
        Ok(self.fixed_point()?.is_signed())
    }

    /// The overflow mode's name, without saturation bits.
    #[getter]
    fn overflow(&self) -> PyResult<String> {
        let overflow = self.fixed_point()?.overflow();
        // Every mode takes zero saturation bits, so this never falls back.
        Ok(overflow.with_sat_bits(0).unwrap_or(overflow).name())
    }

    #[getter]
    fn overflow_mode(&self) -> PyResult<OverflowMode> {
        Ok(match self.fixed_point()?.overflow() {
            Overflow::Saturate => OverflowMode::Saturate,
            Overflow::SaturateSymmetric => OverflowMode::SaturateSymmetric,
            Overflow::SaturateZero => OverflowMode::SaturateZero,
            Overflow::Wrap { .. } => OverflowMode::Wrap,
            Overflow::WrapSignMagnitude { .. } => OverflowMode::WrapSignMagnitude,
            Overflow::Unbounded => OverflowMode::Unbounded,
            other => return Err(PyValueError::new_err(format!("unknown overflow {other}"))),
        })
    }

    #[getter]
    fn sat_bits(&self) -> PyResult<u32> {
        Ok(self.fixed_point()?.overflow().sat_bits())
    }

    /// The rounding's name, without its seed.
    #[getter]
    fn rounding(&self) -> String {
        match self.0.rounding() {
            Rounding::Stochastic { .. } => "stochastic".to_string(),
            other => other.name(),
        }
    }

    #[getter]
    fn rounding_mode(&self) -> PyResult<RoundingMode> {
        Ok(match self.0.rounding() {
            Rounding::NearestEven => RoundingMode::Nearest,
            Rounding::NearestUp => RoundingMode::NearestUp,
            Rounding::NearestDown => RoundingMode::NearestDown,
            Rounding::NearestTowardZero => RoundingMode::NearestTowardZero,
            Rounding::NearestAway => RoundingMode::NearestAway,
            Rounding::Floor => RoundingMode::Floor,
            Rounding::TowardZero => RoundingMode::TowardZero,
            Rounding::Stochastic { .. } | Rounding::StochasticFresh => RoundingMode::Stochastic,
            other => return Err(PyValueError::new_err(format!("unknown rounding {other}"))),
        })
    }

    #[getter]
    fn stochastic(&self) -> bool {
        self.0.rounding().is_stochastic()
    }

    /// The stochastic rounding's seed, if fixed.
    #[getter]
    fn seed(&self) -> Option<u64> {
        match self.0.rounding() {
            Rounding::Stochastic { seed } => Some(seed),
            _ => None,
        }
    }

    #[getter]
    #[allow(clippy::cast_precision_loss)]
    fn code_min(&self) -> PyResult<f64> {
        Ok(self.fixed_point()?.code_range().0 as f64)
    }

    #[getter]
    #[allow(clippy::cast_precision_loss)]
    fn code_max(&self) -> PyResult<f64> {
        Ok(self.fixed_point()?.code_range().1 as f64)
    }

    #[getter]
    fn range(&self) -> PyResult<(f64, f64)> {
        Ok(self.fixed_point()?.range())
    }

    /// The HLS type of a fixed-point scheme.
    fn to_hls(&self) -> PyResult<String> {
        let spec = self
            .0
            .spec()
            .ok_or_else(|| PyValueError::new_err(format!("{} has no HLS type", self.0)))?;
        spec.to_hls().map_err(value_error)
    }

    /// A floating-point scheme's format name.
    #[getter]
    fn name(&self) -> PyResult<String> {
        Ok(self.float_format()?.to_string())
    }

    #[getter]
    fn exponent_bits(&self) -> PyResult<u32> {
        Ok(self.float_format()?.exponent_bits())
    }

    #[getter]
    fn mantissa_bits(&self) -> PyResult<u32> {
        Ok(self.float_format()?.mantissa_bits())
    }

    #[getter]
    fn finite(&self) -> PyResult<bool> {
        Ok(self.float_format()?.encoding() != FloatEncoding::Ieee)
    }

    #[getter]
    fn saturate(&self) -> PyResult<bool> {
        Ok(self.float_format()?.overflow() == FloatOverflow::Saturate)
    }

    #[getter]
    fn max(&self) -> PyResult<f64> {
        Ok(self.float_format()?.max())
    }

    #[getter]
    fn max_exponent(&self) -> PyResult<i32> {
        Ok(self.float_format()?.max_exponent())
    }

    #[getter]
    fn overflow_value(&self) -> PyResult<f64> {
        Ok(self.float_format()?.overflow_value())
    }

    #[getter]
    fn min_normal(&self) -> PyResult<f64> {
        Ok(self.float_format()?.min_normal())
    }

    #[getter]
    fn min_positive(&self) -> PyResult<f64> {
        Ok(self.float_format()?.min_positive())
    }

    /// The levels of a table, sorted.
    #[getter]
    fn level_values(&self) -> PyResult<Vec<f64>> {
        match self.0.element() {
            ElementFormat::Levels(l) => Ok(l.levels().to_vec()),
            _ => Err(PyValueError::new_err(format!(
                "{} is not a table of levels",
                self.0
            ))),
        }
    }

    /// The first and last points a value can round to, for grids and tables (None for an
    /// unbounded grid).
    #[getter]
    fn span(&self) -> PyResult<Option<(f64, f64)>> {
        match self.0.element() {
            ElementFormat::Grid(g) => Ok(g.span()),
            ElementFormat::Levels(l) => Ok(Some(l.span())),
            _ => Err(PyValueError::new_err(format!(
                "{} is not a grid or table",
                self.0
            ))),
        }
    }
}
