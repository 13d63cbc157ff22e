//! One tile's forward pass, step by step as aihwkit's torch tile (`AnalogMVM.matmul`) computes
//! it, in the data's type: noise management, the DAC (scale, quantize, clip, noise), the product,
//! the ADC (noise, quantize, clip) and iterative bound management, then the outputs scaled back.
//! A number that aihwkit keeps as a Python float (a constant scale, a step) is computed in `f64`
//! and rounded to the data's type where it meets a tensor, as torch does.

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

fn noise_management<T: Float>(x: &[T], rows: usize, n: usize, io: &IoParameters) -> Managed<T> {
    let thres = io.nm_thres;
    let per_row = |f: fn(T, T) -> T, start: fn(&[T]) -> T| {
        let values = (0..rows)
            .map(|r| {
                let row = &x[r * n..(r + 1) * n];
                let m = row.iter().fold(start(row), |m, &v| f(m, v));
                if thres > 0.0 && m > T::of(thres) {
                    T::of(thres)
                } else {
                    m
                }
            })
            .collect();
        Managed::Rows(values)
    };
    // The largest of a row, NaN when the row holds one (torch's max).
    fn bigger<T: Float>(m: T, v: T) -> T {
        if m.is_nan() || v.is_nan() {
            T::of(f64::NAN)
        } else if v > m {
            v
        } else {
            m
        }
    }
    fn larger_magnitude<T: Float>(m: T, v: T) -> T {
        bigger(m, v.abs())
    }
    match io.noise_management {
        NoiseManagement::None => Managed::Number(1.0),
        NoiseManagement::Constant => Managed::Number(if thres > 0.0 { thres } else { 1.0 }),
        NoiseManagement::AbsMax => per_row(larger_magnitude, |row| {
            row.first().map_or(T::ZERO, |v| v.abs())
        }),
        NoiseManagement::Max => per_row(bigger, |row| row.first().copied().unwrap_or(T::ZERO)),
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

/// One tile: `w` of `k` rows of `n` weights.
pub(crate) struct Tile<'a, T> {
    pub w: &'a [T],
    pub k: usize,
    pub n: usize,
}

/// The forward pass of `rows` input vectors `x` (each of `n`) through one tile, into `out`
/// (`rows` x `k`). `streams` draws the noise; `first_row` is the index of `x`'s first row in the
/// whole batch (the noise's index, so that splitting a batch does not change a draw).
pub(crate) fn forward<T: Float>(
    x: &[T],
    rows: usize,
    tile: &Tile<'_, T>,
    io: &IoParameters,
    streams: &Streams,
    first_row: usize,
    out: &mut [T],
) {
    let (n, k) = (tile.n, tile.k);
    if io.is_perfect {
        // aihwkit: the ideal product, with no noise of any kind.
        matmul(x, rows, n, tile.w, k, out);
        return;
    }
    // Weight noise: drawn once for the call.
    let noisy_w: Vec<T>;
    let w = if io.w_noise > 0.0 && io.w_noise_type == WeightNoise::AdditiveConstant {
        let s = T::of(io.w_noise);
        noisy_w = tile
            .w
            .iter()
            .enumerate()
            .map(|(i, &v)| v + s * T::of(noise::gaussian(streams.weight, i as u64)))
            .collect();
        &noisy_w[..]
    } else {
        tile.w
    };
    let managed = noise_management(x, rows, n, io);
    if let Managed::Rows(values) = &managed {
        // aihwkit: every scale 0 and no input noise: the outputs are all 0.
        if io.inp_noise <= 0.0 && values.iter().all(|&v| v == T::ZERO) {
            out.fill(T::ZERO);
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
    let inp_step = IoParameters::step(io.inp_res, io.inp_bound);
    let out_step = IoParameters::step(io.out_res, io.out_bound);
    let inp_bound = T::of(if io.inp_bound > 0.0 {
        io.inp_bound
    } else {
        f64::INFINITY
    });
    let out_bound = T::of(if io.out_bound > 0.0 {
        io.out_bound
    } else {
        f64::INFINITY
    });
    // The stopping rule's DAC step (0 or less when the DAC does not quantize).
    let bm_step = inp_step.unwrap_or(io.inp_res);

    // Rows still to compute (all of them at first; with bound management per vector, those
    // whose outputs clipped), and the round each row's final output came from.
    let mut pending: Vec<usize> = (0..rows).collect();
    let mut reduction = 0.5f64;
    let mut round = 0u64;
    let mut prepared = vec![T::ZERO; rows * n];
    let mut y = vec![T::ZERO; rows * k];
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
        // The DAC: scale, quantize, clip, noise.
        for (p, &r) in pending.iter().enumerate() {
            let s = scale.of_row(p);
            let row = &x[r * n..(r + 1) * n];
            let dst = &mut prepared[p * n..(p + 1) * n];
            for (i, (d, &v)) in dst.iter_mut().zip(row).enumerate() {
                let mut v = if scaling { v * s } else { v };
                let index = ((round * rows as u64 + (first_row + r) as u64) * n as u64) + i as u64;
                if let Some(step) = inp_step {
                    let u = io
                        .inp_sto_round
                        .then(|| T::of(noise::uniform(streams.input_rounding, index) - 0.5));
                    v = quantize(v, T::of(step), u);
                }
                v = clip(v, inp_bound);
                if io.inp_noise > 0.0 {
                    v = v + T::of(io.inp_noise) * T::of(noise::gaussian(streams.input, index));
                }
                *d = v;
            }
        }
        matmul(&prepared[..m * n], m, n, w, k, &mut y[..m * k]);
        // The ADC: noise, quantize, the bound test, clip.
        let mut clipped = vec![false; m];
        for (p, &r) in pending.iter().enumerate() {
            let dst = &mut y[p * k..(p + 1) * k];
            for (j, v) in dst.iter_mut().enumerate() {
                let index = ((round * rows as u64 + (first_row + r) as u64) * k as u64) + j as u64;
                let mut o = *v;
                if io.out_noise > 0.0 {
                    o = o + T::of(io.out_noise) * T::of(noise::gaussian(streams.output, index));
                }
                if let Some(step) = out_step {
                    let u = io
                        .out_sto_round
                        .then(|| T::of(noise::uniform(streams.output_rounding, index) - 0.5));
                    o = quantize(o, T::of(step), u);
                }
                if !(o <= out_bound && o >= T::ZERO - out_bound) {
                    clipped[p] = true;
                }
                *v = clip(o, out_bound);
            }
        }
        let stop =
            reduction > io.max_bm_factor || (bm_step > 0.0 && reduction > io.max_bm_res / bm_step);
        let any_clipped = clipped.iter().any(|&c| c);
        // Rows done this round: all of them unless bound management redoes some.
        let redo: Vec<bool> = if !b_management || stop {
            vec![false; m]
        } else if per_vector {
            clipped
        } else {
            vec![any_clipped; m]
        };
        let mut still = Vec::new();
        for (p, &r) in pending.iter().enumerate() {
            if redo[p] {
                still.push(r);
                continue;
            }
            let factor = scale.back(io.out_scale, p);
            let apply = scaling || io.out_scale != 1.0;
            for (o, &v) in out[r * k..(r + 1) * k]
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
