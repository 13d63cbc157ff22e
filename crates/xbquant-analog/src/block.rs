//! One block of rows of a tile's forward pass, on one thread: the DAC, the product and the ADC
//! of each row while its data is in cache, step by step as aihwkit's torch tile computes them.

use xbquant::noise;

use crate::float::Float;
use crate::io::IoParameters;
use crate::product::dots;
use crate::tile::{Rows, Streams, Tile};

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

/// The converters' constants of one tile, in the data's type.
pub(crate) struct Converters<T> {
    pub(crate) inp_step: Option<T>,
    pub(crate) out_step: Option<T>,
    pub(crate) inp_bound: T,
    pub(crate) out_bound: T,
    pub(crate) inp_noise: T,
    pub(crate) out_noise: T,
}

/// One round of bound management for a block of rows: `rows` (indices into the batch) with
/// their scales `scales` (one per row), through the DAC, the product and the ADC, each output
/// row written scaled back into `outs` (the rows' slices of the output). Returns whether each
/// row's outputs clipped, and the masks of the converters when `recording`.
pub(crate) struct Block<'a, 'b, 'c, T> {
    pub(crate) x: &'a Rows<'a, T>,
    pub(crate) tile: &'a Tile<'a, T>,
    pub(crate) w: (&'a [T], usize),
    pub(crate) io: &'a IoParameters,
    pub(crate) conv: &'a Converters<T>,
    pub(crate) streams: &'a Streams,
    pub(crate) base: u64,
    pub(crate) rows: &'a [usize],
    pub(crate) scales: &'a [T],
    pub(crate) backs: &'a [T],
    pub(crate) scaling: bool,
    pub(crate) apply: bool,
    pub(crate) outs: &'b mut [&'c mut [T]],
    pub(crate) recording: bool,
    pub(crate) buffer: &'b mut [T],
    /// The first column of the tile's outputs this block computes, and how many.
    pub(crate) cols: (usize, usize),
}

/// What a block returns: per row whether an output clipped, and the masks when recording.
pub(crate) struct Done {
    pub(crate) clipped: Vec<bool>,
    pub(crate) passed_in: Vec<bool>,
    pub(crate) passed_out: Vec<bool>,
}

impl<T: Float> pulp::WithSimd for Block<'_, '_, '_, T> {
    type Output = Done;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Done {
        self.run()
    }
}

impl<T: Float> Block<'_, '_, '_, T> {
    /// The scratch space of a block of `m` rows: the DAC's outputs (rows of `stride`, aligned),
    /// the products and one row of draws.
    pub(crate) fn scratch(m: usize, n: usize, k: usize) -> (usize, usize) {
        let lanes = 64 / std::mem::size_of::<T>();
        let stride = n.next_multiple_of(lanes);
        (stride, m * stride + lanes + m * k + n.max(k))
    }

    #[inline(always)]
    fn run(self) -> Done {
        let (n, k_all) = (self.tile.n, self.tile.k);
        let (c0, k) = self.cols;
        let (io, conv) = (self.io, self.conv);
        let m = self.rows.len();
        let (stride, _) = Self::scratch(m, n, k);
        let lanes = 64 / std::mem::size_of::<T>();
        let (head, rest) = self.buffer.split_at_mut(m * stride + lanes);
        let skip = head.as_ptr().align_offset(64).min(lanes);
        let prepared = &mut head[skip..skip + m * stride];
        let (y, draws) = rest.split_at_mut(m * k);
        let mut passed_in = vec![true; if self.recording { m * n } else { 0 }];
        for (p, &r) in self.rows.iter().enumerate() {
            let dst = &mut prepared[p * stride..p * stride + n];
            let s = self.scales[p];
            let start = (self.base + r as u64) * n as u64;
            // The DAC: scale, quantize, clip, noise; each step a loop of its own over the row.
            for (d, &v) in dst.iter_mut().zip(self.x.row(r, n)) {
                *d = if self.scaling { v * s } else { v };
            }
            if let Some(step) = conv.inp_step {
                if io.inp_sto_round {
                    for (i, d) in dst.iter_mut().enumerate() {
                        let u = noise::uniform(self.streams.input_rounding, start + i as u64) - 0.5;
                        *d = quantize(*d, step, Some(T::of(u)));
                    }
                } else {
                    for d in dst.iter_mut() {
                        *d = (*d / step).round_even() * step;
                    }
                }
            }
            if self.recording {
                let bound = conv.inp_bound;
                for (f, &d) in passed_in[p * n..(p + 1) * n].iter_mut().zip(dst.iter()) {
                    *f = d <= bound && d >= T::ZERO - bound;
                }
            }
            for d in dst.iter_mut() {
                *d = clip(*d, conv.inp_bound);
            }
            if io.inp_noise > 0.0 {
                T::normals(self.streams.input, start, &mut draws[..n]);
                for (d, &g) in dst.iter_mut().zip(draws.iter()) {
                    *d = *d + conv.inp_noise * g;
                }
            }
        }
        let (w, w_stride) = self.w;
        dots(
            prepared,
            stride,
            m,
            n,
            &w[c0 * w_stride..],
            w_stride,
            k,
            y,
            k,
        );
        let mut passed_out = vec![true; if self.recording { m * k } else { 0 }];
        let mut clipped = vec![false; m];
        for (p, &r) in self.rows.iter().enumerate() {
            let row = &mut y[p * k..(p + 1) * k];
            let start = (self.base + r as u64) * k_all as u64 + c0 as u64;
            // The ADC: noise, quantize, the bound test, clip; then the scale back.
            if io.out_noise > 0.0 {
                T::normals(self.streams.output, start, &mut draws[..k]);
                for (o, &g) in row.iter_mut().zip(draws.iter()) {
                    *o = *o + conv.out_noise * g;
                }
            }
            if let Some(step) = conv.out_step {
                if io.out_sto_round {
                    for (j, o) in row.iter_mut().enumerate() {
                        let u =
                            noise::uniform(self.streams.output_rounding, start + j as u64) - 0.5;
                        *o = quantize(*o, step, Some(T::of(u)));
                    }
                } else {
                    for o in row.iter_mut() {
                        *o = (*o / step).round_even() * step;
                    }
                }
            }
            let bound = conv.out_bound;
            let mut any = false;
            for o in row.iter() {
                any |= !(*o <= bound && *o >= T::ZERO - bound);
            }
            clipped[p] = any;
            if self.recording {
                for (f, &o) in passed_out[p * k..(p + 1) * k].iter_mut().zip(row.iter()) {
                    *f = o <= bound && o >= T::ZERO - bound;
                }
            }
            let factor = self.backs[p];
            for (d, &o) in self.outs[p][..k].iter_mut().zip(row.iter()) {
                let o = clip(o, bound);
                *d = if self.apply { o * factor } else { o };
            }
        }
        Done {
            clipped,
            passed_in,
            passed_out,
        }
    }
}
