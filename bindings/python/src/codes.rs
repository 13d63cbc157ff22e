//! The converters between codes and values that are not schemes: bit slices of integer codes
//! and back, a format's range, and the noise generator's keys for the torch operations.

use numpy::PyArrayMethods;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use xbquant::{noise, BitSlicing, FixedPoint, SliceEncoding};

use crate::call::typed;
use crate::scheme::value_error;

fn slicing(bits: u32, slice_bits: u32, encoding: &str) -> PyResult<BitSlicing> {
    let encoding: SliceEncoding = encoding.parse().map_err(value_error)?;
    BitSlicing::new(bits, slice_bits, encoding).map_err(value_error)
}

/// The bit planes of `codes` (int64, C-contiguous) into `out` (int64, `count x len`).
#[pyfunction]
#[pyo3(signature = (codes, bits, slice_bits, encoding, out))]
pub fn bit_slices(
    codes: &Bound<'_, PyAny>,
    bits: u32,
    slice_bits: u32,
    encoding: &str,
    out: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let s = slicing(bits, slice_bits, encoding)?;
    let codes = typed::<i64>(codes, "the codes", "int64")?.try_readonly()?;
    let mut out = typed::<i64>(out, "the planes", "int64")?.try_readwrite()?;
    let codes = codes
        .as_slice()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let out = out
        .as_slice_mut()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let mut planes: Vec<&mut [i64]> = out.chunks_mut(codes.len().max(1)).collect();
    if codes.is_empty() {
        planes = (0..s.count()).map(|_| <&mut [i64]>::default()).collect();
    }
    s.planes_into(codes, &mut planes).map_err(value_error)
}

/// The codes of `planes` (int64, `count x len`, C-contiguous).
#[pyfunction]
#[pyo3(signature = (planes, bits, slice_bits, encoding, length))]
pub fn from_bit_slices(
    planes: &Bound<'_, PyAny>,
    bits: u32,
    slice_bits: u32,
    encoding: &str,
    length: usize,
) -> PyResult<Vec<i64>> {
    let s = slicing(bits, slice_bits, encoding)?;
    let planes = typed::<i64>(planes, "the planes", "int64")?.try_readonly()?;
    let planes = planes
        .as_slice()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let rows: Vec<&[i64]> = if length == 0 {
        (0..s.count()).map(|_| <&[i64]>::default()).collect()
    } else {
        planes.chunks(length).collect()
    };
    s.join(&rows).map_err(value_error)
}

/// The `(min, max)` of a format by the seed's formula (`get_range_fixed_point`).
#[pyfunction]
#[pyo3(signature = (word_length, frac_length, symmetric, signed))]
pub fn format_range(
    word_length: i64,
    frac_length: i64,
    symmetric: bool,
    signed: bool,
) -> PyResult<(f64, f64)> {
    let wl = u32::try_from(word_length).map_err(|_| {
        PyValueError::new_err(format!(
            "invalid word length {word_length}: expected 1 to {}",
            xbquant::MAX_WORD_LENGTH
        ))
    })?;
    let fl = i32::try_from(frac_length).map_err(|_| {
        PyValueError::new_err(format!(
            "fractional length {frac_length} is out of range: expected -{m} to {m}",
            m = xbquant::MAX_FRAC_LENGTH
        ))
    })?;
    let format = FixedPoint::new(wl, fl)
        .map_err(value_error)?
        .with_symmetric(symmetric)
        .with_signed(signed)
        .map_err(value_error)?;
    Ok(xbquant::get_range_fixed_point(&format))
}

/// The stream key of a seed (see the core's `noise` module).
#[pyfunction]
pub fn stream_key(seed: u64) -> u64 {
    noise::stream_key(seed)
}

/// The two keys of the 32-bit hash of a seed's stream for the indices `block * 2^32` on (see
/// the core's `noise` module).
#[pyfunction]
pub fn hash_keys(seed: u64, block: u64) -> [u32; 2] {
    noise::hash_keys(seed, block)
}
