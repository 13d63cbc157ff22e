//! The stochastic engine: draws hashed per block, a vector loop that decides each element from
//! the high bits of its draw, and an exact pass over the few elements that leaves undecided.

use std::ops::Range;

use super::buffers::BLOCK;
use super::lane::Lane;
use crate::random::{draw, draw_high, hash32, hash_keys, WEYL};

/// Elements per block of a stochastic sweep.
pub(super) const DRAW_BLOCK: usize = BLOCK;

/// The draws of a stochastic sweep, element `j` drawing stream index `start + j` of stream
/// `key` (see [`crate::random::draw`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Draws {
    key: u64,
    start: u64,
}

impl Draws {
    pub(super) fn new(key: u64, start: u64) -> Self {
        Draws { key, start }
    }

    /// The high 32 bits of the draws of elements `r`, from the 32-bit hash alone: its counter
    /// steps by one addition per element. `None` when `r` crosses a multiple of `2^32` in stream
    /// index, where the hash's keys change.
    #[inline(always)]
    #[allow(clippy::cast_possible_truncation)]
    fn highs(&self, r: &Range<usize>) -> Option<impl Iterator<Item = u32>> {
        let first = self.start.wrapping_add(r.start as u64);
        let last = first.wrapping_add((r.len() as u64).saturating_sub(1));
        if first >> 32 != last >> 32 {
            return None;
        }
        let keys = hash_keys(self.key, first >> 32);
        let mut w = (first as u32).wrapping_mul(WEYL);
        Some(std::iter::repeat_with(move || {
            let h = hash32(w, keys);
            w = w.wrapping_add(WEYL);
            h
        }))
    }

    /// The lower bound of the draw of element `j`, in lane `F`.
    pub(super) fn floor<F: Lane>(&self, j: usize) -> F {
        F::draw_floor(draw_high(self.key, self.start.wrapping_add(j as u64)))
    }

    /// The exact draw of element `j`, in lane `F`.
    pub(super) fn exact<F: Lane>(&self, j: usize) -> F {
        F::draw_exact(draw(self.key, self.start.wrapping_add(j as u64)))
    }
}

/// The loops of a stochastic sweep, for [`stochastic`].
pub(super) trait Body<F> {
    /// Quantizes elements `r` with the lower bounds of their draws; returns whether they leave
    /// the rounding of any element undecided. Such an element's input must be left readable
    /// for [`Body::undecided`] and [`Body::exact`]: in place, its value is left as it was.
    fn fast(&mut self, r: Range<usize>, floors: impl Iterator<Item = F>) -> bool;
    /// After [`Body::fast`]: whether element `i`'s rounding is undecided by the lower bound
    /// `n` of its draw (never for an element `fast` quantized in place: its code has no
    /// fraction).
    fn undecided(&self, i: usize, n: F) -> bool;
    /// Quantizes element `i` with its exact draw `u`.
    fn exact(&mut self, i: usize, u: F);
}

/// A stochastic sweep of `len` elements, in blocks: each block in a vector loop that draws only
/// the high bits of each draw, then, where that leaves some element's rounding undecided
/// (about one element in `2^24` in `f32`, `2^31` in `f64`, more for fractions that sit near a
/// draw), the block again one element at a time, the undecided ones with their exact draws.
#[inline(always)]
pub(super) fn stochastic<F: Lane, S: pulp::Simd>(
    len: usize,
    draws: Draws,
    body: &mut impl Body<F>,
    _: S,
) {
    // Staged only where a vector holds at most 256 bits: with AVX-512 the draws were as fast
    // hashed beside the maths, and the round trip through memory made 16M calls slower.
    let stage = F::STAGE_DRAWS && std::mem::size_of::<S::f32s>() <= 32;
    let mut at = 0;
    let mut staged = [0u32; DRAW_BLOCK];
    while at < len {
        let r = at..len.min(at + DRAW_BLOCK);
        match draws.highs(&r) {
            Some(highs) => {
                let undecided = if stage {
                    let staged = &mut staged[..r.len()];
                    for (s, h) in staged.iter_mut().zip(highs) {
                        *s = h;
                    }
                    body.fast(r.clone(), staged.iter().map(|&h| F::draw_floor(h)))
                } else {
                    body.fast(r.clone(), highs.map(F::draw_floor))
                };
                if undecided {
                    for i in r.clone() {
                        if body.undecided(i, draws.floor(i)) {
                            body.exact(i, draws.exact(i));
                        }
                    }
                }
            }
            None => {
                for i in r.clone() {
                    body.exact(i, draws.exact(i));
                }
            }
        }
        at = r.end;
    }
}
