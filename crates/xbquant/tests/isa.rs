//! Every instruction set the kernels are compiled for gives the same bits. The kernels run in a
//! copy per instruction set (AVX-512, AVX2, baseline), and some loops differ between them (the
//! stochastic loops hash the draws of `f64` lanes in a loop of their own where a vector holds
//! 256 bits), so each copy is run here on the same inputs: fractions on the stochastic draws,
//! whose results are known, and data over many binades with specials. A machine without
//! AVX-512 runs its best copy twice; the limit is process-wide, so this file holds one test.

mod common;

use xbquant::{
    detected_instruction_set, set_max_instruction_set, Blocks, FixedPoint, FloatFormat,
    InstructionSet, Overflow, Rounding,
};

const N: usize = 4500; // several blocks of 1K draws and a tail

fn sign(i: usize) -> f64 {
    if i % 4 < 2 {
        1.0
    } else {
        -1.0
    }
}

/// Fractions on the draws of `seed` times `step`, in `f64` and `f32`, and the results
/// stochastic rounding to multiples of `step` must give them: 0 for even `i`, `+-step` for odd.
fn on_draws(seed: u64, step: f64) -> (Vec<f64>, Vec<f32>, Vec<f64>) {
    let x = common::fractions_at_draws(seed, N)
        .iter()
        .enumerate()
        .map(|(i, &f)| sign(i) * f * step)
        .collect();
    let x32 = common::fractions_at_draws_f32(seed, N)
        .iter()
        .enumerate()
        .map(|(i, &f)| (sign(i) * f64::from(f) * step) as f32)
        .collect();
    let want = (0..N)
        .map(|i| if i % 2 == 1 { sign(i) * step } else { 0.0 })
        .collect();
    (x, x32, want)
}

/// Data over many binades, some saturating, with NaN, infinities, zeros and subnormals.
fn wide() -> Vec<f64> {
    (0..N)
        .map(|i| match i % 97 {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => -0.0,
            3 => -5e-324,
            4 => 1e-40,
            _ => (i as f64 * 0.37).sin() * 2f64.powi((i % 13) as i32 - 6),
        })
        .collect()
}

fn bits64(v: &[f64]) -> Vec<u64> {
    v.iter().map(|q| q.to_bits()).collect()
}

fn bits32(v: &[f32]) -> Vec<u64> {
    v.iter().map(|&q| u64::from(q.to_bits())).collect()
}

/// `got` equals `want` (as numbers: 0.0 and -0.0 differ only in sign, which both match).
fn check(name: &str, got: &[f64], want: &[f64]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g == w, "{name} [{i}]: {g}, want {w}");
    }
}

/// Each case's name and result bits.
type Results = Vec<(String, Vec<u64>)>;

/// The results of every case in the instruction set now set, as bits; the cases with known
/// results are checked against them.
fn run_cases() -> Results {
    let mut out = Vec::new();
    let seed = 11;
    let r = Rounding::Stochastic { seed };
    // Fixed point: `f32` data in the `f32` lane (wl 8) and in the `f64` lane (wl 40).
    for (wl, fl) in [(8, 0), (40, 20)] {
        let fmt = FixedPoint::new(wl, fl).unwrap();
        let (x, x32, want) = on_draws(seed, fmt.step());
        let name = format!("fixed <{wl}, {fl}>");
        let q = fmt.quantize(&x, r);
        check(&format!("{name} f64"), &q, &want);
        out.push((format!("{name} f64"), bits64(&q)));
        let (q, mask) = fmt.quantize_with_mask(&x32, r);
        let q: Vec<f64> = q.iter().map(|&v| f64::from(v)).collect();
        check(&format!("{name} f32 with mask"), &q, &want);
        assert!(mask.iter().all(|m| !m));
        let mut in_place = x32.clone();
        fmt.quantize_in_place(&mut in_place, r);
        let in_place: Vec<f64> = in_place.iter().map(|&v| f64::from(v)).collect();
        check(&format!("{name} f32 in place"), &in_place, &want);
        out.push((format!("{name} f32"), bits64(&q)));
    }
    // A float format.
    let step = 2f64.powi(-9); // E4M3FN's smallest step
    let (x, x32, want) = on_draws(seed, step);
    let q = FloatFormat::E4M3FN.quantize(&x, r).unwrap();
    check("e4m3fn f64", &q, &want);
    let q32 = FloatFormat::E4M3FN.quantize(&x32, r).unwrap();
    let q32: Vec<f64> = q32.iter().map(|&v| f64::from(v)).collect();
    check("e4m3fn f32", &q32, &want);
    out.push(("e4m3fn".into(), bits64(&q)));
    // Per slice, one fractional length per row.
    let base = FixedPoint::new(6, 0).unwrap();
    let shape = vec![50, N / 50];
    let fls: Vec<i32> = (0..50).map(|b| b % 5 + 1).collect();
    let row_step = |i: usize| 2f64.powi(-fls[i / shape[1]]);
    let (x, x32, _) = on_draws(seed, 1.0);
    let x: Vec<f64> = x.iter().enumerate().map(|(i, v)| v * row_step(i)).collect();
    let x32: Vec<f32> = (0..N)
        .map(|i| (f64::from(x32[i]) * row_step(i)) as f32)
        .collect();
    let want: Vec<f64> = (0..N)
        .map(|i| {
            if i % 2 == 1 {
                sign(i) * row_step(i)
            } else {
                0.0
            }
        })
        .collect();
    let blocks = Blocks::Axis { shape, axis: 0 };
    let mut q = vec![0f64; N];
    base.quantize_slices_into(&x, &mut q, None, &blocks, &fls, r)
        .unwrap();
    check("per slice f64", &q, &want);
    let mut q32 = vec![0f32; N];
    base.quantize_slices_into(&x32, &mut q32, None, &blocks, &fls, r)
        .unwrap();
    let q32: Vec<f64> = q32.iter().map(|&v| f64::from(v)).collect();
    check("per slice f32", &q32, &want);
    out.push(("per slice".into(), bits64(&q)));
    // Wide data, nearest and stochastic, through every overflow family.
    let x = wide();
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    for overflow in [
        Overflow::Saturate,
        Overflow::Wrap { sat_bits: 1 },
        Overflow::Unbounded,
    ] {
        let fmt = FixedPoint::new(8, 3)
            .unwrap()
            .with_overflow(overflow)
            .unwrap();
        for rounding in [Rounding::NearestEven, r] {
            let name = format!("wide {overflow} {rounding}");
            let (q, mask) = fmt.quantize_with_mask(&x, rounding);
            out.push((format!("{name} f64"), bits64(&q)));
            out.push((
                format!("{name} f64 mask"),
                mask.iter().map(|&m| u64::from(m)).collect(),
            ));
            out.push((format!("{name} f32"), bits32(&fmt.quantize(&x32, rounding))));
        }
    }
    for rounding in [Rounding::NearestEven, r] {
        let q = FloatFormat::BFLOAT16.quantize(&x32, rounding).unwrap();
        out.push((format!("wide bfloat16 {rounding}"), bits32(&q)));
    }
    out
}

#[test]
fn every_instruction_set_gives_the_same_bits() {
    let best = detected_instruction_set();
    let mut first: Option<(InstructionSet, Results)> = None;
    for isa in [
        InstructionSet::Avx512,
        InstructionSet::Avx2,
        InstructionSet::Baseline,
    ] {
        set_max_instruction_set(isa);
        let results = run_cases();
        match &first {
            None => first = Some((isa, results)),
            Some((base_isa, base)) => {
                for ((name, got), (_, want)) in results.iter().zip(base) {
                    let at = got.iter().zip(want).position(|(g, w)| g != w);
                    assert!(
                        at.is_none(),
                        "{name}: {isa} (of {best}) differs from {base_isa} at {at:?}"
                    );
                }
            }
        }
    }
    set_max_instruction_set(InstructionSet::Avx512);
}
