//! The tests' own deterministic data (not the crate's).
#![allow(dead_code)]

/// `len` 64-bit draws of a xorshift generator seeded by `seed`.
fn draws(len: usize, seed: u64) -> impl Iterator<Item = u64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len).map(move |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    })
}

/// Values uniform in `[-scale, scale)`.
pub fn data(len: usize, scale: f64, seed: u64) -> Vec<f64> {
    draws(len, seed)
        .map(|s| ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale)
        .collect()
}

/// Integers in `[-span, span]`.
pub fn codes(len: usize, span: i64, seed: u64) -> Vec<i64> {
    draws(len, seed)
        .map(|s| (s % (2 * span as u64 + 1)) as i64 - span)
        .collect()
}
