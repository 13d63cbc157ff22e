//! The periphery ops against the core, on strided tensors, with their gradients.

use candle_core::{Device, Tensor, Var};
use xbquant::{
    Blocks, Converter, ConverterNoise, ConverterRange, FixedPoint, FracLengthRule, Grid, Levels,
    Rounding,
};
use xbquant_candle::{BlockShape, ConverterF, FracLengths, GridQuantF, LevelsQuantF, SliceQuantF};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn data(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| ((i as f32) * 0.77).sin() * 2f32.powi((i % 5) as i32 - 1))
        .collect()
}

#[test]
fn slices_on_strided_tensors_equal_the_core() -> Result<()> {
    let (r, c) = (6, 9);
    let v = data(c, r);
    // A transposed view of a variable: shape (r, c), strided.
    let x = Var::from_tensor(&Tensor::from_vec(v, (c, r), &Device::Cpu)?)?;
    let xt = x.as_tensor().t()?;
    assert!(!xt.is_contiguous());
    let flat: Vec<f32> = xt.flatten_all()?.to_vec1()?;
    let dims = xt.dims().to_vec();
    let format = FixedPoint::new(5, 0)?;
    for (axis, rule) in [(0, FracLengthRule::Max), (1, FracLengthRule::Sqnr)] {
        let op = SliceQuantF::new(
            format,
            BlockShape::Dim(axis),
            FracLengths::Chosen(rule),
            Rounding::NearestEven,
        );
        let y = xt.apply_op1(op)?;
        let blocks = Blocks::Axis {
            shape: dims.clone(),
            axis,
        };
        let fls = format.choose_frac_lengths(&flat, &blocks, rule)?;
        let mut want = vec![0f32; flat.len()];
        let mut mask = vec![false; flat.len()];
        format.quantize_slices_into(
            &flat,
            &mut want,
            Some(&mut mask),
            &blocks,
            &fls,
            Rounding::NearestEven,
        )?;
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, want);
        let grads = y.sum_all()?.backward()?;
        let g: Vec<f32> = grads.get(&x).unwrap().t()?.flatten_all()?.to_vec1()?;
        let expected: Vec<f32> = mask.iter().map(|&m| if m { 0.0 } else { 1.0 }).collect();
        assert_eq!(g, expected, "axis {axis}");
    }
    // Given fractional lengths of the wrong count: an error, not a panic.
    let bad = SliceQuantF::new(
        format,
        BlockShape::Dim(0),
        FracLengths::Given(vec![1, 2]),
        Rounding::NearestEven,
    );
    assert!(xt.apply_op1(bad).is_err());
    Ok(())
}

#[test]
fn noisy_converter_gradients_follow_the_forward_saturation() -> Result<()> {
    let v = data(40, 25);
    let x = Var::from_tensor(
        &Tensor::from_vec(v, (40, 25), &Device::Cpu)?.to_dtype(candle_core::DType::F64)?,
    )?;
    let conv = Converter::new(4)?.with_noise(ConverterNoise::Gaussian(0.2), None)?;
    let op = ConverterF::new(conv, BlockShape::Dim(1), ConverterRange::AbsMax);
    let y = x.as_tensor().apply_op1(op.clone())?;
    // The op fixed its noise: applying it again gives the same values.
    let again = x.as_tensor().apply_op1(op)?;
    assert_eq!(
        y.flatten_all()?.to_vec1::<f64>()?,
        again.flatten_all()?.to_vec1::<f64>()?
    );
    let grads = y.sum_all()?.backward()?;
    let g: Vec<f64> = grads.get(&x).unwrap().flatten_all()?.to_vec1()?;
    // Zero exactly where the output sits on the largest level of its column's range.
    let yv: Vec<f64> = y.flatten_all()?.to_vec1()?;
    let xv: Vec<f64> = x.as_tensor().flatten_all()?.to_vec1()?;
    let mut tops = [0f64; 25];
    for (i, v) in xv.iter().enumerate() {
        tops[i % 25] = tops[i % 25].max(v.abs());
    }
    let zeros = g.iter().filter(|&&v| v == 0.0).count();
    assert!(zeros > 0 && zeros < g.len());
    for (i, (gv, yv)) in g.iter().zip(&yv).enumerate() {
        let top = tops[i % 25] * 7.0 / 8.0;
        let saturated = (yv.abs() - top).abs() <= top * 1e-12;
        if *gv == 0.0 {
            assert!(saturated, "element {i}: zero gradient at {yv}, level {top}");
        }
    }
    Ok(())
}

#[test]
fn grids_and_levels_equal_the_core_and_pass_gradients_inside() -> Result<()> {
    let v: Vec<f32> = (0..200).map(|i| i as f32 * 0.7 - 20.0).collect();
    let x = Var::new(v.as_slice(), &Device::Cpu)?;
    let grid = Grid::new(7.5, -10.0, Some(12))?;
    let y = x
        .as_tensor()
        .apply_op1(GridQuantF::new(grid, Rounding::NearestEven))?;
    assert_eq!(
        y.to_vec1::<f32>()?,
        grid.quantize(&v, Rounding::NearestEven)?
    );
    let g: Vec<f32> = y.sum_all()?.backward()?.get(&x).unwrap().to_vec1()?;
    for (gv, xv) in g.iter().zip(&v) {
        let inside = (-10.0..=72.5).contains(xv);
        assert_eq!(*gv, if inside { 1.0 } else { 0.0 }, "{xv}");
    }
    let table = Levels::new(vec![-3.0, 0.5, 2.0, 30.0, 31.0])?;
    let y = x.as_tensor().apply_op1(LevelsQuantF::new(
        table.clone(),
        Rounding::Stochastic { seed: 2 },
    ))?;
    assert_eq!(
        y.to_vec1::<f32>()?,
        table.quantize(&v, Rounding::Stochastic { seed: 2 })?
    );
    let g: Vec<f32> = y.sum_all()?.backward()?.get(&x).unwrap().to_vec1()?;
    for (gv, xv) in g.iter().zip(&v) {
        assert_eq!(*gv, if (-3.0..=31.0).contains(xv) { 1.0 } else { 0.0 });
    }
    Ok(())
}

#[test]
fn bit_slices_of_float_and_integer_tensors_round_trip() -> Result<()> {
    use xbquant::{BitSlicing, SliceEncoding};
    use xbquant_candle::{bit_slices, from_bit_slices};
    let codes = Tensor::new(&[[3f32, -2.0, 0.0], [-15.0, 7.0, 1.0]], &Device::Cpu)?;
    for encoding in [
        SliceEncoding::SignMagnitude,
        SliceEncoding::OffsetBinary,
        SliceEncoding::TwosComplement,
    ] {
        let s = BitSlicing::new(5, 2, encoding)?;
        let planes = bit_slices(&codes, s)?;
        assert_eq!(planes.dims(), [3, 2, 3]);
        assert_eq!(planes.dtype(), candle_core::DType::F32);
        let back = from_bit_slices(&planes, s)?;
        assert_eq!(
            back.to_vec2::<f32>()?,
            codes.to_vec2::<f32>()?,
            "{encoding:?}"
        );
        // The planes are the core's, element by element.
        let flat: Vec<i64> = codes
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|&v| v as i64)
            .collect();
        let want: Vec<f32> = s
            .planes(&flat)?
            .into_iter()
            .flatten()
            .map(|d| d as f32)
            .collect();
        assert_eq!(planes.flatten_all()?.to_vec1::<f32>()?, want);
    }
    let s = BitSlicing::new(4, 1, SliceEncoding::SignMagnitude)?;
    assert!(bit_slices(&Tensor::new(&[0.5f32], &Device::Cpu)?, s).is_err());
    assert!(bit_slices(&Tensor::new(&[16i64], &Device::Cpu)?, s).is_err());
    assert!(from_bit_slices(
        &Tensor::zeros((3, 2), candle_core::DType::I64, &Device::Cpu)?,
        s
    )
    .is_err());
    Ok(())
}

/// `SchemeF` runs any scheme as the core does, on a strided (transposed) tensor: an ADC whose
/// range per column is a percentile, stochastic block floating point, a float format; the
/// clamp-aware gradient stops where the core's mask is set.
#[test]
fn scheme_op_equals_the_core_on_any_layout() {
    use xbquant::{Data, Part, Quantizer, Scheme};
    use xbquant_candle::{Gradient, SchemeF};

    let rows: Vec<f32> = (0..12 * 7)
        .map(|i| ((i as f32) * 0.77).sin() * (1.0 + (i % 5) as f32))
        .collect();
    let stored = Tensor::from_vec(rows, (7, 12), &Device::Cpu).unwrap();
    let x = stored.t().unwrap(); // 12 x 7, strided
    let values: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    for text in [
        "fixed<6,5> overflow=saturate-symmetric group=axis:1 range=percentile:90",
        "fixed<5,0> overflow=saturate-symmetric rounding=stochastic:4 group=axis:0 scale=shared-exponent",
        "e3m2 rounding=stochastic:9",
    ] {
        let scheme: Scheme = text.parse().unwrap();
        let want = scheme.quantize_shaped(&values, &[12, 7]).unwrap();
        let got: Vec<f32> = x
            .apply_op1(SchemeF::new(scheme.clone()))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(got, want, "{text}");
        // The gradient: ones, zero where the core's mask says the value was clipped.
        let var = Var::from_tensor(&x.contiguous().unwrap()).unwrap();
        let op = SchemeF::new(scheme.clone()).with_gradient(Gradient::ClampAware);
        let grads = var.as_tensor().apply_op1(op).unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads.get(&var).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let mut out = values.clone();
        let mut mask = vec![false; values.len()];
        scheme
            .quantize_part(Data::InPlace(&mut out), Some(&mut mask), Part::shaped(&[12, 7]).unwrap())
            .unwrap();
        let want_g: Vec<f32> = mask.iter().map(|&m| if m { 0.0 } else { 1.0 }).collect();
        assert_eq!(g, want_g, "{text}");
    }
}
