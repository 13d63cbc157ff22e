#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod float;
mod layer;
mod op;

pub use float::{BlockQuantF, BlockShape, FloatQuantF};
pub use layer::{quant_linear, QuantLinear};
pub use op::{fixed_point_quantize_wrapper, FixedPointQuantF, Gradient, Quantizer};
pub use xbquant;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
