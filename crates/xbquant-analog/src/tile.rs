//! One tile's forward pass, step by step as aihwkit's torch tile (`AnalogMVM.matmul`) computes
//! it, in the data's type: noise management, the DAC (scale, quantize, clip, noise), the product,
//! the ADC (noise, quantize, clip) and iterative bound management, then the outputs scaled back.
//! A number that aihwkit keeps as a Python float (a constant scale, a step) is computed in `f64`
//! and rounded to the data's type where it meets a tensor, as torch does.

use rayon::prelude::*;
use xbquant::noise;

use crate::float::Float;
use crate::io::{BoundManagement, IoParameters, NoiseManagement, WeightNoise};
use crate::product::matmul;

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
    let thres = io.nm_thres;
    // Each row's largest value (or magnitude), NaN when the row holds one (torch's max): a
    // running maximum and a NaN flag, which the compiler vectorizes.
    let per_row = |magnitude: bool| {
        let values = (0..rows)
            .map(|r| {
                let row = x.row(r, n);
                let Some(&first) = row.first() else {
                    return T::ZERO;
                };
                let pick = |v: T| if magnitude { v.abs() } else { v };
                let (mut m, mut nan) = (pick(first), false);
                for &v in row {
                    let a = pick(v);
                    nan |= a.is_nan();
                    m = if a > m { a } else { m };
                }
                let m = if nan { T::of(f64::NAN) } else { m };
                if thres > 0.0 && m > T::of(thres) {
                    T::of(thres)
                } else {
                    m
                }
            })
            .collect();
        Managed::Rows(values)
    };
    match io.noise_management {
        NoiseManagement::None => Managed::Number(1.0),
        NoiseManagement::Constant => Managed::Number(if thres > 0.0 { thres } else { 1.0 }),
        NoiseManagement::AbsMax => per_row(true),
        NoiseManagement::Max => per_row(false),
    }
}

/// `UniformQuantize`: `round(v / step) * step`, stochastically with `u` in `[-0.5, 0.5)`.
#[inline]
fn quantize<T: Float>(v: T, step: T, u: Option<T>) -> T {
    let t = v / step;
    let t = match u {
        Some(u) => t + u,
        None => t,
    };
    t.round_even() * step
}

#[inline]
fn clip<T: Float>(v: T, bound: T) -> T {
    if v > bound {
        bound
    } else if v < T::ZERO - bound {
        T::ZERO - bound
    } else {
        v
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
    fn row(&self, r: usize, width: usize) -> &[T] {
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

/// Below this many elements a pass over the data runs on one thread.
const PARALLEL: usize = 1 << 15;

/// Runs `f` on each chunk of `width` values of `data` with its index, on threads when the data
/// is large: every element's work depends on its index alone, so threads cannot change a bit.
fn each_row<T: Float, R: Send>(
    data: &mut [T],
    width: usize,
    f: impl Fn((usize, &mut [T])) -> R + Sync + Send,
) -> Vec<R> {
    if width == 0 {
        return Vec::new();
    }
    if data.len() >= PARALLEL {
        data.par_chunks_mut(width).enumerate().map(f).collect()
    } else {
        data.chunks_mut(width).enumerate().map(f).collect()
    }
}

/// The forward pass of `rows` input vectors `x` (each of `n`) through one tile, into `out`
/// (`rows` rows of `k`, row `r` at `out[r * out_stride..]`). `streams` draws the noise;
/// `first_row` is the index of `x`'s first row in the whole batch (the noise's index).
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
    if io.is_perfect {
        // aihwkit: the ideal product, with no noise of any kind.
        matmul(
            x.data,
            x.stride,
            rows,
            n,
            tile.w,
            tile.stride,
            k,
            out,
            out_stride,
        );
        return;
    }
    // Weight noise: drawn once for the call.
    let noisy_w: Vec<T>;
    let (w, w_stride) = if io.w_noise > 0.0 && io.w_noise_type == WeightNoise::AdditiveConstant {
        let s = T::of(io.w_noise);
        let mut draws = vec![0f64; n];
        noisy_w = (0..k)
            .flat_map(|j| {
                super::normal::fill(streams.weight, (j * n) as u64, &mut draws);
                let row = &tile.w[j * tile.stride..j * tile.stride + n];
                row.iter()
                    .zip(&draws)
                    .map(|(&v, &g)| v + s * T::of(g))
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
    let inp_step = IoParameters::step(io.inp_res, io.inp_bound).map(T::of);
    let out_step = IoParameters::step(io.out_res, io.out_bound).map(T::of);
    let unbounded = |b: f64| T::of(if b > 0.0 { b } else { f64::INFINITY });
    let (inp_bound, out_bound) = (unbounded(io.inp_bound), unbounded(io.out_bound));
    let (inp_noise, out_noise) = (T::of(io.inp_noise), T::of(io.out_noise));
    // The stopping rule's DAC step (0 or less when the DAC does not quantize).
    let bm_step = IoParameters::step(io.inp_res, io.inp_bound).unwrap_or(io.inp_res);

    // Rows still to compute (all of them at first; with bound management per vector, those
    // whose outputs clipped).
    let mut pending: Vec<usize> = (0..rows).collect();
    let mut reduction = 0.5f64;
    let mut round = 0u64;
    let mut prepared = vec![T::ZERO; rows * n];
    let mut y = vec![T::ZERO; rows * k];
    let recording = masks.is_some();
    let mut passed_in = vec![true; if recording { rows * n } else { 0 }];
    let mut passed_out = vec![true; if recording { rows * k } else { 0 }];
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
        let scaling = !scale.is_one();
        let m = pending.len();
        let base = round * rows as u64 + first_row as u64;
        // The DAC: scale, quantize, clip, noise; each step a loop of its own over the row, which
        // the compiler vectorizes.
        each_row(&mut prepared[..m * n], n, |(p, dst)| {
            let r = pending[p];
            let s = scale.of_row(p);
            let start = (base + r as u64) * n as u64;
            for (d, &v) in dst.iter_mut().zip(x.row(r, n)) {
                *d = if scaling { v * s } else { v };
            }
            if let Some(step) = inp_step {
                if io.inp_sto_round {
                    for (i, d) in dst.iter_mut().enumerate() {
                        let u = noise::uniform(streams.input_rounding, start + i as u64) - 0.5;
                        *d = quantize(*d, step, Some(T::of(u)));
                    }
                } else {
                    for d in dst.iter_mut() {
                        *d = (*d / step).round_even() * step;
                    }
                }
            }
            for d in dst.iter_mut() {
                *d = clip(*d, inp_bound);
            }
            if io.inp_noise > 0.0 {
                let mut draws = vec![0f64; n];
                super::normal::fill(streams.input, start, &mut draws);
                for (d, &g) in dst.iter_mut().zip(&draws) {
                    *d = *d + inp_noise * T::of(g);
                }
            }
        });
        if recording {
            // Whether the DAC's clip let each value through: recomputed from the same steps
            // (the draws are pure functions of their indices).
            for (p, &r) in pending.iter().enumerate() {
                let s = scale.of_row(p);
                for (i, &v) in x.row(r, n).iter().enumerate() {
                    let index = (base + r as u64) * n as u64 + i as u64;
                    let mut v = if scaling { v * s } else { v };
                    if let Some(step) = inp_step {
                        let u = io
                            .inp_sto_round
                            .then(|| T::of(noise::uniform(streams.input_rounding, index) - 0.5));
                        v = quantize(v, step, u);
                    }
                    passed_in[p * n + i] = v <= inp_bound && v >= T::ZERO - inp_bound;
                }
            }
        }
        matmul(&prepared, n, m, n, w, w_stride, k, &mut y, k);
        if recording {
            // Whether the ADC's clip lets each output through, from the product as it stands.
            for (p, &r) in pending.iter().enumerate() {
                let mut row = y[p * k..(p + 1) * k].to_vec();
                let start = (base + r as u64) * k as u64;
                noisy_quantized(&mut row, start, streams, io, out_step, out_noise);
                for (j, &o) in row.iter().enumerate() {
                    passed_out[p * k + j] = o <= out_bound && o >= T::ZERO - out_bound;
                }
            }
        }
        // The ADC: noise, quantize, the bound test, clip.
        let clipped = each_row(&mut y[..m * k], k, |(p, dst)| {
            let r = pending[p];
            adc(
                dst,
                (base + r as u64) * k as u64,
                streams,
                io,
                out_step,
                out_bound,
                out_noise,
            )
        });
        let stop =
            reduction > io.max_bm_factor || (bm_step > 0.0 && reduction > io.max_bm_res / bm_step);
        let any_clipped = clipped.iter().any(|&c| c);
        let mut still = Vec::new();
        for (p, &r) in pending.iter().enumerate() {
            // Redone with the range doubled: bound management's rows that clipped (all of the
            // batch's when one did, or this row's alone per vector), until its stopping rule.
            let redo = b_management && !stop && if per_vector { clipped[p] } else { any_clipped };
            if redo {
                still.push(r);
                continue;
            }
            if let Some(masks) = masks.as_deref_mut() {
                masks.input[r * n..(r + 1) * n].copy_from_slice(&passed_in[p * n..(p + 1) * n]);
                masks.output[r * k..(r + 1) * k].copy_from_slice(&passed_out[p * k..(p + 1) * k]);
            }
            let factor = scale.back(io.out_scale, p);
            let apply = scaling || io.out_scale != 1.0;
            for (o, &v) in out[r * out_stride..r * out_stride + k]
                .iter_mut()
                .zip(&y[p * k..(p + 1) * k])
            {
                *o = if apply { v * factor } else { v };
            }
        }
        if still.is_empty() {
            return;
        }
        pending = still;
        round += 1;
    }
}

/// The ADC's noise and quantization of one row of outputs, whose first index is `start`.
fn noisy_quantized<T: Float>(
    row: &mut [T],
    start: u64,
    streams: &Streams,
    io: &IoParameters,
    step: Option<T>,
    out_noise: T,
) {
    if io.out_noise > 0.0 {
        let mut draws = vec![0f64; row.len()];
        crate::normal::fill(streams.output, start, &mut draws);
        for (o, &g) in row.iter_mut().zip(&draws) {
            *o = *o + out_noise * T::of(g);
        }
    }
    if let Some(step) = step {
        if io.out_sto_round {
            for (j, o) in row.iter_mut().enumerate() {
                let u = noise::uniform(streams.output_rounding, start + j as u64) - 0.5;
                *o = quantize(*o, step, Some(T::of(u)));
            }
        } else {
            for o in row.iter_mut() {
                *o = (*o / step).round_even() * step;
            }
        }
    }
}

/// The ADC on one row of outputs: noise, quantization, then the bound test and the clip.
/// Returns whether an output clipped.
fn adc<T: Float>(
    row: &mut [T],
    start: u64,
    streams: &Streams,
    io: &IoParameters,
    step: Option<T>,
    bound: T,
    out_noise: T,
) -> bool {
    noisy_quantized(row, start, streams, io, step, out_noise);
    let mut clipped = false;
    for o in row.iter_mut() {
        clipped |= !(*o <= bound && *o >= T::ZERO - bound);
        *o = clip(*o, bound);
    }
    clipped
}
