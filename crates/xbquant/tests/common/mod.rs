//! Helpers shared by the integration tests.

use xbquant::noise;

/// Fractions on the stochastic draws of `seed`: element `i`'s own draw for even `i` (never rounds
/// up) and the next `f64` above it for odd `i` (always does). The vector loops see only a draw's
/// high bits, so these are the elements they must leave undecided and settle exactly.
pub fn fractions_at_draws(seed: u64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let u = noise::draw(seed, i as u64);
            // The next f64 above a nonnegative u: one more in its bit pattern.
            if i % 2 == 1 {
                f64::from_bits(u.to_bits() + 1)
            } else {
                u
            }
        })
        .collect()
}

/// The same in `f32`: the largest `f32` at or below element `i`'s draw for even `i`, the next
/// `f32` above that for odd `i`.
pub fn fractions_at_draws_f32(seed: u64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let u = noise::draw(seed, i as u64);
            let mut d = u as f32;
            if f64::from(d) > u {
                d = f32::from_bits(d.to_bits() - 1); // positive: one less in its bit pattern
            }
            if i % 2 == 1 {
                f32::from_bits(d.to_bits() + 1)
            } else {
                d
            }
        })
        .collect()
}
