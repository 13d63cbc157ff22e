#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

/// The output of a forward pass through `map_dtype!`, whose closure must return the values: the
/// per-type function's error is kept aside and returned after it.
macro_rules! fallible_map {
    ($name:expr, $storage:ident, $layout:expr, |$data:ident| $body:expr) => {{
        let failure = std::cell::RefCell::new(None);
        let out = candle_core::map_dtype!(
            $name,
            $storage,
            |$data| ($body).unwrap_or_else(|e| {
                failure.replace(Some(e));
                Vec::new()
            }),
            (F32, F64, F16, BF16)
        );
        if let Some(e) = failure.into_inner() {
            return Err(candle_core::Error::Msg(format!("xbquant: {e}")));
        }
        Ok((out, $layout.shape().clone()))
    }};
}

mod analog;
mod fixed;
mod float;
mod layer;
mod op;
mod periphery;
mod scheme;

pub use analog::AnalogLinear;
pub use fixed::{fixed_linear, FixedLinear};
pub use float::{BlockQuantF, BlockShape, FloatQuantF};
pub use layer::{quant_linear, QuantLinear};
pub use op::{fixed_point_quantize_wrapper, FixedPointQuantF, Gradient, Quantizer};
pub use periphery::{
    bit_slices, from_bit_slices, ConverterF, FracLengths, GridQuantF, LevelsQuantF, SliceQuantF,
};
pub use scheme::SchemeF;
pub use xbquant;
pub use xbquant_fixed;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
