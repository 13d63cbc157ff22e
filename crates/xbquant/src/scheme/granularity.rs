//! Granularity: which elements share a scale. A *group* is the set of elements that share one
//! (the whole tensor, the elements of one index of an axis, a run of consecutive elements); the
//! tensor's layout comes with the call, as a [`Part`].

use crate::{Error, Part};

/// Which elements share a scale (a *group*), independent of any one tensor's shape: tensors are
/// in row-major (C) order, and a [`Part`] gives the shape at the call.
///
/// # Examples
///
/// ```
/// use xbquant::{Granularity, Part};
/// let rows = Granularity::Axis(0);
/// assert_eq!(rows.groups(Part::shaped(&[3, 4])?)?, 3);
/// assert_eq!(Granularity::Axis(-1).groups(Part::shaped(&[3, 4])?)?, 4);
/// assert_eq!(Granularity::Runs(5).groups(Part::flat(12))?, 3);
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Granularity {
    /// One group: the whole tensor.
    #[default]
    Tensor,
    /// One group per index of this axis (negative: counted from the last, as Python counts).
    Axis(i64),
    /// Runs of this many consecutive elements (blocks along the last axis, as in the OCP
    /// Microscaling formats; the last run may be shorter).
    Runs(usize),
}

impl Granularity {
    /// The number of groups of a tensor laid out as `part` says.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBlocks`] for an axis the tensor does not have or a run length of 0.
    pub fn groups(&self, part: Part<'_>) -> Result<usize, Error> {
        Ok(self.layout(part)?.1)
    }

    /// `(inner, count)`: element `i` of the tensor belongs to group `(i / inner) % count`.
    pub(crate) fn layout(&self, part: Part<'_>) -> Result<(usize, usize), Error> {
        let len = part.len();
        Ok(match *self {
            Granularity::Tensor => (len.max(1), 1),
            Granularity::Runs(0) => {
                return Err(Error::InvalidBlocks("a run length of 0".into()));
            }
            Granularity::Runs(k) => (k, len.div_ceil(k).max(1)),
            Granularity::Axis(axis) => {
                let shape = part.shape();
                let ndim = i64::try_from(shape.len()).unwrap_or(i64::MAX);
                let a = if axis < 0 {
                    axis.saturating_add(ndim)
                } else {
                    axis
                };
                let Some(a) = usize::try_from(a).ok().filter(|&a| a < shape.len()) else {
                    return Err(Error::InvalidBlocks(format!(
                        "axis {axis} of a {}-d shape",
                        shape.len()
                    )));
                };
                let inner: usize = shape[a + 1..].iter().product();
                (inner.max(1), shape[a].max(1))
            }
        })
    }
}

/// Which elements share a scale, with the tensor's shape: the form the calls that take a
/// granularity per call use ([`BlockFormat::quantize`](crate::BlockFormat::quantize),
/// [`Converter::convert`](crate::Converter::convert), ...). A [`Scheme`](crate::Scheme) holds
/// a shape-free [`Granularity`] and takes the shape with the data, as a [`Part`].
/// Tensors are in row-major (C) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocks {
    /// One block: the whole tensor (QPyTorch's `dim=-1`).
    Whole,
    /// One block per index of `axis` of a tensor of `shape` (QPyTorch's `dim=axis`): block `j`
    /// holds the elements whose index along `axis` is `j`.
    Axis {
        /// The tensor's shape.
        shape: Vec<usize>,
        /// The axis whose indices are the blocks.
        axis: usize,
    },
    /// Runs of this many consecutive elements (blocks along the last axis, as in the OCP
    /// Microscaling formats; the last run may be shorter).
    Runs(usize),
}
impl Blocks {
    /// The shape-free granularity, and the tensor's layout as a part from its first element:
    /// `len` elements (checked against an axis' shape).
    pub(crate) fn split(&self, len: usize) -> Result<(Granularity, Part<'_>), Error> {
        Ok(match self {
            Blocks::Whole => (Granularity::Tensor, Part::flat(len)),
            Blocks::Runs(k) => (Granularity::Runs(*k), Part::flat(len)),
            Blocks::Axis { shape, axis } => {
                let part = Part::shaped(shape)?;
                if part.len() != len {
                    return Err(Error::InvalidBlocks(format!(
                        "a shape {shape:?} for {len} values"
                    )));
                }
                let axis = i64::try_from(*axis).unwrap_or(i64::MAX);
                (Granularity::Axis(axis), part)
            }
        })
    }
}

/// `(inner, count)`: element `i` belongs to block `(i / inner) % count`.
pub(crate) fn layout(len: usize, blocks: &Blocks) -> Result<(usize, usize), Error> {
    let (granularity, part) = blocks.split(len)?;
    granularity.layout(part)
}
