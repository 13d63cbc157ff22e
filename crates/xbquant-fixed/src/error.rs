//! The crate's one error type.

use std::fmt;

/// What can go wrong when a type is read or a layer is run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A type this crate cannot compute exactly: the type and why.
    InvalidType(String, String),
    /// Buffers whose lengths do not match the shapes given: what was expected.
    ShapeMismatch(String),
    /// A value that is not finite (NaN or infinite) where a fixed-point value is needed.
    NotFinite(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidType(ty, why) => write!(f, "type {ty:?}: {why}"),
            Error::ShapeMismatch(what) => write!(f, "shapes do not match: {what}"),
            Error::NotFinite(what) => write!(f, "{what} holds a value that is not finite"),
        }
    }
}

impl std::error::Error for Error {}
