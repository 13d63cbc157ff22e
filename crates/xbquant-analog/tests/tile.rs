//! The tile's own properties: results independent of threads, bound management per vector equal
//! to each vector alone, tiles as aihwkit splits them, every draw from the seed, and clear errors
//! for bad parameters and shapes.

use xbquant_analog::{
    mvm, split_sizes, BoundManagement, Error, IoParameters, NoiseManagement, PcmLikeNoise,
    WeightNoise,
};

fn data(rows: usize, n: usize, k: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    // A small deterministic generator (the test's own data, not the tile's noise).
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let x = (0..rows * n)
        .map(|i| next() * (1.0 + (i / n % 4) as f64))
        .collect();
    let w = (0..k * n).map(|_| next() * 0.5).collect();
    (x, w)
}

fn noisy() -> IoParameters {
    IoParameters {
        inp_noise: 0.03,
        out_noise: 0.06,
        inp_sto_round: true,
        out_sto_round: true,
        w_noise: 0.02,
        w_noise_type: WeightNoise::AdditiveConstant,
        ..IoParameters::default()
    }
}

#[test]
fn results_do_not_depend_on_threads() {
    let (x, w) = data(256, 300, 200, 1);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| mvm(&x, 256, 300, &w, 200, &noisy(), (128, 128), 9).unwrap())
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
    // The seed decides the noise: the same seed repeats, another changes it.
    assert_eq!(one, run(2));
    let other = mvm(&x, 256, 300, &w, 200, &noisy(), (128, 128), 10).unwrap();
    assert_ne!(one, other);
}

#[test]
fn a_row_gives_the_same_bits_alone_and_in_any_batch() {
    // The product's order is fixed per row (not chosen by the batch's size), so with the noise
    // off a row's outputs are the same bits alone, in a batch of any size, on one thread or
    // several (a BLAS takes another path for one row, and its bits change).
    let quiet = IoParameters {
        out_noise: 0.0,
        bound_management: BoundManagement::None,
        out_bound: 0.0,
        out_res: 0.0,
        ..IoParameters::default()
    };
    let perfect = IoParameters {
        is_perfect: true,
        ..quiet
    };
    for (rows, n, k) in [(300, 512, 512), (70, 300, 37), (33, 17, 9)] {
        let (x, w) = data(rows, n, k, 5);
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        for io in [quiet, perfect] {
            let all = mvm(&x, rows, n, &w, k, &io, (0, 0), 1).unwrap();
            let all32 = mvm(&x32, rows, n, &w32, k, &io, (0, 0), 1).unwrap();
            for r in [0, 1, rows / 2, rows - 1] {
                let alone = mvm(&x[r * n..(r + 1) * n], 1, n, &w, k, &io, (0, 0), 1).unwrap();
                assert_eq!(
                    &all[r * k..(r + 1) * k],
                    &alone[..],
                    "{rows}x{n}x{k} row {r}"
                );
                let alone32 = mvm(&x32[r * n..(r + 1) * n], 1, n, &w32, k, &io, (0, 0), 1).unwrap();
                assert_eq!(&all32[r * k..(r + 1) * k], &alone32[..], "f32 row {r}");
            }
            for split in [2, 5, rows / 3] {
                let part = mvm(&x32[..split * n], split, n, &w32, k, &io, (0, 0), 1).unwrap();
                assert_eq!(&all32[..split * k], &part[..], "the first {split} rows");
            }
        }
    }
}

#[test]
fn every_instruction_set_gives_the_same_bits() {
    use xbquant::{set_max_instruction_set, InstructionSet};
    let (x, w) = data(40, 300, 70, 6);
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
    let run = |set: InstructionSet| {
        set_max_instruction_set(set);
        let y64 = mvm(&x, 40, 300, &w, 70, &noisy(), (128, 64), 3).unwrap();
        let y32 = mvm(&x32, 40, 300, &w32, 70, &noisy(), (128, 64), 3).unwrap();
        set_max_instruction_set(InstructionSet::Avx512);
        (y64, y32)
    };
    let best = run(InstructionSet::Avx512);
    assert_eq!(best, run(InstructionSet::Avx2));
    assert_eq!(best, run(InstructionSet::Baseline));
}

#[test]
fn bound_management_per_vector_is_each_vector_alone() {
    let (x, w) = data(12, 40, 9, 2);
    let io = IoParameters {
        out_noise: 0.0,
        out_bound: 2.0,
        bound_management: BoundManagement::IterativePerVector,
        ..IoParameters::default()
    };
    let all = mvm(&x, 12, 40, &w, 9, &io, (0, 0), 0).unwrap();
    let batch = IoParameters {
        bound_management: BoundManagement::Iterative,
        ..io
    };
    let mut differs = false;
    for r in 0..12 {
        let alone = mvm(&x[r * 40..(r + 1) * 40], 1, 40, &w, 9, &batch, (0, 0), 0).unwrap();
        assert_eq!(&all[r * 9..(r + 1) * 9], &alone[..], "row {r}");
    }
    // The batch decision halves every vector while any one clips: here it differs.
    let whole = mvm(&x, 12, 40, &w, 9, &batch, (0, 0), 0).unwrap();
    differs |= whole != all;
    assert!(differs);
}

#[test]
fn tiles_split_as_aihwkit_and_add_in_order() {
    assert_eq!(split_sizes(700, 256), [234, 233, 233]);
    assert_eq!(split_sizes(513, 512), [257, 256]);
    assert_eq!(split_sizes(5, 8), [5]);
    // Without converters or management, a tiled product is the sum of its pieces' products.
    let io = IoParameters {
        out_noise: 0.0,
        inp_res: 0.0,
        out_res: 0.0,
        inp_bound: 0.0,
        out_bound: 0.0,
        noise_management: NoiseManagement::None,
        bound_management: BoundManagement::None,
        ..IoParameters::default()
    };
    let (x, w) = data(3, 10, 4, 3);
    let tiled = mvm(&x, 3, 10, &w, 4, &io, (4, 3), 0).unwrap();
    for r in 0..3 {
        for o in 0..4 {
            let mut total = 0.0;
            let mut start = 0;
            for size in split_sizes(10, 4) {
                let piece: f64 = (start..start + size)
                    .map(|c| x[r * 10 + c] * w[o * 10 + c])
                    .sum();
                total += piece;
                start += size;
            }
            assert!((tiled[r * 4 + o] - total).abs() < 1e-12, "{r} {o}");
        }
    }
    // Each tile manages its own noise and bounds: a clipping tile does not halve the others.
    let full = mvm(
        &x,
        3,
        10,
        &w,
        4,
        &IoParameters {
            out_noise: 0.0,
            ..IoParameters::default()
        },
        (4, 3),
        0,
    );
    assert_eq!(full.unwrap().len(), 12);
}

#[test]
fn a_perfect_tile_is_the_product() {
    let (x, w) = data(5, 7, 3, 4);
    let io = IoParameters {
        is_perfect: true,
        ..noisy()
    };
    let y = mvm(&x, 5, 7, &w, 3, &io, (0, 0), 0).unwrap();
    let y2 = mvm(&x, 5, 7, &w, 3, &io, (0, 0), 1).unwrap();
    for r in 0..5 {
        for o in 0..3 {
            let exact: f64 = (0..7).map(|c| x[r * 7 + c] * w[o * 7 + c]).sum();
            assert!((y[r * 3 + o] - exact).abs() < 1e-12);
        }
    }
    // No noise of any kind in a perfect tile, whatever the seed (aihwkit's `is_perfect`).
    assert_eq!(y, y2);
}

#[test]
fn bad_parameters_and_shapes_are_errors() {
    let (x, w) = data(2, 3, 2, 5);
    let base = IoParameters::default();
    let bad = [
        (
            "inp_bound",
            IoParameters {
                inp_bound: -1.0,
                ..base
            },
        ),
        (
            "out_bound",
            IoParameters {
                out_bound: -0.5,
                ..base
            },
        ),
        (
            "inp_res",
            IoParameters {
                inp_res: -0.1,
                ..base
            },
        ),
        (
            "out_res",
            IoParameters {
                out_res: f64::NAN,
                ..base
            },
        ),
        (
            "out_noise",
            IoParameters {
                out_noise: -0.06,
                ..base
            },
        ),
        (
            "inp_noise",
            IoParameters {
                inp_noise: f64::INFINITY,
                ..base
            },
        ),
        (
            "out_scale",
            IoParameters {
                out_scale: f64::NAN,
                ..base
            },
        ),
        (
            "nm_thres",
            IoParameters {
                nm_thres: -1.0,
                ..base
            },
        ),
        (
            "max_bm_factor",
            IoParameters {
                max_bm_factor: 0.0,
                ..base
            },
        ),
        (
            "max_bm_res",
            IoParameters {
                max_bm_res: -0.25,
                ..base
            },
        ),
        (
            "out_bound",
            IoParameters {
                out_bound: 0.0,
                ..base
            },
        ),
        (
            "inp_bound",
            IoParameters {
                inp_bound: 0.0,
                ..base
            },
        ),
        (
            "w_noise_type",
            IoParameters {
                w_noise: 0.1,
                ..base
            },
        ),
        (
            "w_noise",
            IoParameters {
                w_noise: -0.1,
                w_noise_type: WeightNoise::AdditiveConstant,
                ..base
            },
        ),
    ];
    for (name, io) in bad {
        match mvm(&x, 2, 3, &w, 2, &io, (0, 0), 0) {
            Err(Error::InvalidParameter(field, _)) => assert_eq!(field, name),
            other => panic!("{name}: {other:?}"),
        }
    }
    // No inputs per output: the shapes alone ask for more outputs than any buffer holds.
    for (rows, k) in [(1usize << 40, 1usize << 40), (usize::MAX, 2)] {
        let r = mvm::<f64>(&[], rows, 0, &[], k, &base, (0, 0), 0);
        assert!(
            matches!(&r, Err(Error::ShapeMismatch(m)) if m.contains("larger than any buffer")),
            "{rows} {k}: {r:?}"
        );
    }
    for (rows, n, k) in [(3, 3, 2), (2, 2, 2), (2, 3, 3), (usize::MAX, 2, 2)] {
        let r = mvm(&x, rows, n, &w, k, &base, (0, 0), 0);
        assert!(
            matches!(r, Err(Error::ShapeMismatch(_))),
            "{rows} {n} {k}: {r:?}"
        );
    }
    // Empty batches and huge values are no errors: NaN and infinities pass through as aihwkit's.
    assert_eq!(
        mvm::<f64>(&[], 0, 3, &w, 2, &base, (0, 0), 0).unwrap(),
        Vec::<f64>::new()
    );
    let huge = [f64::MAX, -f64::MAX, 1.0, f64::NAN, 0.0, 2.0];
    let y = mvm(
        &huge,
        2,
        3,
        &w,
        2,
        &IoParameters {
            out_noise: 0.0,
            ..base
        },
        (0, 0),
        0,
    )
    .unwrap();
    assert_eq!(y.len(), 4);
}

#[test]
fn pcm_programs_once_and_reads_at_any_time() {
    let pcm = PcmLikeNoise::default();
    let w: Vec<f64> = (0..200).map(|i| (i as f64 - 100.0) / 100.0).collect();
    let (plus, minus, ratio) = pcm.to_conductances(&w).unwrap();
    assert_eq!(pcm.from_conductances(&plus, &minus, ratio).unwrap(), w);
    let programmed = pcm.programming_noise(&plus, 1).unwrap();
    let nu = pcm.drift_coefficients(&plus, 1).unwrap();
    // The same programmed state read twice at one time with one seed: the same bits; later
    // reads drift down on average.
    let mean = |t: f64| {
        let g = pcm.drift(&programmed, &nu, t, 2).unwrap();
        assert_eq!(g, pcm.drift(&programmed, &nu, t, 2).unwrap());
        assert!(g.iter().all(|&v| v >= 0.0));
        g.iter().sum::<f64>() / g.len() as f64
    };
    let (second, day, year) = (mean(1.0), mean(86_400.0), mean(3.15e7));
    assert!(second > day && day > year, "{second} {day} {year}");
    assert!(nu.iter().all(|&v| v >= 0.0));
}

#[test]
fn pcm_bad_parameters_are_errors() {
    let g = [1.0f64, 2.0];
    let base = PcmLikeNoise::default();
    for (name, pcm) in [
        (
            "g_max",
            PcmLikeNoise {
                g_max: -1.0,
                ..base.clone()
            },
        ),
        (
            "g_max",
            PcmLikeNoise {
                g_max: f64::NAN,
                ..base.clone()
            },
        ),
        (
            "g_max",
            PcmLikeNoise {
                g_min: 30.0,
                ..base.clone()
            },
        ),
        (
            "g_min",
            PcmLikeNoise {
                g_min: -1.0,
                ..base.clone()
            },
        ),
        (
            "t_0",
            PcmLikeNoise {
                t_0: 0.0,
                ..base.clone()
            },
        ),
        (
            "t_read",
            PcmLikeNoise {
                t_read: f64::INFINITY,
                ..base.clone()
            },
        ),
        (
            "prog_coeff",
            PcmLikeNoise {
                prog_coeff: vec![],
                ..base.clone()
            },
        ),
        (
            "prog_coeff",
            PcmLikeNoise {
                prog_coeff: vec![1.0, f64::NAN],
                ..base.clone()
            },
        ),
        (
            "drift_scale",
            PcmLikeNoise {
                drift_scale: -1.0,
                ..base.clone()
            },
        ),
    ] {
        match pcm.programming_noise(&g, 0) {
            Err(Error::InvalidParameter(field, _)) => assert_eq!(field, name),
            other => panic!("{name}: {other:?}"),
        }
    }
    for t in [-1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            base.drift(&g, &g, t, 0),
            Err(Error::InvalidParameter("t_inference", _))
        ));
    }
    assert!(matches!(
        base.drift(&g, &g[..1], 1.0, 0),
        Err(Error::ShapeMismatch(_))
    ));
    assert!(matches!(
        base.to_conductances(&[1.0, f64::NAN]),
        Err(Error::InvalidParameter("w", _))
    ));
    assert!(matches!(
        base.from_conductances(&g, &g[..1], 1.0),
        Err(Error::ShapeMismatch(_))
    ));
    assert!(matches!(
        base.from_conductances(&g, &g, 0.0),
        Err(Error::InvalidParameter("ratio", _))
    ));
}

#[test]
fn gradients_pass_where_the_converters_did_not_clip() {
    use xbquant_analog::mvm_gradients;
    let (rows, n, k) = (6, 40, 9);
    let (x, w) = data(rows, n, k, 6);
    let g: Vec<f64> = (0..rows * k).map(|i| (i % 7) as f64 - 3.0).collect();
    let ideal_gx = |scale: f64| -> Vec<f64> {
        (0..rows * n)
            .map(|e| {
                let (r, i) = (e / n, e % n);
                scale * (0..k).map(|o| g[r * k + o] * w[o * n + i]).sum::<f64>()
            })
            .collect()
    };
    let ideal_gw = |scale: f64| -> Vec<f64> {
        (0..k * n)
            .map(|e| {
                let (o, i) = (e / n, e % n);
                scale * (0..rows).map(|r| g[r * k + o] * x[r * n + i]).sum::<f64>()
            })
            .collect()
    };
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(u, v)| (u - v).abs() < 1e-9);
    // Nothing clips: the ideal product's gradients, times out_scale, tiled or not.
    let open = IoParameters {
        out_noise: 0.0,
        out_bound: 1e6,
        out_scale: 2.5,
        ..IoParameters::default()
    };
    for tile in [(0, 0), (16, 4)] {
        let (gx, gw) = mvm_gradients(&x, rows, n, &w, k, &open, tile, 0, &g).unwrap();
        assert!(
            close(&gx, &ideal_gx(2.5)) && close(&gw, &ideal_gw(2.5)),
            "{tile:?}"
        );
    }
    // Every output clips (no bound management): no gradient.
    let shut = IoParameters {
        out_noise: 0.0,
        out_res: 0.0,
        out_bound: 1e-9,
        bound_management: BoundManagement::None,
        ..IoParameters::default()
    };
    let (gx, gw) = mvm_gradients(&x, rows, n, &w, k, &shut, (0, 0), 0, &g).unwrap();
    assert!(gx.iter().chain(&gw).all(|&v| v == 0.0));
    // Inputs beyond the DAC's bound (no noise management): zero there, the product's elsewhere.
    let dac = IoParameters {
        out_noise: 0.0,
        inp_res: 0.0,
        inp_bound: 1.0,
        out_bound: 1e6,
        noise_management: NoiseManagement::None,
        bound_management: BoundManagement::None,
        ..IoParameters::default()
    };
    let (gx, _) = mvm_gradients(&x, rows, n, &w, k, &dac, (0, 0), 0, &g).unwrap();
    let full = ideal_gx(1.0);
    let mut zeroed = 0;
    for e in 0..rows * n {
        if x[e].abs() > 1.0 {
            assert_eq!(gx[e], 0.0);
            zeroed += 1;
        } else {
            assert!((gx[e] - full[e]).abs() < 1e-9);
        }
    }
    assert!(zeroed > 20, "{zeroed}");
    assert!(matches!(
        mvm_gradients(&x, rows, n, &w, k, &open, (0, 0), 0, &g[1..]),
        Err(Error::ShapeMismatch(_))
    ));
}

#[test]
fn bit_sliced_inputs_sum_their_planes() {
    use xbquant_analog::mvm_bit_sliced;
    let (rows, n, k) = (4, 10, 3);
    let (x, w) = data(rows, n, k, 7);
    let perfect = IoParameters {
        is_perfect: true,
        ..IoParameters::default()
    };
    // Through a perfect tile: the product of the inputs rounded to 6-bit codes of their largest
    // magnitude.
    let top = x.iter().fold(0f64, |m, v| m.max(v.abs()));
    let y = mvm_bit_sliced(&x, rows, n, &w, k, &perfect, (4, 2), 0, 6).unwrap();
    for r in 0..rows {
        for o in 0..k {
            let exact: f64 = (0..n)
                .map(|c| (x[r * n + c] / top * 63.0).round_ties_even() / 63.0 * top * w[o * n + c])
                .sum();
            assert!((y[r * k + o] - exact).abs() < 1e-12, "{r} {o}");
        }
    }
    let noisy = IoParameters {
        out_noise: 0.05,
        ..IoParameters::default()
    };
    let a = mvm_bit_sliced(&x, rows, n, &w, k, &noisy, (0, 0), 3, 4).unwrap();
    assert_eq!(
        a,
        mvm_bit_sliced(&x, rows, n, &w, k, &noisy, (0, 0), 3, 4).unwrap()
    );
    assert_ne!(
        a,
        mvm_bit_sliced(&x, rows, n, &w, k, &noisy, (0, 0), 4, 4).unwrap()
    );
    for bits in [0, 33] {
        let e = mvm_bit_sliced(&x, rows, n, &w, k, &perfect, (0, 0), 0, bits);
        assert!(
            matches!(e, Err(Error::InvalidParameter("input_bits", _))),
            "{bits}"
        );
    }
    let mut bad = x.clone();
    bad[3] = f64::NAN;
    let e = mvm_bit_sliced(&bad, rows, n, &w, k, &perfect, (0, 0), 0, 4);
    assert!(matches!(e, Err(Error::InvalidParameter("x", _))));
}
