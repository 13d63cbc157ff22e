#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod bits;
mod codes;
mod element;
mod error;
mod float;
mod format;
mod grid;
mod isa;
mod kernel;
mod overflow;
mod quantize;
mod quantizer;
mod random;
mod rounding;
mod scheme;
mod spec;
mod stats;

pub use bits::{BitSlicing, SliceEncoding};
pub use codes::Code;
pub use element::Element;
pub use error::Error;
pub use float::{FloatEncoding, FloatFormat, FloatOverflow};
pub use format::{
    get_range_fixed_point, FixedPoint, FixedPointFormat, MAX_FRAC_LENGTH, MAX_WORD_LENGTH,
};
pub use grid::{Grid, Levels};
#[doc(hidden)]
pub use isa::arch as pulp_arch;
pub use isa::{detected_instruction_set, instruction_set, set_max_instruction_set, InstructionSet};
pub use overflow::Overflow;
pub use quantizer::{Data, Part, Quantizer};
pub use random::noise;
pub use rounding::{Rounding, SeedStream};
pub use scheme::block_float::BlockFormat;
pub use scheme::converter::{Converter, ConverterNoise, ConverterRange};
pub use scheme::granularity::{Blocks, Granularity};
pub use scheme::groups::{FracLengthRule, TensorPart};
pub use scheme::{ElementFormat, Observation, Scale, Scheme};
pub use spec::QuantSpec;
pub use stats::ErrorStats;

// The repository's README: its Rust examples run as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct RepositoryReadme;

/// `half::f16` and `half::bf16`, re-exported for the `half` feature's element types.
#[cfg(feature = "half")]
pub use half;
