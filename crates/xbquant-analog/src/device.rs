//! XBTorch's device model (`GenericAccelerator` in its `deployment/base.py`): Gaussian write
//! noise, power-law drift with a drift coefficient per device, uniform read noise, every value
//! clipped to `[g_min, g_max]`, and devices stuck at `g_min` or `g_max`. Its methods have the
//! names of [`PcmLikeNoise`](crate::PcmLikeNoise)'s, so a layer programs either; every draw comes
//! from the seed and the element's index.

use xbquant::noise;

use crate::float::Float;
use crate::Error;

const WRITE: u64 = 201;
const STUCK: u64 = 202;
const DRIFT: u64 = 203;
const READ: u64 = 204;

use crate::pcm::key;

/// XBTorch's device parameters, with its names and defaults (`XbtorchDevice::default()`:
/// conductances between 50 and 100, no noise, no drift, no stuck devices).
///
/// # Examples
///
/// ```
/// use xbquant_analog::XbtorchDevice;
/// let device = XbtorchDevice { write_noise: 2.0, stuck_fraction: 0.1, ..XbtorchDevice::default() };
/// let (g_plus, _, _) = device.to_conductances(&[1.0f64, -0.5, 0.25])?;
/// let programmed = device.programming_noise(&g_plus, 1)?;
/// assert!(programmed.iter().all(|g| (50.0..=100.0).contains(g)));
/// # Ok::<(), xbquant_analog::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct XbtorchDevice {
    /// The smallest conductance: a zero weight, and the lower clip.
    pub g_min: f64,
    /// The largest conductance: the largest weight's magnitude, and the upper clip.
    pub g_max: f64,
    /// The standard deviation of the Gaussian noise added when a device is written.
    pub write_noise: f64,
    /// The half-width of the uniform noise added at each read.
    pub read_noise: f64,
    /// The mean drift coefficient `nu`.
    pub drift_coefficient: f64,
    /// The standard deviation of `nu` from device to device.
    pub drift_variation: f64,
    /// The reference time of the drift `g (t / t0)^-nu`.
    pub drift_t0: f64,
    /// The fraction of devices stuck (each device independently).
    pub stuck_fraction: f64,
}

impl Default for XbtorchDevice {
    fn default() -> Self {
        XbtorchDevice {
            g_min: 50.0,
            g_max: 100.0,
            write_noise: 0.0,
            read_noise: 0.0,
            drift_coefficient: 0.0,
            drift_variation: 0.0,
            drift_t0: 1.0,
            stuck_fraction: 0.0,
        }
    }
}

impl XbtorchDevice {
    /// Checks the parameters: `0 <= g_min < g_max`, noises and variation of 0 or more, a
    /// positive `drift_t0`, a stuck fraction within `[0, 1]`, all finite.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming the field.
    pub fn check(&self) -> Result<(), Error> {
        for (name, v) in [
            ("g_min", self.g_min),
            ("write_noise", self.write_noise),
            ("read_noise", self.read_noise),
            ("drift_variation", self.drift_variation),
            ("stuck_fraction", self.stuck_fraction),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::InvalidParameter(
                    name,
                    format!("must be finite and 0 or more, got {v}"),
                ));
            }
        }
        if !(self.g_max.is_finite() && self.g_max > self.g_min) {
            return Err(Error::InvalidParameter(
                "g_max",
                format!(
                    "must be finite and above g_min ({}), got {}",
                    self.g_min, self.g_max
                ),
            ));
        }
        if !self.drift_coefficient.is_finite() {
            return Err(Error::InvalidParameter(
                "drift_coefficient",
                "must be finite".into(),
            ));
        }
        if !(self.drift_t0.is_finite() && self.drift_t0 > 0.0) {
            return Err(Error::InvalidParameter(
                "drift_t0",
                format!("must be finite and above 0, got {}", self.drift_t0),
            ));
        }
        if self.stuck_fraction > 1.0 {
            return Err(Error::InvalidParameter(
                "stuck_fraction",
                format!("must be at most 1, got {}", self.stuck_fraction),
            ));
        }
        Ok(())
    }

    fn clip<T: Float>(&self, v: f64) -> T {
        T::of(v.clamp(self.g_min, self.g_max))
    }

    /// The weights as a pair of conductances each, between `g_min` and `g_max` (the single-pair
    /// mapping of [`PcmLikeNoise::to_conductances`](crate::PcmLikeNoise::to_conductances)).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for bad parameters or weights that are not finite.
    pub fn to_conductances<T: Float>(&self, w: &[T]) -> Result<(Vec<T>, Vec<T>, f64), Error> {
        self.check()?;
        crate::pcm::single_pair(w, self.g_min, self.g_max)
    }

    /// Written conductances: each target plus Gaussian noise of `write_noise`, clipped to
    /// `[g_min, g_max]`; then each device stuck, with probability `stuck_fraction`, at `g_min`
    /// or `g_max` (one or the other with equal odds).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for bad parameters.
    pub fn programming_noise<T: Float>(&self, g: &[T], seed: u64) -> Result<Vec<T>, Error> {
        self.check()?;
        let (write, stuck) = (key(seed, WRITE), key(seed, STUCK));
        Ok(g.iter()
            .enumerate()
            .map(|(i, &target)| {
                let i = i as u64;
                if self.stuck_fraction > 0.0 && noise::uniform(stuck, 2 * i) < self.stuck_fraction {
                    let high = noise::uniform(stuck, 2 * i + 1) < 0.5;
                    return T::of(if high { self.g_max } else { self.g_min });
                }
                let noisy = target.f64() + self.write_noise * noise::gaussian(write, i);
                self.clip(noisy)
            })
            .collect())
    }

    /// Drift coefficients per device: `drift_coefficient` plus Gaussian variation of
    /// `drift_variation`, drawn once and kept.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for bad parameters.
    pub fn drift_coefficients<T: Float>(&self, g: &[T], seed: u64) -> Result<Vec<T>, Error> {
        self.check()?;
        let k = key(seed, DRIFT);
        Ok((0..g.len())
            .map(|i| {
                T::of(self.drift_coefficient + self.drift_variation * noise::gaussian(k, i as u64))
            })
            .collect())
    }

    /// The conductances read `t` after programming: `g (t / t0)^-nu` clipped to `[g_min,
    /// g_max]` (no drift at `t = 0`), plus uniform read noise of half-width `read_noise`,
    /// clipped again.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for bad parameters or a negative or non-finite time;
    /// [`Error::ShapeMismatch`] when `nu` and `g_prog` differ in length.
    pub fn drift<T: Float>(
        &self,
        g_prog: &[T],
        nu: &[T],
        t: f64,
        seed: u64,
    ) -> Result<Vec<T>, Error> {
        self.check()?;
        crate::pcm::drift_arguments(t, nu.len(), g_prog.len())?;
        let k = key(seed, READ);
        Ok(g_prog
            .iter()
            .zip(nu)
            .enumerate()
            .map(|(i, (&g, &n))| {
                let g = g.f64();
                let drifted = if t > 0.0 {
                    (g * (t / self.drift_t0).powf(-n.f64())).clamp(self.g_min, self.g_max)
                } else {
                    g
                };
                let read = drifted + self.read_noise * (2.0 * noise::uniform(k, i as u64) - 1.0);
                self.clip(read)
            })
            .collect())
    }

    /// The weights of a pair of conductances (as
    /// [`PcmLikeNoise::from_conductances`](crate::PcmLikeNoise::from_conductances)).
    ///
    /// # Errors
    ///
    /// As [`PcmLikeNoise::from_conductances`](crate::PcmLikeNoise::from_conductances).
    pub fn from_conductances<T: Float>(
        &self,
        g_plus: &[T],
        g_minus: &[T],
        ratio: f64,
    ) -> Result<Vec<T>, Error> {
        crate::pcm::from_pair(g_plus, g_minus, ratio, self.g_min)
    }
}
