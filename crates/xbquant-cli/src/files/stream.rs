//! One tensor's data, streamed from the input file to the output in pieces of a fixed size:
//! quantized (or turned into integer codes, or back), with the report's statistics taken in
//! the same pass. Memory stays at a few buffers of one piece, whatever the tensor's size.

use std::io::Write;

use anyhow::{bail, Context, Result};
use bytemuck::Pod;
use rayon::prelude::*;
use xbquant::half::{bf16, f16};
use xbquant::{Element, QuantSpec};

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
}

impl Stats {
    fn add(&mut self, other: Stats) {
        self.elements += other.elements;
        self.overflowed += other.overflowed;
        self.signal += other.signal;
        self.noise += other.noise;
        self.max_abs_error = self.max_abs_error.max(other.max_abs_error);
    }

    /// The signal-to-quantization-noise ratio in dB (infinite when nothing changed).
    pub fn sqnr_db(&self) -> f64 {
        if self.noise == 0.0 {
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

    /// The statistics of `q`, the quantized `x`, over finite pairs; four accumulators per pass
    /// so that the sums vectorize, pieces of 16K elements over rayon's threads.
    fn of<T: Element>(x: &[T], q: &[T], mask: &[bool]) -> Stats {
        x.par_chunks(1 << 14)
            .zip(q.par_chunks(1 << 14))
            .zip(mask.par_chunks(1 << 14))
            .map(|((x, q), mask)| {
                let (mut s, mut n, mut m) = ([0.0f64; 4], [0.0f64; 4], [0.0f64; 4]);
                for (x, q) in x.chunks(4).zip(q.chunks(4)) {
                    for j in 0..x.len() {
                        let (a, b) = (x[j].to_f64(), q[j].to_f64());
                        let e = b - a;
                        let finite = a.is_finite() && b.is_finite();
                        s[j] += if finite { a * a } else { 0.0 };
                        n[j] += if finite { e * e } else { 0.0 };
                        m[j] = m[j].max(if finite { e.abs() } else { 0.0 });
                    }
                }
                Stats {
                    elements: x.len() as u64,
                    overflowed: mask.iter().filter(|&&o| o).count() as u64,
                    signal: s.iter().sum(),
                    noise: n.iter().sum(),
                    max_abs_error: m.iter().copied().fold(0.0, f64::max),
                }
            })
            .reduce(Stats::default, |mut a, b| {
                a.add(b);
                a
            })
    }
}

/// Reverses the bytes of each element of `bytes` (elements of `size` bytes).
fn swap_bytes(bytes: &mut [u8], size: usize) {
    for e in bytes.chunks_exact_mut(size) {
        e.reverse();
    }
}

/// Where a tensor's output goes and what it becomes.
pub enum Output<'a> {
    /// Quantized values of the input's type and byte order.
    Values(&'a mut dyn Write),
    /// Little-endian integer codes of the given type.
    Codes(&'a mut dyn Write, CodeType),
}

/// Quantizes the `elements` floats at the source's position (in `order`) into `out`, piece by
/// piece; element `i` draws stream index `i`. `done(bytes)` is called after each piece with
/// the input bytes it consumed.
pub fn quantize(
    src: &mut Source,
    float: Float,
    order: Order,
    elements: u64,
    spec: &QuantSpec,
    out: Output<'_>,
    done: &mut dyn FnMut(u64),
) -> Result<Stats> {
    match float {
        Float::F16 => quantize_as::<f16>(src, order, elements, spec, out, done),
        Float::BF16 => quantize_as::<bf16>(src, order, elements, spec, out, done),
        Float::F32 => quantize_as::<f32>(src, order, elements, spec, out, done),
        Float::F64 => quantize_as::<f64>(src, order, elements, spec, out, done),
    }
}

fn quantize_as<T: Element + Pod + Default>(
    src: &mut Source,
    order: Order,
    elements: u64,
    spec: &QuantSpec,
    mut out: Output<'_>,
    done: &mut dyn FnMut(u64),
) -> Result<Stats> {
    let size = std::mem::size_of::<T>();
    let swap = order != Order::native();
    let piece = (elements.min(PIECE as u64)) as usize;
    let mut x = vec![T::default(); piece];
    let mut q = vec![T::default(); piece];
    let mut mask = vec![false; piece];
    let mut codes = match out {
        Output::Codes(..) => vec![0i64; piece],
        Output::Values(_) => Vec::new(),
    };
    let mut bytes = Vec::new();
    let mut stats = Stats::default();
    let mut start = 0u64;
    while start < elements {
        let m = (elements - start).min(piece as u64) as usize;
        let (x, q, mask) = (&mut x[..m], &mut q[..m], &mut mask[..m]);
        src.read_next(bytemuck::cast_slice_mut(x))?;
        if swap {
            swap_bytes(bytemuck::cast_slice_mut(x), size);
        }
        let part = spec.with_stream_start(start);
        part.quantize_into_with_mask(x, q, mask)?;
        stats.add(Stats::of(x, q, mask));
        match &mut out {
            Output::Values(w) => {
                if swap {
                    swap_bytes(bytemuck::cast_slice_mut(q), size);
                }
                w.write_all(bytemuck::cast_slice(q))?;
            }
            Output::Codes(w, ty) => {
                let k = &mut codes[..m];
                part.to_codes_into(x, k).map_err(|e| match e {
                    xbquant::Error::NanInput { index } => anyhow::anyhow!(
                        "element {} is NaN, which has no integer code",
                        start + index as u64
                    ),
                    e => e.into(),
                })?;
                encode_codes(k, *ty, &mut bytes);
                w.write_all(&bytes)?;
            }
        }
        start += m as u64;
        done((m * size) as u64);
    }
    Ok(stats)
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
    let (lo, hi) = format.word_codes();
    let mut start = 0u64;
    while start < elements {
        let m = (elements - start).min(piece as u64) as usize;
        let raw = &mut raw[..m * ty.size()];
        src.read_next(raw)?;
        let k = &mut codes[..m];
        decode_codes(raw, ty, k);
        if let Some(i) = k
            .iter()
            .position(|&c| i128::from(c) < lo || i128::from(c) > hi)
        {
            bail!(
                "code {} of element {} lies outside the format's words [{lo}, {hi}]",
                k[i],
                start + i as u64
            );
        }
        format
            .from_codes_into(k, &mut values[..m])
            .context("cannot turn the codes into values")?;
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
