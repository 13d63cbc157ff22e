#![doc = include_str!("../README.md")]

mod block;
mod device;
mod error;
mod float;
mod io;
mod normal;
mod pcm;
mod product;
mod simd;
mod tile;

pub use device::XbtorchDevice;
pub use error::Error;
pub use float::Float;
pub use io::{BoundManagement, IoParameters, NoiseManagement, WeightNoise};
pub use pcm::PcmLikeNoise;

/// aihwkit's `MappingParameter` default: tiles of at most 512 inputs and 512 outputs.
pub const DEFAULT_TILE: (usize, usize) = (512, 512);

/// The sizes of the pieces `size` is split into with pieces of at most `max` (0: one piece), as
/// evenly as aihwkit's `TileModuleArray.get_split_sizes` splits them: 700 in pieces of 256 gives
/// 234, 233, 233.
///
/// # Examples
///
/// ```
/// assert_eq!(xbquant_analog::split_sizes(700, 256), [234, 233, 233]);
/// assert_eq!(xbquant_analog::split_sizes(512, 512), [512]);
/// assert_eq!(xbquant_analog::split_sizes(10, 0), [10]);
/// ```
#[must_use]
pub fn split_sizes(size: usize, max: usize) -> Vec<usize> {
    if max == 0 || size == 0 {
        return vec![size];
    }
    let count = size.div_ceil(max);
    let (base, extra) = (size / count, size % count);
    (0..count).map(|i| base + usize::from(i < extra)).collect()
}

/// The analog matrix-vector product `y = mvm(x, w)` of `rows` input vectors `x` (each of `n`
/// values, row-major) through the weight `w` (`k` rows of `n`: `out x in`, as `torch.nn.Linear`),
/// with the converters, noise and management of `io`, as aihwkit's torch tile computes it
/// (`AnalogMVM.matmul`). A weight larger than `tile` (inputs, outputs; 0: no limit) is split
/// along both axes as aihwkit's `TileModuleArray` splits it; each tile has its own noise and
/// bound management and ADC, and the outputs of the input splits are added in order. Every
/// random draw comes from `seed` and the draw's position (tile, round of bound management, row,
/// element), so a result does not depend on threads.
///
/// # Errors
///
/// [`Error::InvalidParameter`] for a bad `io`; [`Error::ShapeMismatch`] when `x` or `w` does not
/// hold `rows * n` or `k * n` values.
///
/// # Examples
///
/// ```
/// use xbquant_analog::{mvm, IoParameters};
/// let io = IoParameters { out_noise: 0.0, ..IoParameters::default() };
/// let x = [0.5f64, -0.25];
/// let w = [1.0f64, 2.0, -1.0, 0.5];
/// let y = mvm(&x, 1, 2, &w, 2, &io, (512, 512), 0)?;
/// // Exact: 0.0 and -0.625; the ADC's step is 24 / 510 of the input's abs-max scale (0.5).
/// assert!((y[0] - 0.0).abs() < 0.03 && (y[1] + 0.625).abs() < 0.03);
/// # Ok::<(), xbquant_analog::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn mvm<T: Float>(
    x: &[T],
    rows: usize,
    n: usize,
    w: &[T],
    k: usize,
    io: &IoParameters,
    tile: (usize, usize),
    seed: u64,
) -> Result<Vec<T>, Error> {
    io.check()?;
    shapes(x, rows, n, w, k)?;
    let mut y = vec![T::ZERO; rows * k];
    mvm_into(x, rows, n, w, k, io, tile, seed, &mut y)?;
    Ok(y)
}

/// [`mvm`] into `out` (`rows x k`, row-major), which it overwrites: no allocation for the
/// result (the Python package writes into the tensor it returns).
///
/// # Errors
///
/// As [`mvm`], and [`Error::ShapeMismatch`] when `out` does not hold `rows * k` values.
///
/// # Examples
///
/// ```
/// use xbquant_analog::{mvm, mvm_into, IoParameters};
/// let io = IoParameters { out_noise: 0.0, ..IoParameters::default() };
/// let (x, w) = ([0.5f32, -0.25], [1.0f32, 2.0, -1.0, 0.5]);
/// let mut out = [0.0f32; 2];
/// mvm_into(&x, 1, 2, &w, 2, &io, (512, 512), 0, &mut out)?;
/// assert_eq!(out.to_vec(), mvm(&x, 1, 2, &w, 2, &io, (512, 512), 0)?);
/// # Ok::<(), xbquant_analog::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn mvm_into<T: Float>(
    x: &[T],
    rows: usize,
    n: usize,
    w: &[T],
    k: usize,
    io: &IoParameters,
    tile: (usize, usize),
    seed: u64,
    out: &mut [T],
) -> Result<(), Error> {
    io.check()?;
    shapes(x, rows, n, w, k)?;
    if Some(out.len()) != rows.checked_mul(k) {
        return Err(Error::ShapeMismatch(format!(
            "out holds {} values, not {rows} x {k}",
            out.len()
        )));
    }
    let in_sizes = split_sizes(n, tile.0);
    let out_sizes = split_sizes(k, tile.1);
    // The whole batch at once: aihwkit's bound management decides for the batch.
    run_tiles(x, 0, rows, n, w, k, io, &in_sizes, &out_sizes, seed, out);
    Ok(())
}

/// Whether `x` holds `rows x n` values and `w` `k x n`.
fn shapes<T>(x: &[T], rows: usize, n: usize, w: &[T], k: usize) -> Result<(), Error> {
    for (what, len, a) in [("x", x.len(), rows), ("w", w.len(), k)] {
        if Some(len) != a.checked_mul(n) {
            return Err(Error::ShapeMismatch(format!(
                "{what} holds {len} values, not {a} x {n}"
            )));
        }
    }
    // With no inputs per output, the shapes alone can ask for more outputs than a buffer holds.
    if rows
        .checked_mul(k)
        .is_none_or(|cells| cells > isize::MAX as usize / 8)
    {
        return Err(Error::ShapeMismatch(format!(
            "an output of {rows} x {k} values is larger than any buffer"
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_tiles<T: Float>(
    x: &[T],
    first: usize,
    count: usize,
    n: usize,
    w: &[T],
    k: usize,
    io: &IoParameters,
    in_sizes: &[usize],
    out_sizes: &[usize],
    seed: u64,
    ys: &mut [T],
) {
    let mut tile_index = 0u64;
    let mut in_start = 0;
    // Each tile reads its part of `x` and `w` where it lies (strided rows); the first input
    // split writes the outputs, each next one its own part that is then added (aihwkit's
    // `add_`).
    let mut part = if in_sizes.len() > 1 {
        vec![T::ZERO; count * k]
    } else {
        Vec::new()
    };
    for (a, &n_i) in in_sizes.iter().enumerate() {
        let xs = tile::Rows {
            data: &x[(first * n + in_start).min(x.len())..],
            stride: n,
        };
        let mut out_start = 0;
        for &k_j in out_sizes {
            let streams = tile::Streams::new(seed, tile_index);
            let tile = tile::Tile {
                w: &w[(out_start * n + in_start).min(w.len())..],
                stride: n,
                k: k_j,
                n: n_i,
            };
            let target = if a == 0 {
                &mut ys[out_start.min(count * k)..]
            } else {
                &mut part[out_start.min(count * k)..]
            };
            tile::forward(&xs, count, &tile, io, &streams, first, target, k, None);
            out_start += k_j;
            tile_index += 1;
        }
        if a > 0 {
            for (o, &p) in ys.iter_mut().zip(&part) {
                *o = *o + p;
            }
        }
        in_start += n_i;
    }
}

/// The gradients of [`mvm`] with respect to `x` and `w` for the output gradient `grad`
/// (`rows x k`): straight through the converters, zero where a converter clipped (as aihwkit's
/// clamps), and the ideal product's elsewhere. For each tile, with `f = out_scale` (1 for a
/// perfect tile), `in_mask` where its DAC did not clip an input and `out_mask` where its ADC did
/// not clip an output (in the round of bound management that gave the outputs):
///
/// - `grad_x += f * in_mask * ((out_mask * grad) w)`;
/// - `grad_w = f * (out_mask * grad)^T x`.
///
/// The masks are those of the forward pass with the same `seed` (every draw is a function of
/// the seed and its position), which the call recomputes.
///
/// # Errors
///
/// As [`mvm`], and [`Error::ShapeMismatch`] when `grad` does not hold `rows * k` values.
///
/// # Examples
///
/// ```
/// use xbquant_analog::{mvm_gradients, IoParameters};
/// use xbquant_analog::BoundManagement;
/// // An ADC bound of 0.5 without bound management: the output 1.5 clips, so no gradient passes.
/// let io = IoParameters {
///     out_noise: 0.0,
///     out_bound: 0.5,
///     out_res: 0.0,
///     bound_management: BoundManagement::None,
///     ..IoParameters::default()
/// };
/// let (gx, gw) = mvm_gradients(&[1.0f64, 0.5], 1, 2, &[1.0f64, 1.0], 1, &io, (0, 0), 0, &[1.0])?;
/// assert_eq!((gx, gw), (vec![0.0, 0.0], vec![0.0, 0.0]));
/// let open = IoParameters { out_bound: 12.0, ..io };
/// let (gx, gw) = mvm_gradients(&[1.0f64, 0.5], 1, 2, &[1.0f64, 1.0], 1, &open, (0, 0), 0, &[1.0])?;
/// assert_eq!((gx, gw), (vec![1.0, 1.0], vec![1.0, 0.5]));
/// # Ok::<(), xbquant_analog::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn mvm_gradients<T: Float>(
    x: &[T],
    rows: usize,
    n: usize,
    w: &[T],
    k: usize,
    io: &IoParameters,
    tile: (usize, usize),
    seed: u64,
    grad: &[T],
) -> Result<(Vec<T>, Vec<T>), Error> {
    io.check()?;
    if Some(x.len()) != rows.checked_mul(n) || Some(w.len()) != k.checked_mul(n) {
        return Err(Error::ShapeMismatch(format!(
            "x holds {} values and w {}: not {rows} x {n} and {k} x {n}",
            x.len(),
            w.len()
        )));
    }
    if Some(grad.len()) != rows.checked_mul(k) {
        return Err(Error::ShapeMismatch(format!(
            "grad holds {} values, not {rows} x {k}",
            grad.len()
        )));
    }
    let f = T::of(if io.is_perfect { 1.0 } else { io.out_scale });
    let mut gx = vec![T::ZERO; rows * n];
    let mut gw = vec![T::ZERO; k * n];
    let mut tile_index = 0u64;
    let mut in_start = 0;
    for n_a in split_sizes(n, tile.0) {
        let xs = tile::Rows {
            data: &x[in_start.min(x.len())..],
            stride: n,
        };
        let mut out_start = 0;
        for k_j in split_sizes(k, tile.1) {
            let streams = tile::Streams::new(seed, tile_index);
            let wt = tile::Tile {
                w: &w[(out_start * n + in_start).min(w.len())..],
                stride: n,
                k: k_j,
                n: n_a,
            };
            let mut masks = tile::Masks::default();
            let mut scratch = vec![T::ZERO; rows * k_j];
            tile::forward(
                &xs,
                rows,
                &wt,
                io,
                &streams,
                0,
                &mut scratch,
                k_j,
                Some(&mut masks),
            );
            // The output gradient where the ADC passed its value on.
            let gm: Vec<T> = (0..rows * k_j)
                .map(|e| {
                    let (r, o) = (e / k_j, e % k_j);
                    if masks.output[e] {
                        grad[r * k + out_start + o] * f
                    } else {
                        T::ZERO
                    }
                })
                .collect();
            if rows > 0 && n_a > 0 && k_j > 0 {
                let mut part = vec![T::ZERO; rows * n_a];
                product::product(
                    product::Shape {
                        m: rows,
                        n: n_a,
                        k: k_j,
                    },
                    &mut part,
                    n_a,
                    product::Operand {
                        data: &gm,
                        rows: k_j,
                        columns: 1,
                    },
                    product::Operand {
                        data: wt.w,
                        rows: n,
                        columns: 1,
                    },
                );
                for r in 0..rows {
                    for i in 0..n_a {
                        if masks.input[r * n_a + i] {
                            let g = &mut gx[r * n + in_start + i];
                            *g = *g + part[r * n_a + i];
                        }
                    }
                }
                product::product(
                    product::Shape {
                        m: k_j,
                        n: n_a,
                        k: rows,
                    },
                    &mut gw[out_start * n + in_start..],
                    n,
                    product::Operand {
                        data: &gm,
                        rows: 1,
                        columns: k_j,
                    },
                    product::Operand {
                        data: xs.data,
                        rows: n,
                        columns: 1,
                    },
                );
            }
            out_start += k_j;
            tile_index += 1;
        }
        in_start += n_a;
    }
    Ok((gx, gw))
}

/// XBTorch's linear (bit-sliced) input encoding through [`mvm`]: `x` scaled by its largest
/// magnitude `m`, rounded to `bits`-bit sign-magnitude codes `c = round(clamp(x / m, -1, 1)
/// (2^bits - 1))` (ties to even, in the data's type), applied one bit plane per cycle (plane `b`
/// holds `sign(c) bit_b(|c|) m`), each plane through the tiles and their ADCs (seed `seed + b`),
/// and the planes' outputs shifted and added digitally: `sum_b y_b 2^b / (2^bits - 1)`.
///
/// # Errors
///
/// As [`mvm`]; [`Error::InvalidParameter`] for `bits` outside 1 to 32 or inputs that are not
/// finite (their codes would be meaningless).
///
/// # Examples
///
/// ```
/// use xbquant_analog::{mvm_bit_sliced, IoParameters};
/// let io = IoParameters { is_perfect: true, ..IoParameters::default() };
/// // 0.5 of the largest magnitude 1.0 is code 2 of 3 (2 bits): planes 0 and 1 hold 0 and 1.
/// let y = mvm_bit_sliced(&[1.0f64, 0.5], 2, 1, &[1.0f64], 1, &io, (0, 0), 0, 2)?;
/// assert_eq!(y, [1.0, 2.0 / 3.0]);
/// # Ok::<(), xbquant_analog::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn mvm_bit_sliced<T: Float>(
    x: &[T],
    rows: usize,
    n: usize,
    w: &[T],
    k: usize,
    io: &IoParameters,
    tile: (usize, usize),
    seed: u64,
    bits: u32,
) -> Result<Vec<T>, Error> {
    if !(1..=32).contains(&bits) {
        return Err(Error::InvalidParameter(
            "input_bits",
            format!("must be 1 to 32, got {bits}"),
        ));
    }
    if x.iter().any(|v| !v.f64().is_finite()) {
        return Err(Error::InvalidParameter(
            "x",
            "must be finite for bit-sliced inputs".into(),
        ));
    }
    let top = x
        .iter()
        .fold(T::ZERO, |m, &v| if v.abs() > m { v.abs() } else { m });
    let scale = if top > T::ZERO { top } else { T::ONE };
    let levels = (1u64 << bits) - 1;
    let codes: Vec<i64> = x
        .iter()
        .map(|&v| {
            let t = v / scale;
            let t = if t > T::ONE {
                T::ONE
            } else if t < T::ZERO - T::ONE {
                T::ZERO - T::ONE
            } else {
                t
            };
            (t * T::of(levels as f64)).round_even().f64() as i64
        })
        .collect();
    let mut total: Option<Vec<T>> = None;
    for b in 0..bits {
        let plane: Vec<T> = codes
            .iter()
            .map(|&c| {
                if (c.unsigned_abs() >> b) & 1 == 1 {
                    if c < 0 {
                        T::ZERO - scale
                    } else {
                        scale
                    }
                } else {
                    T::ZERO
                }
            })
            .collect();
        let y = mvm(
            &plane,
            rows,
            n,
            w,
            k,
            io,
            tile,
            seed.wrapping_add(u64::from(b)),
        )?;
        let weight = T::of(2f64.powi(b as i32) / levels as f64);
        total = Some(match total {
            None => y.into_iter().map(|v| v * weight).collect(),
            Some(t) => t.into_iter().zip(y).map(|(a, v)| a + v * weight).collect(),
        });
    }
    Ok(total.unwrap_or_else(|| vec![T::ZERO; rows * k]))
}
