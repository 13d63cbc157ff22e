//! Grids and level tables against exact references: integer arithmetic for the grids, a
//! brute-force nearest search for the tables, and statistics for stochastic rounding.

use xbquant::{Grid, Levels, Rounding};

/// A small deterministic generator (the tests need varied data, not a random crate).
fn stream(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed;
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `v` as an integer multiple of 2^-60 (exact for the data of these tests).
fn fixed(v: f64) -> i128 {
    let scaled = v * 2f64.powi(60);
    assert_eq!(scaled.fract(), 0.0, "{v} is not a multiple of 2^-60");
    scaled as i128
}

/// The grid index of `x` by integer arithmetic: nearest, ties to even; floor; toward zero.
fn reference(x: f64, step: f64, offset: f64, rounding: Rounding) -> i128 {
    let (xi, s, o) = (fixed(x), fixed(step), fixed(offset));
    let k = (xi - o).div_euclid(s);
    let r = (xi - o) - k * s; // 0 <= r < s
    if r == 0 {
        return k;
    }
    match rounding {
        Rounding::Floor => k,
        Rounding::TowardZero => {
            if x < 0.0 {
                k + 1
            } else {
                k
            }
        }
        _ => match (2 * r).cmp(&s) {
            std::cmp::Ordering::Less => k,
            std::cmp::Ordering::Greater => k + 1,
            std::cmp::Ordering::Equal => k + (k & 1),
        },
    }
}

#[test]
fn grids_equal_integer_arithmetic() {
    let mut rnd = stream(1);
    // Steps that are not powers of two, one with many bits (1/7 as a double).
    for (step, offset) in [
        (1.0 / 7.0, 0.3),
        (0.375, -1.25),
        (0.1, 0.0),
        (1.0 / 3.0, -0.5),
    ] {
        let g = Grid::new(step, offset, None).unwrap();
        let mut xs: Vec<f64> = (0..4000)
            .map(|_| ((rnd() * 8.0 - 4.0) * 2f64.powi(20)).round() / 2f64.powi(20))
            .collect();
        // Exact ties where the step is dyadic, and the grid points themselves.
        for k in -10..10 {
            xs.push(g.point(k));
            if step == 0.375 {
                xs.push(offset + (k as f64 + 0.5) * step);
            }
        }
        for rounding in [Rounding::NearestEven, Rounding::Floor, Rounding::TowardZero] {
            let q = g.quantize(&xs, rounding).unwrap();
            for (x, y) in xs.iter().zip(&q) {
                let k = reference(*x, step, offset, rounding);
                assert_eq!(
                    *y,
                    g.point(k as i64),
                    "x {x} step {step} offset {offset} {rounding:?}"
                );
            }
            // f32 data: the same points, rounded to f32.
            let x32: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
            let q32 = g.quantize(&x32, rounding).unwrap();
            for (x, y) in x32.iter().zip(&q32) {
                let k = reference(f64::from(*x), step, offset, rounding);
                assert_eq!(*y, g.point(k as i64) as f32, "f32 x {x} {rounding:?}");
            }
        }
    }
    // Bounds, specials, bad grids.
    let g = Grid::new(10.0, 50.0, Some(6)).unwrap();
    let q = g
        .quantize(
            &[-1e9f64, 1e9, f64::NAN, f64::INFINITY, f64::NEG_INFINITY],
            Rounding::NearestEven,
        )
        .unwrap();
    assert_eq!((q[0], q[1], q[3], q[4]), (50.0, 100.0, 100.0, 50.0));
    assert!(q[2].is_nan());
    let free = Grid::new(0.5, 0.0, None).unwrap();
    assert_eq!(
        free.quantize(&[f64::INFINITY], Rounding::NearestEven)
            .unwrap(),
        [f64::INFINITY]
    );
    assert!(Grid::new(0.0, 0.0, None).is_err());
    assert!(Grid::new(f64::NAN, 0.0, None).is_err());
    assert!(Grid::new(1.0, f64::INFINITY, None).is_err());
    assert!(Grid::new(1.0, 0.0, Some(0)).is_err());
}

/// The nearest level by a full search; ties to the even index.
fn nearest(levels: &[f64], x: f64) -> f64 {
    let mut best = 0;
    for (i, l) in levels.iter().enumerate() {
        let (d, db) = ((x - l).abs(), (x - levels[best]).abs());
        if d < db || (d == db && i % 2 == 0 && best % 2 == 1) {
            best = i;
        }
    }
    levels[best]
}

#[test]
fn level_tables_equal_a_brute_force_search() {
    let mut rnd = stream(2);
    for n in [1usize, 2, 3, 7, 64, 100] {
        // Dyadic levels, so that midpoints are exact and distances compare exactly.
        let raw: Vec<f64> = (0..n)
            .map(|_| ((rnd() * 200.0 - 50.0) * 64.0).round() / 64.0)
            .collect();
        let table = Levels::new(raw).unwrap();
        let l = table.levels().to_vec();
        let mut xs: Vec<f64> = (0..3000)
            .map(|_| ((rnd() * 300.0 - 100.0) * 256.0).round() / 256.0)
            .collect();
        for w in l.windows(2) {
            xs.push((w[0] + w[1]) / 2.0); // ties
            xs.push(w[0]);
        }
        let q = table.quantize(&xs, Rounding::NearestEven).unwrap();
        for (x, y) in xs.iter().zip(&q) {
            assert_eq!(*y, nearest(&l, *x), "{n} levels, x {x}");
        }
        let idx = table.indices(&xs, Rounding::NearestEven).unwrap();
        for (i, y) in idx.iter().zip(&q) {
            assert_eq!(l[*i as usize], *y);
        }
        // Floor: the largest level <= x (the first one below the table).
        let q = table.quantize(&xs, Rounding::Floor).unwrap();
        for (x, y) in xs.iter().zip(&q) {
            let want = l.iter().rev().find(|v| *v <= x).copied().unwrap_or(l[0]);
            assert_eq!(*y, want, "floor {x}");
        }
    }
    let t = Levels::new(vec![1.0, 2.0]).unwrap();
    let q = t
        .quantize(&[f32::NAN, 1.5, 1.5], Rounding::NearestUp)
        .unwrap();
    assert!(q[0].is_nan() && q[1] == 2.0);
    assert_eq!(
        t.indices(&[f32::NAN], Rounding::NearestEven).unwrap(),
        [u32::MAX]
    );
    assert!(Levels::new(vec![]).is_err());
    assert!(Levels::new(vec![1.0, f64::NAN]).is_err());
}

#[test]
fn stochastic_rounding_is_unbiased_and_repeats() {
    let n = 100_000;
    let table = Levels::new(vec![0.0, 0.1, 0.7, 1.0]).unwrap();
    let grid = Grid::new(0.3, 0.05, None).unwrap();
    for x in [0.05f64, 0.4, 0.69, 0.95] {
        let xs = vec![x; n];
        let r = Rounding::Stochastic { seed: 11 };
        let a = table.quantize(&xs, r).unwrap();
        assert_eq!(a, table.quantize(&xs, r).unwrap(), "a seed repeats");
        let g = grid.quantize(&xs, r).unwrap();
        for (q, step) in [(&a, 0.6), (&g, 0.3)] {
            let mean = q.iter().sum::<f64>() / n as f64;
            // Two-point distribution: variance at most step^2 / 4.
            let sigma = (step * step / 4.0 / n as f64).sqrt();
            assert!((mean - x).abs() < 4.0 * sigma, "x {x}: mean {mean}");
        }
    }
}
