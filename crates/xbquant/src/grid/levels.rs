//! [`Levels`]: a sorted table of arbitrary values, searched without a distance matrix.

use rayon::prelude::*;

use super::{draw_key, part_through, pick_upper, sign_of_sum, GridJob, PIECE};
use crate::element::check_holds;
use crate::quantizer::check_len;
use crate::random::draw;
use crate::{Element, Error, Rounding};

/// A sorted table of levels (finite values): measured conductance states, a non-uniform code
/// book. A value rounds to one of its two neighbouring levels: the nearest (ties by the
/// rounding mode: to the level of even index for [`Rounding::NearestEven`], the upper or lower
/// one for [`Rounding::NearestUp`] / [`Rounding::NearestDown`], the one toward or away from zero
/// for the other two), the lower one ([`Rounding::Floor`]), the one toward zero
/// ([`Rounding::TowardZero`]), or stochastically the upper one with probability
/// `(x - lower) / (upper - lower)` (unbiased between them, to the resolution of the 52-bit
/// draw). Values beyond the table take its first or last level; NaN stays NaN.
///
/// Each element costs a branch-free binary search, `O(log levels)`, and no memory beyond the
/// table: no `inputs x levels` distance matrix.
///
/// # Examples
///
/// ```
/// use xbquant::{Levels, Rounding};
/// let g = Levels::new(vec![12.0, 3.5, 40.0, 20.0])?; // sorted on construction
/// assert_eq!(g.levels(), [3.5, 12.0, 20.0, 40.0]);
/// let q = g.quantize(&[0.0f32, 8.0, 16.0, 31.0, 99.0], Rounding::NearestEven)?;
/// assert_eq!(q, [3.5, 12.0, 20.0, 40.0, 40.0]); // 16 is a tie: level 2 (even index)
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Levels {
    levels: Vec<f64>,
}

impl Levels {
    /// A table of the given levels, sorted, duplicates removed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidGrid`] for an empty table or a level that is NaN or infinite.
    pub fn new(mut levels: Vec<f64>) -> Result<Self, Error> {
        if levels.is_empty() {
            return Err(Error::InvalidGrid("an empty table of levels".into()));
        }
        if let Some(bad) = levels.iter().find(|v| !v.is_finite()) {
            return Err(Error::InvalidGrid(format!("a level of {bad}")));
        }
        levels.sort_by(f64::total_cmp);
        levels.dedup_by(|a, b| a == b);
        // -0.0 and 0.0 compare equal: one zero.
        Ok(Levels { levels })
    }

    /// The levels, ascending.
    #[must_use]
    pub fn levels(&self) -> &[f64] {
        &self.levels
    }

    /// The first and last levels: beyond them values clip.
    #[must_use]
    pub fn span(&self) -> (f64, f64) {
        (self.levels[0], self.levels[self.levels.len() - 1])
    }

    /// The last index with `levels[k] <= x` (0 when `x` is below the table) of each of `xs`,
    /// into `bases`: branch-free binary searches run in lockstep, so that their loads overlap.
    #[inline]
    fn search(&self, xs: &[f64], bases: &mut [usize]) {
        let l = &self.levels;
        bases.fill(0);
        let mut len = l.len();
        while len > 1 {
            let half = len / 2;
            for (b, &x) in bases.iter_mut().zip(xs) {
                *b = if l[*b + half] <= x { *b + half } else { *b };
            }
            len -= half;
        }
    }

    /// The index of the level `x` rounds to, `base` its search result, or `None` for NaN.
    #[inline]
    fn decide(
        &self,
        x: f64,
        base: usize,
        rounding: Rounding,
        draw: impl FnOnce() -> f64,
    ) -> Option<usize> {
        let l = &self.levels;
        if x.is_nan() {
            return None;
        }
        if x <= l[0] {
            return Some(0);
        }
        if base + 1 == l.len() || x == l[base] {
            return Some(base);
        }
        let (lo, hi) = (l[base], l[base + 1]);
        // x against the midpoint: the sign of (x - lo) - (hi - x), rounded where that is clearly
        // away from 0 (its error is at most 2^-51 of hi - lo), else exactly: x + x - lo - hi
        // with error-free sums (scaled down first where the sums could overflow).
        let d = (x - lo) - (hi - x);
        let mid = if d.abs() > (hi - lo) * 2f64.powi(-48) {
            d.partial_cmp(&0.0).unwrap_or(std::cmp::Ordering::Equal)
        } else if hi.abs().max(lo.abs()) > 1e300 {
            let s = 2f64.powi(-8);
            sign_of_sum([x * s, x * s, -lo * s, -hi * s])
        } else {
            sign_of_sum([x, x, -lo, -hi])
        };
        let frac = ((x - lo) / (hi - lo)).clamp(0.0, 1.0);
        #[allow(clippy::cast_possible_wrap)]
        let upper = pick_upper(rounding, mid, base as i64, x, frac, draw);
        Some(if upper { base + 1 } else { base })
    }

    /// Quantizes `x` to the table into a new vector.
    ///
    /// # Errors
    ///
    /// None today; the `Result` keeps room for checks of the data.
    pub fn quantize<T: Element>(&self, x: &[T], rounding: Rounding) -> Result<Vec<T>, Error> {
        let mut out = vec![T::from_f64(0.0); x.len()];
        self.quantize_into(x, &mut out, rounding)?;
        Ok(out)
    }

    /// Quantizes `x` to the table into `out`. Element `i` of a stochastic rounding draws
    /// stream index `i` of its seed.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `out` differs in length from `x`;
    /// [`Error::NotRepresentable`] for a level that is infinite in `T`.
    pub fn quantize_into<T: Element>(
        &self,
        x: &[T],
        out: &mut [T],
        rounding: Rounding,
    ) -> Result<(), Error> {
        check_len(x.len(), out.len())?;
        self.quantize_part(crate::Data::Into { x, out }, None, rounding.resolve(), 0)
    }

    /// One call of a scheme: `data` from stream index `start`, the clip mask (values beyond
    /// the first or last level) when asked.
    pub(crate) fn quantize_part<T: Element>(
        &self,
        data: crate::Data<'_, T>,
        mask: Option<&mut [bool]>,
        rounding: Rounding,
        start: u64,
    ) -> Result<(), Error> {
        let span = self.span();
        check_holds::<T>("level", span.0, false)?;
        check_holds::<T>("level", span.1, false)?;
        part_through(data, mask, span, |x, out| {
            T::run_grid(GridJob::Levels {
                levels: self,
                x,
                out,
                rounding,
                start,
            });
        });
        Ok(())
    }

    /// The index of each element's level (`u32::MAX` for NaN): the state a device is
    /// programmed to.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidGrid`] for a table of more than `u32::MAX` levels.
    pub fn indices<T: Element>(&self, x: &[T], rounding: Rounding) -> Result<Vec<u32>, Error> {
        if u32::try_from(self.levels.len()).is_err() {
            return Err(Error::InvalidGrid("more than 2^32 - 1 levels".into()));
        }
        let mut out = vec![0u32; x.len()];
        T::run_grid(GridJob::Indices {
            levels: self,
            x,
            out: &mut out,
            rounding: rounding.resolve(),
        });
        Ok(out)
    }

    /// Calls `emit(j, level index or None)` for each element `j` of `xs`, the elements from
    /// tensor index `first` on, in groups of 16 searched in lockstep.
    #[inline]
    fn each_index<T: Element>(
        &self,
        xs: &[T],
        first: u64,
        rounding: Rounding,
        key: u64,
        mut emit: impl FnMut(usize, Option<usize>),
    ) {
        const GROUP: usize = 16;
        let (mut values, mut bases) = ([0f64; GROUP], [0usize; GROUP]);
        for (g, group) in xs.chunks(GROUP).enumerate() {
            let n = group.len();
            for (v, x) in values.iter_mut().zip(group) {
                *v = x.to_f64();
            }
            self.search(&values[..n], &mut bases[..n]);
            for j in 0..n {
                let at = g * GROUP + j;
                let i = first + at as u64;
                let draw = || draw(key, i);
                emit(at, self.decide(values[j], bases[j], rounding, draw));
            }
        }
    }

    pub(super) fn run<T: Element>(&self, x: &[T], out: &mut [T], rounding: Rounding, start: u64) {
        let key = draw_key(rounding);
        x.par_chunks(PIECE)
            .zip(out.par_chunks_mut(PIECE))
            .enumerate()
            .for_each(|(p, (xs, os))| {
                let first = start.wrapping_add((p * PIECE) as u64);
                self.each_index(xs, first, rounding, key, |j, k| {
                    os[j] = match k {
                        Some(k) => T::from_f64(self.levels[k]),
                        None => xs[j],
                    };
                });
            });
    }

    #[allow(clippy::cast_possible_truncation)]
    pub(super) fn run_indices<T: Element>(&self, x: &[T], out: &mut [u32], rounding: Rounding) {
        let key = draw_key(rounding);
        x.par_chunks(PIECE)
            .zip(out.par_chunks_mut(PIECE))
            .enumerate()
            .for_each(|(p, (xs, os))| {
                self.each_index(xs, (p * PIECE) as u64, rounding, key, |j, k| {
                    os[j] = k.map_or(u32::MAX, |k| k as u32);
                });
            });
    }
}
