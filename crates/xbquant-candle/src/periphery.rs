//! The crossbar's periphery as candle ops: fixed point with a fractional length per slice, the
//! ADC/DAC model, uniform grids and tables of levels. Each is a scheme of the core run by
//! [`SchemeF`](crate::SchemeF): forward through the core; backward straight through, zero where
//! the forward pass clipped (overflowed, saturated, or fell outside a grid's or table's span).

use candle_core::{Error, Tensor};
use xbquant::{
    Converter, ConverterRange, FixedPoint, FracLengthRule, Granularity, Grid, Levels, Rounding,
    Scale, Scheme,
};

use crate::scheme::{scheme_op, Built};
use crate::{BlockShape, Gradient, SchemeF};

impl BlockShape {
    /// The core's granularity of this shape.
    pub(crate) fn granularity(self) -> Granularity {
        match self {
            BlockShape::Whole => Granularity::Tensor,
            BlockShape::Dim(d) => Granularity::Axis(i64::try_from(d).unwrap_or(i64::MAX)),
            BlockShape::Runs(k) => Granularity::Runs(k),
        }
    }
}

/// The op of `scheme`, clamp-aware, its runs along the last dimension.
pub(crate) fn clamp_aware(scheme: Result<Scheme, xbquant::Error>) -> Built {
    let built = Built::new(scheme);
    Built(
        built
            .0
            .map(|op| op.with_gradient(Gradient::ClampAware).runs_along_last()),
    )
}

/// How a [`SliceQuantF`] gets each slice's fractional length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FracLengths {
    /// Given: one per slice.
    Given(Vec<i32>),
    /// Chosen from the data of each forward pass.
    Chosen(FracLengthRule),
}

/// Fixed point with a fractional length per slice (the whole tensor, the indices of one
/// dimension: per output channel, per crossbar column), with the straight-through gradient,
/// zero where a code overflowed. Each op fixes its noise (`Rounding::StochasticFresh` is
/// resolved when it is built).
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Var};
/// use xbquant::{FixedPoint, FracLengthRule, Rounding};
/// use xbquant_candle::{BlockShape, FracLengths, SliceQuantF};
///
/// let w = Var::new(&[[0.3f32, -0.6], [3.3, 1.2]], &Device::Cpu)?;
/// let rows = SliceQuantF::new(
///     FixedPoint::new(4, 0)?,
///     BlockShape::Dim(0),
///     FracLengths::Chosen(FracLengthRule::Max), // rows: fl 3 and 1
///     Rounding::NearestEven,
/// );
/// let y = w.as_tensor().apply_op1(rows)?;
/// assert_eq!(y.to_vec2::<f32>()?, [[0.25, -0.625], [3.5, 1.0]]);
/// let grads = y.sum_all()?.backward()?;
/// assert_eq!(grads.get(&w).unwrap().to_vec2::<f32>()?, [[1.0, 1.0], [1.0, 1.0]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SliceQuantF(Built);

impl SliceQuantF {
    /// The op for one application: `format`'s word length, signedness and overflow.
    #[must_use]
    pub fn new(
        format: FixedPoint,
        shape: BlockShape,
        fls: FracLengths,
        rounding: Rounding,
    ) -> Self {
        let scale = match fls {
            FracLengths::Given(fls) => Scale::FracLengths(fls),
            FracLengths::Chosen(rule) => Scale::PowerOfTwo(rule),
        };
        SliceQuantF(clamp_aware(
            Scheme::new(format)
                .with_granularity(shape.granularity())
                .and_then(|s| s.with_scale(scale))
                .and_then(|s| s.with_rounding(rounding)),
        ))
    }
}
impl SliceQuantF {
    fn op(&self) -> candle_core::Result<&SchemeF> {
        self.0.op()
    }
}
scheme_op!(SliceQuantF, "xbquant-slices");

/// The ADC/DAC model ([`Converter`]) with the straight-through gradient, zero where the
/// conversion saturated. Each op fixes its noise and rounding seeds when it is built, so that the
/// backward pass sees the forward pass's saturation.
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Var};
/// use xbquant::{Converter, ConverterRange};
/// use xbquant_candle::{BlockShape, ConverterF};
///
/// let i = Var::new(&[[0.25f32, 2.0], [1.0, -1.0]], &Device::Cpu)?;
/// let adc = ConverterF::new(Converter::new(4)?, BlockShape::Dim(1), ConverterRange::AbsMax);
/// let y = i.as_tensor().apply_op1(adc)?; // per column: steps of 1/8 and 1/4
/// assert_eq!(y.to_vec2::<f32>()?, [[0.25, 1.75], [0.875, -1.0]]);
/// let grads = y.sum_all()?.backward()?;
/// assert_eq!(grads.get(&i).unwrap().to_vec2::<f32>()?, [[1.0, 0.0], [0.0, 1.0]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConverterF(Built);

impl ConverterF {
    /// The op for one application.
    #[must_use]
    pub fn new(converter: Converter, shape: BlockShape, range: ConverterRange) -> Self {
        ConverterF(clamp_aware(converter.scheme(shape.granularity(), range)))
    }
}
impl ConverterF {
    fn op(&self) -> candle_core::Result<&SchemeF> {
        self.0.op()
    }
}
scheme_op!(ConverterF, "xbquant-converter");

/// Rounding to a [`Grid`] with the straight-through gradient, zero outside the grid's span.
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Tensor};
/// use xbquant::{Grid, Rounding};
/// use xbquant_candle::GridQuantF;
///
/// let g = Tensor::new(&[64.9f32, 65.0, 120.0], &Device::Cpu)?;
/// let op = GridQuantF::new(Grid::new(10.0, 50.0, Some(6))?, Rounding::NearestEven);
/// assert_eq!(g.apply_op1(op)?.to_vec1::<f32>()?, [60.0, 70.0, 100.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct GridQuantF {
    grid: Grid,
    rounding: Rounding,
}

impl GridQuantF {
    /// The op for one application.
    #[must_use]
    pub fn new(grid: Grid, rounding: Rounding) -> Self {
        GridQuantF {
            grid,
            rounding: rounding.resolve(),
        }
    }

    fn op(&self) -> candle_core::Result<SchemeF> {
        let built = clamp_aware(Scheme::new(self.grid).with_rounding(self.rounding));
        built.op().cloned()
    }
}
scheme_op!(GridQuantF, "xbquant-grid");

/// Rounding to a table of [`Levels`] with the straight-through gradient, zero outside the
/// table's span.
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Tensor};
/// use xbquant::{Levels, Rounding};
/// use xbquant_candle::LevelsQuantF;
///
/// let g = Tensor::new(&[0.0f32, 8.0, 31.0], &Device::Cpu)?;
/// let op = LevelsQuantF::new(Levels::new(vec![3.5, 12.0, 20.0, 40.0])?, Rounding::NearestEven);
/// assert_eq!(g.apply_op1(op)?.to_vec1::<f32>()?, [3.5, 12.0, 40.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LevelsQuantF(Built);

impl LevelsQuantF {
    /// The op for one application.
    #[must_use]
    pub fn new(levels: Levels, rounding: Rounding) -> Self {
        LevelsQuantF(clamp_aware(Scheme::new(levels).with_rounding(rounding)))
    }
}
impl LevelsQuantF {
    fn op(&self) -> candle_core::Result<&SchemeF> {
        self.0.op()
    }
}
scheme_op!(LevelsQuantF, "xbquant-levels");

/// The bit planes of integer codes (any dtype; float codes must hold integers): a tensor of the
/// codes' dtype with one more dimension in front, `slicing.count()` planes, least significant
/// first (see [`BitSlicing`](xbquant::BitSlicing)). Not differentiable.
///
/// # Errors
///
/// A candle error for float codes that are not integers, and for codes the slicing cannot hold.
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Tensor};
/// use xbquant::{BitSlicing, SliceEncoding};
/// use xbquant_candle::{bit_slices, from_bit_slices};
///
/// let codes = Tensor::new(&[-5i64, 6], &Device::Cpu)?;
/// let s = BitSlicing::new(4, 1, SliceEncoding::SignMagnitude)?;
/// let planes = bit_slices(&codes, s)?;
/// assert_eq!(planes.to_vec2::<i64>()?, [[-1, 0], [0, 1], [-1, 1], [0, 0]]);
/// assert_eq!(from_bit_slices(&planes, s)?.to_vec1::<i64>()?, [-5, 6]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn bit_slices(codes: &Tensor, slicing: xbquant::BitSlicing) -> candle_core::Result<Tensor> {
    let values = integer_codes(codes)?;
    let planes = slicing.planes(&values).map_err(xbquant_error)?;
    let mut dims = vec![slicing.count()];
    dims.extend_from_slice(codes.dims());
    let flat: Vec<i64> = planes.into_iter().flatten().collect();
    Tensor::from_vec(flat, dims, codes.device())?.to_dtype(codes.dtype())
}

/// The codes of planes made by [`bit_slices`] (planes along the first dimension), in the planes'
/// dtype. Not differentiable.
///
/// # Errors
///
/// A candle error for the wrong number of planes, float planes that are not integers, or sums
/// beyond 64 bits.
pub fn from_bit_slices(
    planes: &Tensor,
    slicing: xbquant::BitSlicing,
) -> candle_core::Result<Tensor> {
    let dims = planes.dims();
    if dims.first() != Some(&slicing.count()) {
        return Err(Error::Msg(format!(
            "xbquant: expected {} planes along the first dimension, got shape {dims:?}",
            slicing.count()
        )));
    }
    let values = integer_codes(planes)?;
    let len = values.len() / slicing.count();
    let rows: Vec<&[i64]> = if len == 0 {
        vec![&[]; slicing.count()]
    } else {
        values.chunks(len).collect()
    };
    let codes = slicing.join(&rows).map_err(xbquant_error)?;
    Tensor::from_vec(codes, &dims[1..], planes.device())?.to_dtype(planes.dtype())
}

/// The elements of a tensor of integer codes, row-major, as `i64`.
fn integer_codes(t: &Tensor) -> candle_core::Result<Vec<i64>> {
    if t.dtype().is_float() {
        let t64 = t.to_dtype(candle_core::DType::F64)?.flatten_all()?;
        let v: Vec<f64> = t64.to_vec1()?;
        if let Some(bad) = v.iter().find(|x| x.fract() != 0.0 || !x.is_finite()) {
            return Err(Error::Msg(format!(
                "xbquant: codes must be integers, got {bad}"
            )));
        }
        #[allow(clippy::cast_possible_truncation)]
        return Ok(v.into_iter().map(|x| x as i64).collect());
    }
    t.to_dtype(candle_core::DType::I64)?
        .flatten_all()?
        .to_vec1()
}

fn xbquant_error(e: xbquant::Error) -> Error {
    Error::Msg(format!("xbquant: {e}"))
}
