//! Phase-change memory devices: weights mapped to conductance pairs, programming noise, drift
//! and read noise over time, as aihwkit's `PCMLikeNoiseModel` (fitted on measured PCM devices,
//! Nandakumar et al., ICECS 2019) and `SinglePairConductanceConverter` compute them. Every draw
//! comes from the seed and the element's index, on a stream of its own per kind of draw.

use xbquant::noise;

use crate::float::Float;
use crate::Error;

/// aihwkit's lower clip of relative conductances before their logarithm.
const ZERO_CLIP: f64 = 1e-7;

/// The streams of the PCM draws (distinct from the tiles').
const PROGRAMMING: u64 = 101;
const DRIFT: u64 = 102;
const READ: u64 = 103;

/// The key of a stream of draws of a device model: a kind of draw (`stream`) under `seed`.
pub(crate) fn key(seed: u64, stream: u64) -> u64 {
    noise::stream_key(noise::stream_key(seed) ^ noise::STEP.wrapping_mul(stream))
}

/// The PCM model's parameters, with aihwkit's names and defaults (`PcmLikeNoise::default()`):
/// conductances up to `g_max = 25` uS, the programming polynomial `[0.26348, 1.9650, -1.1731]`
/// fitted at 25 uS, `t_0 = 20` s, `t_read = 250` ns, every scale 1.
///
/// # Examples
///
/// ```
/// use xbquant_analog::PcmLikeNoise;
/// let pcm = PcmLikeNoise::default();
/// let (g_plus, g_minus, ratio) = pcm.to_conductances(&[0.5f64, -1.0, 0.0])?;
/// assert_eq!(g_plus, [12.5, 0.0, 0.0]);
/// assert_eq!(g_minus, [0.0, 25.0, 0.0]);
/// let programmed = pcm.programming_noise(&g_plus, 7)?;
/// let nu = pcm.drift_coefficients(&g_plus, 7)?;
/// let after_a_day = pcm.drift(&programmed, &nu, 86_400.0, 7)?;
/// assert!(after_a_day[0] < 14.0 && after_a_day[0] > 5.0);
/// assert_eq!(pcm.from_conductances(&g_plus, &g_minus, ratio)?, [0.5, -1.0, 0.0]);
/// # Ok::<(), xbquant_analog::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PcmLikeNoise {
    /// The largest conductance, in uS: the largest weight's magnitude maps to it.
    pub g_max: f64,
    /// The smallest conductance, in uS: a zero weight maps to it.
    pub g_min: f64,
    /// The programming noise's standard deviation, a polynomial in `g / g_max`.
    pub prog_coeff: Vec<f64>,
    /// The `g_max` at which `prog_coeff` was fitted (it scales the polynomial).
    pub prog_coeff_g_max_reference: f64,
    /// The 1/f read noise's time constant, in seconds.
    pub t_read: f64,
    /// The time of the first read after programming, in seconds (drift counts from it).
    pub t_0: f64,
    /// A factor on the programming noise.
    pub prog_noise_scale: f64,
    /// A factor on the read noise.
    pub read_noise_scale: f64,
    /// A factor on the drift coefficients.
    pub drift_scale: f64,
}

impl Default for PcmLikeNoise {
    fn default() -> Self {
        PcmLikeNoise {
            g_max: 25.0,
            g_min: 0.0,
            prog_coeff: vec![0.26348, 1.9650, -1.1731],
            prog_coeff_g_max_reference: 25.0,
            t_read: 250.0e-9,
            t_0: 20.0,
            prog_noise_scale: 1.0,
            read_noise_scale: 1.0,
            drift_scale: 1.0,
        }
    }
}

fn nonnegative(name: &'static str, v: f64) -> Result<(), Error> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter(
            name,
            format!("must be finite and 0 or more, got {v}"),
        ))
    }
}

impl PcmLikeNoise {
    /// Checks the parameters: `0 <= g_min < g_max`, positive times and reference, finite
    /// coefficients, scales of 0 or more.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming the field.
    pub fn check(&self) -> Result<(), Error> {
        nonnegative("g_min", self.g_min)?;
        if !(self.g_max.is_finite() && self.g_max > self.g_min) {
            return Err(Error::InvalidParameter(
                "g_max",
                format!(
                    "must be finite and above g_min ({}), got {}",
                    self.g_min, self.g_max
                ),
            ));
        }
        for (name, v) in [
            ("t_read", self.t_read),
            ("t_0", self.t_0),
            (
                "prog_coeff_g_max_reference",
                self.prog_coeff_g_max_reference,
            ),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::InvalidParameter(
                    name,
                    format!("must be finite and above 0, got {v}"),
                ));
            }
        }
        for (name, v) in [
            ("prog_noise_scale", self.prog_noise_scale),
            ("read_noise_scale", self.read_noise_scale),
            ("drift_scale", self.drift_scale),
        ] {
            nonnegative(name, v)?;
        }
        if self.prog_coeff.is_empty() || self.prog_coeff.iter().any(|c| !c.is_finite()) {
            return Err(Error::InvalidParameter(
                "prog_coeff",
                "must hold at least one coefficient, all finite".into(),
            ));
        }
        Ok(())
    }

    /// The weights `w` as a pair of conductances each (aihwkit's `SinglePairConductanceConverter`):
    /// scaled by `(g_max - g_min) / max|w|` (the ratio returned), the positive part on the first
    /// device and the negative part on the second, each plus `g_min`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for bad parameters or a weight that is not finite.
    pub fn to_conductances<T: Float>(&self, w: &[T]) -> Result<(Vec<T>, Vec<T>, f64), Error> {
        self.check()?;
        single_pair(w, self.g_min, self.g_max)
    }

    /// The weights of a pair of conductances: `((g+ - g_min) - (g- - g_min)) / ratio`.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when the two halves differ in length; [`Error::InvalidParameter`]
    /// for a ratio that is not finite and positive.
    pub fn from_conductances<T: Float>(
        &self,
        g_plus: &[T],
        g_minus: &[T],
        ratio: f64,
    ) -> Result<Vec<T>, Error> {
        from_pair(g_plus, g_minus, ratio, self.g_min)
    }

    /// Programmed conductances: each target `g` plus Gaussian noise of standard deviation
    /// `prog_noise_scale * (c0 + c1 (g/g_max) + c2 (g/g_max)^2 + ...) * g_max / reference`,
    /// clipped at 0 (aihwkit's `apply_programming_noise_to_conductance`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for bad parameters.
    pub fn programming_noise<T: Float>(&self, g: &[T], seed: u64) -> Result<Vec<T>, Error> {
        self.check()?;
        let k = key(seed, PROGRAMMING);
        let (g_max, scale) = (T::of(self.g_max), T::of(self.prog_noise_scale));
        let reference = T::of(self.g_max / self.prog_coeff_g_max_reference);
        Ok(g.iter()
            .enumerate()
            .map(|(i, &target)| {
                let mut power = T::ONE;
                let mut sigma = T::of(self.prog_coeff[0]);
                for &c in &self.prog_coeff[1..] {
                    power = power * (target / g_max);
                    sigma = sigma + power * T::of(c);
                }
                let sigma = sigma * reference;
                let v = target + scale * sigma * T::of(noise::gaussian(k, i as u64));
                if v < T::ZERO {
                    T::ZERO
                } else {
                    v
                }
            })
            .collect())
    }

    /// Drift coefficients `nu` per device, drawn from aihwkit's conductance-dependent
    /// distribution: mean `clamp(-0.0155 ln(g/g_max) + 0.0244, 0.049, 0.1)`, standard deviation
    /// `clamp(-0.0125 ln(g/g_max) - 0.0059, 0.008, 0.045)`, the magnitude of the draw, times
    /// `drift_scale`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for bad parameters.
    pub fn drift_coefficients<T: Float>(&self, g: &[T], seed: u64) -> Result<Vec<T>, Error> {
        self.check()?;
        let k = key(seed, DRIFT);
        Ok(g.iter()
            .enumerate()
            .map(|(i, &v)| {
                let relative = (v.f64() / self.g_max).abs().max(ZERO_CLIP);
                let log = relative.ln();
                let mu = (-0.0155 * log + 0.0244).clamp(0.049, 0.1);
                let sigma = (-0.0125 * log - 0.0059).clamp(0.008, 0.045);
                let nu = (mu + sigma * noise::gaussian(k, i as u64)).abs();
                T::of(nu * self.drift_scale)
            })
            .collect())
    }

    /// The conductances read `t_inference` seconds after programming (counted from `t_0`):
    /// drift `g (t / t_0)^-nu` with `t = t_inference + t_0`, then 1/f read noise of relative
    /// standard deviation `min(0.0088 / max((g/g_max)^0.65, 1e-3), 0.2) * sqrt(ln((t + t_read) /
    /// (2 t_read)))`, clipped at 0 (aihwkit's `apply_drift_noise_to_conductance`). Reading at
    /// several times reuses the same programmed state and `nu`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for bad parameters or a negative or non-finite time;
    /// [`Error::ShapeMismatch`] when `nu` and `g_prog` differ in length.
    pub fn drift<T: Float>(
        &self,
        g_prog: &[T],
        nu: &[T],
        t_inference: f64,
        seed: u64,
    ) -> Result<Vec<T>, Error> {
        self.check()?;
        drift_arguments(t_inference, nu.len(), g_prog.len())?;
        let k = key(seed, READ);
        let t = t_inference + self.t_0;
        let growth = ((t + self.t_read) / (2.0 * self.t_read)).ln().sqrt();
        Ok(g_prog
            .iter()
            .zip(nu)
            .enumerate()
            .map(|(i, (&g, &n))| {
                let g = g.f64();
                let drifted = if t > self.t_0 {
                    g * (t / self.t_0).powf(-n.f64())
                } else {
                    g
                };
                let q = (0.0088 / ((g.abs() / self.g_max).powf(0.65)).max(1e-3)).min(0.2);
                let read = drifted
                    + drifted.abs()
                        * self.read_noise_scale
                        * q
                        * growth
                        * noise::gaussian(k, i as u64);
                T::of(read.max(0.0))
            })
            .collect())
    }
}

/// aihwkit's single-pair mapping between `g_min` and `g_max` (the parameters checked).
pub(crate) fn single_pair<T: Float>(
    w: &[T],
    g_min: f64,
    g_max: f64,
) -> Result<(Vec<T>, Vec<T>, f64), Error> {
    if w.iter().any(|v| !v.f64().is_finite()) {
        return Err(Error::InvalidParameter(
            "w",
            "must hold finite weights".into(),
        ));
    }
    let abs_max = w
        .iter()
        .fold(T::ZERO, |m, v| if v.abs() > m { v.abs() } else { m });
    let clipped = if abs_max.f64() < ZERO_CLIP {
        T::of(ZERO_CLIP)
    } else {
        abs_max
    };
    let ratio = T::of(g_max - g_min) / clipped;
    let (top, bottom) = (T::of(g_max), T::of(g_min));
    let clip = |v: T| {
        if v < T::ZERO {
            T::ZERO
        } else if v > top {
            top
        } else {
            v
        }
    };
    let plus = w.iter().map(|&v| clip(v * ratio) + bottom).collect();
    let minus = w
        .iter()
        .map(|&v| clip(T::ZERO - v * ratio) + bottom)
        .collect();
    Ok((plus, minus, ratio.f64()))
}

/// The weights of a pair of conductances mapped with `g_min`.
pub(crate) fn from_pair<T: Float>(
    g_plus: &[T],
    g_minus: &[T],
    ratio: f64,
    g_min: f64,
) -> Result<Vec<T>, Error> {
    if g_plus.len() != g_minus.len() {
        return Err(Error::ShapeMismatch(format!(
            "{} positive and {} negative conductances",
            g_plus.len(),
            g_minus.len()
        )));
    }
    if !(ratio.is_finite() && ratio > 0.0) {
        return Err(Error::InvalidParameter(
            "ratio",
            format!("must be finite and above 0, got {ratio}"),
        ));
    }
    let (g_min, ratio) = (T::of(g_min), T::of(ratio));
    Ok(g_plus
        .iter()
        .zip(g_minus)
        .map(|(&p, &m)| ((p - g_min) - (m - g_min)) / ratio)
        .collect())
}

/// The checks of a drift call: a finite time of 0 or more, and a drift coefficient per device.
pub(crate) fn drift_arguments(t: f64, coefficients: usize, devices: usize) -> Result<(), Error> {
    if !(t.is_finite() && t >= 0.0) {
        return Err(Error::InvalidParameter(
            "t_inference",
            format!("must be finite and 0 or more, got {t}"),
        ));
    }
    if coefficients != devices {
        return Err(Error::ShapeMismatch(format!(
            "{coefficients} drift coefficients for {devices} conductances"
        )));
    }
    Ok(())
}
