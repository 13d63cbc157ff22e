//! The kernels' own tests: draws, lanes and sweeps against their definitions.

use super::lane::{draw_down, Lane};
use super::stochastic::DRAW_BLOCK;
use crate::format::pow2;
use crate::random::draw;
use crate::random::{draw_high, stream_key};
use crate::Element;
use crate::{FixedPoint, QuantSpec, Rounding};
/// The `f32` lane's draw is the largest `f32` at or below the exact draw, so a fraction is
/// above it exactly when it is above the exact draw: checked at the draw's neighbours, where
/// a draw rounded the other way would decide differently.
#[test]
fn f32_draw_is_the_exact_draw_rounded_down() {
    let key = stream_key(11);
    let edges = [
        0,
        1,
        2,
        (1 << 24) - 1,
        1 << 24,
        (1 << 24) + 1,
        (1 << 25) + 3,
        (1 << 51) + 1,
        (1 << 52) - 1,
    ]
    .map(|h: u64| h as f64 * pow2(-52));
    let draws = (0..10_000).map(|i| draw(key, i));
    for u in edges.into_iter().chain(draws) {
        let d = draw_down(u);
        let above = f32::from_bits(d.to_bits() + 1);
        assert!(f64::from(d) <= u && f64::from(above) > u, "{u:e} -> {d:e}");
        let below = f32::from_bits(d.to_bits().saturating_sub(1));
        for frac in [below, d, above] {
            assert_eq!(
                d < frac,
                u < f64::from(frac),
                "draw {u:e}, fraction {frac:e}"
            );
        }
    }
}

/// Each element's fraction set to its own `f32` draw never rounds up, and to the next `f32`
/// above it always does: in both lanes, through every loop, with a tail shorter than a
/// vector. (Were any element's draw wrong, or out of order, this would not hold.)
#[test]
fn stochastic_rounding_decides_at_each_elements_draw() {
    let seed = 3;
    let key = stream_key(seed);
    let r = Rounding::Stochastic { seed };
    let fmt = FixedPoint::new(8, 0).unwrap(); // step 1: the scaled value is the input
    let n = 1000 + 13;
    let (x, want): (Vec<f32>, Vec<f32>) = (0..n)
        .map(|i| {
            let d = draw_down(draw(key, i as u64));
            let above = f32::from_bits(d.to_bits() + 1);
            match i % 4 {
                0 => (d, 0.0),
                1 => (above, 1.0),
                2 => (-d, 0.0),
                _ => (-above, -1.0),
            }
        })
        .unzip();
    let bits = |v: &[f32]| v.iter().map(|q| q.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&fmt.quantize(&x, r)), bits(&want));
    let (q, mask) = fmt.quantize_with_mask(&x, r);
    assert_eq!(bits(&q), bits(&want));
    assert!(mask.iter().all(|m| !m));
    let mut in_place = x.clone();
    fmt.quantize_in_place(&mut in_place, r);
    assert_eq!(bits(&in_place), bits(&want));
    let wide: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let q64: Vec<f32> = fmt.quantize(&wide, r).iter().map(|&v| v as f32).collect();
    assert_eq!(bits(&q64), bits(&want));
}

/// The lower bounds the vector loops draw hold the exact draw, in both lanes: `floor <=
/// draw * DRAW_STEPS < floor + 1` with `floor` an integer, and the exact draw's high 32 bits
/// are the hash's.
#[test]
fn draw_floors_bound_the_exact_draws() {
    fn check<F: Lane + std::fmt::Debug>(key: u64, index: u64) {
        let high = draw_high(key, index);
        let u = draw(key, index);
        let (floor, exact) = (F::draw_floor(high), F::draw_exact(u) * F::DRAW_STEPS);
        assert!(floor.floor() == floor, "{index}: {floor:?}");
        assert!(floor <= exact, "{index}: {floor:?} > {exact:?}");
        assert!(exact < floor + F::ONE, "{index}: {exact:?} past {floor:?}");
        assert_eq!((u * pow2(32)) as u32, high);
    }
    for seed in [0, 1, 99] {
        let key = stream_key(seed);
        let near_block = (1u64 << 32) - 100;
        for index in (0..5000)
            .chain(near_block..near_block + 200)
            .chain([u64::MAX])
        {
            check::<f32>(key, index);
            check::<f64>(key, index);
        }
    }
}

/// Stochastic rounding decides each element at its own exact draw (the definition, one
/// element at a time) wherever the stream starts: across a multiple of `2^32` in stream
/// index (where the hash's keys change), at the end of the index range, in every loop and
/// both lanes, with fractions at and beside the elements' draws (undecided by the high bits)
/// and at random.
#[test]
fn stochastic_rounding_follows_the_definition_at_any_stream_start() {
    /// The magnitude rounded up when the draw is below its fraction, the sign put back.
    fn reference(v: f64, u: f64) -> f64 {
        let a = v.abs();
        let whole = a.floor();
        (whole + if u < a - whole { 1.0 } else { 0.0 }).copysign(v)
    }
    fn same<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T], start: u64) {
        assert_eq!(got.len(), want.len());
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            panic!(
                "start {start}, element {i}: {:?}, want {:?}",
                got[i], want[i]
            );
        }
    }
    /// Into a buffer and in place, each with and without the overflow mask.
    fn every_loop<T: Element>(spec: &QuantSpec, x: &[T], want: &[T], start: u64) {
        same(&spec.quantize(x), want, start);
        let (q, mask) = spec.quantize_with_mask(x);
        same(&q, want, start);
        assert!(mask.iter().all(|m| !m));
        let mut in_place = x.to_vec();
        spec.quantize_in_place(&mut in_place);
        same(&in_place, want, start);
        let mut in_place = x.to_vec();
        let mut mask = vec![true; x.len()];
        spec.quantize_in_place_with_mask(&mut in_place, &mut mask)
            .unwrap();
        same(&in_place, want, start);
        assert!(mask.iter().all(|m| !m));
    }
    let seed = 8;
    let key = stream_key(seed);
    let fmt = FixedPoint::new(12, 0).unwrap();
    let spec = QuantSpec::new(fmt, Rounding::Stochastic { seed });
    let n = 3 * DRAW_BLOCK + 77;
    for start in [0, (1u64 << 32) - 1500, u64::MAX - 2000, (7u64 << 32) + 5] {
        let spec = spec.with_stream_start(start);
        let x: Vec<f64> = (0..n)
            .map(|i| {
                let u = draw(key, start.wrapping_add(i as u64));
                let base = (i % 13) as f64 - 6.0;
                match i % 5 {
                    0 => base + u,
                    1 => base + f64::from(draw_down(u)),
                    2 => base + u + pow2(-40),
                    3 => base + f64::from(f32::from_bits(draw_down(u).to_bits() + 1)),
                    _ => base + 0.37,
                }
            })
            .collect();
        let want: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| reference(v, draw(key, start.wrapping_add(i as u64))))
            .collect();
        every_loop(&spec, &x, &want, start);
        // The same values in f32 (those exact there), in the f32 lane.
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let want32: Vec<f32> = x32
            .iter()
            .enumerate()
            .map(|(i, &v)| reference(f64::from(v), draw(key, start.wrapping_add(i as u64))) as f32)
            .collect();
        every_loop(&spec, &x32, &want32, start);
    }
}
