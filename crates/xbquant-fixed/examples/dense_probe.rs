//! Times a 1024 x 1024 dense layer on a batch of 256 (16-bit inputs, 8-bit weights, float32
//! values), with a wrapping and a saturating accumulator, to see where the time goes:
//! `cargo run --release -p xbquant-fixed --example dense_probe [wrap|sat|counted] [avx2|baseline]`
//! (the last, to run with at most that instruction set).

use std::time::Instant;

use xbquant_fixed::{dense, dense_with_overflows, DenseTypes};

fn main() {
    let (rows, n, out) = (256, 1024, 1024);
    let x: Vec<f32> = (0..rows * n)
        .map(|i| (i * 7919 % 1000) as f32 / 125.0 - 4.0)
        .collect();
    let w: Vec<f32> = (0..out * n)
        .map(|i| (i * 104_729 % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let time = |name: &str, reps: u32, f: &dyn Fn()| {
        f();
        let start = Instant::now();
        for _ in 0..reps {
            f();
        }
        println!(
            "{name:50} {:.2} ms",
            start.elapsed().as_secs_f64() / f64::from(reps) * 1e3
        );
    };
    let wrap = DenseTypes::parse(
        "ap_fixed<16,6>",
        "ap_fixed<8,3>",
        "ap_fixed<8,3>",
        "ap_fixed<34,19>",
        "ap_fixed<16,6>",
    )
    .expect("types");
    let sat = DenseTypes::parse(
        "ap_fixed<16,6>",
        "ap_fixed<8,3>",
        "ap_fixed<8,3>",
        "ap_fixed<24,12,AP_RND,AP_SAT>",
        "ap_fixed<16,6>",
    )
    .expect("types");
    let only = std::env::args().nth(1).unwrap_or_default();
    match std::env::args().nth(2).as_deref() {
        Some("avx2") => xbquant::set_max_instruction_set(xbquant::InstructionSet::Avx2),
        Some("baseline") => xbquant::set_max_instruction_set(xbquant::InstructionSet::Baseline),
        _ => {}
    }
    println!("instruction set: {}", xbquant::instruction_set());
    if only.is_empty() || only == "wrap" {
        time("wrapping accumulator (dense)", 40, &|| {
            let _ = dense(&x, rows, n, &w, out, None, &wrap).expect("dense");
        });
    }
    if only.is_empty() || only == "sat" {
        time("saturating accumulator (dense)", 10, &|| {
            let _ = dense(&x, rows, n, &w, out, None, &sat).expect("dense");
        });
    }
    let counted = DenseTypes::parse(
        "ap_fixed<16,6>",
        "ap_fixed<8,3>",
        "ap_fixed<8,3>",
        "ap_fixed<24,12>",
        "ap_fixed<16,6>",
    )
    .expect("types");
    if only.is_empty() || only == "counted" {
        time("wrapping (24 bits), each step counted", 3, &|| {
            let _ = dense_with_overflows(&x, rows, n, &w, out, None, &counted).expect("dense");
        });
    }
}
