//! hls4ml's accumulation step by step, vectorized over the outputs: for an accumulator of at most
//! 30 bits (each product shifted to its step, or rounded to it by `AP_TRN` or `AP_RND`), every
//! cast and addition overflows as the type says (saturate, saturate symmetric, saturate to zero,
//! wrap) in 32-bit lanes, a vector of outputs for four rows at a time with the accumulators in
//! registers, the overflows counted as they happen. The order is hls4ml's (the inputs in turn,
//! from the bias), so a saturating accumulator gives its bits.

use rayon::prelude::*;
use xbquant::Overflow;

use crate::dense::DenseTypes;

/// Outputs per panel of the weights: one lane each (one vector of AVX-512, two of AVX2).
const PANEL: usize = 16;
/// Rows per pass over a panel: their accumulators stay in registers.
const ROWS: usize = 4;

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
    /// No product of the types' codes can overflow the accumulator (its checks are skipped).
    exact_products: bool,
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
        // The extreme products of the codes, rounded as the products are: within the bounds,
        // no product overflows.
        let (xlo, xhi) = types.input.word_codes();
        let (wlo, whi) = types.weight.word_codes();
        let corners = [xlo * wlo, xlo * whi, xhi * wlo, xhi * whi];
        let rounded = |p: i128| (p + i128::from(add)) >> right;
        let exact_products = corners
            .iter()
            .all(|&p| (i128::from(plo)..=i128::from(phi)).contains(&rounded(p)));
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
            exact_products,
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

/// Counts of the outputs, per output.
pub(crate) struct Counts {
    pub products: Vec<u64>,
    pub accumulations: Vec<u64>,
}

/// The accumulators after every input, for codes `x` (`rows x n`) and the weights `w` (`out x
/// n`, row `j` the weights of output `j`), from `start` (the bias in the accumulator, per
/// output): the accumulator codes (`rows x out`) and the overflows per output.
pub(crate) fn accumulate(
    x: &[i32],
    rows: usize,
    n: usize,
    w: &[i32],
    out: usize,
    start: &[i32],
    word: Word,
) -> (Vec<i32>, Counts) {
    let mut acc = vec![0i32; rows * out];
    let none = || Counts {
        products: vec![0; out],
        accumulations: vec![0; out],
    };
    if out == 0 || rows == 0 {
        return (acc, none());
    }
    // The weights in panels of `PANEL` outputs, each panel input by input (a panel stays in
    // cache while every row passes), padded with zeros (which never overflow).
    let panels = out.div_ceil(PANEL);
    let mut wp = vec![0i32; panels * n * PANEL];
    if n > 0 {
        wp.par_chunks_mut(n * PANEL)
            .enumerate()
            .for_each(|(jb, panel)| {
                for jj in 0..PANEL.min(out - jb * PANEL) {
                    let row = &w[(jb * PANEL + jj) * n..(jb * PANEL + jj + 1) * n];
                    for (i, &v) in row.iter().enumerate() {
                        panel[i * PANEL + jj] = v;
                    }
                }
            });
    }
    let mut first = vec![0i32; panels * PANEL];
    first[..out].copy_from_slice(start);
    let zeros = vec![0i32; n];
    // Blocks of rows on threads, each with its own counts.
    let per = rows
        .div_ceil(rayon::current_num_threads())
        .next_multiple_of(ROWS);
    let counts: Vec<Counts> = acc
        .par_chunks_mut(per * out)
        .enumerate()
        .map(|(b, part)| {
            let mut op = Block {
                x: &x[b * per * n..(b * per * n + part.len() / out * n)],
                zeros: &zeros,
                n,
                wp: &wp,
                out,
                start: &first,
                word,
                part,
                counts: none(),
            };
            xbquant::pulp_arch().dispatch(&mut op);
            op.counts
        })
        .collect();
    let mut total = none();
    for c in counts {
        for j in 0..out {
            total.products[j] += c.products[j];
            total.accumulations[j] += c.accumulations[j];
        }
    }
    (acc, total)
}

struct Block<'a> {
    x: &'a [i32],
    zeros: &'a [i32],
    n: usize,
    wp: &'a [i32],
    out: usize,
    start: &'a [i32],
    word: Word,
    part: &'a mut [i32],
    counts: Counts,
}

impl pulp::WithSimd for &mut Block<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        // The lanes of a vector of 32-bit integers: the accumulators of four rows, their counts
        // and a row of weights in registers.
        if core::mem::size_of::<S::i32s>() >= 64 {
            self.run::<16>();
        } else {
            self.run::<8>();
        }
    }
}

impl Block<'_> {
    #[inline(always)]
    fn run<const L: usize>(&mut self) {
        match (self.word.mode, self.word.signed, self.word.exact_products) {
            (0, _, true) => self.panels::<L, 0, true, true>(),
            (0, _, false) => self.panels::<L, 0, true, false>(),
            (1, _, true) => self.panels::<L, 1, true, true>(),
            (1, _, false) => self.panels::<L, 1, true, false>(),
            (_, true, true) => self.panels::<L, 2, true, true>(),
            (_, true, false) => self.panels::<L, 2, true, false>(),
            (_, false, true) => self.panels::<L, 2, false, true>(),
            (_, false, false) => self.panels::<L, 2, false, false>(),
        }
    }

    #[inline(always)]
    fn panels<const L: usize, const MODE: u8, const SIGNED: bool, const EXACT: bool>(&mut self) {
        let (n, out, word) = (self.n, self.out, self.word);
        let rows = self.part.len() / out;
        for j0 in (0..out).step_by(L) {
            let (jb, h) = (j0 / PANEL, j0 % PANEL);
            let panel = &self.wp[jb * n * PANEL..(jb + 1) * n * PANEL];
            let start: [i32; L] = self.start[j0..j0 + L].try_into().expect("lanes");
            let width = L.min(out - j0);
            let mut over_p = [0u32; L];
            let mut over_s = [0u32; L];
            for r in (0..rows).step_by(ROWS) {
                let xs: [&[i32]; ROWS] = core::array::from_fn(|q| {
                    if r + q < rows {
                        &self.x[(r + q) * n..(r + q + 1) * n]
                    } else {
                        &self.zeros[..n]
                    }
                });
                let mut acc = [start; ROWS];
                for (i, w) in panel.chunks_exact(PANEL).enumerate() {
                    let w: &[i32; L] = w[h..h + L].try_into().expect("lanes");
                    for q in 0..ROWS {
                        step::<L, MODE, SIGNED, EXACT>(
                            &mut acc[q],
                            &mut over_p,
                            &mut over_s,
                            xs[q][i],
                            w,
                            word,
                        );
                    }
                }
                for (q, a) in acc.iter().enumerate().take(rows - r) {
                    let at = (r + q) * out + j0;
                    self.part[at..at + width].copy_from_slice(&a[..width]);
                }
            }
            for j in 0..width {
                self.counts.products[j0 + j] += u64::from(over_p[j]);
                self.counts.accumulations[j0 + j] += u64::from(over_s[j]);
            }
        }
    }
}

/// One input's products added to a vector of accumulators, each cast and each addition
/// overflowing as the word says (rows past the end add zeros, which never overflow).
#[inline(always)]
fn step<const L: usize, const MODE: u8, const SIGNED: bool, const EXACT: bool>(
    acc: &mut [i32; L],
    over_p: &mut [u32; L],
    over_s: &mut [u32; L],
    xi: i32,
    w: &[i32; L],
    word: Word,
) {
    for j in 0..L {
        // The product (below 2^29) rounded to the accumulator's step, or shifted to it.
        let p = (xi * w[j] + word.add) >> word.right;
        let p_acc = if EXACT {
            p << word.shift
        } else if MODE == 0 {
            // Saturation: each product clamped one step beyond the bounds before its shift,
            // so that the shift cannot carry it back into range, then to the bounds.
            let c = p.clamp(word.plo - 1, word.phi + 1);
            let q = c.wrapping_shl(word.shift);
            let p_acc = q.clamp(word.lo, word.hi);
            over_p[j] += u32::from(p_acc != q || p != c);
            p_acc
        } else {
            // The product cast to the accumulator: in range when within the bounds before the
            // shift.
            let p_in = p >= word.plo && p <= word.phi;
            let shifted = p.wrapping_shl(word.shift);
            over_p[j] += u32::from(!p_in);
            if p_in {
                shifted
            } else {
                word.overflowed::<MODE, SIGNED>(p, shifted)
            }
        };
        let sum = acc[j] + p_acc;
        if MODE == 0 {
            acc[j] = sum.clamp(word.lo, word.hi);
            over_s[j] += u32::from(acc[j] != sum);
        } else {
            let s_in = sum >= word.lo && sum <= word.hi;
            acc[j] = if s_in {
                sum
            } else {
                word.overflowed::<MODE, SIGNED>(sum, sum)
            };
            over_s[j] += u32::from(!s_in);
        }
    }
}
