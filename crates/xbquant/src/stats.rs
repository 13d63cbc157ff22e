//! [`ErrorStats`]: what quantizing a tensor changed (the signal and noise energies, the largest
//! error, the clipped and non-finite counts), summed part by part in one vectorized pass.

use rayon::prelude::*;

use crate::quantizer::check_len;
use crate::{Element, Error};

/// What quantizing a tensor changed: sums over the pairs of an input and its quantized value,
/// added part by part with [`add`](ErrorStats::add).
///
/// # Examples
///
/// ```
/// use xbquant::{ErrorStats, Quantizer, Scheme};
/// let s: Scheme = "fixed<4,2>".parse()?; // steps of 1/4, up to 1.75
/// let x = [0.3f32, -0.1, 2.0, f32::NAN];
/// let (q, clipped) = s.quantize_with_mask(&x)?;
/// let stats = ErrorStats::of(&x, &q, &clipped)?;
/// assert_eq!((stats.elements, stats.clipped), (4, 1));
/// assert_eq!(stats.max_abs_error, 0.25); // 2 saturated to 1.75
/// assert!((stats.sqnr_db() - 10.0 * (4.1f64 / 0.075).log10()).abs() < 1e-5);
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ErrorStats {
    /// Elements seen.
    pub elements: u64,
    /// Elements clipped (the mask's `true` entries).
    pub clipped: u64,
    /// The sum of the squared inputs, over pairs that are both finite.
    pub signal: f64,
    /// The sum of the squared errors, over pairs that are both finite.
    pub noise: f64,
    /// The largest absolute error over pairs that are both finite.
    pub max_abs_error: f64,
    /// Pairs whose error is not a finite number: an infinity made finite or a finite value made
    /// infinite, or NaN made a number or a number made NaN.
    pub nonfinite_errors: u64,
}

/// Elements per task.
const PIECE: usize = 1 << 14;
/// Independent sums, so that the loop compiles to vector instructions.
const LANES: usize = 8;

impl ErrorStats {
    /// The statistics of `q`, the quantized `x`, with the mask of clipped elements, in pieces
    /// over rayon's threads, each compiled for the best instruction set allowed (see
    /// [`set_max_instruction_set`](crate::set_max_instruction_set)).
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `q` or `mask` differ in length from `x`.
    pub fn of<T: Element>(x: &[T], q: &[T], mask: &[bool]) -> Result<ErrorStats, Error> {
        check_len(x.len(), q.len())?;
        check_len(x.len(), mask.len())?;
        Ok(crate::kernel::in_pool(x.len(), || {
            x.par_chunks(PIECE)
                .zip(q.par_chunks(PIECE))
                .zip(mask.par_chunks(PIECE))
                .map(|((x, q), mask)| piece(x, q, mask))
                .reduce(ErrorStats::default, |mut a, b| {
                    a.add(b);
                    a
                })
        }))
    }

    /// Adds the statistics of another part.
    pub fn add(&mut self, other: ErrorStats) {
        self.elements += other.elements;
        self.clipped += other.clipped;
        self.signal += other.signal;
        self.noise += other.noise;
        self.max_abs_error = self.max_abs_error.max(other.max_abs_error);
        self.nonfinite_errors += other.nonfinite_errors;
    }

    /// The largest absolute error: infinite where an error is not finite.
    #[must_use]
    pub fn max_error(&self) -> f64 {
        if self.nonfinite_errors > 0 {
            f64::INFINITY
        } else {
            self.max_abs_error
        }
    }

    /// The signal-to-quantization-noise ratio in dB over the finite pairs: infinite when nothing
    /// changed, minus infinity when an error is not finite.
    #[must_use]
    pub fn sqnr_db(&self) -> f64 {
        if self.nonfinite_errors > 0 {
            f64::NEG_INFINITY
        } else if self.noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.signal / self.noise).log10()
        }
    }

    /// The share of elements clipped.
    #[must_use]
    pub fn clipped_share(&self) -> f64 {
        if self.elements == 0 {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)]
            let share = self.clipped as f64 / self.elements as f64;
            share
        }
    }
}

/// The statistics of one piece.
fn piece<T: Element>(x: &[T], q: &[T], mask: &[bool]) -> ErrorStats {
    let acc = crate::isa::arch().dispatch(Sums { x, q });
    // The largest |error| of all pairs, as bits: a finite one is the answer; an infinity or NaN
    // says some pair was not finite (rare), and a second pass over the piece gives the largest
    // finite error and the count of non-finite ones.
    let top = f64::from_bits(acc.m.iter().copied().max().unwrap_or(0));
    let (max_abs_error, nonfinite_errors) = if top.is_finite() {
        (top, 0)
    } else {
        nonfinite_errors(x, q)
    };
    ErrorStats {
        elements: x.len() as u64,
        clipped: mask.iter().filter(|&&o| o).count() as u64,
        signal: acc.s.iter().sum(),
        noise: acc.n.iter().sum(),
        max_abs_error,
        nonfinite_errors,
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

#[derive(Default)]
struct Lanes {
    s: [f64; LANES],
    n: [f64; LANES],
    /// The bits of the largest |error| of every pair: above those of any finite value (as
    /// integers, an infinity's bits and then NaN's are) where a pair was not finite.
    m: [u64; LANES],
}

impl Lanes {
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
/// is not a finite number: a value and its result not both finite, unless the same (an infinity
/// kept, NaN kept).
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
        let stats = ErrorStats::of(&x, &q, &vec![false; n]).unwrap();
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
        let mut mask = vec![false; x.len()];
        mask[3] = true;
        let stats = ErrorStats::of(&x, &q, &mask).unwrap();
        let noise: f64 = x
            .iter()
            .zip(&q)
            .map(|(a, b)| (f64::from(*b) - f64::from(*a)).powi(2))
            .sum();
        assert_eq!((stats.nonfinite_errors, stats.clipped), (0, 1));
        assert_eq!(stats.max_abs_error, 8.0);
        assert!((stats.noise - noise).abs() <= noise * 1e-12);
        assert!(ErrorStats::of(&x, &q[1..], &mask).is_err());
    }
}
