//! The tiles' Gaussian noise, many draws at a time: Box-Muller on the core's counter-based
//! uniform draws, with the logarithm and the sine and cosine as polynomials of plain IEEE
//! arithmetic, in blocks that the compiler vectorizes. The same bits on every instruction set
//! (no fused multiply-adds, no table lookups): element `2p` is the cosine draw and `2p + 1` the
//! sine draw of pair `p`, whose uniform draws are the core's `noise::uniform(key, 2p)` and
//! `(key, 2p + 1)`. Accurate to a few units in the last place of `f64` against the library's
//! `ln` and `sin_cos`.

use std::f64::consts::{FRAC_PI_4, LN_2, SQRT_2};

use xbquant::noise;

/// Pairs per block: a multiple of every vector width.
const BLOCK: usize = 16;

/// `ln(u)` for `u` in `(0, 1]`: `u = m 2^e` with `m` in `[sqrt(1/2), sqrt(2))`, and `ln m` from
/// the series of `2 atanh(s)`, `s = (m - 1) / (m + 1)`, `|s| < 0.172`, to `s^23`.
#[inline(always)]
fn ln(u: f64) -> f64 {
    let bits = u.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mantissa = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    // Into [sqrt(1/2), sqrt(2)): halve the mantissa above sqrt(2), one more in the exponent.
    let high = mantissa >= SQRT_2;
    let m = if high { mantissa * 0.5 } else { mantissa };
    let e = (exponent + i64::from(high)) as f64;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut p = 1.0 / 23.0;
    for d in [21.0, 19.0, 17.0, 15.0, 13.0, 11.0, 9.0, 7.0, 5.0, 3.0, 1.0] {
        p = p * s2 + 1.0 / d;
    }
    2.0 * s * p + e * LN_2
}

/// The products `(2k)(2k+1)` of the sine's series and `(2k-1)(2k)` of the cosine's, innermost
/// first, as reciprocals.
const SIN: [f64; 8] = [
    1.0 / 272.0,
    1.0 / 210.0,
    1.0 / 156.0,
    1.0 / 110.0,
    1.0 / 72.0,
    1.0 / 42.0,
    1.0 / 20.0,
    1.0 / 6.0,
];
const COS: [f64; 8] = [
    1.0 / 240.0,
    1.0 / 182.0,
    1.0 / 132.0,
    1.0 / 90.0,
    1.0 / 56.0,
    1.0 / 30.0,
    1.0 / 12.0,
    1.0 / 2.0,
];

/// `sin(x)` and `cos(x)` for `x` in `[0, pi/4]`, by their series to `x^17` and `x^16` in nested
/// form (the next terms are below `1e-19`).
#[inline(always)]
fn sin_cos_octant(x: f64) -> (f64, f64) {
    let x2 = x * x;
    let (mut s, mut c) = (1.0, 1.0);
    for (a, b) in SIN.iter().zip(&COS) {
        s = 1.0 - x2 * a * s;
        c = 1.0 - x2 * b * c;
    }
    (x * s, c)
}

/// `(cos(2 pi u), sin(2 pi u))` for `u` in `[0, 1)`: the octant of `8u` and a polynomial in the
/// angle within it, mirrored and signed by the octant.
#[inline(always)]
fn turn(u: f64) -> (f64, f64) {
    let t = u * 8.0;
    let octant = t.floor();
    let f = t - octant;
    let k = octant as i64 & 7;
    // Within each octant, the angle from its nearer axis: odd octants count back from the end.
    let a = if k & 1 == 1 {
        (1.0 - f) * FRAC_PI_4
    } else {
        f * FRAC_PI_4
    };
    let (s, c) = sin_cos_octant(a);
    place(k as u32, s, c)
}

/// `(cos, sin)` of `k pi/4 + a` (octant `k`, `a` the angle from its nearer axis) from
/// `s = sin a` and `c = cos a`, without branches (selects the compiler vectorizes): octants 1, 2,
/// 5 and 6 swap the two, octants 2 to 5 negate the cosine and 4 to 7 the sine.
#[inline(always)]
fn place<F: Copy + std::ops::Mul<Output = F> + From<i8>>(k: u32, s: F, c: F) -> (F, F) {
    let swap = ((k + 1) & 2) != 0;
    let (x, y) = (if swap { s } else { c }, if swap { c } else { s });
    let cos_sign = F::from(if (2..=5).contains(&k) { -1 } else { 1 });
    let sin_sign = F::from(if k >= 4 { -1 } else { 1 });
    (x * cos_sign, y * sin_sign)
}

/// The Box-Muller pair of pair index `pair` in the stream `key`.
#[inline(always)]
fn pair(key: u64, pair: u64) -> (f64, f64) {
    let u1 = 1.0 - noise::uniform(key, pair.wrapping_mul(2));
    let u2 = noise::uniform(key, pair.wrapping_mul(2).wrapping_add(1));
    let r = (-2.0 * ln(u1)).sqrt();
    let (c, s) = turn(u2);
    (r * c, r * s)
}

/// The Box-Muller pairs of a stream in one type: [`pair`] for `f64`, [`pair32`] for `f32`.
pub(crate) trait Pairs: Copy + Default {
    fn pair(key: u64, pair: u64) -> (Self, Self);
}

impl Pairs for f64 {
    #[inline(always)]
    fn pair(key: u64, p: u64) -> (f64, f64) {
        pair(key, p)
    }
}

impl Pairs for f32 {
    #[inline(always)]
    fn pair(key: u64, p: u64) -> (f32, f32) {
        pair32(key, p)
    }
}

/// Fills `out` with the draws of indices `start..start + out.len()` of the stream `key`, with
/// the widest vectors this machine has (the arithmetic is the same on each): element `2p` the
/// cosine draw and `2p + 1` the sine draw of pair `p`.
pub(crate) fn fill<T: Pairs>(key: u64, start: u64, out: &mut [T]) {
    struct Fill<'a, T> {
        key: u64,
        start: u64,
        out: &'a mut [T],
    }
    impl<T: Pairs> pulp::WithSimd for Fill<'_, T> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            fill_with(self.key, self.start, self.out);
        }
    }
    crate::simd::arch().dispatch(Fill { key, start, out });
}

#[inline(always)]
fn fill_with<T: Pairs>(key: u64, start: u64, out: &mut [T]) {
    let mut index = start;
    let mut rest = out;
    // An odd first index: the sine half of its pair.
    if index & 1 == 1 && !rest.is_empty() {
        rest[0] = T::pair(key, index >> 1).1;
        rest = &mut rest[1..];
        index += 1;
    }
    let mut first_pair = index >> 1;
    let mut chunks = rest.chunks_exact_mut(2 * BLOCK);
    for chunk in &mut chunks {
        let mut cos = [T::default(); BLOCK];
        let mut sin = [T::default(); BLOCK];
        for (j, (c, s)) in cos.iter_mut().zip(sin.iter_mut()).enumerate() {
            (*c, *s) = T::pair(key, first_pair + j as u64);
        }
        for j in 0..BLOCK {
            chunk[2 * j] = cos[j];
            chunk[2 * j + 1] = sin[j];
        }
        first_pair += BLOCK as u64;
    }
    let tail = chunks.into_remainder();
    for (j, v) in tail.iter_mut().enumerate() {
        let (c, s) = T::pair(key, first_pair + (j / 2) as u64);
        *v = if j % 2 == 0 { c } else { s };
    }
}

/// `ln(u)` for `u` in `[2^-32, 1]` in `f32`, as [`ln`] with the series to `s^9` (the next term is
/// below `1e-9`).
#[inline(always)]
fn ln32(u: f32) -> f32 {
    let bits = u.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127;
    let mantissa = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let high = mantissa >= std::f32::consts::SQRT_2;
    let m = if high { mantissa * 0.5 } else { mantissa };
    let e = (exponent + i32::from(high)) as f32;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut p = 1.0 / 9.0;
    for d in [7.0, 5.0, 3.0, 1.0] {
        p = p * s2 + 1.0 / d;
    }
    2.0 * s * p + e * std::f32::consts::LN_2
}

/// `(cos(2 pi u), sin(2 pi u))` in `f32` for `u = v 2^-24` (`v` below `2^24`), as [`turn`] with
/// the series to `x^9` and `x^10`; the octant and the fraction within it from `v`'s bits (no
/// conversion from floating point, which does not vectorize).
#[inline(always)]
#[allow(clippy::cast_possible_wrap)]
fn turn32(v: u32) -> (f32, f32) {
    let k = (v >> 21) & 7;
    let f = ((v & 0x001f_ffff) as i32) as f32 * (1.0 / 2_097_152.0);
    let a = if k & 1 == 1 {
        (1.0 - f) * std::f32::consts::FRAC_PI_4
    } else {
        f * std::f32::consts::FRAC_PI_4
    };
    let a2 = a * a;
    let mut s = 1.0;
    for b in [1.0 / 72.0, 1.0 / 42.0, 1.0 / 20.0, 1.0 / 6.0] {
        s = 1.0 - a2 * b * s;
    }
    let mut c = 1.0;
    for b in [1.0 / 90.0, 1.0 / 56.0, 1.0 / 30.0, 1.0 / 12.0, 1.0 / 2.0] {
        c = 1.0 - a2 * b * c;
    }
    place(k, a * s, c)
}

/// The `f32` Box-Muller pair of pair index `pair` in the stream `key`.
#[inline(always)]
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
fn pair32(key: u64, pair: u64) -> (f32, f32) {
    let bits = noise::bits(key, pair);
    // 31 bits for the radius, in (0, 1]: (h + 1/2) 2^-31; 24 bits for the angle, in [0, 1).
    let u1 = (((bits >> 33) as i32) as f32 + 0.5) * (1.0 / 2_147_483_648.0);
    let r = (-2.0 * ln32(u1)).sqrt();
    let (c, s) = turn32((bits as u32) >> 8);
    (r * c, r * s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_functions_are_the_librarys_within_a_few_ulps() {
        for i in 1..20_000u64 {
            let u = i as f64 / 20_000.0;
            let (a, b) = (ln(u), u.ln());
            assert!(
                (a - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(1e-300),
                "ln {u}: {a} {b}"
            );
            let (c, s) = turn(u);
            let (ls, lc) = (std::f64::consts::TAU * u).sin_cos();
            assert!(
                (c - lc).abs() < 4e-15 && (s - ls).abs() < 4e-15,
                "turn {u}: {c} {s} / {lc} {ls}"
            );
        }
        assert_eq!(ln(1.0), 0.0);
        assert!((ln(f64::MIN_POSITIVE) - f64::MIN_POSITIVE.ln()).abs() < 1e-12);
    }

    #[test]
    fn the_f32_functions_are_the_librarys_within_their_accuracy() {
        for i in 1..20_000u32 {
            let u = i as f32 / 20_000.0;
            let (a, b) = (ln32(u), f64::from(u).ln());
            assert!(
                (f64::from(a) - b).abs() <= 2e-7 * b.abs().max(1e-3),
                "ln {u}: {a} {b}"
            );
            let v = i * 838;
            let (c, s) = turn32(v);
            let angle = f64::from(v) / 16_777_216.0;
            let (ls, lc) = (std::f64::consts::TAU * angle).sin_cos();
            assert!(
                (f64::from(c) - lc).abs() < 3e-7 && (f64::from(s) - ls).abs() < 3e-7,
                "turn {u}: {c} {s} / {lc} {ls}"
            );
        }
        assert_eq!(ln32(1.0), 0.0);
        let smallest = 0.5f32 * (1.0 / 2_147_483_648.0);
        assert!((f64::from(ln32(smallest)) - f64::from(smallest).ln()).abs() < 1e-5);
        // The largest magnitude: u1 = 2^-32.
        let key = noise::stream_key(11);
        let mut draws = vec![0f32; 200_001];
        fill(key, 0, &mut draws);
        let n = draws.len() as f64;
        let mean = draws.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = draws
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 5.0 * (1.0 / n).sqrt(), "{mean}");
        assert!((var - 1.0).abs() < 5.0 * (2.0 / n).sqrt(), "{var}");
        assert!(draws.iter().all(|v| v.abs() <= 6.67));
    }

    /// `fill` from any start gives the draws of the pairs by index, in either type.
    fn pairs_by_index<T: Pairs + PartialEq + std::fmt::Debug>(seed: u64) {
        let key = noise::stream_key(seed);
        let mut all = vec![T::default(); 101];
        fill(key, 0, &mut all);
        for start in [0u64, 1, 2, 7, 33, 64] {
            let mut part = vec![T::default(); 101 - start as usize];
            fill(key, start, &mut part);
            assert_eq!(&all[start as usize..], &part[..], "{start}");
        }
        for (i, &v) in all.iter().enumerate() {
            let (c, s) = T::pair(key, i as u64 / 2);
            assert_eq!(v, if i % 2 == 0 { c } else { s });
        }
    }

    #[test]
    fn fill_is_the_pairs_by_index_from_any_start() {
        pairs_by_index::<f64>(3);
        pairs_by_index::<f32>(5);
    }
}
