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
/// `2^-52`.
#[inline(always)]
pub(crate) fn uniform(counter: u64) -> f64 {
    f64::from_bits(0x3FF0_0000_0000_0000 | (mix64(counter) >> 12)) - 1.0
}

/// The noise of stochastic rounding, published: the draw of element `index` under `seed` is
/// `uniform(mix64(stream_key(seed) + index * STEP))` (wrapping 64-bit arithmetic), where
/// `mix64` is SplitMix64's output function (`z ^= z >> 30; z *= MIX[0]; z ^= z >> 27;
/// z *= MIX[1]; z ^= z >> 31`), `stream_key(seed) = mix64(seed ^ SEED_SALT)`, and `uniform(z)`
/// is the top 52 bits of `z` times `2^-52`. Element `i` rounds up when its draw is below the
/// fraction of its scaled value.
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
    /// The step between the counters of neighbouring elements.
    pub const STEP: u64 = super::STEP;
    /// The two multipliers of the mixer.
    pub const MIX: [u64; 2] = super::MIX;
    /// The three right shifts of the mixer.
    pub const SHIFTS: [u32; 3] = super::SHIFTS;
    /// XORed into a seed before it is mixed into the stream key.
    pub const SEED_SALT: u64 = super::SEED_SALT;
    /// Bits of resolution of a draw: draws are multiples of `2^-DRAW_BITS` in `[0, 1)`.
    pub const DRAW_BITS: u32 = 52;

    /// The stream key of a seed.
    #[must_use]
    pub const fn stream_key(seed: u64) -> u64 {
        super::stream_key(seed)
    }

    /// The draw, in `[0, 1)`, of element `index` under `seed`.
    #[must_use]
    pub fn draw(seed: u64, index: u64) -> f64 {
        super::uniform(super::counter(super::stream_key(seed), index))
    }
}
