//! [`Grid`]: evenly spaced points `offset + k * step`, bounded or not.

use rayon::prelude::*;

use super::{draw_key, part_through, pick_upper, sign_of_sum, GridJob, HUGE, PIECE};
use crate::element::check_holds;
use crate::quantizer::check_len;
use crate::random::draw;
use crate::{Element, Error, Rounding};

/// Evenly spaced points `offset + k * step`: all integers `k`, or `0 <= k < levels`.
///
/// A value rounds to one of the two points around it, chosen by the rounding mode on the exact
/// position of the value (ties and the midpoint are decided exactly; stochastic rounding goes up
/// with probability `(x - lower) / step`, to the resolution of its 52-bit draw). Values beyond
/// the first or last point (with `levels`) take that point; NaN stays NaN; an infinity takes the
/// end point when there is one and stays infinite otherwise; on a grid without bounds, a value
/// more than about `4e15` steps from the offset stays as it is. A point is computed as
/// `offset + k * step` with one fused multiply-add, then rounded to the element type.
///
/// # Examples
///
/// ```
/// use xbquant::{Grid, Rounding};
/// // Nine points from -1 to 1; 0.375 is a tie between points 5 and 6 (even: 6).
/// let g = Grid::new(0.25, -1.0, Some(9))?;
/// let q = g.quantize(&[0.3f64, -0.2, 0.375, 3.0], Rounding::NearestEven)?;
/// assert_eq!(q, [0.25, -0.25, 0.5, 1.0]);
/// // Steps of 1/7 (as a double): ties are decided against the grid of that double.
/// let g = Grid::new(1.0 / 7.0, 0.0, None)?;
/// assert_eq!(g.quantize(&[0.5f64], Rounding::NearestEven)?, [g.point(4)]);
/// // Conductances 50 + 10 k uS, k = 0..=5.
/// let c = Grid::new(10.0, 50.0, Some(6))?;
/// // Ties to the even index: 65 -> k = 2 (70), 75 -> k = 2 (70).
/// assert_eq!(c.quantize(&[64.9f32, 65.0, 75.0, 20.0], Rounding::NearestEven)?, [60.0, 70.0, 70.0, 50.0]);
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    step: f64,
    offset: f64,
    levels: Option<u64>,
    /// Whether the step or the offset reaches 2^1019 (see `index`).
    huge: bool,
}

impl Grid {
    /// A grid of `step` (positive, finite) from `offset` (finite), with `levels` points
    /// (1 or more, up to `2^52`) or without bounds.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidGrid`] otherwise.
    pub fn new(step: f64, offset: f64, levels: Option<u64>) -> Result<Self, Error> {
        if !(step > 0.0 && step.is_finite()) {
            return Err(Error::InvalidGrid(format!("a step of {step}")));
        }
        if !offset.is_finite() {
            return Err(Error::InvalidGrid(format!("an offset of {offset}")));
        }
        if let Some(n) = levels {
            if n == 0 || n > 1 << 52 {
                return Err(Error::InvalidGrid(format!("{n} levels")));
            }
        }
        let grid = Grid {
            step,
            offset,
            levels,
            huge: offset.abs().max(step) >= HUGE,
        };
        if let Some((_, last)) = grid.span() {
            if !last.is_finite() {
                return Err(Error::InvalidGrid(format!(
                    "its last point, {offset} + {} * {step}, is beyond the largest double",
                    levels.unwrap_or(1) - 1
                )));
            }
        }
        Ok(grid)
    }

    /// Point `k`: `offset + k * step`, rounded once.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn point(&self, k: i64) -> f64 {
        (k as f64).mul_add(self.step, self.offset)
    }

    /// The step.
    #[must_use]
    pub const fn step(&self) -> f64 {
        self.step
    }

    /// The offset (point 0).
    #[must_use]
    pub const fn offset(&self) -> f64 {
        self.offset
    }

    /// The number of points, when bounded.
    #[must_use]
    pub const fn levels(&self) -> Option<u64> {
        self.levels
    }

    /// The first and last points of a bounded grid: beyond them values clip.
    #[must_use]
    #[allow(clippy::cast_possible_wrap)]
    pub fn span(&self) -> Option<(f64, f64)> {
        self.levels
            .map(|n| (self.point(0), self.point(n as i64 - 1)))
    }

    /// The sign of `x - (offset + k * step)`, exactly (`k` with at most 53 bits).
    #[allow(clippy::cast_precision_loss)]
    fn side(&self, x: f64, k: f64) -> std::cmp::Ordering {
        let p = k * self.step;
        let pe = k.mul_add(self.step, -p);
        sign_of_sum([x, -self.offset, -p, -pe])
    }

    /// The index of the grid point `x` rounds to (unbounded grids: any integer), or `None` for
    /// NaN (and for an infinity on an unbounded grid).
    #[inline]
    fn index(&self, x: f64, rounding: Rounding, draw: impl FnOnce() -> f64) -> Option<i64> {
        // Near the top of the f64 range the points next to x, and x - offset, could overflow:
        // the same question on the grid and x scaled by 1/8, exact for every value from 2^-1019
        // (below that, within 2^-1019 of a point of a grid that reaches 2^1019, a value is
        // compared after rounding).
        if self.huge || x.abs() >= HUGE {
            return self.index_scaled(x, rounding, draw);
        }
        self.index_in_range(x, rounding, draw)
    }

    /// [`index`](Grid::index) on the grid and `x` scaled by 1/8 (kept out of the loop's code).
    #[cold]
    #[inline(never)]
    fn index_scaled(&self, x: f64, rounding: Rounding, draw: impl FnOnce() -> f64) -> Option<i64> {
        let scaled = Grid {
            offset: self.offset / 8.0,
            step: self.step / 8.0,
            levels: self.levels,
            huge: false,
        };
        scaled.index_in_range(x / 8.0, rounding, draw)
    }

    /// [`index`](Grid::index) where no point next to `x` overflows (inlined into the loop, as
    /// it was before the scaled path took a second call of it: 3 us more per 1K elements).
    #[inline(always)]
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    fn index_in_range(
        &self,
        x: f64,
        rounding: Rounding,
        draw: impl FnOnce() -> f64,
    ) -> Option<i64> {
        use std::cmp::Ordering::{Greater, Less};
        let last = self.levels.map(|n| (n - 1) as i64);
        if x.is_nan() {
            return None;
        }
        if x.is_infinite() {
            return match (x > 0.0, last) {
                (_, None) => None,
                (true, Some(last)) => Some(last),
                (false, Some(_)) => Some(0),
            };
        }
        let approx = ((x - self.offset) / self.step).floor();
        // Clearly beyond a bounded grid: an end point, whatever the rounding.
        if let Some(last) = last {
            #[allow(clippy::cast_precision_loss)]
            let top = last as f64;
            let margin = approx.abs() * 2f64.powi(-50) + 1.0;
            if approx < -margin {
                return Some(0);
            }
            if approx > top + margin {
                return Some(last);
            }
        }
        if !approx.is_finite() || approx.abs() >= 4.0e15 {
            // Far beyond any grid point the arithmetic below can place.
            // Bounded: an end point. Unbounded: no point the arithmetic can place, so the value
            // stays as it is.
            return last.map(|last| if approx > 0.0 { last } else { 0 });
        }
        // Fast path: where the approximate position is clearly away from a grid point and from
        // a midpoint, its floor and its side of the midpoint are exact. `t` carries a relative
        // error of at most two roundings, 2^-52; the margin is four times that.
        let t = (x - self.offset) / self.step;
        let frac = t - approx;
        let margin = t.abs() * 2f64.powi(-50) + f64::MIN_POSITIVE;
        if frac > margin && frac < 1.0 - margin && (frac - 0.5).abs() > margin {
            #[allow(clippy::cast_possible_truncation)]
            let k = approx as i64;
            let mid = if frac > 0.5 {
                Greater
            } else {
                std::cmp::Ordering::Less
            };
            let inside = last.is_none_or(|last| k >= 0 && k < last);
            if inside {
                let upper = pick_upper(rounding, mid, k, x, frac, draw);
                return Some(if upper { k + 1 } else { k });
            }
        }
        // The largest k with point(k) <= x, exactly: approx is within one of it, so two steps
        // suffice (four are allowed; the count never depends on a value's magnitude).
        let mut k = approx;
        for _ in 0..4 {
            if self.side(x, k) != Less {
                break;
            }
            k -= 1.0;
        }
        for _ in 0..4 {
            if self.side(x, k + 1.0) == Less {
                break;
            }
            k += 1.0;
        }
        let k = k as i64;
        if let Some(last) = last {
            if k < 0 {
                return Some(0);
            }
            if k >= last {
                return Some(last);
            }
        }
        if self.side(x, k as f64) == std::cmp::Ordering::Equal {
            return Some(k);
        }
        let mid = self.side(x, k as f64 + 0.5);
        let frac = ((x - self.point(k)) / self.step).clamp(0.0, 1.0);
        let upper = pick_upper(rounding, mid, k, x, frac, draw);
        Some(if upper { k + 1 } else { k })
    }

    /// Quantizes `x` to the grid into a new vector.
    ///
    /// # Errors
    ///
    /// [`Error::NotRepresentable`] when a point the data can round to is infinite in `T`: an
    /// end point of a bounded grid, or the offset or step of an unbounded one (on an unbounded
    /// grid a value near `T`'s largest can still round to a point beyond it: infinity, as a
    /// cast gives).
    pub fn quantize<T: Element>(&self, x: &[T], rounding: Rounding) -> Result<Vec<T>, Error> {
        let mut out = vec![T::from_f64(0.0); x.len()];
        self.quantize_into(x, &mut out, rounding)?;
        Ok(out)
    }

    /// Quantizes `x` to the grid into `out`. Element `i` of a stochastic rounding draws stream
    /// index `i` of its seed, as fixed point does.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `out` differs in length from `x`;
    /// [`Error::NotRepresentable`] as for [`quantize`](Grid::quantize).
    pub fn quantize_into<T: Element>(
        &self,
        x: &[T],
        out: &mut [T],
        rounding: Rounding,
    ) -> Result<(), Error> {
        check_len(x.len(), out.len())?;
        self.quantize_part(crate::Data::Into { x, out }, None, rounding.resolve(), 0)
    }

    /// Checks that the points the data can round to are finite in `T`.
    fn check_holds<T: Element>(&self) -> Result<(), Error> {
        match self.span() {
            Some((first, last)) => {
                check_holds::<T>("grid point", first, false)?;
                check_holds::<T>("grid point", last, false)
            }
            None => {
                check_holds::<T>("offset", self.offset, false)?;
                check_holds::<T>("step", self.step, false)
            }
        }
    }

    /// One call of a scheme: `data` from stream index `start`, the clip mask (finite values
    /// beyond a bounded grid's end points, infinities on any grid) when asked.
    pub(crate) fn quantize_part<T: Element>(
        &self,
        data: crate::Data<'_, T>,
        mask: Option<&mut [bool]>,
        rounding: Rounding,
        start: u64,
    ) -> Result<(), Error> {
        self.check_holds::<T>()?;
        let (lo, hi) = self.span().unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
        part_through(data, mask, (lo, hi), |x, out| {
            T::run_grid(GridJob::Grid {
                grid: self,
                x,
                out,
                rounding,
                start,
            });
        });
        Ok(())
    }

    #[allow(clippy::cast_precision_loss)]
    pub(super) fn run<T: Element>(&self, x: &[T], out: &mut [T], rounding: Rounding, start: u64) {
        let key = draw_key(rounding);
        x.par_chunks(PIECE)
            .zip(out.par_chunks_mut(PIECE))
            .enumerate()
            .for_each(|(p, (xs, os))| {
                for (j, (v, o)) in xs.iter().zip(os.iter_mut()).enumerate() {
                    let x = v.to_f64();
                    let i = start.wrapping_add((p * PIECE + j) as u64);
                    *o = match self.index(x, rounding, || draw(key, i)) {
                        Some(k) => T::from_f64(self.point(k)),
                        None => *v,
                    };
                }
            });
    }
}
