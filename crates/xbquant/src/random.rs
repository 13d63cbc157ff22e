//! The counter-based random numbers of stochastic rounding: the draw of element `i` is a pure
//! function of `(seed, i)`, so chunking and thread count cannot change a result.

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

/// A uniform draw in `[0, 1)`, a multiple of `2^-52`, for element `index` of the stream `key`.
#[inline(always)]
pub(crate) fn uniform(key: u64, index: u64) -> f64 {
    let bits = mix64(key.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    f64::from_bits(0x3FF0_0000_0000_0000 | (bits >> 12)) - 1.0
}
