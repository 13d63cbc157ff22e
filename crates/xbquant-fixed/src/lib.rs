#![doc = include_str!("../README.md")]

mod dense;
mod error;
mod ty;
mod widths;

pub use dense::{dense, dense_codes, DenseTypes, Overflows};
pub use error::Error;
pub use ty::{FixedType, MAX_FRAC, MAX_WIDTH};
pub use widths::accum_type;
