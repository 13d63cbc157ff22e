//! A tour of the semantics: one small format, every rounding and overflow mode, and the seed's
//! defaults. Run with `cargo run --release --example tour`.

use xbquant::{FixedPoint, Overflow, QuantSpec, Rounding};

fn row(label: &str, values: &[f64]) {
    let cells: Vec<String> = values.iter().map(|v| format!("{v:>7}")).collect();
    println!("{label:<22}{}", cells.join(""));
}

fn main() -> Result<(), xbquant::Error> {
    let x = [
        -2.375, -2.0, -1.125, -0.625, -0.375, -0.125, 0.125, 0.375, 0.625, 1.125, 1.875, 2.5, 9.0,
    ];
    let base = FixedPoint::new(4, 2)?;
    let (lo, hi) = base.with_symmetric(false).range();
    println!(
        "{}: step {}, values {lo} ..= {hi}\n",
        base.hls_name(),
        base.step()
    );
    row("x", &x);
    println!("rounding (saturate):");
    let saturate = base.with_overflow(Overflow::Saturate)?;
    for r in Rounding::DETERMINISTIC {
        row(&format!("  {r}"), &saturate.quantize(&x, r));
    }
    println!("overflow (floor):");
    for o in [
        Overflow::Saturate,
        Overflow::SaturateSymmetric,
        Overflow::SaturateZero,
        Overflow::Wrap { sat_bits: 0 },
        Overflow::Wrap { sat_bits: 1 },
        Overflow::WrapSignMagnitude { sat_bits: 0 },
        Overflow::Unbounded,
    ] {
        row(
            &format!("  {o}"),
            &base.with_overflow(o)?.quantize(&x, Rounding::Floor),
        );
    }
    let seed = FixedPoint::new(8, 6)?;
    let (lo, hi) = seed.range();
    println!(
        "\nthe seed's default, wl=8 fl=6 symmetric nearest: range ({lo}, {hi}), {} as HLS",
        QuantSpec::new(seed, Rounding::NearestEven).to_hls()?
    );
    Ok(())
}
