//! `AnalogLinear`: the tile's forward pass and gradients through candle's autograd, training,
//! and errors for shapes and dtypes it does not take.

use candle_core::{DType, Device, Module, Tensor, Var};
use xbquant_analog::{mvm, mvm_gradients, BoundManagement, IoParameters};
use xbquant_candle::AnalogLinear;

fn values(n: usize, scale: f64, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| ((i as u64 * 2_654_435_761 + seed * 97) % 1000) as f64 / 500.0 - 1.0)
        .map(|v| v * scale)
        .collect()
}

#[test]
fn forward_and_backward_are_the_tiles() {
    let device = Device::Cpu;
    let (rows, n, k) = (5, 12, 4);
    let (x, w) = (values(rows * n, 2.0, 1), values(k * n, 0.5, 2));
    let io = IoParameters {
        out_noise: 0.0,
        out_bound: 0.3,
        out_res: 0.0,
        bound_management: BoundManagement::None,
        ..IoParameters::default()
    };
    let wv = Var::from_tensor(&Tensor::from_vec(w.clone(), (k, n), &device).unwrap()).unwrap();
    let xv = Var::from_tensor(&Tensor::from_vec(x.clone(), (rows, n), &device).unwrap()).unwrap();
    let layer = AnalogLinear::new(wv.as_tensor().clone(), None, io, (8, 3), 5);
    let y = layer.forward(xv.as_tensor()).unwrap();
    let got: Vec<f64> = y.flatten_all().unwrap().to_vec1().unwrap();
    // Noise off: any seed gives the tile's outputs.
    assert_eq!(got, mvm(&x, rows, n, &w, k, &io, (8, 3), 0).unwrap());
    let g: Vec<f64> = values(rows * k, 1.0, 3);
    let weights = Tensor::from_vec(g.clone(), (rows, k), &device).unwrap();
    let grads = (y * weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let (gx, gw) = mvm_gradients(&x, rows, n, &w, k, &io, (8, 3), 0, &g).unwrap();
    let flat = |v: &Var| -> Vec<f64> {
        grads
            .get(v)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    assert_eq!(flat(&xv), gx);
    assert_eq!(flat(&wv), gw);
    // Outputs beyond the ADC's bound of 0.3 pass no gradient: some clip here.
    assert!(gx.contains(&0.0) || gw.contains(&0.0));
}

#[test]
fn a_small_model_trains_through_the_tiles() {
    let device = Device::Cpu;
    let (rows, n) = (64, 8);
    let x: Vec<f32> = values(rows * n, 1.0, 4)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let target: Vec<f32> = (0..rows).map(|r| x[r * n] - 0.5 * x[r * n + 1]).collect();
    let x = Tensor::from_vec(x, (rows, n), &device).unwrap();
    let target = Tensor::from_vec(target, (rows, 1), &device).unwrap();
    let w = Var::from_tensor(&Tensor::zeros((1, n), DType::F32, &device).unwrap()).unwrap();
    let io = IoParameters {
        out_noise: 0.01,
        ..IoParameters::default()
    };
    let loss = |layer: &AnalogLinear| -> f32 {
        let e = (layer.forward(&x).unwrap() - &target).unwrap();
        e.sqr().unwrap().mean_all().unwrap().to_scalar().unwrap()
    };
    let first = loss(&AnalogLinear::new(
        w.as_tensor().clone(),
        None,
        io,
        (512, 512),
        1,
    ));
    for step in 0..60 {
        let layer = AnalogLinear::new(w.as_tensor().clone(), None, io, (512, 512), step);
        let e = (layer.forward(&x).unwrap() - &target).unwrap();
        let grads = e.sqr().unwrap().mean_all().unwrap().backward().unwrap();
        let g = grads.get(&w).unwrap();
        w.set(&(w.as_tensor() - (g * 0.5).unwrap()).unwrap())
            .unwrap();
    }
    let last = loss(&AnalogLinear::new(
        w.as_tensor().clone(),
        None,
        io,
        (512, 512),
        99,
    ));
    assert!(last < 0.05 * first, "{first} -> {last}");
}

#[test]
fn shapes_and_dtypes_it_does_not_take_are_errors() {
    let device = Device::Cpu;
    let layer = AnalogLinear::new(
        Tensor::ones((3, 4), DType::F32, &device).unwrap(),
        None,
        IoParameters::default(),
        (512, 512),
        0,
    );
    assert!(layer
        .forward(&Tensor::ones((2, 5), DType::F32, &device).unwrap())
        .is_err());
    assert!(layer
        .forward(&Tensor::ones((2, 4), DType::F16, &device).unwrap())
        .is_err());
    let bad = IoParameters {
        out_bound: -1.0,
        ..IoParameters::default()
    };
    let layer = AnalogLinear::new(
        Tensor::ones((3, 4), DType::F32, &device).unwrap(),
        None,
        bad,
        (512, 512),
        0,
    );
    let e = layer
        .forward(&Tensor::ones((2, 4), DType::F32, &device).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("out_bound"), "{e}");
    // Batch axes in front are kept.
    let layer = AnalogLinear::new(
        Tensor::ones((3, 4), DType::F32, &device).unwrap(),
        None,
        IoParameters::default(),
        (512, 512),
        0,
    );
    let y = layer
        .forward(&Tensor::ones((2, 5, 4), DType::F32, &device).unwrap())
        .unwrap();
    assert_eq!(y.dims(), [2, 5, 3]);
}
