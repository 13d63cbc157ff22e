//! The counter-based random numbers of stochastic rounding: the draw of element `i` is a pure
//! function of `(seed, i)`, so chunking and thread count cannot change a result.

/// The step between the counters of neighbouring elements (the golden ratio in 64 bits, odd).
pub(crate) const STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function: a bijective 64-bit mixer with full avalanche.
#[inline(always)]
pub(crate) const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The per-call key of a seed; keys of neighbouring seeds are unrelated.
#[inline]
pub(crate) const fn stream_key(seed: u64) -> u64 {
    mix64(seed ^ 0x6A09_E667_F3BC_C909)
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
