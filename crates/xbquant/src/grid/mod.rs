//! Arbitrary grids: [`Grid`], evenly spaced points `offset + k * step` (any step, not only powers
//! of two: `1 / (2^b - 1)`, conductances `G_min + k * d`), and [`Levels`], a sorted table of
//! arbitrary values (measured device states). Both round with the modes of [`Rounding`] and
//! decide which side of a midpoint a value lies on exactly, with error-free arithmetic, never by
//! a rounded `x / step`. This module holds what the two share: the exact comparisons, the choice
//! between two neighbours, and the jobs the element types run.

mod levels;
mod uniform;

pub use levels::Levels;
pub use uniform::Grid;

use crate::{Element, Rounding};

/// Elements per parallel piece.
pub(super) const PIECE: usize = 1 << 14;

/// `a + b` exactly, as the rounded sum and its error.
#[inline(always)]
pub(super) fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let err = (a - (s - bb)) + (b - bb);
    (s, err)
}

/// The sign of `a + b + c + d`, exactly (a nonoverlapping expansion of the sum, built with
/// error-free additions; its largest nonzero component has the sign of the sum). Inputs finite.
pub(super) fn sign_of_sum(terms: [f64; 4]) -> std::cmp::Ordering {
    let mut expansion = [0f64; 4];
    for (len, t) in terms.into_iter().enumerate() {
        let mut q = t;
        for e in expansion.iter_mut().take(len) {
            let (s, err) = two_sum(q, *e);
            *e = err;
            q = s;
        }
        expansion[len] = q;
    }
    for e in expansion.iter().rev() {
        if *e != 0.0 {
            return e.partial_cmp(&0.0).unwrap_or(std::cmp::Ordering::Equal);
        }
    }
    std::cmp::Ordering::Equal
}

/// Grids and values from this magnitude on are handled scaled down (see `Grid::index`).
pub(super) const HUGE: f64 = f64::from_bits((1019 + 1023) << 52); // 2^1019

/// The stream key of a resolved rounding's draws (0 for the deterministic ones).
pub(super) fn draw_key(rounding: Rounding) -> u64 {
    match rounding {
        Rounding::Stochastic { seed } => crate::random::stream_key(seed),
        _ => 0,
    }
}

/// Which of the two neighbours `lo < x < hi` (indices `k`, `k + 1`) a rounding picks, given how
/// `x` compares with their midpoint, the fraction of the way from `lo` to `hi`, and `x`'s sign;
/// `draw` gives stochastic rounding's uniform draw (called only for it).
#[inline]
pub(super) fn pick_upper(
    rounding: Rounding,
    mid: std::cmp::Ordering,
    k: i64,
    x: f64,
    frac: f64,
    draw: impl FnOnce() -> f64,
) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match rounding {
        Rounding::Floor => false,
        Rounding::TowardZero => x < 0.0,
        Rounding::Stochastic { .. } | Rounding::StochasticFresh => draw() < frac,
        nearest => match mid {
            Greater => true,
            Less => false,
            Equal => match nearest {
                Rounding::NearestUp => true,
                Rounding::NearestDown => false,
                Rounding::NearestTowardZero => x < 0.0,
                Rounding::NearestAway => x >= 0.0,
                _ => k % 2 != 0, // ties to the even index
            },
        },
    }
}

/// Writes the clip mask of `data` (values below `lo` or above `hi`; never NaN) when asked, then
/// runs `f(x, out)`: in place through a copy of the input.
pub(super) fn part_through<T: Element>(
    data: crate::Data<'_, T>,
    mask: Option<&mut [bool]>,
    (lo, hi): (f64, f64),
    f: impl FnOnce(&[T], &mut [T]),
) {
    let x: &[T] = match &data {
        crate::Data::Into { x, .. } => x,
        crate::Data::InPlace(buf) => buf,
    };
    if let Some(mask) = mask {
        for (m, v) in mask.iter_mut().zip(x) {
            let v = v.to_f64();
            *m = v < lo || v > hi;
        }
    }
    match data {
        crate::Data::Into { x, out } => f(x, out),
        crate::Data::InPlace(buf) => {
            let x = buf.to_vec();
            f(&x, buf);
        }
    }
}

/// A grid job, run by the kernels compiled in this crate.
pub enum GridJob<'a, T> {
    /// A uniform grid.
    Grid {
        /// The grid.
        grid: &'a Grid,
        /// The input.
        x: &'a [T],
        /// The output.
        out: &'a mut [T],
        /// The rounding, resolved.
        rounding: Rounding,
        /// The stream index of `x[0]`.
        start: u64,
    },
    /// A table of levels.
    Levels {
        /// The table.
        levels: &'a Levels,
        /// The input.
        x: &'a [T],
        /// The output.
        out: &'a mut [T],
        /// The rounding, resolved.
        rounding: Rounding,
        /// The stream index of `x[0]`.
        start: u64,
    },
    /// The indices of a table's levels.
    Indices {
        /// The table.
        levels: &'a Levels,
        /// The input.
        x: &'a [T],
        /// The output.
        out: &'a mut [u32],
        /// The rounding, resolved.
        rounding: Rounding,
    },
}

impl<T> GridJob<'_, T> {
    /// Elements of input.
    pub(crate) fn len(&self) -> usize {
        match self {
            GridJob::Grid { x, .. } | GridJob::Levels { x, .. } | GridJob::Indices { x, .. } => {
                x.len()
            }
        }
    }
}

/// Runs a grid job (called from the element types' kernel entry points).
pub(crate) fn run<T: Element>(job: GridJob<'_, T>) {
    match job {
        GridJob::Grid {
            grid,
            x,
            out,
            rounding,
            start,
        } => grid.run(x, out, rounding, start),
        GridJob::Levels {
            levels,
            x,
            out,
            rounding,
            start,
        } => levels.run(x, out, rounding, start),
        GridJob::Indices {
            levels,
            x,
            out,
            rounding,
        } => levels.run_indices(x, out, rounding),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_of_sum_is_exact_where_rounding_hides_it() {
        use std::cmp::Ordering::{Equal, Greater, Less};
        // 1 + 2^-60 - 1: rounded sums say 0.
        assert_eq!(sign_of_sum([1.0, 2f64.powi(-60), -1.0, 0.0]), Greater);
        assert_eq!(sign_of_sum([1.0, -(2f64.powi(-60)), -1.0, 0.0]), Less);
        assert_eq!(sign_of_sum([1e300, -1e300, 3.0, -3.0]), Equal);
        // The doubles nearest 0.1, 0.2 and 0.3 do not cancel: their sum is 2^-55 + 2^-57 ...
        assert_eq!(sign_of_sum([0.1, 0.2, -0.3, 0.0]), Greater);
    }
}
