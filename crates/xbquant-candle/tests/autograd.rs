//! The op against the core kernels, and its gradients through candle's autograd.

use candle_core::{DType, Device, IndexOp, Module, Tensor, Var, D};
use candle_nn::{loss, Optimizer, VarBuilder, VarMap};
use xbquant::{FixedPoint, Overflow, QuantSpec, Rounding};
use xbquant_candle::{
    fixed_point_quantize_wrapper, quant_linear, FixedPointQuantF, Gradient, Quantizer,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Deterministic pseudo-random values on the scale of a format's range, ties included.
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            if i % 7 == 0 {
                ((u * 64.0).floor() - 32.0) / 32.0 // on the grid or a tie of fl = 4
            } else {
                (u - 0.5) * 20.0
            }
        })
        .collect()
}

fn formats() -> Vec<(FixedPoint, Rounding)> {
    let f = FixedPoint::new(8, 4).unwrap();
    vec![
        (f, Rounding::NearestEven),
        (f.with_symmetric(false), Rounding::NearestAway),
        (f, Rounding::Stochastic { seed: 3 }),
        (
            f.with_overflow(Overflow::Wrap { sat_bits: 0 }).unwrap(),
            Rounding::Floor,
        ),
        (
            *QuantSpec::from_hls("ap_fixed<6,3,AP_RND_CONV,AP_WRAP_SM>")
                .unwrap()
                .format(),
            Rounding::NearestEven,
        ),
        (f.with_clamp(false), Rounding::TowardZero),
    ]
}

/// Forward equals the core for every dtype and for contiguous, transposed and offset inputs.
#[test]
fn forward_equals_the_core_for_every_dtype_and_layout() -> Result<()> {
    let dev = Device::Cpu;
    let base = Tensor::from_vec(values(6 * 10, 1), (6, 10), &dev)?;
    for dtype in [DType::F32, DType::F64, DType::F16, DType::BF16] {
        let x = base.to_dtype(dtype)?;
        let layouts = [
            ("contiguous", x.clone()),
            ("transposed", x.t()?),
            ("offset", x.narrow(0, 2, 3)?.narrow(1, 1, 7)?),
            ("strided", x.i((.., 3))?),
        ];
        for (name, input) in layouts {
            let flat: Vec<f64> = input.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
            for (format, rounding) in formats() {
                let y = input.apply_op1(FixedPointQuantF::new(format.with_rounding(rounding)))?;
                assert_eq!(y.dtype(), dtype);
                assert_eq!(y.dims(), input.dims());
                let got: Vec<f64> = y.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
                // The core on the same values in the same element type.
                let want: Vec<f64> = match dtype {
                    DType::F32 => {
                        let v: Vec<f32> = flat.iter().map(|&v| v as f32).collect();
                        format
                            .quantize(&v, rounding)
                            .iter()
                            .map(|&v| f64::from(v))
                            .collect()
                    }
                    DType::F16 => {
                        let v: Vec<_> = flat
                            .iter()
                            .map(|&v| xbquant::half::f16::from_f64(v))
                            .collect();
                        format
                            .quantize(&v, rounding)
                            .iter()
                            .map(|v| v.to_f64())
                            .collect()
                    }
                    DType::BF16 => {
                        let v: Vec<_> = flat
                            .iter()
                            .map(|&v| xbquant::half::bf16::from_f64(v))
                            .collect();
                        format
                            .quantize(&v, rounding)
                            .iter()
                            .map(|v| v.to_f64())
                            .collect()
                    }
                    _ => format.quantize(&flat, rounding),
                };
                assert_eq!(got, want, "{dtype:?} {name} {format} {rounding}");
            }
        }
    }
    Ok(())
}

/// The seed's wrapper: its range and rounding, and an error for a bad format.
#[test]
fn wrapper_follows_the_seed() -> Result<()> {
    let x = Tensor::new(&[0.125f32, 0.375, -3.0, 3.0, 0.0], &Device::Cpu)?;
    let y = fixed_point_quantize_wrapper(&x, 4, 2, true, Rounding::NearestEven)?;
    assert_eq!(y.to_vec1::<f32>()?, [0.0, 0.5, -1.75, 1.75, 0.0]);
    let y = fixed_point_quantize_wrapper(&x, 4, 2, false, Rounding::NearestEven)?;
    assert_eq!(y.to_vec1::<f32>()?, [0.0, 0.5, -2.0, 1.75, 0.0]);
    let err = fixed_point_quantize_wrapper(&x, 0, 2, true, Rounding::NearestEven).unwrap_err();
    assert!(err.to_string().contains("word length"), "{err}");
    Ok(())
}

/// Straight-through: the gradient is exactly the upstream gradient, saturated elements included.
#[test]
fn straight_through_gradient_is_the_upstream_gradient() -> Result<()> {
    let dev = Device::Cpu;
    for dtype in [DType::F32, DType::F64] {
        let x =
            Var::from_tensor(&Tensor::from_vec(values(40, 2), (4, 10), &dev)?.to_dtype(dtype)?)?;
        let upstream = Tensor::from_vec(values(40, 3), (4, 10), &dev)?.to_dtype(dtype)?;
        let y = fixed_point_quantize_wrapper(x.as_tensor(), 6, 3, true, Rounding::NearestEven)?;
        let grads = (y * &upstream)?.sum_all()?.backward()?;
        let g: Vec<f64> = grads
            .get(&x)
            .unwrap()
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1()?;
        let want: Vec<f64> = upstream.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        assert_eq!(g, want);
        // Through a transposed view as well.
        let y =
            fixed_point_quantize_wrapper(&x.as_tensor().t()?, 6, 3, true, Rounding::NearestEven)?;
        let grads = (y * upstream.t()?)?.sum_all()?.backward()?;
        let g: Vec<f64> = grads
            .get(&x)
            .unwrap()
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1()?;
        assert_eq!(g, want);
    }
    Ok(())
}

/// Clamp-aware: exact zeros where the forward pass overflowed, the upstream value elsewhere, for
/// stochastic rounding too (the mask is that of the forward pass's own draws).
#[test]
fn clamp_aware_gradient_zeroes_saturated_elements() -> Result<()> {
    let dev = Device::Cpu;
    let data = values(200, 4);
    let x = Var::new(data.as_slice(), &dev)?;
    let upstream = Tensor::new(values(200, 5).as_slice(), &dev)?;
    for rounding in [Rounding::NearestEven, Rounding::StochasticFresh] {
        let format = FixedPoint::new(5, 2)?; // range +-3.75
        let q = Quantizer::new(format.with_rounding(rounding)).with_gradient(Gradient::ClampAware);
        let op = q.op();
        let y = x.as_tensor().apply_op1(op)?;
        let (_, mask) = format.quantize_with_mask(&data, op.spec().rounding());
        let grads = (y * &upstream)?.sum_all()?.backward()?;
        let g: Vec<f64> = grads.get(&x).unwrap().to_vec1()?;
        let up: Vec<f64> = upstream.to_vec1()?;
        let overflowed = mask.iter().filter(|&&m| m).count();
        assert!(overflowed > 20 && overflowed < 180, "{overflowed}");
        for i in 0..data.len() {
            let want = if mask[i] { 0.0 } else { up[i] };
            assert_eq!(
                g[i].to_bits(),
                want.to_bits(),
                "element {i}: x = {}",
                data[i]
            );
        }
    }
    Ok(())
}

/// The backward quantizer returns the quantized upstream gradient.
#[test]
fn backward_quantizer_quantizes_the_gradient() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::new(&[0.1f32, 0.2, 0.3, 9.0], &dev)?;
    let grad_format = FixedPoint::new(4, 1)?; // step 0.5, range +-3.5
    let q = Quantizer::new(FixedPoint::new(8, 4)?.with_rounding(Rounding::NearestEven))
        .with_backward(grad_format.with_rounding(Rounding::NearestEven));
    let upstream = Tensor::new(&[0.3f32, -0.74, 10.0, 1.25], &dev)?;
    let grads = (q.apply(x.as_tensor())? * &upstream)?
        .sum_all()?
        .backward()?;
    assert_eq!(
        grads.get(&x).unwrap().to_vec1::<f32>()?,
        [0.5, -0.5, 3.5, 1.0]
    );
    Ok(())
}

/// Fresh noise on every application unless the seed is fixed.
#[test]
fn stochastic_noise_is_fresh_unless_seeded() -> Result<()> {
    let x = Tensor::new(vec![0.3f32; 4096].as_slice(), &Device::Cpu)?;
    let fmt = FixedPoint::new(8, 2)?;
    let fresh = Quantizer::new(fmt.with_rounding(Rounding::StochasticFresh));
    let a = fresh.apply(&x)?.to_vec1::<f32>()?;
    let b = fresh.apply(&x)?.to_vec1::<f32>()?;
    assert_ne!(a, b);
    let seeded = Quantizer::new(fmt.with_rounding(Rounding::Stochastic { seed: 9 }));
    assert_eq!(
        seeded.apply(&x)?.to_vec1::<f32>()?,
        seeded.apply(&x)?.to_vec1::<f32>()?
    );
    Ok(())
}

/// Unsupported dtypes give an error naming the problem, not a panic.
#[test]
fn unsupported_dtype_is_an_error() -> Result<()> {
    let x = Tensor::new(&[1u32, 2, 3], &Device::Cpu)?;
    let err = fixed_point_quantize_wrapper(&x, 8, 4, true, Rounding::NearestEven).unwrap_err();
    assert!(err.to_string().contains("U32"), "{err}");
    let x = Tensor::new(&[1i64, 2], &Device::Cpu)?;
    assert!(fixed_point_quantize_wrapper(&x, 8, 4, true, Rounding::NearestEven).is_err());
    Ok(())
}

/// A short training loop with quantized weights (and inputs) lowers the loss on a small
/// classification problem.
#[test]
fn quantization_aware_training_lowers_the_loss() -> Result<()> {
    let dev = Device::Cpu;
    // Two Gaussian-ish blobs in 4 dimensions, labelled by the sign of a linear function.
    let n = 256;
    let raw = values(n * 4, 6);
    let x = Tensor::from_vec(
        raw.iter().map(|&v| (v / 10.0) as f32).collect::<Vec<_>>(),
        (n, 4),
        &dev,
    )?;
    let labels: Vec<u32> = raw
        .chunks(4)
        .map(|r| u32::from(r[0] + 0.5 * r[1] - r[2] > 0.0))
        .collect();
    let labels = Tensor::new(labels.as_slice(), &dev)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let wq = Quantizer::new(FixedPoint::new(4, 3)?.with_rounding(Rounding::StochasticFresh));
    let aq = Quantizer::new(FixedPoint::new(8, 5)?.with_rounding(Rounding::NearestEven));
    let l1 = quant_linear(4, 16, wq, Some(aq), vb.pp("l1"))?;
    let l2 = quant_linear(16, 2, wq, Some(aq), vb.pp("l2"))?;
    let forward =
        |x: &Tensor| -> candle_core::Result<Tensor> { l2.forward(&l1.forward(x)?.relu()?) };
    let mut opt = candle_nn::AdamW::new_lr(varmap.all_vars(), 0.02)?;
    let initial = loss::cross_entropy(&forward(&x)?, &labels)?.to_scalar::<f32>()?;
    for _ in 0..150 {
        let l = loss::cross_entropy(&forward(&x)?, &labels)?;
        opt.backward_step(&l)?;
    }
    let logits = forward(&x)?;
    let last = loss::cross_entropy(&logits, &labels)?.to_scalar::<f32>()?;
    let predicted = logits.argmax(D::Minus1)?;
    let correct = predicted
        .eq(&labels)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    assert!(last < 0.6 * initial, "loss {initial} -> {last}");
    assert!(correct > 0.85, "training accuracy {correct}");
    // The trained weights, as used, are on the 4-bit grid.
    let w: Vec<f32> = l1.quantized_weight()?.flatten_all()?.to_vec1()?;
    assert!(w
        .iter()
        .all(|v| (v * 8.0).fract() == 0.0 && v.abs() <= 0.875));
    Ok(())
}

/// The float op: any layout and float dtype equals the core on the gathered values; the gradient
/// passes straight through; a rounding the format does not offer is refused when the op is built.
#[test]
fn float_op_equals_the_core_and_passes_gradients() {
    use xbquant::FloatFormat;
    use xbquant_candle::FloatQuantF;

    let data: Vec<f32> = (0..60).map(|i| ((i as f32) * 0.77).sin() * 600.0).collect();
    let x = Tensor::from_vec(data, (6, 10), &Device::Cpu).unwrap();
    let t = x.t().unwrap();
    let row_major: Vec<f32> = t
        .contiguous()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    for format in [
        FloatFormat::E4M3FN,
        FloatFormat::E5M2,
        FloatFormat::BFLOAT16,
    ] {
        for rounding in [Rounding::NearestEven, Rounding::Stochastic { seed: 3 }] {
            let op = FloatQuantF::new(format, rounding).unwrap();
            let q: Vec<f32> = t
                .apply_op1(op)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(
                q,
                format.quantize(&row_major, rounding).unwrap(),
                "{format}"
            );
            for dtype in [DType::F16, DType::BF16, DType::F64] {
                let td = t.to_dtype(dtype).unwrap();
                let got = td.apply_op1(op).unwrap().to_dtype(DType::F64).unwrap();
                let want: Vec<f64> = td
                    .to_dtype(DType::F32)
                    .unwrap()
                    .t()
                    .unwrap()
                    .t()
                    .unwrap()
                    .contiguous()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect();
                let want = Tensor::from_vec(
                    format.quantize(&want, rounding).unwrap(),
                    t.shape(),
                    &Device::Cpu,
                )
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap();
                let (a, b): (Vec<f64>, Vec<f64>) = (
                    got.flatten_all().unwrap().to_vec1().unwrap(),
                    want.flatten_all().unwrap().to_vec1().unwrap(),
                );
                assert!(
                    a.iter()
                        .zip(&b)
                        .all(|(p, q)| p == q || (p.is_nan() && q.is_nan())),
                    "{format} {dtype:?}"
                );
            }
        }
    }
    let w = Var::from_tensor(&x).unwrap();
    let op = FloatQuantF::new(FloatFormat::E4M3FN, Rounding::NearestEven).unwrap();
    let grads = w
        .as_tensor()
        .apply_op1(op)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g: Vec<f32> = grads
        .get(&w)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(g.iter().all(|&v| v == 1.0));
    assert!(FloatQuantF::new(FloatFormat::E5M2, Rounding::Floor).is_err());
}

/// The block op: equal to the core on the gathered values, for each block shape, with the
/// straight-through gradient; runs that do not divide the last dimension are an error.
#[test]
fn block_op_equals_the_core_and_passes_gradients() {
    use xbquant::{BlockFormat, Blocks};
    use xbquant_candle::{BlockQuantF, BlockShape};

    let data: Vec<f32> = (0..48)
        .map(|i| ((i as f32) * 0.9).cos() * 2f32.powi(i % 7 - 3))
        .collect();
    let x = Tensor::from_vec(data, (4, 12), &Device::Cpu).unwrap();
    let t = x.t().unwrap(); // (12, 4), strided
    let row_major: Vec<f32> = t
        .contiguous()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let format = BlockFormat::new(5).unwrap();
    for (shape, blocks) in [
        (BlockShape::Whole, Blocks::Whole),
        (
            BlockShape::Dim(0),
            Blocks::Axis {
                shape: vec![12, 4],
                axis: 0,
            },
        ),
        (
            BlockShape::Dim(1),
            Blocks::Axis {
                shape: vec![12, 4],
                axis: 1,
            },
        ),
        (BlockShape::Runs(2), Blocks::Runs(2)),
    ] {
        let op = BlockQuantF::new(format, shape, Rounding::NearestEven);
        let q: Vec<f32> = t
            .apply_op1(op)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(
            q,
            format
                .quantize(&row_major, &blocks, Rounding::NearestEven)
                .unwrap(),
            "{shape:?}"
        );
    }
    let w = Var::from_tensor(&x).unwrap();
    let op = BlockQuantF::new(format, BlockShape::Dim(1), Rounding::Stochastic { seed: 1 });
    let grads = w
        .as_tensor()
        .apply_op1(op)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g: Vec<f32> = grads
        .get(&w)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(g.iter().all(|&v| v == 1.0));
    let bad = BlockQuantF::new(format, BlockShape::Runs(5), Rounding::NearestEven);
    assert!(x.apply_op1(bad).is_err());
}
