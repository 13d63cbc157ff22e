//! One tile's forward pass, step by step as aihwkit's torch tile (`AnalogMVM.matmul`) computes
//! it, in the data's type: noise management, the DAC (scale, quantize, clip, noise), the product,
//! the ADC (noise, quantize, clip) and iterative bound management, then the outputs scaled back.
//! A number that aihwkit keeps as a Python float (a constant scale, a step) is computed in `f64`
//! and rounded to the data's type where it meets a tensor, as torch does.

use rayon::prelude::*;
use xbquant::noise;

use crate::block::{Block, Converters};
use crate::float::Float;
use crate::io::{BoundManagement, IoParameters, NoiseManagement, WeightNoise};
use crate::product::dots;

/// The random streams of one tile: each kind of draw its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Streams {
    pub input: u64,
    pub output: u64,
    pub input_rounding: u64,
    pub output_rounding: u64,
    pub weight: u64,
}

impl Streams {
    /// The streams of tile `tile` under `seed`: keys of distinct counters, so that no two kinds
    /// or tiles share a draw.
    pub(crate) fn new(seed: u64, tile: u64) -> Streams {
        let key = |kind: u64| {
            let salt = noise::STEP.wrapping_mul(1 + kind + 8 * tile);
            noise::stream_key(noise::stream_key(seed) ^ salt)
        };
        Streams {
            input: key(0),
            output: key(1),
            input_rounding: key(2),
            output_rounding: key(3),
            weight: key(4),
        }
    }
}

/// The scale of the inputs in one round: a number (aihwkit's Python float) or one per row (a
/// tensor, in the data's type).
#[derive(Debug, Clone)]
enum Scale<T> {
    Number(f64),
    Rows(Vec<T>),
}

impl<T: Float> Scale<T> {
    fn of_row(&self, r: usize) -> T {
        match self {
            Scale::Number(s) => T::of(*s),
            Scale::Rows(v) => v[r],
        }
    }

    /// `out_scale / scale`, as aihwkit computes it: in `f64` for a number; for rows, torch's
    /// `number / tensor`, which is `tensor.reciprocal() * number` (two roundings in `T`).
    fn back(&self, out_scale: f64, r: usize) -> T {
        match self {
            Scale::Number(s) => T::of(out_scale / s),
            Scale::Rows(v) => (T::ONE / v[r]) * T::of(out_scale),
        }
    }

    fn is_one(&self) -> bool {
        matches!(self, Scale::Number(s) if *s == 1.0)
    }
}

/// The noise-management values: a number, or one per row.
enum Managed<T> {
    Number(f64),
    Rows(Vec<T>),
}

fn noise_management<T: Float>(
    x: &Rows<'_, T>,
    rows: usize,
    n: usize,
    io: &IoParameters,
) -> Managed<T> {
    let magnitude = match io.noise_management {
        NoiseManagement::None => return Managed::Number(1.0),
        NoiseManagement::Constant => {
            return Managed::Number(if io.nm_thres > 0.0 { io.nm_thres } else { 1.0 })
        }
        NoiseManagement::AbsMax => true,
        NoiseManagement::Max => false,
    };
    let mut values = vec![T::ZERO; rows];
    let chunk = if rows * n >= PARALLEL_WORK / 8 {
        rows.div_ceil(rayon::current_num_threads()).max(1)
    } else {
        rows.max(1)
    };
    values
        .par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, part)| {
            crate::simd::arch().dispatch(Largest {
                x,
                first: i * chunk,
                n,
                magnitude,
                thres: io.nm_thres,
                out: part,
            });
        });
    Managed::Rows(values)
}

/// Each row's largest value (or magnitude), NaN when the row holds one (torch's max), at most
/// `thres` when that is above 0: running maxima in 16 lanes and NaN flags, which vectorize
/// (the maximum does not depend on the order; zeros of either sign all become scale 1).
struct Largest<'a, 'b, T> {
    x: &'a Rows<'a, T>,
    first: usize,
    n: usize,
    magnitude: bool,
    thres: f64,
    out: &'b mut [T],
}

impl<T: Float> pulp::WithSimd for Largest<'_, '_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        const L: usize = 16;
        let pick = |v: T| if self.magnitude { v.abs() } else { v };
        for (q, value) in self.out.iter_mut().enumerate() {
            let row = self.x.row(self.first + q, self.n);
            let Some(&first) = row.first() else {
                *value = T::ZERO;
                continue;
            };
            let mut m = [pick(first); L];
            let mut nan = [false; L];
            let mut chunks = row.chunks_exact(L);
            for chunk in &mut chunks {
                for l in 0..L {
                    let a = pick(chunk[l]);
                    nan[l] |= a.is_nan();
                    m[l] = if a > m[l] { a } else { m[l] };
                }
            }
            for (l, &v) in chunks.remainder().iter().enumerate() {
                let a = pick(v);
                nan[l] |= a.is_nan();
                m[l] = if a > m[l] { a } else { m[l] };
            }
            let top = m.iter().fold(m[0], |t, &v| if v > t { v } else { t });
            let top = if nan.iter().any(|&f| f) {
                T::of(f64::NAN)
            } else {
                top
            };
            *value = if self.thres > 0.0 && top > T::of(self.thres) {
                T::of(self.thres)
            } else {
                top
            };
        }
    }
}

/// One tile: `k` rows of `n` weights, row `j` at `w[j * stride..]`.
pub(crate) struct Tile<'a, T> {
    pub w: &'a [T],
    pub stride: usize,
    pub k: usize,
    pub n: usize,
}

/// Rows of a matrix: row `r` of `width` values at `data[r * stride..]`.
pub(crate) struct Rows<'a, T> {
    pub data: &'a [T],
    pub stride: usize,
}

impl<T> Rows<'_, T> {
    #[inline]
    pub(crate) fn row(&self, r: usize, width: usize) -> &[T] {
        &self.data[r * self.stride..r * self.stride + width]
    }
}

/// Where a tile's converters passed their values on (true) or clipped them (false), for the
/// rounds that gave each row's outputs: `input` is `rows x n`, `output` `rows x k`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Masks {
    pub input: Vec<bool>,
    pub output: Vec<bool>,
}

/// Rows of one block of the forward pass at least (a block runs on one thread).
const BLOCK_ROWS: usize = 16;
/// Below this many multiply-adds the forward pass runs on one thread (waking the others costs
/// more than a single vector's product through a 512 x 512 tile).
const PARALLEL_WORK: usize = 1 << 20;

/// The forward pass of `rows` input vectors `x` (each of `n`) through one tile, into `out`
/// (`rows` rows of `k`, row `r` at `out[r * out_stride..]`). `streams` draws the noise;
/// `first_row` is the index of `x`'s first row in the whole batch (the noise's index). The rows
/// run in blocks on threads, each block through the DAC, the product and the ADC while its data
/// is in cache; every value depends on its row alone, so blocks and threads cannot change a bit.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<T: Float>(
    x: &Rows<'_, T>,
    rows: usize,
    tile: &Tile<'_, T>,
    io: &IoParameters,
    streams: &Streams,
    first_row: usize,
    out: &mut [T],
    out_stride: usize,
    mut masks: Option<&mut Masks>,
) {
    let (n, k) = (tile.n, tile.k);
    if let Some(masks) = masks.as_deref_mut() {
        masks.input = vec![true; rows * n];
        masks.output = vec![true; rows * k];
    }
    if rows == 0 || k == 0 {
        return;
    }
    if io.is_perfect {
        // aihwkit: the ideal product, with no noise of any kind; blocks of rows on threads.
        let threads = rayon::current_num_threads();
        let size = if threads > 1 && rows * n * k >= PARALLEL_WORK {
            rows.div_ceil(threads).max(BLOCK_ROWS)
        } else {
            rows
        };
        let len = ((rows - 1) * out_stride + k).min(out.len());
        let part = |(i, part): (usize, &mut [T])| {
            let first = i * size;
            let count = size.min(rows - first);
            dots(
                &x.data[(first * x.stride).min(x.data.len())..],
                x.stride,
                count,
                n,
                tile.w,
                tile.stride,
                k,
                part,
                out_stride,
            );
        };
        if size < rows {
            out[..len]
                .par_chunks_mut(size * out_stride)
                .enumerate()
                .for_each(part);
        } else {
            part((0, &mut out[..len]));
        }
        return;
    }
    // Weight noise: drawn once for the call.
    let noisy_w: Vec<T>;
    let (w, w_stride) = if io.w_noise > 0.0 && io.w_noise_type == WeightNoise::AdditiveConstant {
        let s = T::of(io.w_noise);
        let mut draws = vec![T::ZERO; n];
        noisy_w = (0..k)
            .flat_map(|j| {
                T::normals(streams.weight, (j * n) as u64, &mut draws);
                let row = &tile.w[j * tile.stride..j * tile.stride + n];
                row.iter()
                    .zip(draws.iter())
                    .map(|(&v, &g)| v + s * g)
                    .collect::<Vec<T>>()
            })
            .collect();
        (&noisy_w[..], n)
    } else {
        (tile.w, tile.stride)
    };
    let managed = noise_management(x, rows, n, io);
    if let Managed::Rows(values) = &managed {
        // aihwkit: every scale 0 and no input noise: the outputs are all 0.
        if io.inp_noise <= 0.0 && values.iter().all(|&v| v == T::ZERO) {
            for r in 0..rows {
                out[r * out_stride..r * out_stride + k].fill(T::ZERO);
            }
            return;
        }
    }
    let managed = match managed {
        Managed::Rows(values) => Managed::Rows(
            values
                .into_iter()
                .map(|v| if v <= T::ZERO { T::ONE } else { v })
                .collect(),
        ),
        number => number,
    };
    let n_management = io.noise_management != NoiseManagement::None;
    let b_management = io.bound_management != BoundManagement::None;
    let per_vector = io.bound_management == BoundManagement::IterativePerVector;
    let unbounded = |b: f64| T::of(if b > 0.0 { b } else { f64::INFINITY });
    let conv = Converters {
        inp_step: IoParameters::step(io.inp_res, io.inp_bound).map(T::of),
        out_step: IoParameters::step(io.out_res, io.out_bound).map(T::of),
        inp_bound: unbounded(io.inp_bound),
        out_bound: unbounded(io.out_bound),
        inp_noise: T::of(io.inp_noise),
        out_noise: T::of(io.out_noise),
    };
    // The stopping rule's DAC step (0 or less when the DAC does not quantize).
    let bm_step = IoParameters::step(io.inp_res, io.inp_bound).unwrap_or(io.inp_res);

    // Rows still to compute (all of them at first; with bound management per vector, those
    // whose outputs clipped).
    let mut pending: Vec<usize> = (0..rows).collect();
    let mut reduction = 0.5f64;
    let mut round = 0u64;
    let recording = masks.is_some();
    let out_len = ((rows - 1) * out_stride + k).min(out.len());
    let mut out_rows: Vec<&mut [T]> = out[..out_len].chunks_mut(out_stride).collect();
    loop {
        reduction *= 2.0;
        let scale: Scale<T> = match &managed {
            _ if !n_management => Scale::Number(if b_management { 1.0 / reduction } else { 1.0 }),
            Managed::Number(v) => {
                let s = 1.0 / v;
                Scale::Number(if b_management { s / reduction } else { s })
            }
            Managed::Rows(values) => Scale::Rows(
                pending
                    .iter()
                    .map(|&r| {
                        let s = T::ONE / values[r];
                        if b_management {
                            s / T::of(reduction)
                        } else {
                            s
                        }
                    })
                    .collect(),
            ),
        };
        let m = pending.len();
        let scales: Vec<T> = (0..m).map(|p| scale.of_row(p)).collect();
        let backs: Vec<T> = (0..m).map(|p| scale.back(io.out_scale, p)).collect();
        let scaling = !scale.is_one();
        let apply = scaling || io.out_scale != 1.0;
        let base = round * rows as u64 + first_row as u64;
        // This round's rows of the output, in the order of `pending` (ascending).
        let mut targets: Vec<&mut [T]> = Vec::with_capacity(m);
        {
            let mut next = pending.iter().peekable();
            for (r, row) in out_rows.iter_mut().enumerate() {
                if next.peek() == Some(&&r) {
                    next.next();
                    targets.push(&mut **row);
                }
            }
        }
        // Blocks of rows on threads; a few rows of a large tile, blocks of its outputs instead.
        let threads = rayon::current_num_threads();
        let (size, groups) = if threads < 2 || m * n * k < PARALLEL_WORK {
            (m, 1)
        } else if m >= 2 * BLOCK_ROWS {
            (m.div_ceil(threads).max(BLOCK_ROWS), 1)
        } else if k >= 128 {
            (m, threads.min(k / 64))
        } else {
            (m, 1)
        };
        let bounds: Vec<usize> = (0..=groups)
            .map(|g| {
                if g == groups {
                    k
                } else {
                    (k * g / groups) & !15
                }
            })
            .collect();
        let mut items: Vec<(usize, usize, Vec<&mut [T]>)> = Vec::new();
        if groups == 1 {
            let mut rest = targets.into_iter();
            for i in 0..m.div_ceil(size) {
                items.push((i * size, 0, rest.by_ref().take(size).collect()));
            }
        } else {
            let mut pieces: Vec<Vec<&mut [T]>> =
                (0..groups).map(|_| Vec::with_capacity(m)).collect();
            for row in targets {
                let mut row = &mut row[..k];
                for g in 0..groups {
                    let (piece, tail) = row.split_at_mut(bounds[g + 1] - bounds[g]);
                    pieces[g].push(piece);
                    row = tail;
                }
            }
            for (g, outs) in pieces.into_iter().enumerate() {
                items.push((0, g, outs));
            }
        }
        let block = |(first, g, mut outs): (usize, usize, Vec<&mut [T]>)| {
            let range = first..first + outs.len();
            let rows = &pending[range.clone()];
            let cols = (bounds[g], bounds[g + 1] - bounds[g]);
            let (_, len) = Block::<T>::scratch(rows.len(), n, cols.1);
            let done = T::with_scratch(len, |buffer| {
                crate::simd::arch().dispatch(Block {
                    x,
                    tile,
                    w: (w, w_stride),
                    io,
                    conv: &conv,
                    streams,
                    base,
                    rows,
                    scales: &scales[range.clone()],
                    backs: &backs[range.clone()],
                    scaling,
                    apply,
                    outs: &mut outs,
                    recording,
                    buffer,
                    cols,
                })
            });
            (range, cols, done)
        };
        let done: Vec<_> = if items.len() > 1 {
            items.into_par_iter().map(block).collect()
        } else {
            items.into_iter().map(block).collect()
        };
        let stop =
            reduction > io.max_bm_factor || (bm_step > 0.0 && reduction > io.max_bm_res / bm_step);
        let mut clipped = vec![false; m];
        for (range, _, d) in &done {
            for (c, &flag) in clipped[range.clone()].iter_mut().zip(&d.clipped) {
                *c |= flag;
            }
        }
        let any_clipped = clipped.iter().any(|&c| c);
        // Redone with the range doubled: bound management's rows that clipped (all of the
        // batch's when one did, or this row's alone per vector), until its stopping rule.
        let redo =
            |p: usize| b_management && !stop && if per_vector { clipped[p] } else { any_clipped };
        if let Some(masks) = masks.as_deref_mut() {
            for (range, (c0, kc), d) in &done {
                for (q, p) in range.clone().enumerate() {
                    if redo(p) {
                        continue;
                    }
                    let r = pending[p];
                    if *c0 == 0 {
                        masks.input[r * n..(r + 1) * n]
                            .copy_from_slice(&d.passed_in[q * n..(q + 1) * n]);
                    }
                    masks.output[r * k + c0..r * k + c0 + kc]
                        .copy_from_slice(&d.passed_out[q * kc..(q + 1) * kc]);
                }
            }
        }
        let still: Vec<usize> = (0..m).filter(|&p| redo(p)).map(|p| pending[p]).collect();
        if still.is_empty() {
            return;
        }
        pending = still;
        round += 1;
    }
}
