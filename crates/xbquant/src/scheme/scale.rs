//! Scale rules: how a group's scale is chosen (a power of two from its largest magnitude, by a
//! search for the best SQNR, its shared exponent, given values, or a real range such as the
//! abs-max or a percentile), and [`Observation`], the statistics of a tensor gathered part by
//! part for the rules that read the data.

use crate::scheme::converter::ConverterRange;
use crate::scheme::grouped;
use crate::scheme::groups::{FracLengthRule, GroupJob};
use crate::Part;
use crate::{Element, Error};

/// How the scale of each group is chosen.
///
/// Power-of-two scales are fractional lengths of a fixed-point element format: exact, the
/// hardware-friendly case. A [`Range`](Scale::Range) `r` is a real scale: an element becomes
/// `r * Q(x / r + noise)`, rounded to the element type at each step, as XBTorch's and aihwkit's
/// converters compute it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scale {
    /// No scale: the element format's own values.
    None,
    /// A power of two chosen per group from the data by the rule (QKeras' `auto_po2`, Brevitas'
    /// power-of-two scaling).
    PowerOfTwo(FracLengthRule),
    /// Block floating point's shared exponent: the group's largest finite magnitude keeps its
    /// leading bit in the word's top magnitude bit (`fl = wl - 2 - e` for a signed word whose
    /// largest magnitude has exponent `e`), and larger codes saturate.
    SharedExponent,
    /// Given fractional lengths, one per group.
    FracLengths(Vec<i32>),
    /// A real range per group.
    Range(ConverterRange),
}

impl Scale {
    /// Whether the scales come from the data (then a call needs the whole tensor, or an
    /// [`Observation`] of it).
    #[must_use]
    pub fn reads_data(&self) -> bool {
        matches!(
            self,
            Scale::PowerOfTwo(_)
                | Scale::SharedExponent
                | Scale::Range(ConverterRange::AbsMax | ConverterRange::Percentile(_))
        )
    }
}

/// The statistics of a tensor for the scale rules that read the data, gathered part by part:
/// each group's largest finite magnitude, and for a percentile range the group's finite
/// magnitudes (eight bytes per element: a percentile needs them all).
///
/// # Examples
///
/// ```
/// use xbquant::{Observation, Part, Quantizer, Scheme};
/// let s: Scheme = "fixed<6,0> group=axis:1 scale=pow2".parse()?;
/// let w: Vec<f32> = (0..12).map(|i| i as f32 * 0.37 - 2.0).collect(); // 3 x 4
/// let shape = [3, 4];
/// let mut seen = Observation::default();
/// for (k, x) in w.chunks(5).enumerate() {
///     s.observe(x, Part::shaped(&shape)?.at(5 * k), &mut seen)?;
/// }
/// let fixed = s.calibrate::<f32>(&seen)?; // the scales now given: quantize part by part
/// assert_eq!(fixed.quantize_shaped(&w, &shape)?, s.quantize_shaped(&w, &shape)?);
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    maxima: Vec<f64>,
    magnitudes: Vec<Vec<f64>>,
    /// Elements seen.
    seen: usize,
}

impl Observation {
    /// Each group's largest finite magnitude so far (empty before the first part).
    #[must_use]
    pub fn maxima(&self) -> &[f64] {
        &self.maxima
    }

    /// Elements seen so far.
    #[must_use]
    pub const fn seen(&self) -> usize {
        self.seen
    }

    /// Adds a part of a tensor: `x` from `part.start()`, `inner` and `count` its layout.
    pub(crate) fn add<T: Element>(
        &mut self,
        x: &[T],
        part: Part<'_>,
        (inner, count): (usize, usize),
        keep: bool,
    ) -> Result<(), Error> {
        if self.maxima.is_empty() {
            self.maxima = vec![0.0; count];
            if keep {
                self.magnitudes = vec![Vec::new(); count];
            }
        }
        if self.maxima.len() != count || (keep && self.magnitudes.len() != count) {
            return Err(Error::InvalidBlocks(format!(
                "an observation of {} groups for a tensor of {count}",
                self.maxima.len()
            )));
        }
        T::run_groups(GroupJob::MaxPart {
            x,
            start: part.start(),
            inner,
            count,
            top: &mut self.maxima,
        });
        if keep {
            let inner = if count == 1 { usize::MAX } else { inner };
            grouped::for_runs(part.start(), inner, count, x.len(), |i, b, n| {
                let m = &mut self.magnitudes[b];
                m.extend(
                    x[i..i + n]
                        .iter()
                        .map(|v| v.to_f64().abs())
                        .filter(|a| a.is_finite()),
                );
            });
        }
        self.seen += x.len();
        Ok(())
    }

    /// Each group's `p`-th percentile of its finite magnitudes (see [`percentile`]).
    pub(crate) fn percentiles(&self, p: f64) -> Vec<f64> {
        self.magnitudes
            .iter()
            .map(|m| percentile(&mut m.clone(), p))
            .collect()
    }
}

/// The `p`-th percentile (0 to 100) of `values` (finite), by linear interpolation between the
/// order statistics at `(n - 1) p / 100`, as `numpy.percentile`'s default (`linear`) method
/// computes it; 0 for no values. `values` is reordered.
///
/// `O(n)`: two selections, no sort.
pub(crate) fn percentile(values: &mut [f64], p: f64) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let h = (n - 1) as f64 * (p / 100.0);
    let lo = h.floor();
    let t = h - lo;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let lo = (lo as usize).min(n - 1);
    let (_, &mut a, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
    // The next order statistic: the least of those above (none past the last).
    let b = if above.is_empty() {
        a
    } else {
        above.iter().copied().fold(f64::INFINITY, f64::min)
    };
    // numpy's lerp: from the nearer end, so that t = 1 gives b exactly.
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentile_interpolates_between_order_statistics() {
        let mut v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&mut v, 0.0), 1.0);
        assert_eq!(percentile(&mut v, 100.0), 4.0);
        assert_eq!(percentile(&mut v, 50.0), 2.5); // h = 1.5
        assert_eq!(percentile(&mut v, 25.0), 1.75); // h = 0.75
        assert_eq!(percentile(&mut [7.0], 30.0), 7.0);
        assert_eq!(percentile(&mut [], 30.0), 0.0);
        assert_eq!(percentile(&mut [2.0, 2.0, 2.0], 40.0), 2.0);
    }
}
