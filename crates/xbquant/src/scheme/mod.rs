//! Quantization schemes: the [`Quantizer`] interface every quantizer of this crate implements,
//! and [`Scheme`], a quantizer composed from parts (an element format, a granularity, a scale
//! rule, optional noise and a rounding) with a text form.
//!
//! The modules depend one way: `granularity` (groups) and `grouped` (the engine of a scale per
//! group) at the bottom; `converter` (the ADC/DAC's types and engine of a real range per group),
//! `groups` (fixed point with a fractional length per group, the rules that choose it, and the
//! group jobs), `block_float` and `element_format` on them; `scale` (the scale rules and the
//! statistics they read) on those; `compose` (the scheme) on top, with `text` (its text form) and
//! `calls` (the per-call API of block floating point, the converter and per-slice fixed point,
//! each a scheme) above it.

pub(crate) mod block_float;
mod calls;
mod compose;
pub(crate) mod converter;
mod element_format;
pub(crate) mod granularity;
pub(crate) mod grouped;
pub(crate) mod groups;
mod scale;
mod text;

pub use compose::Scheme;
pub use element_format::ElementFormat;
pub use scale::{Observation, Scale};
