#![doc = include_str!("../README.md")]

mod dense;
mod error;
mod steps;
mod ty;
mod widths;
mod wrap;

pub use dense::{dense, dense_codes, dense_with_overflows, DenseTypes, Overflows};
pub use error::Error;
pub use ty::{FixedType, MAX_FRAC, MAX_WIDTH};
pub use widths::{accum_bits, accum_bits_used, accum_type};
