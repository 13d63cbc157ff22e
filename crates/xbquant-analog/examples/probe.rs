//! Times the Rust call of a 512 x 512 tile on a batch of 256 (float32, 20 repeats) with parts of
//! the forward pass switched off, to see where its time goes:
//! `cargo run --release -p xbquant-analog --example probe`.

use std::time::Instant;

use xbquant_analog::{mvm, BoundManagement, IoParameters, NoiseManagement};

fn main() {
    let (rows, n, k) = (256, 512, 512);
    let x: Vec<f32> = (0..rows * n)
        .map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let w: Vec<f32> = (0..k * n)
        .map(|i| (i * 104_729 % 1000) as f32 / 10_000.0 - 0.05)
        .collect();
    let quiet = IoParameters {
        out_noise: 0.0,
        ..IoParameters::default()
    };
    let bare = IoParameters {
        bound_management: BoundManagement::None,
        noise_management: NoiseManagement::None,
        inp_res: 0.0,
        out_res: 0.0,
        ..quiet
    };
    let cases = [
        ("default IoParameters", IoParameters::default()),
        (
            "the product alone (is_perfect)",
            IoParameters {
                is_perfect: true,
                ..quiet
            },
        ),
        ("converters and management, no noise", quiet),
        ("no converters, management or noise", bare),
    ];
    for (name, io) in cases {
        let _ = mvm(&x, rows, n, &w, k, &io, (512, 512), 1).expect("mvm");
        let start = Instant::now();
        for _ in 0..20 {
            let _ = mvm(&x, rows, n, &w, k, &io, (512, 512), 1).expect("mvm");
        }
        println!(
            "{name:40} {:.3} ms",
            start.elapsed().as_secs_f64() / 20.0 * 1e3
        );
    }
}
