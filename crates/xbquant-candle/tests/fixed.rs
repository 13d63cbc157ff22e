//! `FixedLinear` and `fixed_linear`: hls4ml's dense layer as a candle op (the forward pass of
//! `xbquant_fixed`, any layout and leading axes), the float layer's gradient, overflow counts,
//! training, and errors for shapes, dtypes and values it does not take.

use candle_core::{DType, Device, Module, Tensor, Var};
use xbquant_candle::{fixed_linear, FixedLinear};
use xbquant_fixed::{dense, dense_with_overflows, DenseTypes};

fn values(n: usize, scale: f64, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| ((i as u64 * 2_654_435_761 + seed * 97) % 1000) as f64 / 500.0 - 1.0)
        .map(|v| v * scale)
        .collect()
}

fn types(accum: &str) -> DenseTypes {
    DenseTypes::parse(
        "ap_fixed<16,6>",
        "ap_fixed<8,3>",
        "ap_fixed<8,3>",
        accum,
        "ap_fixed<16,6,AP_RND_CONV,AP_SAT>",
    )
    .unwrap()
}

#[test]
fn the_forward_pass_is_hls4mls_layer_in_any_layout() {
    let device = Device::Cpu;
    let (rows, n, k) = (6, 37, 5);
    let (x, w, b) = (
        values(rows * n, 9.0, 1),
        values(k * n, 1.5, 2),
        values(k, 2.0, 3),
    );
    for accum in ["ap_fixed<34,19>", "ap_fixed<14,5,AP_RND,AP_SAT>"] {
        let t = types(accum);
        let want = dense(&x, rows, n, &w, k, Some(&b), &t).unwrap();
        // f64, x with leading axes (2, 3, n), the weight through a transposed layout.
        let xt = Tensor::from_vec(x.clone(), (2, 3, n), &device).unwrap();
        let wt = Tensor::from_vec(w.clone(), (k, n), &device).unwrap();
        let w_strided = wt.t().unwrap().contiguous().unwrap().t().unwrap();
        assert!(!w_strided.is_contiguous());
        let bt = Tensor::from_vec(b.clone(), k, &device).unwrap();
        let y = fixed_linear(&xt, &w_strided, Some(&bt), t).unwrap();
        assert_eq!(y.dims(), [2, 3, k]);
        let got: Vec<f64> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got, want, "{accum}");
        // f32: the same values (16-bit results are exact in f32).
        let f = |v: &[f64]| -> Vec<f32> { v.iter().map(|&e| e as f32).collect() };
        let want32 = dense(&f(&x), rows, n, &f(&w), k, Some(&f(&b)), &t).unwrap();
        let layer = FixedLinear::new(
            Tensor::from_vec(f(&w), (k, n), &device).unwrap(),
            Some(Tensor::from_vec(f(&b), k, &device).unwrap()),
            t,
        );
        let y32 = layer
            .forward(&Tensor::from_vec(f(&x), (rows, n), &device).unwrap())
            .unwrap();
        assert_eq!(y32.dtype(), DType::F32);
        let got32: Vec<f32> = y32.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got32, f(&want32), "{accum}");
        // No bias: the accumulator starts at zero.
        let none = fixed_linear(&xt, &wt, None, t).unwrap();
        let want_none = dense(&x, rows, n, &w, k, None, &t).unwrap();
        assert_eq!(
            none.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            want_none
        );
    }
}

#[test]
fn overflows_are_counted_per_channel() {
    let device = Device::Cpu;
    let (rows, n, k) = (4, 30, 3);
    let (x, w, b) = (
        values(rows * n, 20.0, 4),
        values(k * n, 3.0, 5),
        values(k, 1.0, 6),
    );
    let t = types("ap_fixed<12,4,AP_TRN,AP_SAT>");
    let (codes, want) = dense_with_overflows(&x, rows, n, &w, k, Some(&b), &t).unwrap();
    let layer = FixedLinear::new(
        Tensor::from_vec(w.clone(), (k, n), &device).unwrap(),
        Some(Tensor::from_vec(b.clone(), k, &device).unwrap()),
        t,
    );
    let (y, counts) = layer
        .forward_with_overflows(&Tensor::from_vec(x.clone(), (rows, n), &device).unwrap())
        .unwrap();
    assert_eq!(counts, want);
    assert!(counts.accumulator() > 0, "{counts:?}");
    let step = 2f64.powi(-t.result.frac());
    let from_codes: Vec<f64> = codes.iter().map(|&c| c as f64 * step).collect();
    assert_eq!(
        y.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
        from_codes
    );
    // The counts and the values of the plain forward pass agree.
    assert_eq!(
        layer
            .forward(&Tensor::from_vec(x, (rows, n), &device).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap(),
        from_codes
    );
}

#[test]
fn the_gradient_is_the_float_layers() {
    let device = Device::Cpu;
    let (rows, n, k) = (5, 8, 3);
    let xv = Var::from_vec(values(rows * n, 2.0, 7), (rows, n), &device).unwrap();
    let wv = Var::from_vec(values(k * n, 0.5, 8), (k, n), &device).unwrap();
    let bv = Var::from_vec(values(k, 0.5, 9), k, &device).unwrap();
    let g = Tensor::from_vec(values(rows * k, 1.0, 10), (rows, k), &device).unwrap();
    let y = fixed_linear(
        xv.as_tensor(),
        wv.as_tensor(),
        Some(bv.as_tensor()),
        types("ap_fixed<10,3,AP_TRN,AP_SAT>"),
    )
    .unwrap();
    let grads = (y * &g).unwrap().sum_all().unwrap().backward().unwrap();
    let float = xv
        .as_tensor()
        .matmul(&wv.as_tensor().t().unwrap())
        .unwrap()
        .broadcast_add(bv.as_tensor())
        .unwrap();
    let float_grads = (float * &g).unwrap().sum_all().unwrap().backward().unwrap();
    for v in [&xv, &wv, &bv] {
        let ours: Vec<f64> = grads
            .get(v)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let theirs: Vec<f64> = float_grads
            .get(v)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(ours, theirs);
    }
}

#[test]
fn a_layer_trains_with_the_fixed_point_forward_pass() {
    use candle_nn::{Optimizer, SGD};
    let device = Device::Cpu;
    let (rows, n) = (64, 4);
    let x = Tensor::from_vec(values(rows * n, 1.0, 11), (rows, n), &device).unwrap();
    // The target: a fixed linear map the 8-bit weights can hold to within a step.
    let truth = Tensor::new(&[[0.75f64, -0.5, 0.25, 1.0]], &device).unwrap();
    let target = x.matmul(&truth.t().unwrap()).unwrap();
    let w = Var::zeros((1, n), DType::F64, &device).unwrap();
    let mut sgd = SGD::new(vec![w.clone()], 0.2).unwrap();
    let t = types("ap_fixed<24,8>");
    let loss = |w: &Var| -> f64 {
        let y = FixedLinear::new(w.as_tensor().clone(), None, t)
            .forward(&x)
            .unwrap();
        (y - &target)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    let first = loss(&w);
    for _ in 0..200 {
        let y = FixedLinear::new(w.as_tensor().clone(), None, t)
            .forward(&x)
            .unwrap();
        let l = (y - &target).unwrap().sqr().unwrap().mean_all().unwrap();
        sgd.backward_step(&l).unwrap();
    }
    let last = loss(&w);
    assert!(last < first * 1e-3, "{first} -> {last}");
}

#[test]
fn bad_shapes_dtypes_and_values_are_clear_errors() {
    let device = Device::Cpu;
    let t = types("ap_fixed<34,19>");
    let x = Tensor::from_vec(values(6, 1.0, 1), (2, 3), &device).unwrap();
    let w = Tensor::from_vec(values(6, 1.0, 2), (2, 3), &device).unwrap();
    let message = |r: candle_core::Result<Tensor>| r.unwrap_err().to_string();
    let wrong_in = Tensor::from_vec(values(8, 1.0, 2), (2, 4), &device).unwrap();
    assert!(message(fixed_linear(&x, &wrong_in, None, t)).contains("(out, in)"));
    let b3 = Tensor::from_vec(values(3, 1.0, 3), 3, &device).unwrap();
    assert!(message(fixed_linear(&x, &w, Some(&b3), t)).contains("bias must be (2,)"));
    let w3 = Tensor::from_vec(values(6, 1.0, 2), (1, 2, 3), &device).unwrap();
    assert!(message(fixed_linear(&x, &w3, None, t)).contains("(out, in)"));
    let scalar = Tensor::new(1.0f64, &device).unwrap();
    assert!(message(fixed_linear(&scalar, &w, None, t)).contains("no axes"));
    for dtype in [DType::F16, DType::BF16, DType::U8, DType::I64] {
        let xd = x.to_dtype(dtype).unwrap();
        assert!(
            message(fixed_linear(&xd, &w.to_dtype(dtype).unwrap(), None, t))
                .contains("F32 and F64"),
            "{dtype:?}"
        );
    }
    let mixed = message(fixed_linear(&x.to_dtype(DType::F32).unwrap(), &w, None, t));
    assert!(
        mixed.contains("must all be F32 or all F64, got x F32, w F64"),
        "{mixed}"
    );
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let xb = Tensor::new(&[[bad, 0.0, 1.0]], &device).unwrap();
        assert!(
            message(fixed_linear(&xb, &w, None, t)).contains("finite"),
            "{bad}"
        );
    }
    // Huge values saturate or wrap as the types say; they are no error.
    let huge = Tensor::new(&[[1e300f64, -1e300, 3.0]], &device).unwrap();
    assert!(fixed_linear(&huge, &w, None, t).is_ok());
}
