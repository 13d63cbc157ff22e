//! Times the Rust call of a 512 x 512 tile on a batch of 256 (float32, 20 repeats) with parts of
//! the forward pass switched off, to see where its time goes:
//! `cargo run --release -p xbquant-analog --example tile_probe`.

use std::time::Instant;

use xbquant_analog::{mvm, BoundManagement, IoParameters, NoiseManagement};

fn main() {
    let (rows, n, k) = (256, 512, 512);
    // Both at 64-byte boundaries, as torch allocates them.
    let xb: Vec<f32> = (0..rows * n + 16)
        .map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let wb: Vec<f32> = (0..k * n + 16)
        .map(|i| (i * 104_729 % 1000) as f32 / 20_000.0 - 0.025)
        .collect();
    let (sx, sw) = (xb.as_ptr().align_offset(64), wb.as_ptr().align_offset(64));
    let x = &xb[sx.min(16)..sx.min(16) + rows * n];
    let w = &wb[sw.min(16)..sw.min(16) + k * n];
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
        let _ = mvm(x, rows, n, w, k, &io, (512, 512), 1).expect("mvm");
        let start = Instant::now();
        for _ in 0..20 {
            let _ = mvm(x, rows, n, w, k, &io, (512, 512), 1).expect("mvm");
        }
        println!(
            "{name:40} {:.3} ms",
            start.elapsed().as_secs_f64() / 20.0 * 1e3
        );
    }
}
