//! The matrix product of a tile, from the `gemm` crate (the one candle uses).

use crate::float::Float;

/// `out = x w^T` for `x` of `m` rows of `n` (row `r` at `x[r * x_stride..]`) and `w` of `k` rows
/// of `n` (row `j` at `w[j * w_stride..]`), into `out`, `m` rows of `k` (row `r` at
/// `out[r * out_stride..]`).
///
/// # Panics
///
/// When a buffer is shorter than its shape and strides (the callers check the shapes first).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<T: Float>(
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
    assert!(
        x_stride >= n && w_stride >= n && out_stride >= k,
        "strides shorter than rows"
    );
    product(
        Shape { m, n: k, k: n },
        out,
        out_stride,
        Operand {
            data: x,
            rows: x_stride,
            columns: 1,
        },
        Operand {
            data: w,
            rows: 1,
            columns: w_stride,
        },
    );
}

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
