//! Arbitrary grids: [`Grid`], evenly spaced points `offset + k * step` (any step, not only powers
//! of two: `1 / (2^b - 1)`, conductances `G_min + k * d`), and [`Levels`], a sorted table of
//! arbitrary values (measured device states). Both round with the modes of [`Rounding`] and
//! decide which side of a midpoint a value lies on exactly, with error-free arithmetic, never by
//! a rounded `x / step`.

use rayon::prelude::*;

use crate::element::check_holds;

use crate::quantize::check_len;
use crate::random::{draw, stream_key};
use crate::{Element, Error, Rounding};

/// Elements per parallel piece.
const PIECE: usize = 1 << 14;

/// `a + b` exactly, as the rounded sum and its error.
#[inline(always)]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let err = (a - (s - bb)) + (b - bb);
    (s, err)
}

/// The sign of `a + b + c + d`, exactly (a nonoverlapping expansion of the sum, built with
/// error-free additions; its largest nonzero component has the sign of the sum). Inputs finite.
fn sign_of_sum(terms: [f64; 4]) -> std::cmp::Ordering {
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
const HUGE: f64 = f64::from_bits((1019 + 1023) << 52); // 2^1019

/// Which of the two neighbours `lo < x < hi` (indices `k`, `k + 1`) a rounding picks, given how
/// `x` compares with their midpoint, the fraction of the way from `lo` to `hi`, and `x`'s sign;
/// `draw` gives stochastic rounding's uniform draw (called only for it).
#[inline]
fn pick_upper(
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
        self.check_holds::<T>()?;
        T::run_grid(GridJob::Grid {
            grid: self,
            x,
            out,
            rounding: rounding.resolve(),
            start: 0,
        });
        Ok(())
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
    fn run<T: Element>(&self, x: &[T], out: &mut [T], rounding: Rounding, start: u64) {
        let key = match rounding {
            Rounding::Stochastic { seed } => stream_key(seed),
            _ => 0,
        };
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
        let (first, last) = self.span();
        check_holds::<T>("level", first, false)?;
        check_holds::<T>("level", last, false)?;
        T::run_grid(GridJob::Levels {
            levels: self,
            x,
            out,
            rounding: rounding.resolve(),
            start: 0,
        });
        Ok(())
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

    fn run<T: Element>(&self, x: &[T], out: &mut [T], rounding: Rounding, start: u64) {
        let key = match rounding {
            Rounding::Stochastic { seed } => stream_key(seed),
            _ => 0,
        };
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
    fn run_indices<T: Element>(&self, x: &[T], out: &mut [u32], rounding: Rounding) {
        let key = match rounding {
            Rounding::Stochastic { seed } => stream_key(seed),
            _ => 0,
        };
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

/// Writes the clip mask of `data` (values below `lo` or above `hi`; never NaN) when asked, then
/// runs `f(x, out)`: in place through a copy of the input.
fn part_through<T: Element>(
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
