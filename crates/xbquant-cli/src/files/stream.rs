//! One tensor's data, streamed from the input file to the output in pieces of a fixed size:
//! quantized by a [`Scheme`] (or turned into integer codes, or back), with the report's
//! statistics taken in the same pass. Memory stays at a few buffers of one piece, whatever the
//! tensor's size (a percentile range also keeps each group's magnitudes).

use std::io::Write;

use anyhow::Result;
use bytemuck::Pod;
use xbquant::half::{bf16, f16};
use xbquant::{
    Data, Element, ErrorStats, FracLengthRule, Granularity, Observation, Part, Quantizer, Scale,
    Scheme,
};

use super::dtypes::{CodeType, Float, Order};
use super::source::Source;

/// Elements per piece: 1M (8 MiB of `f64`).
const PIECE: usize = 1 << 20;

/// Axis `axis` of a tensor of `ndim` axes, counted from the last when negative, as Python
/// counts; `None` when the tensor has no such axis.
pub fn normal_axis(axis: i64, ndim: usize) -> Option<usize> {
    let n = i64::try_from(ndim).ok()?;
    let a = if axis < 0 { axis + n } else { axis };
    usize::try_from(a).ok().filter(|&a| a < ndim)
}

/// The scheme for a tensor of `ndim` axes: its axis made non-negative, or one group for the
/// whole tensor when the tensor has no such axis (a bias, with --axis 1).
pub fn for_tensor(scheme: &Scheme, ndim: usize) -> Result<Scheme> {
    Ok(match scheme.granularity() {
        Granularity::Axis(a) => {
            let g = normal_axis(a, ndim).map_or(Granularity::Tensor, |a| {
                Granularity::Axis(i64::try_from(a).unwrap_or(i64::MAX))
            });
            scheme.clone().with_granularity(g)?
        }
        _ => scheme.clone(),
    })
}

/// Where a tensor's output goes and what it becomes.
pub enum Output<'a> {
    /// Quantized values of the input's type and byte order.
    Values(&'a mut dyn Write),
    /// Little-endian integer codes of the given type.
    Codes(&'a mut dyn Write, CodeType),
}

/// What quantizing one tensor gave: its statistics, and the fractional lengths chosen for it
/// (with a power-of-two scale chosen from the data; empty otherwise).
pub struct Outcome {
    pub stats: ErrorStats,
    pub fls: Vec<i32>,
}

/// How a tensor's elements lie in a file: their byte order, the shape in memory order, and for
/// a Fortran-order tensor the logical index of each element.
pub struct Layout<'a> {
    order: Order,
    shape: &'a [u64],
    logical: Option<Logical>,
}

impl<'a> Layout<'a> {
    /// A tensor of `shape` in C order.
    pub fn c_order(order: Order, shape: &'a [u64]) -> Layout<'a> {
        Layout {
            order,
            shape,
            logical: None,
        }
    }

    /// A Fortran-order tensor of the `logical` shape, whose memory is the row-major layout of
    /// `reversed` (the shape reversed).
    pub fn fortran(order: Order, reversed: &'a [u64], logical: &[u64]) -> Layout<'a> {
        Layout {
            order,
            shape: reversed,
            logical: Some(Logical::new(logical)),
        }
    }
}

/// Quantizes the floats of a tensor at the source's position into `out`, piece by piece, with
/// `scheme` (resolved: its noise fixed; its axis that of the tensor's logical shape). Element of
/// logical index `i` draws stream index `i` (in a Fortran-order tensor too, as the same tensor in
/// C order would). `done(bytes)` is called after each piece with the input bytes it consumed.
pub fn quantize(
    src: &mut Source,
    float: Float,
    layout: &Layout<'_>,
    scheme: &Scheme,
    out: Output<'_>,
    done: &mut dyn FnMut(u64),
) -> Result<Outcome> {
    match float {
        Float::F16 => quantize_as::<f16>(src, layout, scheme, out, done),
        Float::BF16 => quantize_as::<bf16>(src, layout, scheme, out, done),
        Float::F32 => quantize_as::<f32>(src, layout, scheme, out, done),
        Float::F64 => quantize_as::<f64>(src, layout, scheme, out, done),
    }
}

/// The logical (C-order) index of each element of a Fortran-order tensor, whose memory is the
/// row-major layout of the reversed shape.
struct Logical {
    /// The memory (reversed) shape.
    memory: Vec<u64>,
    /// The logical stride of each memory axis.
    strides: Vec<u64>,
}

impl Logical {
    fn new(shape: &[u64]) -> Logical {
        let n = shape.len();
        let mut c_strides = vec![1u64; n];
        for k in (0..n.saturating_sub(1)).rev() {
            c_strides[k] = c_strides[k + 1].saturating_mul(shape[k + 1]);
        }
        Logical {
            memory: shape.iter().rev().copied().collect(),
            strides: c_strides.into_iter().rev().collect(),
        }
    }

    /// Whether memory order differs from logical order at all (two axes longer than 1).
    fn matters(&self) -> bool {
        self.memory.iter().filter(|&&d| d > 1).count() > 1
    }

    /// The logical index of memory position `m`.
    fn of(&self, mut m: u64) -> u64 {
        let mut logical = 0u64;
        for k in (0..self.memory.len()).rev() {
            let d = self.memory[k].max(1);
            logical += (m % d) * self.strides[k];
            m /= d;
        }
        logical
    }
}

/// A first pass over a tensor's `elements` floats at the source's position: `visit(start,
/// piece)` for each piece; the source is back at its position afterwards.
fn first_pass<T: Element + Pod + Default>(
    src: &mut Source,
    order: Order,
    elements: u64,
    mut visit: impl FnMut(u64, &[T]) -> Result<()>,
) -> Result<()> {
    let size = std::mem::size_of::<T>();
    let swap = order != Order::native();
    let piece = (elements.min(PIECE as u64)) as usize;
    let at = src.position()?;
    let mut buf = vec![T::default(); piece];
    let mut read = 0u64;
    while read < elements {
        let m = (elements - read).min(piece as u64) as usize;
        let buf = &mut buf[..m];
        src.read_next(bytemuck::cast_slice_mut(buf))?;
        if swap {
            swap_bytes(bytemuck::cast_slice_mut(buf), size);
        }
        visit(read, buf)?;
        read += m as u64;
    }
    src.seek(at)
}

fn quantize_as<T: Element + Pod + Default>(
    src: &mut Source,
    layout: &Layout<'_>,
    scheme: &Scheme,
    mut out: Output<'_>,
    done: &mut dyn FnMut(u64),
) -> Result<Outcome> {
    let (order, shape) = (layout.order, layout.shape);
    let elements: u64 = shape.iter().product();
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()?;
    let whole = Part::shaped(&dims)?;
    let size = std::mem::size_of::<T>();
    let swap = order != Order::native();
    let piece = (elements.min(PIECE as u64)) as usize;
    // The scheme in the logical layout, and in memory order (a Fortran-order tensor's axes are
    // reversed in memory).
    let logical_scheme = for_tensor(scheme, dims.len())?;
    let memory_scheme = match (logical_scheme.granularity(), &layout.logical) {
        (Granularity::Axis(a), Some(_)) => {
            let a = usize::try_from(a)?;
            let flipped = i64::try_from(dims.len() - 1 - a)?;
            logical_scheme
                .clone()
                .with_granularity(Granularity::Axis(flipped))?
        }
        _ => logical_scheme.clone(),
    };
    // Scales chosen from the data: a first pass gathers what the rule reads.
    let scheme = if memory_scheme.scale().reads_data() {
        let mut seen = Observation::default();
        first_pass::<T>(src, order, elements, |start, x| {
            let at = whole.at(usize::try_from(start)?);
            Ok(memory_scheme.observe(x, at, &mut seen)?)
        })?;
        memory_scheme.calibrate::<T>(&seen)?
    } else {
        memory_scheme
    };
    let fls = scheme_fls(&logical_scheme, &scheme).unwrap_or_default();
    let spec = match out {
        Output::Codes(..) => Some(scheme.spec().ok_or_else(|| {
            anyhow::anyhow!("integer codes need one fixed-point format per tensor")
        })?),
        Output::Values(_) => None,
    };
    // Noise drawn in a Fortran-order tensor: each element again, with its logical index.
    let logical = layout
        .logical
        .as_ref()
        .filter(|l| scheme.draws() && l.matters());
    let logical_calibrated = match logical {
        Some(_) => Some(
            scheme
                .clone()
                .with_granularity(logical_scheme.granularity())?,
        ),
        None => None,
    };
    let logical_shape: Vec<usize> = dims.iter().rev().copied().collect();
    let mut x = vec![T::default(); piece];
    let mut next = vec![T::default(); piece];
    let mut q = vec![T::default(); piece];
    let mut mask = vec![false; piece];
    let mut codes = match out {
        Output::Codes(..) => vec![0i64; piece],
        Output::Values(_) => Vec::new(),
    };
    let mut bytes = Vec::new();
    let mut stats = ErrorStats::default();
    let len_at = |start: u64| (elements - start).min(piece as u64) as usize;
    if elements > 0 {
        src.read_next(bytemuck::cast_slice_mut(&mut x[..len_at(0)]))?;
    }
    let mut start = 0u64;
    while start < elements {
        let m = len_at(start);
        let after = start + m as u64;
        // The next piece is read on a second thread while this one is quantized and written.
        std::thread::scope(|scope| -> Result<()> {
            let reader = (after < elements).then(|| {
                let next = &mut next[..len_at(after)];
                let src = &mut *src;
                scope.spawn(move || src.read_next(bytemuck::cast_slice_mut(next)))
            });
            let (x, q, mask) = (&mut x[..m], &mut q[..m], &mut mask[..m]);
            if swap {
                swap_bytes(bytemuck::cast_slice_mut(x), size);
            }
            let at = whole.at(usize::try_from(start)?);
            scheme.quantize_part(Data::Into { x, out: q }, Some(mask), at)?;
            if let (Some(logical), Some(s)) = (logical, &logical_calibrated) {
                let tensor = Part::shaped(&logical_shape)?;
                for j in 0..x.len() {
                    let i = usize::try_from(logical.of(start + j as u64))?;
                    let data = Data::Into {
                        x: &x[j..=j],
                        out: &mut q[j..=j],
                    };
                    s.quantize_part(data, Some(&mut mask[j..=j]), tensor.at(i))?;
                }
            }
            stats.add(ErrorStats::of(x, q, mask)?);
            match &mut out {
                Output::Values(w) => {
                    if swap {
                        swap_bytes(bytemuck::cast_slice_mut(q), size);
                    }
                    w.write_all(bytemuck::cast_slice(q))?;
                }
                Output::Codes(w, ty) => {
                    let Some(spec) = spec else {
                        anyhow::bail!("integer codes need a fixed-point format");
                    };
                    let k = &mut codes[..m];
                    match spec.with_stream_start(start).to_codes_into(x, k) {
                        Ok(()) => {}
                        Err(xbquant::Error::NanInput { index }) => anyhow::bail!(
                            "element {} is NaN, which has no integer code",
                            start + index as u64
                        ),
                        Err(e) => return Err(e.into()),
                    }
                    encode_codes(k, *ty, &mut bytes);
                    w.write_all(&bytes)?;
                }
            }
            match reader.map(|r| r.join()) {
                Some(Ok(read)) => read,
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => Ok(()),
            }
        })?;
        std::mem::swap(&mut x, &mut next);
        start = after;
        done((m * size) as u64);
    }
    Ok(Outcome { stats, fls })
}

/// The fractional lengths a power-of-two rule chose for a tensor (`chosen`, the scheme
/// calibrated on it): one per group; `None` for other rules.
fn scheme_fls(rule: &Scheme, chosen: &Scheme) -> Option<Vec<i32>> {
    if !matches!(
        rule.scale(),
        Scale::PowerOfTwo(FracLengthRule::Max | FracLengthRule::Sqnr)
    ) {
        return None;
    }
    match (chosen.scale(), chosen.element()) {
        (Scale::FracLengths(fls), _) => Some(fls.clone()),
        (Scale::None, xbquant::ElementFormat::Fixed(f)) => Some(vec![f.frac_length()]),
        _ => None,
    }
}

/// Reverses the bytes of each element of `bytes` (elements of `size` bytes).
pub(crate) fn swap_bytes(bytes: &mut [u8], size: usize) {
    for e in bytes.chunks_exact_mut(size) {
        e.reverse();
    }
}

/// `codes` as little-endian integers of type `ty` (each code fits: the format was checked).
fn encode_codes(codes: &[i64], ty: CodeType, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(codes.len() * ty.size());
    macro_rules! put {
        ($t:ty) => {
            for &k in codes {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                out.extend_from_slice(&(k as $t).to_le_bytes());
            }
        };
    }
    match ty {
        CodeType::I8 => put!(i8),
        CodeType::I16 => put!(i16),
        CodeType::I32 => put!(i32),
        CodeType::I64 => put!(i64),
        CodeType::U8 => put!(u8),
        CodeType::U16 => put!(u16),
        CodeType::U32 => put!(u32),
        CodeType::U64 => put!(u64),
    }
}

/// Reads `elements` little-endian codes of type `ty` and writes the values they stand for in
/// `format`, as little-endian `float`s.
pub fn dequantize(
    src: &mut Source,
    ty: CodeType,
    elements: u64,
    format: &xbquant::FixedPoint,
    float: Float,
    out: &mut dyn Write,
    done: &mut dyn FnMut(u64),
) -> Result<()> {
    match float {
        Float::F16 => dequantize_as::<f16>(src, ty, elements, format, out, done),
        Float::BF16 => dequantize_as::<bf16>(src, ty, elements, format, out, done),
        Float::F32 => dequantize_as::<f32>(src, ty, elements, format, out, done),
        Float::F64 => dequantize_as::<f64>(src, ty, elements, format, out, done),
    }
}

fn dequantize_as<T: Element + Pod + Default>(
    src: &mut Source,
    ty: CodeType,
    elements: u64,
    format: &xbquant::FixedPoint,
    out: &mut dyn Write,
    done: &mut dyn FnMut(u64),
) -> Result<()> {
    let piece = (elements.min(PIECE as u64)) as usize;
    let mut raw = vec![0u8; piece * ty.size()];
    let mut codes = vec![0i64; piece];
    let mut values = vec![T::default(); piece];
    let mut start = 0u64;
    while start < elements {
        let m = (elements - start).min(piece as u64) as usize;
        let raw = &mut raw[..m * ty.size()];
        src.read_next(raw)?;
        let k = &mut codes[..m];
        decode_codes(raw, ty, k);
        match format.from_codes_into(k, &mut values[..m]) {
            Ok(()) => {}
            Err(xbquant::Error::CodeOutOfRange { index, code }) => {
                let (lo, hi) = format.word_codes();
                anyhow::bail!(
                    "code {code} of element {} lies outside the format's words [{lo}, {hi}]",
                    start + index as u64
                );
            }
            Err(e) => return Err(e.into()),
        }
        out.write_all(bytemuck::cast_slice(&values[..m]))?;
        start += m as u64;
        done(raw.len() as u64);
    }
    Ok(())
}

fn decode_codes(raw: &[u8], ty: CodeType, out: &mut [i64]) {
    macro_rules! get {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            for (c, k) in raw.chunks_exact(N).zip(out.iter_mut()) {
                let mut b = [0u8; N];
                b.copy_from_slice(c);
                #[allow(clippy::cast_possible_wrap)]
                {
                    *k = <$t>::from_le_bytes(b) as i64;
                }
            }
        }};
    }
    match ty {
        CodeType::I8 => get!(i8),
        CodeType::I16 => get!(i16),
        CodeType::I32 => get!(i32),
        CodeType::I64 => get!(i64),
        CodeType::U8 => get!(u8),
        CodeType::U16 => get!(u16),
        CodeType::U32 => get!(u32),
        CodeType::U64 => get!(u64),
    }
}
