//! The counter-based random numbers of stochastic rounding: the draw of element `i` is a pure
//! function of `(seed, i)`, so chunking and thread count cannot change a result. The one
//! definition of the generator; [`noise`] publishes it for reimplementations on other devices
//! (the Python package's torch path reads its constants from here).

/// The step between the counters of neighbouring elements (the golden ratio in 64 bits, odd).
pub(crate) const STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// The multipliers of [`mix64`].
pub(crate) const MIX: [u64; 2] = [0xBF58_476D_1CE4_E5B9, 0x94D0_49BB_1331_11EB];
/// The shifts of [`mix64`].
pub(crate) const SHIFTS: [u32; 3] = [30, 27, 31];
/// What a seed is combined with (by XOR) before it is mixed into a stream key.
pub(crate) const SEED_SALT: u64 = 0x6A09_E667_F3BC_C909;

/// The SplitMix64 output function: a bijective 64-bit mixer with full avalanche.
#[inline(always)]
pub(crate) const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> SHIFTS[0])).wrapping_mul(MIX[0]);
    z = (z ^ (z >> SHIFTS[1])).wrapping_mul(MIX[1]);
    z ^ (z >> SHIFTS[2])
}

/// The per-call key of a seed; keys of neighbouring seeds are unrelated.
#[inline]
pub(crate) const fn stream_key(seed: u64) -> u64 {
    mix64(seed ^ SEED_SALT)
}

/// The counter of element `index` in the stream `key`: the next element's is this plus [`STEP`],
/// so a loop steps it with one addition.
#[inline(always)]
pub(crate) const fn counter(key: u64, index: u64) -> u64 {
    key.wrapping_add(index.wrapping_mul(STEP))
}

/// The uniform draw in `[0, 1)` of a counter: the top 52 bits of its mix, as a multiple of
/// `2^-52`. The noise of the converters; stochastic rounding draws with [`draw`].
#[inline(always)]
pub(crate) fn uniform(counter: u64) -> f64 {
    f64::from_bits(0x3FF0_0000_0000_0000 | (mix64(counter) >> 12)) - 1.0
}

/// The step of the 32-bit counter of [`hash32`] (the golden ratio in 32 bits, odd): element
/// `i`'s counter is `i * WEYL` (wrapping), so a loop steps it with one addition.
pub(crate) const WEYL: u32 = 0x9E37_79B9;
/// The multipliers of [`hash32`].
pub(crate) const HASH_MUL: [u32; 2] = [0x21F0_AAAD, 0x735A_2D97];
/// The shifts of [`hash32`].
pub(crate) const HASH_SHIFTS: [u32; 3] = [16, 15, 15];
/// What a stream's block counter is combined with (by XOR) before it is mixed into the two
/// 32-bit keys of [`hash32`].
pub(crate) const BLOCK_SALT: u64 = 0xBB67_AE85_84CA_A73B;
/// Bits of a draw from [`hash32`] (the high part) and from [`mix64`] (the low part).
pub(crate) const HIGH_BITS: u32 = 32;
pub(crate) const LOW_BITS: u32 = 20;

/// The two keys of [`hash32`] for the stream indices `block * 2^32 .. (block + 1) * 2^32` of
/// the stream `key`: the low and high halves of one [`mix64`].
#[inline]
#[allow(clippy::cast_possible_truncation)]
pub(crate) const fn hash_keys(key: u64, block: u64) -> [u32; 2] {
    let k = mix64(counter(key, block) ^ BLOCK_SALT);
    [k as u32, (k >> 32) as u32]
}

/// A 32-bit hash built from 32-bit multiplies, which AVX2 vectorizes (64-bit ones it does not):
/// a bijection of the counter `w` for each pair of keys, the first key entering before the
/// first multiply and the second before the second.
#[inline(always)]
pub(crate) const fn hash32(w: u32, keys: [u32; 2]) -> u32 {
    let mut x = w ^ keys[0];
    x = (x ^ (x >> HASH_SHIFTS[0])).wrapping_mul(HASH_MUL[0]);
    x = (x ^ (x >> HASH_SHIFTS[1]) ^ keys[1]).wrapping_mul(HASH_MUL[1]);
    x ^ (x >> HASH_SHIFTS[2])
}

/// The high 32 bits of the draw of element `index` in stream `key`.
#[inline]
#[allow(clippy::cast_possible_truncation)]
pub(crate) const fn draw_high(key: u64, index: u64) -> u32 {
    hash32(
        (index as u32).wrapping_mul(WEYL),
        hash_keys(key, index >> 32),
    )
}

/// The draw of stochastic rounding of element `index` in stream `key`, in `[0, 1)`: 52 bits,
/// the high 32 from [`hash32`] and the low 20 from [`mix64`] of the element's counter. A
/// vector loop decides almost every element from the high bits alone (see the kernel's
/// `Draws`) and computes this only where they cannot decide.
#[inline]
#[allow(clippy::cast_precision_loss)]
pub(crate) fn draw(key: u64, index: u64) -> f64 {
    let low = mix64(counter(key, index)) >> (64 - LOW_BITS);
    let bits = (u64::from(draw_high(key, index)) << LOW_BITS) | low;
    bits as f64 * (1.0 / (1u64 << (HIGH_BITS + LOW_BITS)) as f64)
}

/// The noise of stochastic rounding, published. With wrapping arithmetic, `mix64` SplitMix64's
/// output function (`z ^= z >> 30; z *= MIX[0]; z ^= z >> 27; z *= MIX[1]; z ^= z >> 31`) and
/// `key = stream_key(seed) = mix64(seed ^ SEED_SALT)`, the draw of element `index` is
/// `(high << 20 | low) * 2^-52`, 52 bits in `[0, 1)`, where:
///
/// - `low` is the top 20 bits of `mix64(key + index * STEP)`;
/// - `high = hash32(lo * WEYL, k)`, 32 bits, with `lo` the low 32 bits of `index` and `k` the
///   low and high halves of `mix64((key + (index >> 32) * STEP) ^ BLOCK_SALT)`;
/// - `hash32(w, k)`: `x = w ^ k[0]; x ^= x >> 16; x *= HASH_MUL[0]; x ^= (x >> 15) ^ k[1];
///   x *= HASH_MUL[1]; x ^= x >> 15` in 32-bit arithmetic (`x ^= (x >> 15) ^ k[1]` takes the
///   shift of the old `x`).
///
/// Element `i` rounds up when its draw is below the fraction of its scaled value. The high
/// part, from 32-bit multiplies, decides all but about one element in `2^24` (`f32`) or `2^31`
/// (`f64`), so vector loops draw it alone, on AVX2 as on AVX-512.
///
/// For code that must draw the same noise elsewhere (the Python package's torch operations on
/// GPUs read these constants); everything else should call the quantize functions.
///
/// # Examples
///
/// ```
/// use xbquant::{noise, FixedPoint, Rounding};
/// let fmt = FixedPoint::new(8, 0)?;
/// let x = [0.5f64; 4];
/// let q = fmt.quantize(&x, Rounding::Stochastic { seed: 5 });
/// for i in 0..4 {
///     let up = noise::draw(5, i) < 0.5;
///     assert_eq!(q[i as usize], if up { 1.0 } else { 0.0 });
/// }
/// # Ok::<(), xbquant::Error>(())
/// ```
pub mod noise {
    /// The step between the 64-bit counters of neighbouring elements.
    pub const STEP: u64 = super::STEP;
    /// The two multipliers of the 64-bit mixer.
    pub const MIX: [u64; 2] = super::MIX;
    /// The three right shifts of the 64-bit mixer.
    pub const SHIFTS: [u32; 3] = super::SHIFTS;
    /// XORed into a seed before it is mixed into the stream key.
    pub const SEED_SALT: u64 = super::SEED_SALT;
    /// The step between the 32-bit counters of neighbouring elements.
    pub const WEYL: u32 = super::WEYL;
    /// The two multipliers of the 32-bit hash.
    pub const HASH_MUL: [u32; 2] = super::HASH_MUL;
    /// The three right shifts of the 32-bit hash.
    pub const HASH_SHIFTS: [u32; 3] = super::HASH_SHIFTS;
    /// XORed into a block's counter before it is mixed into the keys of the 32-bit hash.
    pub const BLOCK_SALT: u64 = super::BLOCK_SALT;
    /// Bits of resolution of a draw: draws are multiples of `2^-DRAW_BITS` in `[0, 1)`.
    pub const DRAW_BITS: u32 = super::HIGH_BITS + super::LOW_BITS;
    /// Bits of a draw from the 32-bit hash (the rest come from the 64-bit mixer).
    pub const HIGH_BITS: u32 = super::HIGH_BITS;

    /// The stream key of a seed.
    #[must_use]
    pub const fn stream_key(seed: u64) -> u64 {
        super::stream_key(seed)
    }

    /// The two keys of the 32-bit hash for the stream indices `block * 2^32 ..
    /// (block + 1) * 2^32` under `seed`.
    #[must_use]
    pub const fn hash_keys(seed: u64, block: u64) -> [u32; 2] {
        super::hash_keys(super::stream_key(seed), block)
    }

    /// The draw, in `[0, 1)`, of element `index` under `seed`.
    #[must_use]
    pub fn draw(seed: u64, index: u64) -> f64 {
        super::draw(super::stream_key(seed), index)
    }

    /// The uniform draw in `[0, 1)` of index `index` of the stream `key` (a [`stream_key`]):
    /// the top 52 bits of the 64-bit mix of its counter. The converters' noise draws these.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::noise;
    /// let key = noise::stream_key(7);
    /// let u = noise::uniform(key, 3);
    /// assert!((0.0..1.0).contains(&u));
    /// assert_eq!(u, noise::uniform(key, 3)); // a pure function of (key, index)
    /// ```
    #[must_use]
    #[inline(always)]
    pub fn uniform(key: u64, index: u64) -> f64 {
        super::uniform(super::counter(key, index))
    }

    /// The 64 random bits of index `index` of the stream `key`: the 64-bit mix of its counter,
    /// whose top 52 bits [`uniform`] returns as a fraction. The analog tiles' `f32` noise
    /// takes two draws from each.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::noise;
    /// let key = noise::stream_key(7);
    /// let bits = noise::bits(key, 3);
    /// assert_eq!((bits >> 12) as f64 * 2f64.powi(-52), noise::uniform(key, 3));
    /// ```
    #[must_use]
    #[inline(always)]
    pub fn bits(key: u64, index: u64) -> u64 {
        super::mix64(super::counter(key, index))
    }

    /// A standard Gaussian draw of index `index` of the stream `key`: Box-Muller on the uniform
    /// draws `2 index` and `2 index + 1` (the first as `1 - u`, in `(0, 1]`). The converters'
    /// Gaussian noise, and the analog tiles'.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::noise;
    /// let key = noise::stream_key(1);
    /// let n = 20_000u64;
    /// let mean = (0..n).map(|i| noise::gaussian(key, i)).sum::<f64>() / n as f64;
    /// assert!(mean.abs() < 0.03);
    /// ```
    #[must_use]
    pub fn gaussian(key: u64, index: u64) -> f64 {
        let u1 = 1.0 - uniform(key, index.wrapping_mul(2));
        let u2 = uniform(key, index.wrapping_mul(2).wrapping_add(1));
        (-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos()
    }

    /// Two independent standard Gaussian draws from one Box-Muller transform of the uniform
    /// draws `2 pair` and `2 pair + 1` of the stream `key`: the cosine one is
    /// [`gaussian`]`(key, pair)`, the sine one its partner. Half the cost per draw, for callers
    /// that index their draws as `2 pair` and `2 pair + 1` (the analog tiles).
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::noise;
    /// let key = noise::stream_key(3);
    /// let (a, b) = noise::gaussian_pair(key, 10);
    /// assert_eq!(a, noise::gaussian(key, 10));
    /// assert_ne!(a, b);
    /// ```
    #[must_use]
    pub fn gaussian_pair(key: u64, pair: u64) -> (f64, f64) {
        let u1 = 1.0 - uniform(key, pair.wrapping_mul(2));
        let u2 = uniform(key, pair.wrapping_mul(2).wrapping_add(1));
        let r = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (core::f64::consts::TAU * u2).sin_cos();
        (r * cos, r * sin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The high parts of a stream's draws as centred uniforms.
    fn centred(seed: u64, n: usize) -> Vec<f64> {
        let key = stream_key(seed);
        (0..n as u64)
            .map(|i| f64::from(draw_high(key, i)) * (1.0 / 4_294_967_296.0) - 0.5)
            .collect()
    }

    /// The correlation of `a[i]` and `b[i + lag]` in standard errors (each is `1/12` in
    /// variance, so `z = 12 * mean(a * b) * sqrt(n)` for independent uniforms).
    fn z(a: &[f64], b: &[f64], lag: usize) -> f64 {
        let n = a.len() - lag;
        let sum: f64 = a[..n].iter().zip(&b[lag..]).map(|(x, y)| x * y).sum();
        12.0 * sum / n as f64 * (n as f64).sqrt()
    }

    /// The 32-bit hash's draws are uniform, and neither neighbours nor elements at power-of-two
    /// distances nor two seeds' draws of the same element correlate. (Power-of-two distances
    /// catch a hash of plain sequential counters: the same hash fed `index + key` instead of
    /// the `index * WEYL` counter measured 13 standard errors at a distance of 16384 here.)
    #[test]
    fn draws_are_uniform_and_uncorrelated() {
        let n = 1 << 20;
        let streams: Vec<Vec<f64>> = [0u64, 1, 2, 12_345].map(|s| centred(s, n)).into();
        for u in &streams {
            let mut counts = [0u32; 256];
            for &v in u {
                counts[((v + 0.5) * 256.0) as usize] += 1;
            }
            let e = n as f64 / 256.0;
            let chi2: f64 = counts.iter().map(|&c| (f64::from(c) - e).powi(2) / e).sum();
            assert!(
                chi2 < 350.0,
                "chi-square {chi2} with 255 degrees of freedom"
            );
            let lags = (0..17).map(|k| 1usize << k).chain([3, 5, 1000, 3072]);
            for lag in lags {
                let z = z(u, u, lag);
                assert!(z.abs() < 6.0, "lag {lag}: {z} standard errors");
            }
        }
        for (a, b) in [(0, 1), (1, 2), (2, 3), (0, 3)] {
            let z = z(&streams[a], &streams[b], 0);
            assert!(z.abs() < 6.0, "streams {a} and {b}: {z} standard errors");
        }
    }

    /// The published draw is the high part with the low bits below it.
    #[test]
    fn draw_joins_high_and_low_parts() {
        let key = stream_key(77);
        for index in [0, 1, 2, 1 << 32, (1 << 32) + 9, u64::MAX] {
            let bits = draw(key, index) * (1u64 << 52) as f64;
            assert_eq!(bits.fract(), 0.0);
            let bits = bits as u64;
            assert_eq!(bits >> 20, u64::from(draw_high(key, index)));
            assert_eq!(bits & 0xF_FFFF, mix64(counter(key, index)) >> 44);
        }
    }
}
