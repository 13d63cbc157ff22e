//! One tensor's data, streamed from the input file to the output in pieces of a fixed size:
//! quantized (or turned into integer codes, or back), with the report's statistics taken in
//! the same pass. Memory stays at a few buffers of one piece, whatever the tensor's size.

use std::io::Write;

use anyhow::Result;
use bytemuck::Pod;
use rayon::prelude::*;
use xbquant::half::{bf16, f16};
use xbquant::{BlockFormat, Blocks, Element, FloatFormat, QuantSpec, Rounding, TensorPart};

use super::source::Source;

/// Elements per piece: 1M (8 MiB of `f64`).
const PIECE: usize = 1 << 20;

/// A float type that files hold and xbquant quantizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Float {
    F16,
    BF16,
    F32,
    F64,
}

impl Float {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Float::F16 | Float::BF16 => 2,
            Float::F32 => 4,
            Float::F64 => 8,
        }
    }

    /// The name in reports: `f32`, ...
    pub fn name(self) -> &'static str {
        match self {
            Float::F16 => "f16",
            Float::BF16 => "bf16",
            Float::F32 => "f32",
            Float::F64 => "f64",
        }
    }

    /// The safetensors dtype name: `F32`, ...
    pub fn safetensors_name(self) -> &'static str {
        match self {
            Float::F16 => "F16",
            Float::BF16 => "BF16",
            Float::F32 => "F32",
            Float::F64 => "F64",
        }
    }

    /// The float type of a safetensors dtype name.
    pub fn from_safetensors_name(name: &str) -> Option<Float> {
        Some(match name {
            "F16" => Float::F16,
            "BF16" => Float::BF16,
            "F32" => Float::F32,
            "F64" => Float::F64,
            _ => return None,
        })
    }
}

/// The byte order of a file's elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Little,
    Big,
}

impl Order {
    /// This machine's byte order.
    pub fn native() -> Order {
        if cfg!(target_endian = "big") {
            Order::Big
        } else {
            Order::Little
        }
    }

    /// The `.npy` byte-order character.
    pub fn npy_char(self) -> char {
        match self {
            Order::Little => '<',
            Order::Big => '>',
        }
    }
}

/// An integer type that holds codes in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeType {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
}

impl CodeType {
    /// The smallest type that holds every word of `wl` bits, signed or not.
    pub fn smallest(wl: u32, signed: bool) -> CodeType {
        match (signed, wl) {
            (true, 0..=8) => CodeType::I8,
            (true, 9..=16) => CodeType::I16,
            (true, 17..=32) => CodeType::I32,
            (true, _) => CodeType::I64,
            (false, 0..=8) => CodeType::U8,
            (false, 9..=16) => CodeType::U16,
            (false, 17..=32) => CodeType::U32,
            (false, _) => CodeType::U64,
        }
    }

    /// Bytes per code.
    pub fn size(self) -> usize {
        match self {
            CodeType::I8 | CodeType::U8 => 1,
            CodeType::I16 | CodeType::U16 => 2,
            CodeType::I32 | CodeType::U32 => 4,
            CodeType::I64 | CodeType::U64 => 8,
        }
    }

    /// The safetensors dtype name: `I8`, ...
    pub fn safetensors_name(self) -> &'static str {
        match self {
            CodeType::I8 => "I8",
            CodeType::I16 => "I16",
            CodeType::I32 => "I32",
            CodeType::I64 => "I64",
            CodeType::U8 => "U8",
            CodeType::U16 => "U16",
            CodeType::U32 => "U32",
            CodeType::U64 => "U64",
        }
    }

    /// The code type of a safetensors dtype name.
    pub fn from_safetensors_name(name: &str) -> Option<CodeType> {
        Some(match name {
            "I8" => CodeType::I8,
            "I16" => CodeType::I16,
            "I32" => CodeType::I32,
            "I64" => CodeType::I64,
            "U8" => CodeType::U8,
            "U16" => CodeType::U16,
            "U32" => CodeType::U32,
            "U64" => CodeType::U64,
            _ => return None,
        })
    }
}

/// What quantizing one tensor changed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub elements: u64,
    /// Elements whose code overflowed the word.
    pub overflowed: u64,
    pub signal: f64,
    pub noise: f64,
    pub max_abs_error: f64,
    /// Elements whose error is not a finite number: an infinity made finite or a finite value
    /// made infinite, or NaN made a number or a number made NaN.
    pub nonfinite_errors: u64,
}

impl Stats {
    fn add(&mut self, other: Stats) {
        self.elements += other.elements;
        self.overflowed += other.overflowed;
        self.signal += other.signal;
        self.noise += other.noise;
        self.max_abs_error = self.max_abs_error.max(other.max_abs_error);
        self.nonfinite_errors += other.nonfinite_errors;
    }

    /// The largest absolute error: infinite where an error is not finite.
    pub fn max_error(&self) -> f64 {
        if self.nonfinite_errors > 0 {
            f64::INFINITY
        } else {
            self.max_abs_error
        }
    }

    /// The signal-to-quantization-noise ratio in dB over the finite elements: infinite when
    /// nothing changed, minus infinity when an error is not finite.
    pub fn sqnr_db(&self) -> f64 {
        if self.nonfinite_errors > 0 {
            f64::NEG_INFINITY
        } else if self.noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.signal / self.noise).log10()
        }
    }

    /// The share of elements that overflowed.
    pub fn overflow_share(&self) -> f64 {
        if self.elements == 0 {
            0.0
        } else {
            self.overflowed as f64 / self.elements as f64
        }
    }

    /// The statistics of `q`, the quantized `x`, over finite pairs, in pieces of 16K elements
    /// over rayon's threads: [`LANES`] independent sums, free of branches, so that the loop
    /// compiles to vector instructions.
    fn of<T: Element>(x: &[T], q: &[T], mask: &[bool]) -> Stats {
        x.par_chunks(1 << 14)
            .zip(q.par_chunks(1 << 14))
            .zip(mask.par_chunks(1 << 14))
            .map(|((x, q), mask)| {
                // Compiled for the best instruction set of this CPU (AVX2, AVX-512), chosen at
                // run time, as the kernels are.
                let acc = pulp::Arch::new().dispatch(Sums { x, q });
                // The largest |error| of all pairs, as bits: a finite one is the answer; an
                // infinity or NaN says some pair was not finite (rare), and a second pass over
                // the piece gives the largest finite error and the count of non-finite ones.
                let top = f64::from_bits(acc.m.iter().copied().max().unwrap_or(0));
                let (max_abs_error, nonfinite_errors) = if top.is_finite() {
                    (top, 0)
                } else {
                    nonfinite_errors(x, q)
                };
                Stats {
                    elements: x.len() as u64,
                    overflowed: mask.iter().filter(|&&o| o).count() as u64,
                    signal: acc.s.iter().sum(),
                    noise: acc.n.iter().sum(),
                    max_abs_error,
                    nonfinite_errors,
                }
            })
            .reduce(Stats::default, |mut a, b| {
                a.add(b);
                a
            })
    }
}

/// The sums of a piece, as an operation that `pulp` compiles once per instruction set.
struct Sums<'a, T> {
    x: &'a [T],
    q: &'a [T],
}

impl<T: Element> pulp::WithSimd for Sums<'_, T> {
    type Output = Lanes;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Lanes {
        Lanes::of(self.x, self.q)
    }
}

/// Independent sums of the statistics.
const LANES: usize = 8;

#[derive(Default)]
struct Lanes {
    s: [f64; LANES],
    n: [f64; LANES],
    /// The bits of the largest |error| of every pair: above those of any finite value (as
    /// integers, an infinity's bits and then NaN's are) where a pair was not finite.
    m: [u64; LANES],
}

impl Lanes {
    /// The sums over `x` and `q`.
    #[inline(always)]
    fn of<T: Element>(x: &[T], q: &[T]) -> Lanes {
        let mut acc = Lanes::default();
        let (xs, qs) = (x.chunks_exact(LANES), q.chunks_exact(LANES));
        let (xr, qr) = (xs.remainder(), qs.remainder());
        for (x, q) in xs.zip(qs) {
            let mut a = [0.0; LANES];
            let mut b = [0.0; LANES];
            for j in 0..LANES {
                a[j] = x[j].to_f64();
                b[j] = q[j].to_f64();
            }
            acc.add(a, b);
        }
        for (x, q) in xr.iter().zip(qr) {
            let mut a = [0.0; LANES];
            let mut b = [0.0; LANES];
            (a[0], b[0]) = (x.to_f64(), q.to_f64());
            acc.add(a, b);
        }
        acc
    }

    /// Adds the pairs `(a[j], b[j])` whose values are both finite to the sums (NaN and
    /// infinities count as zero, through a mask of bits rather than a branch), and every pair's
    /// |error| to the maximum of bits.
    #[inline(always)]
    fn add(&mut self, a: [f64; LANES], b: [f64; LANES]) {
        for j in 0..LANES {
            let e = b[j] - a[j];
            let finite = (a[j].abs() < f64::INFINITY) & (b[j].abs() < f64::INFINITY);
            let keep = u64::from(finite).wrapping_neg();
            let masked = |v: f64| f64::from_bits(v.to_bits() & keep);
            self.s[j] += masked(a[j] * a[j]);
            self.n[j] += masked(e * e);
            self.m[j] = self.m[j].max(e.abs().to_bits());
        }
    }
}

/// The largest finite |error| of `x` and its quantized `q`, and the count of pairs whose error
/// is not a finite number: a value and its result not both finite, unless the same (an
/// infinity kept, NaN kept).
fn nonfinite_errors<T: Element>(x: &[T], q: &[T]) -> (f64, u64) {
    let (mut max, mut count) = (0f64, 0u64);
    for (x, q) in x.iter().zip(q) {
        let (a, b) = (x.to_f64(), q.to_f64());
        if a.is_finite() && b.is_finite() {
            max = max.max((b - a).abs());
        } else if !(a == b || (a.is_nan() && b.is_nan())) {
            count += 1;
        }
    }
    (max, count)
}

/// Reverses the bytes of each element of `bytes` (elements of `size` bytes).
fn swap_bytes(bytes: &mut [u8], size: usize) {
    for e in bytes.chunks_exact_mut(size) {
        e.reverse();
    }
}

/// What a tensor's floats become: a fixed-point format with its rounding, or a low-precision
/// floating-point format with its rounding (nearest or stochastic).
#[derive(Debug, Clone, Copy)]
pub enum Quantization {
    Fixed(QuantSpec),
    Float(FloatFormat, Rounding),
    /// Block floating point, one block per tensor.
    Block(BlockFormat, Rounding),
    /// Fixed point whose fractional length is chosen per tensor (`None`) or per index of an
    /// axis (negative: from the last) from the largest magnitude (the spec's own fractional
    /// length is not used).
    Auto(QuantSpec, Option<i64>),
}

impl Quantization {
    /// The same with fresh stochastic noise drawn (once per tensor).
    pub fn resolve(&self) -> Quantization {
        match *self {
            Quantization::Fixed(spec) => Quantization::Fixed(spec.resolve()),
            Quantization::Float(f, r) => Quantization::Float(f, r.resolve()),
            Quantization::Block(b, r) => Quantization::Block(b, r.resolve()),
            Quantization::Auto(spec, axis) => Quantization::Auto(spec.resolve(), axis),
        }
    }

    /// The format's name (an HLS type where one expresses it) and the rounding's.
    pub fn names(&self) -> (String, String) {
        match self {
            Quantization::Fixed(spec) => (
                spec.to_hls().unwrap_or_else(|_| spec.format().to_string()),
                spec.rounding().name(),
            ),
            Quantization::Float(f, r) => (f.to_string(), r.name()),
            Quantization::Block(b, r) => (format!("block<{}>", b.word_length()), r.name()),
            Quantization::Auto(spec, _) => (auto_name(spec.format()), spec.rounding().name()),
        }
    }
}

impl std::fmt::Display for Quantization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quantization::Fixed(spec) => write!(f, "{spec}"),
            Quantization::Float(format, r) => write!(f, "{format}, rounding {r}"),
            Quantization::Block(b, r) => write!(
                f,
                "block floating point, {} bits, one block per tensor, rounding {r}",
                b.word_length()
            ),
            Quantization::Auto(spec, axis) => {
                write!(f, "{}, ", auto_name(spec.format()))?;
                match axis {
                    None => write!(f, "fl chosen per tensor")?,
                    Some(a) => write!(f, "fl chosen per index of axis {a}")?,
                }
                write!(f, ", rounding {}", spec.rounding())
            }
        }
    }
}

/// A format whose fractional length is chosen from the data: `ap_fixed<W,auto>`-like.
fn auto_name(format: &xbquant::FixedPoint) -> String {
    format!(
        "{}<{},fl=auto>, {}",
        if format.is_signed() {
            "fixed"
        } else {
            "ufixed"
        },
        format.word_length(),
        format.overflow()
    )
}

/// Axis `axis` of a tensor of `ndim` axes, counted from the last when negative, as Python
/// counts; `None` when the tensor has no such axis.
pub fn normal_axis(axis: i64, ndim: usize) -> Option<usize> {
    let n = i64::try_from(ndim).ok()?;
    let a = if axis < 0 { axis + n } else { axis };
    usize::try_from(a).ok().filter(|&a| a < ndim)
}

/// Where a tensor's output goes and what it becomes.
pub enum Output<'a> {
    /// Quantized values of the input's type and byte order.
    Values(&'a mut dyn Write),
    /// Little-endian integer codes of the given type.
    Codes(&'a mut dyn Write, CodeType),
}

/// What quantizing one tensor gave: its statistics, and the fractional lengths chosen for it
/// (with `--fl auto`; empty otherwise).
pub struct Outcome {
    pub stats: Stats,
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

/// Quantizes the floats of a tensor at the source's position into `out`, piece by piece; the
/// element of logical index `i` draws stream index `i` (in a Fortran-order tensor too, as the
/// same tensor in C order would). `done(bytes)` is called after each piece with the input bytes
/// it consumed.
pub fn quantize(
    src: &mut Source,
    float: Float,
    layout: &Layout<'_>,
    quantization: &Quantization,
    out: Output<'_>,
    done: &mut dyn FnMut(u64),
) -> Result<Outcome> {
    let q = quantization;
    match float {
        Float::F16 => quantize_as::<f16>(src, layout, q, out, done),
        Float::BF16 => quantize_as::<bf16>(src, layout, q, out, done),
        Float::F32 => quantize_as::<f32>(src, layout, q, out, done),
        Float::F64 => quantize_as::<f64>(src, layout, q, out, done),
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

    /// The logical index of memory position `m` and the index along memory axis `axis`.
    fn of(&self, mut m: u64, axis: Option<usize>) -> (u64, usize) {
        let (mut logical, mut along) = (0u64, 0usize);
        for k in (0..self.memory.len()).rev() {
            let d = self.memory[k].max(1);
            let c = m % d;
            m /= d;
            logical += c * self.strides[k];
            if Some(k) == axis {
                along = c as usize;
            }
        }
        (logical, along)
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

/// The per-slice quantization of a tensor with `--fl auto --axis`: the slices, the tensor's
/// length and each slice's fractional length.
struct Sliced<'a> {
    spec: &'a QuantSpec,
    blocks: Blocks,
    len: usize,
    fls: Vec<i32>,
}

fn quantize_as<T: Element + Pod + Default>(
    src: &mut Source,
    layout: &Layout<'_>,
    quantization: &Quantization,
    mut out: Output<'_>,
    done: &mut dyn FnMut(u64),
) -> Result<Outcome> {
    let (order, shape) = (layout.order, layout.shape);
    let elements: u64 = shape.iter().product();
    let size = std::mem::size_of::<T>();
    let swap = order != Order::native();
    let piece = (elements.min(PIECE as u64)) as usize;
    let mut sliced = None;
    let (fixed, float) = match quantization {
        Quantization::Fixed(spec) => (Some(spec), None),
        Quantization::Float(format, rounding) => (None, Some((format, *rounding))),
        Quantization::Auto(spec, axis) => {
            // A first pass for the largest finite magnitude of each slice, then their
            // fractional lengths.
            let len = usize::try_from(elements)?;
            let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            // A tensor without the axis (a bias, with --axis 1) gets one per tensor.
            let axis = axis.and_then(|a| normal_axis(a, dims.len()));
            let blocks = match axis {
                None => Blocks::Whole,
                Some(a) => Blocks::Axis {
                    shape: dims.clone(),
                    axis: a,
                },
            };
            let count = axis.map_or(1, |a| dims[a]);
            let mut top = vec![0f64; count];
            first_pass::<T>(src, order, elements, |start, x| {
                let part = TensorPart {
                    blocks: &blocks,
                    len,
                    start: start as usize,
                };
                Ok(part.merge_slice_maxima(x, &mut top)?)
            })?;
            let fls: Vec<i32> = top
                .iter()
                .map(|&m| spec.format().frac_length_within(m, T::MAX))
                .collect();
            if axis.is_none() {
                let fixed = spec.format().with_frac_length(fls[0])?;
                let spec = QuantSpec::new(fixed, spec.rounding());
                let mut outcome =
                    quantize_as::<T>(src, layout, &Quantization::Fixed(spec), out, done)?;
                outcome.fls = fls;
                return Ok(outcome);
            }
            if matches!(out, Output::Codes(..)) {
                anyhow::bail!("integer codes need one fractional length per tensor");
            }
            sliced = Some(Sliced {
                spec,
                blocks,
                len,
                fls,
            });
            (None, None)
        }
        Quantization::Block(block, rounding) => {
            // A first pass for the tensor's largest finite magnitude, then the fixed-point
            // format of the block.
            let mut max = 0f64;
            first_pass::<T>(src, order, elements, |_, x| {
                for v in x {
                    let a = v.to_f64().abs();
                    if a.is_finite() && a > max {
                        max = a;
                    }
                }
                Ok(())
            })?;
            let spec = QuantSpec::new(block.format_for(max)?, *rounding);
            return quantize_as::<T>(src, layout, &Quantization::Fixed(spec), out, done);
        }
    };
    let mut x = vec![T::default(); piece];
    let mut next = vec![T::default(); piece];
    let mut q = vec![T::default(); piece];
    let mut mask = vec![false; piece];
    let mut codes = match out {
        Output::Codes(..) => vec![0i64; piece],
        Output::Values(_) => Vec::new(),
    };
    let mut bytes = Vec::new();
    let mut stats = Stats::default();
    let len_at = |start: u64| (elements - start).min(piece as u64) as usize;
    let exact = fixed.is_some_and(|spec| codes_are_exact::<T>(spec.format()));
    // Noise drawn in a Fortran-order tensor: each element again, with its logical index.
    let draws = fixed
        .map(|s| s.rounding())
        .or(sliced.as_ref().map(|s| s.spec.rounding()))
        .or(float.map(|(_, r)| r))
        .is_some_and(Rounding::is_stochastic);
    let logical = layout.logical.as_ref().filter(|l| draws && l.matters());
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
            if let Some(spec) = fixed {
                spec.with_stream_start(start)
                    .quantize_into_with_mask(x, q, mask)?;
            } else if let Some(sl) = &sliced {
                let part = TensorPart {
                    blocks: &sl.blocks,
                    len: sl.len,
                    start: start as usize,
                };
                sl.spec.format().quantize_slices_part_into(
                    x,
                    q,
                    Some(mask),
                    part,
                    &sl.fls,
                    sl.spec.rounding(),
                )?;
            } else if let Some((format, rounding)) = float {
                format.quantize_part_into(x, q, rounding, start)?;
                // Overflow: a finite value beyond the format's largest.
                let max = format.max();
                for (m, v) in mask.iter_mut().zip(x.iter()) {
                    let a = v.to_f64().abs();
                    *m = a.is_finite() && a > max;
                }
            }
            if let Some(logical) = logical {
                in_logical_order(logical, start, x, q, mask, fixed, sliced.as_ref(), float)?;
            }
            stats.add(Stats::of(x, q, mask));
            match &mut out {
                Output::Values(w) => {
                    if swap {
                        swap_bytes(bytemuck::cast_slice_mut(q), size);
                    }
                    w.write_all(bytemuck::cast_slice(q))?;
                }
                Output::Codes(w, ty) => {
                    let Some(spec) = fixed else {
                        anyhow::bail!("integer codes need a fixed-point format");
                    };
                    let k = &mut codes[..m];
                    if exact {
                        codes_of_values(q, k, start, spec.format().frac_length())?;
                    } else {
                        to_codes(spec, start, x, k)?;
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
    Ok(Outcome {
        stats,
        fls: sliced.map(|s| s.fls).unwrap_or_default(),
    })
}

/// Quantizes each element of a piece of a Fortran-order tensor (from memory position `start`)
/// again, one at a time, drawing the noise of its logical index: slow, but only stochastic
/// rounding of Fortran-order files takes it.
#[allow(clippy::too_many_arguments)]
fn in_logical_order<T: Element>(
    logical: &Logical,
    start: u64,
    x: &[T],
    q: &mut [T],
    mask: &mut [bool],
    fixed: Option<&QuantSpec>,
    sliced: Option<&Sliced<'_>>,
    float: Option<(&FloatFormat, Rounding)>,
) -> Result<()> {
    let axis = sliced.and_then(|s| match &s.blocks {
        Blocks::Axis { axis, .. } => Some(*axis),
        _ => None,
    });
    for j in 0..x.len() {
        let (i, along) = logical.of(start + j as u64, axis);
        let (x, q, m) = (&x[j..=j], &mut q[j..=j], &mut mask[j..=j]);
        if let Some(spec) = fixed {
            spec.with_stream_start(i).quantize_into_with_mask(x, q, m)?;
        } else if let Some(sl) = sliced {
            let format = sl.spec.format().with_frac_length(sl.fls[along])?;
            QuantSpec::new(format, sl.spec.rounding())
                .with_stream_start(i)
                .quantize_into_with_mask(x, q, m)?;
        } else if let Some((format, rounding)) = float {
            format.quantize_part_into(x, q, rounding, i)?;
        }
    }
    Ok(())
}

/// Whether every value of `format` is exact in `T`: then a quantized value times `2^fl` is its
/// code. True when `T`'s significand holds the word and both the step and the largest
/// magnitude, `(2^wl - 1) * step`, are exact in `T` (every multiple of the step in between then
/// is: above `T`'s normal range it needs at most `wl` significant bits, below it it is a
/// multiple of the smallest subnormal).
fn codes_are_exact<T: Element>(format: &xbquant::FixedPoint) -> bool {
    let wl = format.word_length();
    let exact = |v: f64| T::from_f64(v).to_f64() == v;
    let step = format.step();
    wl <= T::SIGNIFICAND_BITS && exact(step) && exact(((1u64 << wl) - 1) as f64 * step)
}

/// The codes of quantized values `q` of a format whose values are exact in `T`
/// ([`codes_are_exact`]): `q * 2^fl`, exact. NaN has no code.
fn codes_of_values<T: Element>(q: &[T], k: &mut [i64], start: u64, fl: i32) -> Result<()> {
    let scale = 2f64.powi(fl);
    let mut nan = false;
    for (q, k) in q.iter().zip(k.iter_mut()) {
        let v = q.to_f64() * scale;
        nan |= v.is_nan();
        #[allow(clippy::cast_possible_truncation)]
        {
            *k = v as i64;
        }
    }
    if nan {
        let i = q.iter().position(|v| v.to_f64().is_nan()).unwrap_or(0);
        anyhow::bail!(
            "element {} is NaN, which has no integer code",
            start + i as u64
        );
    }
    Ok(())
}

/// Elements per part when a serial loop of the core is split over rayon's threads.
const SPLIT: usize = 1 << 16;

/// The codes of `x`, the elements from `start` of a tensor, in parts over rayon's threads, each
/// part drawing the noise of its own elements.
fn to_codes<T: Element>(spec: &QuantSpec, start: u64, x: &[T], k: &mut [i64]) -> Result<()> {
    x.par_chunks(SPLIT)
        .zip(k.par_chunks_mut(SPLIT))
        .enumerate()
        .try_for_each(|(i, (x, k))| {
            let first = start + (i * SPLIT) as u64;
            match spec.with_stream_start(first).to_codes_into(x, k) {
                Ok(()) => Ok(()),
                Err(xbquant::Error::NanInput { index }) => Err(anyhow::anyhow!(
                    "element {} is NaN, which has no integer code",
                    first + index as u64
                )),
                Err(e) => Err(e.into()),
            }
        })
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
        // The core's serial loop, over rayon's threads.
        k.par_chunks(SPLIT)
            .zip(values[..m].par_chunks_mut(SPLIT))
            .enumerate()
            .try_for_each(|(i, (k, v))| match format.from_codes_into(k, v) {
                Ok(()) => Ok(()),
                Err(xbquant::Error::CodeOutOfRange { index, code }) => {
                    let (lo, hi) = format.word_codes();
                    Err(anyhow::anyhow!(
                        "code {code} of element {} lies outside the format's words [{lo}, {hi}]",
                        start + (i * SPLIT + index) as u64
                    ))
                }
                Err(e) => Err(e.into()),
            })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The statistics equal a plain scalar reference, with NaN and infinities in some of the
    /// 16K pieces and the largest finite error in another.
    #[test]
    fn statistics_count_non_finite_errors_in_every_piece() {
        let n = 5 << 14;
        let x: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin() * 3.0).collect();
        let mut q: Vec<f32> = x.iter().map(|v| (v * 4.0).round() / 4.0).collect();
        let mut x = x;
        // Piece 1: an infinity saturated, NaN made a number, NaN kept, an infinity kept.
        (x[20_000], q[20_000]) = (f32::INFINITY, 7.75);
        (x[20_001], q[20_001]) = (f32::NAN, 0.0);
        (x[20_002], q[20_002]) = (f32::NAN, f32::NAN);
        (x[20_003], q[20_003]) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
        // Piece 3: a finite value made infinite; piece 4: the largest finite error.
        (x[50_000], q[50_000]) = (1.0, f32::INFINITY);
        (x[70_000], q[70_000]) = (1.0, 9.0);
        let stats = Stats::of(&x, &q, &vec![false; n]);
        assert_eq!(stats.nonfinite_errors, 3);
        assert_eq!(stats.max_abs_error, 8.0);
        assert_eq!(stats.max_error(), f64::INFINITY);
        assert_eq!(stats.sqnr_db(), f64::NEG_INFINITY);
        // Only finite pairs: the sums of a scalar loop (to rounding), the exact largest error.
        let (x, q): (Vec<f32>, Vec<f32>) = x
            .iter()
            .zip(&q)
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|(a, b)| (*a, *b))
            .unzip();
        let stats = Stats::of(&x, &q, &vec![false; x.len()]);
        let noise: f64 = x
            .iter()
            .zip(&q)
            .map(|(a, b)| (f64::from(*b) - f64::from(*a)).powi(2))
            .sum();
        assert_eq!(stats.nonfinite_errors, 0);
        assert_eq!(stats.max_abs_error, 8.0);
        assert!((stats.noise - noise).abs() <= noise * 1e-12);
    }
}
