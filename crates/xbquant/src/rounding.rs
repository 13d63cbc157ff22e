//! Rounding modes: how a scaled value `t = x * 2^fl` becomes an integer code. Owns the mode names
//! (ours and the HLS `ap_fixed` ones) and the seeds of stochastic rounding.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::random::mix64;
use crate::Error;

/// How a value between two codes picks one of them.
///
/// With `t` the value in units of the step (`t = x * 2^fl`, computed exactly):
///
/// | variant | our name | HLS name | code | ties go |
/// |---|---|---|---|---|
/// | [`NearestEven`](Rounding::NearestEven) (default) | `nearest` | `AP_RND_CONV` | nearest | to even |
/// | [`NearestUp`](Rounding::NearestUp) | `nearest-up` | `AP_RND` | nearest | toward +inf |
/// | [`NearestDown`](Rounding::NearestDown) | `nearest-down` | `AP_RND_MIN_INF` | nearest | toward -inf |
/// | [`NearestTowardZero`](Rounding::NearestTowardZero) | `nearest-toward-zero` | `AP_RND_ZERO` | nearest | toward zero |
/// | [`NearestAway`](Rounding::NearestAway) | `nearest-away` | `AP_RND_INF` | nearest | away from zero |
/// | [`Floor`](Rounding::Floor) | `floor` | `AP_TRN` | `floor(t)` | n/a |
/// | [`TowardZero`](Rounding::TowardZero) | `toward-zero` | `AP_TRN_ZERO` | `trunc(t)` | n/a |
/// | [`Stochastic`](Rounding::Stochastic) | `stochastic:SEED` | none | `floor(t) + 1` with probability `t - floor(t)` | n/a |
/// | [`StochasticFresh`](Rounding::StochasticFresh) | `stochastic` | none | as above, new noise on every call | n/a |
///
/// Every mode is exact for every finite input, whatever its magnitude: the rounding works on the
/// exactly scaled value, never with float tricks such as `x + 0.5 - 0.5`.
///
/// Stochastic rounding is unbiased (`E[q] = x` inside the range) to the resolution of its 52-bit
/// random draws, never moves a value that is already on the grid, and draws the noise of element
/// `i` from `(seed, i)` alone, so a multithreaded run equals a serial one.
///
/// # Examples
///
/// ```
/// use xbquant::{FixedPoint, Rounding};
///
/// let fmt = FixedPoint::new(4, 2)?; // step 0.25
/// let x = [0.125f32, 0.375, -0.125];
/// assert_eq!(fmt.quantize(&x, Rounding::NearestEven), [0.0, 0.5, 0.0]);
/// assert_eq!(fmt.quantize(&x, Rounding::NearestUp), [0.25, 0.5, 0.0]);
/// assert_eq!(fmt.quantize(&x, Rounding::NearestDown), [0.0, 0.25, -0.25]);
/// assert_eq!(fmt.quantize(&x, Rounding::NearestTowardZero), [0.0, 0.25, 0.0]);
/// assert_eq!(fmt.quantize(&x, Rounding::NearestAway), [0.25, 0.5, -0.25]);
/// assert_eq!(fmt.quantize(&x, Rounding::Floor), [0.0, 0.25, -0.25]);
/// assert_eq!(fmt.quantize(&[0.9f32, -0.9], Rounding::TowardZero), [0.75, -0.75]);
/// let q = fmt.quantize(&[0.1f32], Rounding::Stochastic { seed: 1 });
/// assert!(q == [0.0] || q == [0.25]);
///
/// // Names parse, ours and the HLS ones alike.
/// assert_eq!("nearest".parse::<Rounding>()?, Rounding::NearestEven);
/// assert_eq!("AP_RND_MIN_INF".parse::<Rounding>()?, Rounding::NearestDown);
/// assert_eq!("stochastic:7".parse::<Rounding>()?, Rounding::Stochastic { seed: 7 });
/// assert_eq!("stochastic".parse::<Rounding>()?, Rounding::StochasticFresh);
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Rounding {
    /// Nearest code, ties to even (`AP_RND_CONV`). The default, as in the seed, QPyTorch's CPU
    /// kernel, `torch.round` and NumPy.
    #[default]
    NearestEven,
    /// Nearest code, ties toward +inf: `floor(t + 1/2)` (`AP_RND`).
    NearestUp,
    /// Nearest code, ties toward -inf: `ceil(t - 1/2)` (`AP_RND_MIN_INF`).
    NearestDown,
    /// Nearest code, ties toward zero (`AP_RND_ZERO`).
    NearestTowardZero,
    /// Nearest code, ties away from zero (`AP_RND_INF`).
    NearestAway,
    /// Round down, toward -inf (`AP_TRN`, the HLS default).
    Floor,
    /// Round toward zero, dropping the fraction (`AP_TRN_ZERO`).
    TowardZero,
    /// Stochastic rounding with a fixed seed: the same seed gives the same output, bit for bit,
    /// whatever the thread count.
    Stochastic {
        /// The seed of the noise.
        seed: u64,
    },
    /// Stochastic rounding with new noise on every call: each call draws a fresh seed from a
    /// process-wide generator (see [`Rounding::resolve`]). Use this in training loops.
    StochasticFresh,
}

impl Rounding {
    /// Every deterministic mode, in the order of the table above.
    pub const DETERMINISTIC: [Rounding; 7] = [
        Rounding::NearestEven,
        Rounding::NearestUp,
        Rounding::NearestDown,
        Rounding::NearestTowardZero,
        Rounding::NearestAway,
        Rounding::Floor,
        Rounding::TowardZero,
    ];

    /// Stochastic rounding with a fixed seed.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Rounding};
    /// let fmt = FixedPoint::new(8, 0)?;
    /// let x = vec![0.5f32; 1000];
    /// // Same seed, same noise.
    /// assert_eq!(fmt.quantize(&x, Rounding::stochastic(3)), fmt.quantize(&x, Rounding::stochastic(3)));
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn stochastic(seed: u64) -> Rounding {
        Rounding::Stochastic { seed }
    }

    /// Whether this mode draws random numbers.
    #[inline]
    #[must_use]
    pub const fn is_stochastic(self) -> bool {
        matches!(
            self,
            Rounding::Stochastic { .. } | Rounding::StochasticFresh
        )
    }

    /// Stochastic rounding with its noise fixed by `seed`: the one check that a seed goes with
    /// a stochastic mode (fixed-point, floating-point and block formats alike).
    ///
    /// # Errors
    ///
    /// [`Error::SeedWithoutStochastic`](crate::Error::SeedWithoutStochastic) for a mode that
    /// draws no random numbers.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::Rounding;
    /// assert_eq!(Rounding::StochasticFresh.with_seed(4)?, Rounding::Stochastic { seed: 4 });
    /// assert!(Rounding::NearestEven.with_seed(4).is_err());
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn with_seed(self, seed: u64) -> Result<Rounding, crate::Error> {
        if self.is_stochastic() {
            Ok(Rounding::Stochastic { seed })
        } else {
            Err(crate::Error::SeedWithoutStochastic {
                rounding: self.name(),
            })
        }
    }

    /// Turns [`StochasticFresh`](Rounding::StochasticFresh) into
    /// [`Stochastic`](Rounding::Stochastic) with a new seed from the process-wide generator; every
    /// other mode is returned unchanged. The quantize functions call this once per call.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::Rounding;
    /// let a = Rounding::StochasticFresh.resolve();
    /// let b = Rounding::StochasticFresh.resolve();
    /// assert!(matches!(a, Rounding::Stochastic { .. }));
    /// assert_ne!(a, b);
    /// assert_eq!(Rounding::Floor.resolve(), Rounding::Floor);
    /// ```
    #[must_use]
    pub fn resolve(self) -> Rounding {
        match self {
            Rounding::StochasticFresh => Rounding::Stochastic { seed: fresh_seed() },
            other => other,
        }
    }

    /// Our name of the mode, as accepted by [`FromStr`] and printed by [`Display`](fmt::Display).
    #[must_use]
    pub fn name(self) -> String {
        match self {
            Rounding::NearestEven => "nearest".into(),
            Rounding::NearestUp => "nearest-up".into(),
            Rounding::NearestDown => "nearest-down".into(),
            Rounding::NearestTowardZero => "nearest-toward-zero".into(),
            Rounding::NearestAway => "nearest-away".into(),
            Rounding::Floor => "floor".into(),
            Rounding::TowardZero => "toward-zero".into(),
            Rounding::Stochastic { seed } => format!("stochastic:{seed}"),
            Rounding::StochasticFresh => "stochastic".into(),
        }
    }

    /// The HLS `ap_fixed` name of the mode, or `None` for stochastic rounding (no HLS type has it).
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::Rounding;
    /// assert_eq!(Rounding::NearestEven.hls_name(), Some("AP_RND_CONV"));
    /// assert_eq!(Rounding::StochasticFresh.hls_name(), None);
    /// ```
    #[must_use]
    pub const fn hls_name(self) -> Option<&'static str> {
        match self {
            Rounding::NearestEven => Some("AP_RND_CONV"),
            Rounding::NearestUp => Some("AP_RND"),
            Rounding::NearestDown => Some("AP_RND_MIN_INF"),
            Rounding::NearestTowardZero => Some("AP_RND_ZERO"),
            Rounding::NearestAway => Some("AP_RND_INF"),
            Rounding::Floor => Some("AP_TRN"),
            Rounding::TowardZero => Some("AP_TRN_ZERO"),
            Rounding::Stochastic { .. } | Rounding::StochasticFresh => None,
        }
    }
}

impl fmt::Display for Rounding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Rounding {
    type Err = Error;

    /// Parses our names (any case, `-` or `_`), the HLS names, `stochastic` (fresh noise on every
    /// call) and `stochastic:SEED` (fixed noise).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        let key = trimmed.to_ascii_lowercase().replace('_', "-");
        if let Some(seed) = key.strip_prefix("stochastic:") {
            return seed
                .trim()
                .parse::<u64>()
                .map(|seed| Rounding::Stochastic { seed })
                .map_err(|_| Error::UnknownRounding(trimmed.to_string()));
        }
        Ok(match key.as_str() {
            "nearest" | "nearest-even" | "round-nearest-even" | "ap-rnd-conv" | "convergent" => {
                Rounding::NearestEven
            }
            "nearest-up" | "ap-rnd" => Rounding::NearestUp,
            "nearest-down" | "ap-rnd-min-inf" => Rounding::NearestDown,
            "nearest-toward-zero" | "ap-rnd-zero" => Rounding::NearestTowardZero,
            "nearest-away" | "ap-rnd-inf" => Rounding::NearestAway,
            "floor" | "down" | "ap-trn" => Rounding::Floor,
            "toward-zero" | "trunc" | "truncate" | "ap-trn-zero" => Rounding::TowardZero,
            "stochastic" => Rounding::StochasticFresh,
            _ => return Err(Error::UnknownRounding(trimmed.to_string())),
        })
    }
}

/// A reproducible sequence of per-call seeds, for training loops that want new noise on every
/// call *and* a run that can be repeated: seed it once, then take one rounding per call.
///
/// # Examples
///
/// ```
/// use xbquant::{Rounding, SeedStream};
/// let mut a = SeedStream::new(42);
/// let mut b = SeedStream::new(42);
/// let first = a.next_rounding();
/// assert_ne!(first, a.next_rounding()); // new noise on each call
/// assert_eq!(first, b.next_rounding()); // the same sequence for the same seed
/// ```
#[derive(Debug, Clone)]
pub struct SeedStream {
    key: u64,
    counter: u64,
}

impl SeedStream {
    /// A stream determined by `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        SeedStream {
            key: mix64(seed ^ 0x5851_F42D_4C95_7F2D),
            counter: 0,
        }
    }

    /// A stream seeded from the process-wide generator (different in every process).
    #[must_use]
    pub fn from_entropy() -> Self {
        SeedStream::new(fresh_seed())
    }

    /// The next seed of the stream.
    pub fn next_seed(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        mix64(crate::random::counter(self.key, self.counter))
    }

    /// `Rounding::Stochastic` with the next seed of the stream.
    pub fn next_rounding(&mut self) -> Rounding {
        Rounding::Stochastic {
            seed: self.next_seed(),
        }
    }
}

/// A new seed from the process-wide generator: a per-process random key (from the standard
/// library's hasher keys) and a counter, so two calls never share a seed.
pub(crate) fn fresh_seed() -> u64 {
    static KEY: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let key = *KEY.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x243F_6A88_85A3_08D3);
        h.finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    mix64(crate::random::counter(key, n))
}
