//! The fast path of a wrapping accumulator whose type holds every product exactly: the result
//! is the exact sum of the products, shifted to the accumulator's step, added to the bias and
//! wrapped once (wrapping is addition modulo `2^W`, so neither the order nor the wraps on the
//! way change it). The sums are integer dot products, vectorized, in the narrowest lanes that
//! are exact modulo what the accumulator keeps.

use rayon::prelude::*;

use crate::dense::DenseTypes;

/// Rows of `x` per block (each block's dot products share the loads of a row of `w`).
const ROWS: usize = 4;
/// Rows of `w` per block (of 16-bit codes: 64 rows of 1,024 inputs are 128 KiB).
const OUTPUTS: usize = 64;
/// Rows of `w` per pass of the kernels: each load of a row of `x` serves them all.
const COLS: usize = 2;

/// The lanes of the dot products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lanes {
    /// 16-bit codes, 32-bit sums modulo `2^32` (an accumulator of at most 32 bits).
    Wrap32,
    /// 16-bit codes, exact 32-bit lanes over chunks of this many products, added in 64 bits.
    Chunked(usize),
    /// 64-bit codes, sums modulo `2^64`.
    Wide,
}

/// The lanes for these types, or None when the fast path does not apply (the accumulator
/// saturates, or rounds the products).
pub(crate) fn lanes(types: &DenseTypes) -> Option<Lanes> {
    let acc = &types.accum;
    if acc.overflow() != (xbquant::Overflow::Wrap { sat_bits: 0 })
        || acc.frac() < types.input.frac() + types.weight.frac()
    {
        return None;
    }
    // Magnitude bits of the codes: they fit i16 below 16.
    let bits = |t: &crate::FixedType| t.width() - u32::from(t.signed());
    let (bx, bw) = (bits(&types.input), bits(&types.weight));
    Some(if bx > 15 || bw > 15 {
        Lanes::Wide
    } else if acc.width() <= 32 {
        Lanes::Wrap32
    } else if bx + bw <= 29 {
        // Each product below 2^(bx + bw), each lane of 32 bits the sum of two per step of 32
        // codes: 2^(30 - bx - bw) steps sum exactly in a lane, whose sums are then added in
        // 64 bits.
        Lanes::Chunked(1 << (35 - bx - bw))
    } else {
        Lanes::Wide
    })
}

/// The sums `S[r][j] = sum_i x[r][i] w[j][i]` modulo `2^64` (exact modulo what `lanes`
/// promises), for codes `x` (`rows x n`) and `w` (`out x n`), on threads by blocks of rows.
pub(crate) fn sums(
    x: &[i64],
    rows: usize,
    n: usize,
    w: &[i64],
    out: usize,
    lanes: Lanes,
) -> Vec<i64> {
    let mut s = vec![0i64; rows * out];
    if n == 0 || out == 0 {
        return s;
    }
    match lanes {
        Lanes::Wide => {
            s.par_chunks_mut(out * ROWS)
                .enumerate()
                .for_each(|(b, part)| {
                    xbquant::pulp_arch().dispatch(Wide {
                        x: &x[b * ROWS * n..],
                        n,
                        w,
                        out,
                        part,
                    });
                });
        }
        _ => {
            let narrow = |v: &[i64]| v.iter().map(|&c| c as i16).collect::<Vec<i16>>();
            return narrow_sums(&narrow(x), rows, n, &narrow(w), out, lanes);
        }
    }
    s
}

/// [`sums`] of 16-bit codes (the lanes `Wrap32` and `Chunked`).
pub(crate) fn narrow_sums(
    x: &[i16],
    rows: usize,
    n: usize,
    w: &[i16],
    out: usize,
    lanes: Lanes,
) -> Vec<i64> {
    let mut s = vec![0i64; rows * out];
    if n == 0 || out == 0 {
        return s;
    }
    let chunk = match lanes {
        Lanes::Chunked(c) => c,
        _ => n,
    };
    // One block of rows a thread (a multiple of ROWS).
    let per = rows
        .div_ceil(rayon::current_num_threads())
        .next_multiple_of(ROWS)
        .max(ROWS);
    s.par_chunks_mut(out * per)
        .enumerate()
        .for_each(|(b, part)| {
            let block = Narrow {
                x: &x[b * per * n..],
                n,
                w,
                out,
                part,
                chunk,
            };
            #[cfg(target_arch = "x86_64")]
            match xbquant::pulp_arch() {
                pulp::Arch::V4(simd) => return simd.vectorize(Kernel(simd, block)),
                pulp::Arch::V3(simd) => return simd.vectorize(Kernel(simd, block)),
                _ => {}
            }
            xbquant::pulp_arch().dispatch(block);
        });
    s
}

/// A block of rows of 16-bit codes (`part`: their sums, row-major), as `pulp` runs it.
struct Narrow<'a> {
    x: &'a [i16],
    n: usize,
    w: &'a [i16],
    out: usize,
    part: &'a mut [i64],
    chunk: usize,
}

impl pulp::WithSimd for Narrow<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let b = self;
        narrow_block(b.x, b.n, b.w, b.out, b.part, b.chunk, chunk_sums);
    }
}

/// A block of rows of 16-bit codes with the registers of `P`, as `pulp` runs it with the
/// instruction set's features.
#[cfg(target_arch = "x86_64")]
struct Kernel<'a, P>(P, Narrow<'a>);

#[cfg(target_arch = "x86_64")]
impl<P: PairSums> pulp::NullaryFnOnce for Kernel<'_, P> {
    type Output = ();
    #[inline(always)]
    fn call(self) {
        let (p, b) = (self.0, self.1);
        narrow_block(b.x, b.n, b.w, b.out, b.part, b.chunk, |xs, ws, start| {
            register_sums(p, xs, ws, start)
        });
    }
}

/// A block of rows of 64-bit codes, as `pulp` runs it.
struct Wide<'a> {
    x: &'a [i64],
    n: usize,
    w: &'a [i64],
    out: usize,
    part: &'a mut [i64],
}

impl pulp::WithSimd for Wide<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        wide_block(self.x, self.n, self.w, self.out, self.part);
    }
}

/// The sums of a block of rows of 16-bit codes, those of one chunk from `sums`.
#[inline(always)]
fn narrow_block(
    x: &[i16],
    n: usize,
    w: &[i16],
    out: usize,
    part: &mut [i64],
    chunk: usize,
    sums: impl Fn(&[&[i16]; ROWS], &[&[i16]; COLS], usize) -> [[i64; ROWS]; COLS],
) {
    let rows = part.len() / out;
    // Blocks of OUTPUTS rows of `w`, which stay in the second-level cache while every row of
    // this block of `x` passes (each row of `w` is read once per block, not once per row).
    for j0 in (0..out).step_by(OUTPUTS) {
        let j1 = (j0 + OUTPUTS).min(out);
        let mut r = 0;
        while r + ROWS <= rows {
            let xs: [&[i16]; ROWS] = std::array::from_fn(|q| &x[(r + q) * n..(r + q + 1) * n]);
            // COLS rows of `w` at a time (the last repeated where they run out).
            for j in (j0..j1).step_by(COLS) {
                let ws: [&[i16]; COLS] = std::array::from_fn(|c| {
                    let jc = (j + c).min(j1 - 1);
                    &w[jc * n..(jc + 1) * n]
                });
                let mut total = [[0i64; ROWS]; COLS];
                let mut start = 0;
                while start < n {
                    let end = (start + chunk).min(n);
                    let pieces = ws.map(|wc| &wc[start..end]);
                    let s = sums(&xs, &pieces, start);
                    for c in 0..COLS {
                        for q in 0..ROWS {
                            total[c][q] = total[c][q].wrapping_add(s[c][q]);
                        }
                    }
                    start = end;
                }
                for (c, t) in total.iter().enumerate().take(j1 - j) {
                    for q in 0..ROWS {
                        part[(r + q) * out + j + c] = t[q];
                    }
                }
            }
            r += ROWS;
        }
        for q in r..rows {
            let xq = &x[q * n..(q + 1) * n];
            for j in j0..j1 {
                let wj = &w[j * n..(j + 1) * n];
                let mut total = 0i64;
                for (&p, &v) in xq.iter().zip(wj) {
                    total = total.wrapping_add(i64::from(p) * i64::from(v));
                }
                part[q * out + j] = total;
            }
        }
    }
}

#[inline(always)]
fn wide_block(x: &[i64], n: usize, w: &[i64], out: usize, part: &mut [i64]) {
    let rows = part.len() / out;
    for q in 0..rows {
        let xq = &x[q * n..(q + 1) * n];
        for (j, wj) in w.chunks_exact(n).enumerate().take(out) {
            part[q * out + j] = xq
                .iter()
                .zip(wj)
                .fold(0i64, |a, (&p, &v)| a.wrapping_add(p.wrapping_mul(v)));
        }
    }
}

/// Pairs of products per lane of a step: 32 codes, 16 lanes of 32 bits.
const STEP: usize = 32;

/// `vpmaddwd` in one instruction set's registers: 16-bit codes multiplied, the products of
/// each pair of neighbours added into a 32-bit lane, modulo `2^32`.
#[cfg(target_arch = "x86_64")]
trait PairSums: Copy {
    /// A register: codes, or their pair sums.
    type V: Copy;
    /// Codes in a register: a divisor of [`STEP`].
    const CODES: usize;
    fn zero(self) -> Self::V;
    /// The first [`Self::CODES`] codes of `v`.
    fn load(self, v: &[i16]) -> Self::V;
    /// `acc` plus the pair sums of the products of `x` and `w`.
    fn madd(self, acc: Self::V, x: Self::V, w: Self::V) -> Self::V;
    /// The lanes of pair sums added in 64 bits.
    fn total(self, v: Self::V) -> i64;
}

/// The sums over `ws` (chunks of rows of `w`) of the products with the same chunk of each row
/// of `xs` (from `start`), modulo `2^32` per lane, in plain arrays for any instruction set: each
/// step's codes loaded once for the four rows, each lane the sum of two products (the form of
/// `vpmaddwd`).
#[inline(always)]
fn chunk_sums(xs: &[&[i16]; ROWS], ws: &[&[i16]; COLS], start: usize) -> [[i64; ROWS]; COLS] {
    let mut out = [[0i64; ROWS]; COLS];
    for (c, w) in ws.iter().enumerate() {
        let mut acc = [[0i32; STEP / 2]; ROWS];
        let full = w.len() - w.len() % STEP;
        let mut i = 0;
        while i < full {
            let wv: &[i16; STEP] = w[i..i + STEP].try_into().expect("a step");
            for q in 0..ROWS {
                let xv: &[i16; STEP] = xs[q][start + i..start + i + STEP]
                    .try_into()
                    .expect("a step");
                for l in 0..STEP / 2 {
                    let pair = (i32::from(xv[2 * l]) * i32::from(wv[2 * l]))
                        .wrapping_add(i32::from(xv[2 * l + 1]) * i32::from(wv[2 * l + 1]));
                    acc[q][l] = acc[q][l].wrapping_add(pair);
                }
            }
            i += STEP;
        }
        let lanes: [i64; ROWS] = std::array::from_fn(|q| sum_lanes(&acc[q]));
        out[c] = tails(xs, w, start, full, lanes);
    }
    out
}

/// [`chunk_sums`] in the registers of `P`: each register of `w`'s codes loaded once for the
/// four rows, and each of `x`'s for both rows of `w`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn register_sums<P: PairSums>(
    p: P,
    xs: &[&[i16]; ROWS],
    ws: &[&[i16]; COLS],
    start: usize,
) -> [[i64; ROWS]; COLS] {
    let mut acc = [[p.zero(); ROWS]; COLS];
    let len = ws[0].len();
    let full = len - len % STEP;
    let mut i = 0;
    while i < full {
        for h in (0..STEP).step_by(P::CODES) {
            let wv: [P::V; COLS] = std::array::from_fn(|c| p.load(&ws[c][i + h..]));
            for q in 0..ROWS {
                let xv = p.load(&xs[q][start + i + h..]);
                for c in 0..COLS {
                    acc[c][q] = p.madd(acc[c][q], xv, wv[c]);
                }
            }
        }
        i += STEP;
    }
    let mut out = [[0i64; ROWS]; COLS];
    for c in 0..COLS {
        let lanes: [i64; ROWS] = std::array::from_fn(|q| p.total(acc[c][q]));
        out[c] = tails(xs, ws[c], start, full, lanes);
    }
    out
}

/// The lanes of a vector of 32-bit sums added in 64 bits.
#[inline(always)]
fn sum_lanes(lanes: &[i32]) -> i64 {
    lanes
        .iter()
        .fold(0i64, |a, &v| a.wrapping_add(i64::from(v)))
}

/// `sums` with the products past the last whole step (`full..`) added.
#[inline(always)]
fn tails(
    xs: &[&[i16]; ROWS],
    w: &[i16],
    start: usize,
    full: usize,
    mut sums: [i64; ROWS],
) -> [i64; ROWS] {
    for q in 0..ROWS {
        for e in full..w.len() {
            sums[q] = sums[q].wrapping_add(i64::from(xs[q][start + e]) * i64::from(w[e]));
        }
    }
    sums
}

/// [`PairSums`] with AVX-512 (`vpmaddwd` on 32 codes) and with AVX2 (on 16).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use pulp::x86::{V3, V4};
    use std::arch::x86_64::{__m256i, __m512i};

    use super::{sum_lanes, PairSums};

    impl PairSums for V4 {
        type V = __m512i;
        const CODES: usize = 32;
        #[inline(always)]
        fn zero(self) -> __m512i {
            pulp::cast([0i32; 16])
        }
        #[inline(always)]
        fn load(self, v: &[i16]) -> __m512i {
            let codes: [i16; 32] = v[..32].try_into().expect("a register");
            pulp::cast(codes)
        }
        #[inline(always)]
        fn madd(self, acc: __m512i, x: __m512i, w: __m512i) -> __m512i {
            let pairs = self.avx512bw._mm512_madd_epi16(x, w);
            self.avx512f._mm512_add_epi32(acc, pairs)
        }
        #[inline(always)]
        fn total(self, v: __m512i) -> i64 {
            sum_lanes(&pulp::cast::<__m512i, [i32; 16]>(v))
        }
    }

    impl PairSums for V3 {
        type V = __m256i;
        const CODES: usize = 16;
        #[inline(always)]
        fn zero(self) -> __m256i {
            pulp::cast([0i32; 8])
        }
        #[inline(always)]
        fn load(self, v: &[i16]) -> __m256i {
            let codes: [i16; 16] = v[..16].try_into().expect("a register");
            pulp::cast(codes)
        }
        #[inline(always)]
        fn madd(self, acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
            let pairs = self.avx2._mm256_madd_epi16(x, w);
            self.avx2._mm256_add_epi32(acc, pairs)
        }
        #[inline(always)]
        fn total(self, v: __m256i) -> i64 {
            sum_lanes(&pulp::cast::<__m256i, [i32; 8]>(v))
        }
    }
}
