//! The crate's one error type.

use std::fmt;

/// What can go wrong when a tile is built or run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A parameter out of its range: its name and what is wrong.
    InvalidParameter(&'static str, String),
    /// Buffers whose lengths do not match the shapes given: what was expected.
    ShapeMismatch(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidParameter(name, what) => write!(f, "{name} {what}"),
            Error::ShapeMismatch(what) => write!(f, "shapes do not match: {what}"),
        }
    }
}

impl std::error::Error for Error {}
