//! The matrix products of a tile: the forward pass's dot products in one fixed order of our own
//! ([`dots`]), and the gradients' products from the `gemm` crate (the one candle uses).

use crate::float::Float;

/// The sizes of a product: `dst (m x n) = lhs (m x k) rhs (k x n)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// A matrix operand read where it lies: element `(i, j)` at `data[i * rows + j * columns]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operand<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub columns: usize,
}

impl<T> Operand<'_, T> {
    /// Whether every element of an `r x c` matrix lies within the data.
    fn holds(&self, r: usize, c: usize) -> bool {
        (r - 1)
            .checked_mul(self.rows)
            .and_then(|a| {
                (c - 1)
                    .checked_mul(self.columns)
                    .and_then(|b| a.checked_add(b))
            })
            .is_some_and(|last| last < self.data.len())
    }
}

/// `dst = lhs rhs` (`dst` row `i` at `dst[i * dst_stride..]`), by `gemm`.
///
/// # Panics
///
/// When an operand or `dst` is shorter than its shape and strides.
pub(crate) fn product<T: Float>(
    shape: Shape,
    dst: &mut [T],
    dst_stride: usize,
    lhs: Operand<'_, T>,
    rhs: Operand<'_, T>,
) {
    let Shape { m, n, k } = shape;
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        dst_stride >= n && (m - 1) * dst_stride + n <= dst.len(),
        "the output is shorter than its shape"
    );
    if k == 0 {
        for r in 0..m {
            dst[r * dst_stride..r * dst_stride + n].fill(T::ZERO);
        }
        return;
    }
    assert!(
        lhs.holds(m, k) && rhs.holds(k, n),
        "an operand is shorter than its shape"
    );
    let threads = rayon::current_num_threads();
    // Threads pay off above about a million multiply-adds; gemm splits the output, never the
    // sum of one element, so the bits do not depend on the number of threads.
    let parallelism = if threads > 1 && m * n * k >= 1 << 20 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let signed = |v: usize| isize::try_from(v).expect("a stride within isize");
    #[allow(unsafe_code)]
    // SAFETY: every element read or written lies within its slice (checked above: the last
    // element of each matrix, at `(rows - 1) * row_stride + (columns - 1) * column_stride`, is
    // within the slice's length); `dst` is a distinct `&mut` slice, so it aliases neither
    // operand; T is f32 or f64, which gemm supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            signed(dst_stride),
            false,
            lhs.data.as_ptr(),
            signed(lhs.columns),
            signed(lhs.rows),
            rhs.data.as_ptr(),
            signed(rhs.columns),
            signed(rhs.rows),
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The partial sums of one dot product: element `i` of a row is added into sum `i % LANES`.
const LANES: usize = 16;

/// `out[r * out_stride + j]` = the dot product of row `r` of `x` (`m` rows of `n`, row `r` at
/// `x[r * x_stride..]`) and row `j` of `w` (`k` rows of `n`), for the tiles' forward pass, in
/// one fixed order that depends on neither `m`, `k`, threads nor the instruction set: [`LANES`]
/// partial sums, sum `l` the fused multiply-adds of elements `l, l + LANES, ...` in turn, added
/// pairwise at the end (`l + 8`, then `+ 4`, `+ 2`, `+ 1`). So a row's outputs are the same
/// bits in a batch of any size and alone, which `gemm` does not promise (it takes another path
/// for one row).
///
/// # Panics
///
/// When a buffer is shorter than its shape and strides (the callers check the shapes first).
#[allow(clippy::too_many_arguments)]
pub(crate) fn dots<T: Float>(
    x: &[T],
    x_stride: usize,
    m: usize,
    n: usize,
    w: &[T],
    w_stride: usize,
    k: usize,
    out: &mut [T],
    out_stride: usize,
) {
    struct Dots<'a, T> {
        x: Matrix<'a, T>,
        w: Matrix<'a, T>,
        n: usize,
        out: &'a mut [T],
        out_stride: usize,
    }
    impl<T: Float> pulp::WithSimd for Dots<'_, T> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, simd: S) {
            let Dots {
                x,
                w,
                n,
                out,
                out_stride,
            } = self;
            // T is f32 or f64 (a sealed trait), so one of the casts applies.
            if let (Some(xd), Some(wd)) = (T::as_f32(x.data), T::as_f32(w.data)) {
                let out = T::as_f32_mut(out).expect("the output has the data's type");
                dots32(simd, &x.with(xd), &w.with(wd), n, out, out_stride);
            } else if let (Some(xd), Some(wd)) = (T::as_f64(x.data), T::as_f64(w.data)) {
                let out = T::as_f64_mut(out).expect("the output has the data's type");
                dots64(simd, &x.with(xd), &w.with(wd), n, out, out_stride);
            }
        }
    }
    if m == 0 || k == 0 {
        return;
    }
    assert!(
        x_stride >= n
            && w_stride >= n
            && out_stride >= k
            && (m - 1) * x_stride + n <= x.len()
            && (k - 1) * w_stride + n <= w.len()
            && (m - 1) * out_stride + k <= out.len(),
        "a buffer is shorter than its shape"
    );
    let x = Matrix {
        data: x,
        stride: x_stride,
        rows: m,
    };
    let w = Matrix {
        data: w,
        stride: w_stride,
        rows: k,
    };
    #[cfg(target_arch = "x86_64")]
    if let (Some(simd), Some(xd), Some(wd)) =
        (crate::simd::v4(), T::as_f32(x.data), T::as_f32(w.data))
    {
        let out = T::as_f32_mut(out).expect("the output has the data's type");
        simd.vectorize(v4::Dots32 {
            simd,
            x: x.with(xd),
            w: w.with(wd),
            n,
            out,
            out_stride,
        });
        return;
    }
    crate::simd::arch().dispatch(Dots {
        x,
        w,
        n,
        out,
        out_stride,
    });
}

/// `rows` rows, row `r` at `data[r * stride..]`.
pub(crate) struct Matrix<'a, T> {
    pub data: &'a [T],
    pub stride: usize,
    pub rows: usize,
}

impl<'a, T> Matrix<'a, T> {
    fn with<U>(&self, data: &'a [U]) -> Matrix<'a, U> {
        Matrix {
            data,
            stride: self.stride,
            rows: self.rows,
        }
    }

    #[inline(always)]
    fn row(&self, r: usize, n: usize) -> &'a [T] {
        &self.data[r * self.stride..r * self.stride + n]
    }
}

/// [`dots`] inside the instruction set's dispatch: `w` in blocks of `C` rows, which stay in the
/// first-level cache while the rows of `x` pass `R` at a time, `R x C` sums of `G` registers
/// each (`G` times the register's lanes is [`LANES`]) as many as the registers hold.
macro_rules! kernel {
    ($dots:ident, $blocks:ident, $rows:ident, $micro:ident, $t:ty, $lanes:ident, $split:ident, $split_mut:ident, $splat:ident, $fma:ident, $add:ident, $reduce:ident) => {
        #[inline(always)]
        fn $dots<S: pulp::Simd>(
            simd: S,
            x: &Matrix<'_, $t>,
            w: &Matrix<'_, $t>,
            n: usize,
            out: &mut [$t],
            out_stride: usize,
        ) {
            // One row: as many rows of `w` as the registers hold (its loads bound the time).
            match S::$lanes {
                16 => $blocks::<S, 4, 6, 1>(simd, x, w, n, out, out_stride),
                8 if std::mem::size_of::<$t>() == 4 && x.rows == 1 => {
                    $blocks::<S, 1, 6, 2>(simd, x, w, n, out, out_stride)
                }
                8 if std::mem::size_of::<$t>() == 4 => {
                    $blocks::<S, 2, 3, 2>(simd, x, w, n, out, out_stride)
                }
                8 => $blocks::<S, 2, 4, 2>(simd, x, w, n, out, out_stride),
                4 => $blocks::<S, 1, 3, 4>(simd, x, w, n, out, out_stride),
                2 => $blocks::<S, 1, 2, 8>(simd, x, w, n, out, out_stride),
                _ => $blocks::<S, 1, 1, 16>(simd, x, w, n, out, out_stride),
            }
        }

        #[inline(always)]
        fn $blocks<S: pulp::Simd, const R: usize, const C: usize, const G: usize>(
            simd: S,
            x: &Matrix<'_, $t>,
            w: &Matrix<'_, $t>,
            n: usize,
            out: &mut [$t],
            out_stride: usize,
        ) {
            let (m, k) = (x.rows, w.rows);
            let mut j = 0;
            while j < k {
                if k - j >= C {
                    let ws: [&[$t]; C] = std::array::from_fn(|c| w.row(j + c, n));
                    $rows::<S, R, C, G>(simd, x, &ws, m, n, out, out_stride, j);
                    j += C;
                } else {
                    let ws = [w.row(j, n)];
                    $rows::<S, R, 1, G>(simd, x, &ws, m, n, out, out_stride, j);
                    j += 1;
                }
            }
        }

        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        fn $rows<S: pulp::Simd, const R: usize, const C: usize, const G: usize>(
            simd: S,
            x: &Matrix<'_, $t>,
            ws: &[&[$t]; C],
            m: usize,
            n: usize,
            out: &mut [$t],
            out_stride: usize,
            j: usize,
        ) {
            let mut r = 0;
            while r < m {
                if m - r >= R {
                    let xs: [&[$t]; R] = std::array::from_fn(|q| x.row(r + q, n));
                    let sums = $micro::<S, R, C, G>(simd, &xs, ws, n);
                    for (q, row) in sums.iter().enumerate() {
                        out[(r + q) * out_stride + j..][..C].copy_from_slice(row);
                    }
                    r += R;
                } else {
                    let sums = $micro::<S, 1, C, G>(simd, &[x.row(r, n)], ws, n);
                    out[r * out_stride + j..][..C].copy_from_slice(&sums[0]);
                    r += 1;
                }
            }
        }

        /// The `R x C` dot products of `xs` and `ws` (each of `n`), in [`dots`]' order.
        #[inline(always)]
        fn $micro<S: pulp::Simd, const R: usize, const C: usize, const G: usize>(
            simd: S,
            xs: &[&[$t]; R],
            ws: &[&[$t]; C],
            n: usize,
        ) -> [[$t; C]; R] {
            let zero = simd.$splat(0.0);
            let mut acc = [[[zero; G]; C]; R];
            let full = n - n % LANES;
            let steps = full / LANES;
            let xv: [&[_]; R] = std::array::from_fn(|q| &S::$split(&xs[q][..full]).0[..steps * G]);
            let wv: [&[_]; C] = std::array::from_fn(|c| &S::$split(&ws[c][..full]).0[..steps * G]);
            for step in 0..steps {
                for q in 0..R {
                    for c in 0..C {
                        for g in 0..G {
                            let e = step * G + g;
                            acc[q][c][g] = simd.$fma(xv[q][e], wv[c][e], acc[q][c][g]);
                        }
                    }
                }
            }
            let mut sums = [[0.0; C]; R];
            for q in 0..R {
                for c in 0..C {
                    let mut regs = acc[q][c];
                    if n > full {
                        // The last elements, fewer than LANES: into their partial sums one by one.
                        let mut v = [0.0 as $t; LANES];
                        S::$split_mut(&mut v).0[..G].copy_from_slice(&regs);
                        for l in 0..n - full {
                            v[l] = xs[q][full + l].mul_add(ws[c][full + l], v[l]);
                        }
                        regs.copy_from_slice(&S::$split(&v).0[..G]);
                    }
                    // Partial sums l and l + LANES / 2 first: registers g and g + G / 2 while
                    // there are several, then within the register (halves, quarters, ...).
                    let mut h = G / 2;
                    while h > 0 {
                        for g in 0..h {
                            regs[g] = simd.$add(regs[g], regs[g + h]);
                        }
                        h /= 2;
                    }
                    sums[q][c] = simd.$reduce(regs[0]);
                }
            }
            sums
        }
    };
}

kernel!(
    dots32,
    blocks32,
    rows32,
    micro32,
    f32,
    F32_LANES,
    as_simd_f32s,
    as_mut_simd_f32s,
    splat_f32s,
    mul_add_f32s,
    add_f32s,
    reduce_sum_f32s
);
kernel!(
    dots64,
    blocks64,
    rows64,
    micro64,
    f64,
    F64_LANES,
    as_simd_f64s,
    as_mut_simd_f64s,
    splat_f64s,
    mul_add_f64s,
    add_f64s,
    reduce_sum_f64s
);
/// The `f32` kernel with AVX-512: [`dots`]' order, with the partial sums of 16 dot products
/// added in one network of shuffles (a quarter of the instructions of 16 reductions).
#[cfg(target_arch = "x86_64")]
mod v4 {
    use pulp::x86::V4;
    use pulp::{f32x16, Simd};
    use std::arch::x86_64::__m512;

    use super::{Matrix, LANES};

    /// Rows of `x` per block, and rows of `w`: 16 dot products.
    const R: usize = 2;
    const C: usize = 8;

    /// [`dots32`] as `pulp` runs it with the instruction set's features.
    pub(super) struct Dots32<'a> {
        pub simd: V4,
        pub x: Matrix<'a, f32>,
        pub w: Matrix<'a, f32>,
        pub n: usize,
        pub out: &'a mut [f32],
        pub out_stride: usize,
    }

    impl pulp::NullaryFnOnce for Dots32<'_> {
        type Output = ();
        #[inline(always)]
        fn call(self) {
            dots32(
                self.simd,
                &self.x,
                &self.w,
                self.n,
                self.out,
                self.out_stride,
            );
        }
    }

    #[inline(always)]
    fn dots32(
        simd: V4,
        x: &Matrix<'_, f32>,
        w: &Matrix<'_, f32>,
        n: usize,
        out: &mut [f32],
        out_stride: usize,
    ) {
        let (m, k) = (x.rows, w.rows);
        let full = n - n % LANES;
        let steps = full / LANES;
        let mut j = 0;
        while j + C <= k {
            let ws: [&[f32]; C] = std::array::from_fn(|c| w.row(j + c, n));
            let wv: [&[f32x16]; C] =
                std::array::from_fn(|c| &V4::as_simd_f32s(&ws[c][..full]).0[..steps]);
            let mut r = 0;
            while r + R <= m {
                let xs: [&[f32]; R] = std::array::from_fn(|q| x.row(r + q, n));
                let sums = sixteen(simd, &xs, &ws, wv, n);
                for q in 0..R {
                    out[(r + q) * out_stride + j..][..C].copy_from_slice(&sums[q * C..(q + 1) * C]);
                }
                r += R;
            }
            if r < m {
                let sums = super::micro32::<V4, 1, C, 1>(simd, &[x.row(r, n)], &ws, n);
                out[r * out_stride + j..][..C].copy_from_slice(&sums[0]);
            }
            j += C;
        }
        // The last rows of `w`, fewer than C.
        if j < k {
            let rest = Matrix {
                data: &w.data[j * w.stride..],
                stride: w.stride,
                rows: k - j,
            };
            let mut tail = vec![0.0f32; m * (k - j)];
            super::blocks32::<V4, 4, 1, 1>(simd, x, &rest, n, &mut tail, k - j);
            for r in 0..m {
                out[r * out_stride + j..][..k - j].copy_from_slice(&tail[r * (k - j)..][..k - j]);
            }
        }
    }

    /// The 16 dot products of `R` rows of `x` and `C` rows of `w` (`ws`, and its whole vectors
    /// `wv`), row-major (`q * C + c`).
    #[inline(always)]
    fn sixteen(
        simd: V4,
        xs: &[&[f32]; R],
        ws: &[&[f32]; C],
        wv: [&[f32x16]; C],
        n: usize,
    ) -> [f32; 16] {
        let full = n - n % LANES;
        let steps = full / LANES;
        let xv: [&[f32x16]; R] =
            std::array::from_fn(|q| &V4::as_simd_f32s(&xs[q][..full]).0[..steps]);
        let zero = simd.splat_f32s(0.0);
        let mut acc = [[zero; C]; R];
        for e in 0..steps {
            for q in 0..R {
                for c in 0..C {
                    acc[q][c] = simd.mul_add_f32s(xv[q][e], wv[c][e], acc[q][c]);
                }
            }
        }
        // Slot s of the network holds sum σ(s) (σ swaps bits 0 and 1 and bits 2 and 3), so that
        // its result's lane L is sum L.
        let [[a0, a1, a2, a3, a4, a5, a6, a7], [a8, a9, a10, a11, a12, a13, a14, a15]] = acc;
        let c = pulp::cast::<f32x16, __m512>;
        let mut a: [__m512; 16] = [
            c(a0),
            c(a2),
            c(a1),
            c(a3),
            c(a8),
            c(a10),
            c(a9),
            c(a11),
            c(a4),
            c(a6),
            c(a5),
            c(a7),
            c(a12),
            c(a14),
            c(a13),
            c(a15),
        ];
        if n > full {
            // The last elements, fewer than LANES: into their partial sums one by one.
            for (slot, sum) in a.iter_mut().enumerate() {
                let l =
                    ((slot & 1) << 1) | ((slot >> 1) & 1) | ((slot & 4) << 1) | ((slot >> 1) & 4);
                let (xq, wc) = (xs[l / C], ws[l % C]);
                let mut v: [f32; LANES] = pulp::cast(*sum);
                for e in full..n {
                    v[e - full] = xq[e].mul_add(wc[e], v[e - full]);
                }
                *sum = pulp::cast(v);
            }
        }
        let f = simd.avx512f;
        // Partials l and l + 8 (128-bit blocks 0, 1 with 2, 3): slots s and s + 8 into one.
        let b: [__m512; 8] = std::array::from_fn(|s| {
            let lo = f._mm512_shuffle_f32x4::<0x44>(a[s], a[s + 8]);
            let hi = f._mm512_shuffle_f32x4::<0xEE>(a[s], a[s + 8]);
            f._mm512_add_ps(lo, hi)
        });
        // l and l + 4 (blocks 0 with 1, 2 with 3).
        let c: [__m512; 4] = std::array::from_fn(|s| {
            let lo = f._mm512_shuffle_f32x4::<0x88>(b[s], b[s + 4]);
            let hi = f._mm512_shuffle_f32x4::<0xDD>(b[s], b[s + 4]);
            f._mm512_add_ps(lo, hi)
        });
        // l and l + 2 (within each block).
        let d: [__m512; 2] = std::array::from_fn(|s| {
            let lo = f._mm512_shuffle_ps::<0x44>(c[s], c[s + 2]);
            let hi = f._mm512_shuffle_ps::<0xEE>(c[s], c[s + 2]);
            f._mm512_add_ps(lo, hi)
        });
        // l and l + 1.
        let lo = f._mm512_shuffle_ps::<0x88>(d[0], d[1]);
        let hi = f._mm512_shuffle_ps::<0xDD>(d[0], d[1]);
        pulp::cast(f._mm512_add_ps(lo, hi))
    }
}
