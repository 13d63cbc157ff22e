//! The Rust side of the `xbquant` Python package: a thin layer that turns numpy buffers into calls
//! of the core. Everything users see is written in Python (`python/xbquant/`); this module is
//! `xbquant._xbquant`, a private implementation detail.
//!
//! A scheme crosses the boundary once, as a `Scheme` (the core's, in a frozen Python object that
//! the Python layer caches per distinct set of arguments); each call passes the scheme, the
//! buffers and, for noise without a fixed seed, the seed of that call, to the one entry point,
//! `quantize` (`call.rs`). `codes.rs` holds the converters between codes and values.

mod analog;
mod call;
mod codes;
mod fixed;
mod scheme;

use pyo3::prelude::*;
use xbquant::noise;

#[pymodule]
fn _xbquant(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<scheme::PyScheme>()?;
    m.add_class::<scheme::RoundingMode>()?;
    m.add_class::<scheme::OverflowMode>()?;
    m.add_function(wrap_pyfunction!(call::quantize, m)?)?;
    m.add_function(wrap_pyfunction!(call::calibrate, m)?)?;
    m.add_function(wrap_pyfunction!(codes::bit_slices, m)?)?;
    m.add_function(wrap_pyfunction!(codes::from_bit_slices, m)?)?;
    m.add_function(wrap_pyfunction!(codes::format_range, m)?)?;
    m.add_function(wrap_pyfunction!(codes::stream_key, m)?)?;
    m.add_function(wrap_pyfunction!(codes::hash_keys, m)?)?;
    m.add_class::<analog::AnalogParameters>()?;
    m.add_function(wrap_pyfunction!(analog::analog_mvm, m)?)?;
    m.add_function(wrap_pyfunction!(analog::analog_gradients, m)?)?;
    m.add_function(wrap_pyfunction!(analog::device_check, m)?)?;
    m.add_function(wrap_pyfunction!(analog::device_apply, m)?)?;
    m.add_function(wrap_pyfunction!(analog::device_to_conductances, m)?)?;
    m.add_function(wrap_pyfunction!(set_max_instruction_set, m)?)?;
    m.add_function(wrap_pyfunction!(fixed::fixed_type, m)?)?;
    m.add_function(wrap_pyfunction!(fixed::fixed_accum_type, m)?)?;
    m.add_function(wrap_pyfunction!(fixed::fixed_dense, m)?)?;
    m.add_function(wrap_pyfunction!(fixed::fixed_accum_bits, m)?)?;
    m.add_function(wrap_pyfunction!(fixed::fixed_accum_bits_used, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The noise generator's constants, for the torch operations that redraw it on other devices.
    m.add("NOISE_STEP", noise::STEP)?;
    m.add("NOISE_MIX", noise::MIX.to_vec())?;
    m.add("NOISE_SHIFTS", noise::SHIFTS.to_vec())?;
    m.add("NOISE_DRAW_BITS", noise::DRAW_BITS)?;
    m.add("NOISE_HIGH_BITS", noise::HIGH_BITS)?;
    m.add("NOISE_WEYL", noise::WEYL)?;
    m.add("NOISE_HASH_MUL", noise::HASH_MUL.to_vec())?;
    m.add("NOISE_HASH_SHIFTS", noise::HASH_SHIFTS.to_vec())?;
    Ok(())
}

/// Limits the instruction set of the kernels in this process ("avx512", "avx2" or "baseline"),
/// and returns the one they now run with: for benchmarks that measure, on an AVX-512 machine,
/// what an AVX2 laptop gets (the results are the same bits).
#[pyfunction]
fn set_max_instruction_set(name: &str) -> PyResult<String> {
    let set = match name {
        "avx512" => xbquant::InstructionSet::Avx512,
        "avx2" => xbquant::InstructionSet::Avx2,
        "baseline" => xbquant::InstructionSet::Baseline,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown instruction set {other:?}: expected avx512, avx2 or baseline"
            )))
        }
    };
    xbquant::set_max_instruction_set(set);
    Ok(xbquant::instruction_set().to_string())
}
