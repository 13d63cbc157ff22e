//! hls4ml's accumulation step by step, vectorized over the outputs: for an accumulator of at most
//! 30 bits (each product shifted to its step, or rounded to it by `AP_TRN` or `AP_RND`), every
//! cast and addition overflows as the
//! type says (saturate, saturate symmetric, saturate to zero, wrap) in 32-bit lanes, 64 outputs
//! at a time, the overflows counted as they happen. The order is hls4ml's (the inputs in turn,
//! from the bias), so a saturating accumulator gives its bits.

use rayon::prelude::*;
use xbquant::Overflow;

use crate::dense::DenseTypes;

/// Outputs per block: one lane each.
const OUTPUTS: usize = 64;

/// The overflow of the accumulator's type, in 32-bit lanes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Word {
    lo: i32,
    hi: i32,
    /// What an overflowing value becomes: 0 saturate, 1 saturate to zero, 2 wrap.
    mode: u8,
    /// `32 - W`: the shifts of the wrap.
    spare: u32,
    signed: bool,
    /// The products' shift to the accumulator's step, and their bounds before it.
    shift: u32,
    /// Where the accumulator has fewer fractional bits than the products: their right shift
    /// and what is added before it (0: floor, `AP_TRN`; half: ties up, `AP_RND`).
    right: u32,
    add: i32,
    plo: i32,
    phi: i32,
}

impl Word {
    /// The word of `types`' accumulator, or None where this path does not apply.
    pub(crate) fn of(types: &DenseTypes) -> Option<Word> {
        let acc = &types.accum;
        let product_frac = types.input.frac() + types.weight.frac();
        let bits = |t: &crate::FixedType| t.width() - u32::from(t.signed());
        if acc.width() > 30 || bits(&types.input) + bits(&types.weight) > 29 {
            return None;
        }
        let (shift, right) = if acc.frac() >= product_frac {
            ((acc.frac() - product_frac) as u32, 0)
        } else {
            (0, (product_frac - acc.frac()) as u32)
        };
        if shift > 31 || right > 29 {
            return None;
        }
        let add = match acc.rounding() {
            _ if right == 0 => 0,
            xbquant::Rounding::Floor => 0,
            xbquant::Rounding::NearestUp => 1i32 << (right - 1),
            _ => return None,
        };
        let (lo, hi) = acc.word_codes();
        let (lo, hi) = (lo as i32, hi as i32);
        let (lo, mode) = match acc.overflow() {
            Overflow::Saturate => (lo, 0),
            Overflow::SaturateSymmetric if acc.signed() => (-hi, 0),
            Overflow::SaturateSymmetric => (lo, 0),
            Overflow::SaturateZero => (lo, 1),
            Overflow::Wrap { sat_bits: 0 } => (lo, 2),
            _ => return None,
        };
        // p << shift within [lo, hi] exactly when p is within [ceil(lo / 2^s), floor(hi / 2^s)].
        let plo = -((-i64::from(lo)) >> shift) as i32;
        let phi = hi >> shift;
        Some(Word {
            lo,
            hi,
            mode,
            spare: 32 - acc.width(),
            signed: acc.signed(),
            shift,
            right,
            add,
            plo,
            phi,
        })
    }

    /// The low `W` bits of `v`, sign-extended when the word is signed.
    #[inline(always)]
    fn wrap<const SIGNED: bool>(&self, v: i32) -> i32 {
        if SIGNED {
            v.wrapping_shl(self.spare) >> self.spare
        } else {
            ((v as u32).wrapping_shl(self.spare) >> self.spare) as i32
        }
    }

    /// The type's overflow of a value out of range, of the sign of `v` and whose low bits are
    /// those of `bits`: `MODE` 0 saturates, 1 saturates to zero, 2 wraps.
    #[inline(always)]
    fn overflowed<const MODE: u8, const SIGNED: bool>(&self, v: i32, bits: i32) -> i32 {
        match MODE {
            0 => {
                if v < 0 {
                    self.lo
                } else {
                    self.hi
                }
            }
            1 => 0,
            _ => self.wrap::<SIGNED>(bits),
        }
    }
}

/// Counts of one block of outputs, per output.
pub(crate) struct Counts {
    pub products: Vec<u64>,
    pub accumulations: Vec<u64>,
}

/// The accumulators after every input, for codes `x` (`rows x n`) and the transposed weights
/// `wt` (`n x out`, row `i` the weights of input `i`), from `start` (the bias in the
/// accumulator, per output): the accumulator codes (`rows x out`) and the overflows per output.
pub(crate) fn accumulate(
    x: &[i32],
    rows: usize,
    n: usize,
    wt: &[i32],
    out: usize,
    start: &[i32],
    word: Word,
) -> (Vec<i32>, Counts) {
    let mut acc = vec![0i32; rows * out];
    if out == 0 {
        return (
            acc,
            Counts {
                products: vec![],
                accumulations: vec![],
            },
        );
    }
    // The weights in panels of whole blocks of outputs, each panel's inputs one after the other
    // (a panel stays in cache while every row passes), padded with zeros (which never overflow).
    let padded = out.next_multiple_of(OUTPUTS);
    let mut wp = vec![0i32; n * padded];
    for (jb, panel) in wp.chunks_mut((n * OUTPUTS).max(1)).enumerate() {
        let (j0, width) = (jb * OUTPUTS, OUTPUTS.min(out.saturating_sub(jb * OUTPUTS)));
        for i in 0..n {
            panel[i * OUTPUTS..i * OUTPUTS + width]
                .copy_from_slice(&wt[i * out + j0..i * out + j0 + width]);
        }
    }
    let mut first = vec![0i32; padded];
    first[..out].copy_from_slice(start);
    let (wt, start) = (&wp[..], &first[..]);
    // Blocks of rows on threads, each with its own counts.
    let per = rows.div_ceil(rayon::current_num_threads()).max(1);
    let counts: Vec<(Vec<u64>, Vec<u64>)> = acc
        .par_chunks_mut(per * out)
        .enumerate()
        .map(|(b, part)| {
            let mut op = Block {
                x: &x[b * per * n..],
                n,
                wt,
                out,
                start,
                word,
                part,
                products: vec![0; out],
                accumulations: vec![0; out],
            };
            crate::simd::arch().dispatch(&mut op);
            (op.products, op.accumulations)
        })
        .collect();
    let mut total = Counts {
        products: vec![0; out],
        accumulations: vec![0; out],
    };
    for (p, a) in counts {
        for j in 0..out {
            total.products[j] += p[j];
            total.accumulations[j] += a[j];
        }
    }
    (acc, total)
}

struct Block<'a> {
    x: &'a [i32],
    n: usize,
    wt: &'a [i32],
    out: usize,
    start: &'a [i32],
    word: Word,
    part: &'a mut [i32],
    products: Vec<u64>,
    accumulations: Vec<u64>,
}

impl pulp::WithSimd for &mut Block<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (n, out, word) = (self.n, self.out, self.word);
        let rows = self.part.len() / out;
        for j0 in (0..out).step_by(OUTPUTS) {
            let width = OUTPUTS.min(out - j0);
            let panel = &self.wt[j0 * n..(j0 + OUTPUTS) * n];
            // Two rows at a time: each load of the panel serves both.
            let mut r = 0;
            while r < rows {
                let pair = (rows - r).min(2);
                let mut acc = [[0i32; OUTPUTS]; 2];
                let mut over_p = [[0u32; OUTPUTS]; 2];
                let mut over_s = [[0u32; OUTPUTS]; 2];
                for a in &mut acc {
                    a.copy_from_slice(&self.start[j0..j0 + OUTPUTS]);
                }
                for i in 0..n {
                    let wrow: &[i32; OUTPUTS] = panel[i * OUTPUTS..(i + 1) * OUTPUTS]
                        .try_into()
                        .expect("a block");
                    for q in 0..pair {
                        let xi = self.x[(r + q) * n + i];
                        let (a, p, s) = (&mut acc[q], &mut over_p[q], &mut over_s[q]);
                        match (word.mode, word.signed) {
                            (0, true) => step::<0, true>(a, p, s, xi, wrow, word),
                            (0, false) => step::<0, false>(a, p, s, xi, wrow, word),
                            (1, true) => step::<1, true>(a, p, s, xi, wrow, word),
                            (1, false) => step::<1, false>(a, p, s, xi, wrow, word),
                            (_, true) => step::<2, true>(a, p, s, xi, wrow, word),
                            (_, false) => step::<2, false>(a, p, s, xi, wrow, word),
                        }
                    }
                }
                for q in 0..pair {
                    self.part[(r + q) * out + j0..(r + q) * out + j0 + width]
                        .copy_from_slice(&acc[q][..width]);
                    for j in 0..width {
                        self.products[j0 + j] += u64::from(over_p[q][j]);
                        self.accumulations[j0 + j] += u64::from(over_s[q][j]);
                    }
                }
                r += pair;
            }
        }
    }
}

/// One input's products added to a block of accumulators, each cast and each addition
/// overflowing as the word says.
#[inline(always)]
fn step<const MODE: u8, const SIGNED: bool>(
    acc: &mut [i32; OUTPUTS],
    over_p: &mut [u32; OUTPUTS],
    over_s: &mut [u32; OUTPUTS],
    xi: i32,
    w: &[i32; OUTPUTS],
    word: Word,
) {
    if MODE == 0 {
        // Saturation: clamps, each product clamped one step beyond the bounds before its shift
        // so that the shift cannot carry it back into range, then to the bounds.
        let (plo, phi) = (word.plo - 1, word.phi + 1);
        for j in 0..OUTPUTS {
            let p = (xi * w[j] + word.add) >> word.right;
            let q = p.clamp(plo, phi).wrapping_shl(word.shift);
            let p_acc = q.clamp(word.lo, word.hi);
            over_p[j] += u32::from(p_acc != q || p != p.clamp(plo, phi));
            let sum = acc[j] + p_acc;
            acc[j] = sum.clamp(word.lo, word.hi);
            over_s[j] += u32::from(acc[j] != sum);
        }
        return;
    }
    for j in 0..OUTPUTS {
        let wj = w[j];
        // The product (below 2^29) rounded to the accumulator's step, or shifted to it.
        let p = (xi * wj + word.add) >> word.right;
        // The product cast to the accumulator: in range when within the bounds before the shift.
        let p_in = p >= word.plo && p <= word.phi;
        let shifted = p.wrapping_shl(word.shift);
        let p_acc = if p_in {
            shifted
        } else {
            word.overflowed::<MODE, SIGNED>(p, shifted)
        };
        over_p[j] += u32::from(!p_in);
        let sum = acc[j] + p_acc;
        let s_in = sum >= word.lo && sum <= word.hi;
        acc[j] = if s_in {
            sum
        } else {
            word.overflowed::<MODE, SIGNED>(sum, sum)
        };
        over_s[j] += u32::from(!s_in);
    }
}
