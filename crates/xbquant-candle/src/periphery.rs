//! The crossbar's periphery as candle ops: fixed point with a fractional length per slice, the
//! ADC/DAC model, uniform grids and tables of levels. Forward through the core; backward straight
//! through, zero where the forward pass clipped (overflowed, saturated, or fell outside a grid's
//! or table's span).

use candle_core::backend::BackendStorage;
use candle_core::cpu_backend::unary_map;
use candle_core::{CpuStorage, CustomOp1, Error, Layout, Shape, Tensor, WithDType};
use xbquant::{
    Blocks, Converter, ConverterRange, Element, FixedPoint, FracLengthRule, Grid, Levels, Rounding,
};

use crate::BlockShape;

/// One periphery computation: values and, when asked, the clip mask of a tensor's elements in
/// row-major order.
trait Periphery: Send + Sync {
    const NAME: &'static str;
    fn run<T: Element>(
        &self,
        x: &[T],
        dims: &[usize],
        out: &mut [T],
        mask: Option<&mut [bool]>,
    ) -> Result<(), xbquant::Error>;
}

/// The elements of a tensor in row-major order (a copy of contiguous data, a gather of strided).
pub(crate) fn row_major<T: WithDType>(data: &[T], layout: &Layout) -> Vec<T> {
    match layout.contiguous_offsets() {
        Some((start, end)) => data[start..end].to_vec(),
        None => unary_map(data, layout, |v| v),
    }
}

fn forward<P: Periphery, T: Element + WithDType>(
    op: &P,
    data: &[T],
    layout: &Layout,
) -> Result<Vec<T>, xbquant::Error> {
    let x = row_major(data, layout);
    let mut out = x.clone();
    op.run(&x, layout.shape().dims(), &mut out, None)?;
    Ok(out)
}

fn clip_mask<P: Periphery, T: Element + WithDType>(
    op: &P,
    data: &[T],
    layout: &Layout,
) -> Result<Vec<u8>, xbquant::Error> {
    let x = row_major(data, layout);
    let mut out = x.clone();
    let mut mask = vec![false; x.len()];
    op.run(&x, layout.shape().dims(), &mut out, Some(&mut mask))?;
    Ok(mask.into_iter().map(u8::from).collect())
}

/// The backward pass's second op: the forward pass's clip mask, as `U8`.
struct MaskOf<'a, P>(&'a P);

impl<P: Periphery> CustomOp1 for MaskOf<'_, P> {
    fn name(&self) -> &'static str {
        "xbquant-clip-mask"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let op = self.0;
        let mask = match storage {
            CpuStorage::F32(d) => clip_mask(op, d, layout),
            CpuStorage::F64(d) => clip_mask(op, d, layout),
            CpuStorage::F16(d) => clip_mask(op, d, layout),
            CpuStorage::BF16(d) => clip_mask(op, d, layout),
            other => return Err(Error::UnsupportedDTypeForOp(other.dtype(), self.name()).bt()),
        }
        .map_err(|e| Error::Msg(format!("xbquant: {e}")))?;
        Ok((CpuStorage::U8(mask), layout.shape().clone()))
    }
}

/// The straight-through gradient, zero where `arg`'s forward pass clipped.
fn clamp_aware<P: Periphery>(
    op: &P,
    arg: &Tensor,
    grad: &Tensor,
) -> candle_core::Result<Option<Tensor>> {
    let mask = arg.apply_op1_no_bwd(&MaskOf(op))?;
    Ok(Some(mask.where_cond(&grad.zeros_like()?, grad)?))
}

macro_rules! periphery_op {
    ($t:ty) => {
        impl CustomOp1 for $t {
            fn name(&self) -> &'static str {
                <$t as Periphery>::NAME
            }

            fn cpu_fwd(
                &self,
                storage: &CpuStorage,
                layout: &Layout,
            ) -> candle_core::Result<(CpuStorage, Shape)> {
                fallible_map!(self.name(), storage, layout, |data| forward(
                    self, data, layout
                ))
            }

            fn bwd(
                &self,
                arg: &Tensor,
                _res: &Tensor,
                grad: &Tensor,
            ) -> candle_core::Result<Option<Tensor>> {
                clamp_aware(self, arg, grad)
            }
        }
    };
}

pub(crate) fn blocks_of(shape: BlockShape, dims: &[usize]) -> Result<Blocks, xbquant::Error> {
    Ok(match shape {
        BlockShape::Whole => Blocks::Whole,
        BlockShape::Dim(axis) => Blocks::Axis {
            shape: dims.to_vec(),
            axis,
        },
        BlockShape::Runs(k) => {
            let last = dims.last().copied().unwrap_or(1);
            if k == 0 || last % k != 0 {
                return Err(xbquant::Error::InvalidBlocks(format!(
                    "runs of {k} along a last dimension of {last}"
                )));
            }
            Blocks::Runs(k)
        }
    })
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
pub struct SliceQuantF {
    format: FixedPoint,
    shape: BlockShape,
    fls: FracLengths,
    rounding: Rounding,
}

impl SliceQuantF {
    /// The op for one application: `format`'s word length, signedness and overflow.
    #[must_use]
    pub fn new(
        format: FixedPoint,
        shape: BlockShape,
        fls: FracLengths,
        rounding: Rounding,
    ) -> Self {
        SliceQuantF {
            format,
            shape,
            fls,
            rounding: rounding.resolve(),
        }
    }
}

impl Periphery for SliceQuantF {
    const NAME: &'static str = "xbquant-slices";

    fn run<T: Element>(
        &self,
        x: &[T],
        dims: &[usize],
        out: &mut [T],
        mask: Option<&mut [bool]>,
    ) -> Result<(), xbquant::Error> {
        let blocks = blocks_of(self.shape, dims)?;
        let fls = match &self.fls {
            FracLengths::Given(fls) => fls.clone(),
            FracLengths::Chosen(rule) => self.format.choose_frac_lengths(x, &blocks, *rule)?,
        };
        self.format
            .quantize_slices_into(x, out, mask, &blocks, &fls, self.rounding)
    }
}
periphery_op!(SliceQuantF);

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
pub struct ConverterF {
    converter: Converter,
    shape: BlockShape,
    range: ConverterRange,
}

impl ConverterF {
    /// The op for one application.
    #[must_use]
    pub fn new(converter: Converter, shape: BlockShape, range: ConverterRange) -> Self {
        ConverterF {
            converter: converter.resolve(),
            shape,
            range,
        }
    }
}

impl Periphery for ConverterF {
    const NAME: &'static str = "xbquant-converter";

    fn run<T: Element>(
        &self,
        x: &[T],
        dims: &[usize],
        out: &mut [T],
        mask: Option<&mut [bool]>,
    ) -> Result<(), xbquant::Error> {
        let blocks = blocks_of(self.shape, dims)?;
        self.converter
            .convert_into(x, out, mask, &blocks, &self.range)
    }
}
periphery_op!(ConverterF);

/// Marks the elements outside `[lo, hi]`: those whose gradient stops.
fn mark_outside<T: Element>(x: &[T], mask: &mut [bool], (lo, hi): (f64, f64)) {
    for (m, v) in mask.iter_mut().zip(x) {
        let v = v.to_f64();
        *m = v < lo || v > hi;
    }
}

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
}

impl Periphery for GridQuantF {
    const NAME: &'static str = "xbquant-grid";

    fn run<T: Element>(
        &self,
        x: &[T],
        _dims: &[usize],
        out: &mut [T],
        mask: Option<&mut [bool]>,
    ) -> Result<(), xbquant::Error> {
        self.grid.quantize_into(x, out, self.rounding)?;
        if let (Some(mask), Some(span)) = (mask, self.grid.span()) {
            mark_outside(x, mask, span);
        }
        Ok(())
    }
}
periphery_op!(GridQuantF);

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
pub struct LevelsQuantF {
    levels: Levels,
    rounding: Rounding,
}

impl LevelsQuantF {
    /// The op for one application.
    #[must_use]
    pub fn new(levels: Levels, rounding: Rounding) -> Self {
        LevelsQuantF {
            levels,
            rounding: rounding.resolve(),
        }
    }
}

impl Periphery for LevelsQuantF {
    const NAME: &'static str = "xbquant-levels";

    fn run<T: Element>(
        &self,
        x: &[T],
        _dims: &[usize],
        out: &mut [T],
        mask: Option<&mut [bool]>,
    ) -> Result<(), xbquant::Error> {
        self.levels.quantize_into(x, out, self.rounding)?;
        if let Some(mask) = mask {
            mark_outside(x, mask, self.levels.span());
        }
        Ok(())
    }
}
periphery_op!(LevelsQuantF);

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
