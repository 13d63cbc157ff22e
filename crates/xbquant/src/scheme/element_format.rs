//! [`ElementFormat`]: the values an element of a scheme takes once scaled.

use crate::{FixedPoint, FloatFormat, Grid, Levels};

/// The values an element takes once scaled: fixed point, a floating-point format, a uniform
/// grid, or a table of levels.
#[derive(Debug, Clone, PartialEq)]
pub enum ElementFormat {
    /// Fixed point (its fractional length is replaced by the scale rule's, where it has one).
    Fixed(FixedPoint),
    /// A floating-point format.
    Float(FloatFormat),
    /// A uniform grid, bounded or not.
    Grid(Grid),
    /// A sorted table of levels.
    Levels(Levels),
}

impl From<FixedPoint> for ElementFormat {
    fn from(f: FixedPoint) -> Self {
        ElementFormat::Fixed(f)
    }
}
impl From<FloatFormat> for ElementFormat {
    fn from(f: FloatFormat) -> Self {
        ElementFormat::Float(f)
    }
}
impl From<Grid> for ElementFormat {
    fn from(g: Grid) -> Self {
        ElementFormat::Grid(g)
    }
}
impl From<Levels> for ElementFormat {
    fn from(l: Levels) -> Self {
        ElementFormat::Levels(l)
    }
}
