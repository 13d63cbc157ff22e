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
    if m == 0 || k == 0 {
        return;
    }
    let reach = |rows: usize, stride: usize, width: usize| (rows - 1) * stride + width;
    assert!(
        x_stride >= n && w_stride >= n && out_stride >= k,
        "strides shorter than rows"
    );
    assert!(
        x.len() >= reach(m, x_stride, n)
            && w.len() >= reach(k, w_stride, n)
            && out.len() >= reach(m, out_stride, k),
        "buffers shorter than their shapes"
    );
    if n == 0 {
        for r in 0..m {
            out[r * out_stride..r * out_stride + k].fill(T::ZERO);
        }
        return;
    }
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
    // SAFETY: every element read or written lies within its slice (checked above: the last row
    // starts at `(rows - 1) * stride` and holds `width` values): `x` is read as `m x n` with row
    // stride `x_stride`, `w` as the transposed `n x k` matrix (row stride 1, column stride
    // `w_stride`), and `out` written as `m x k` with row stride `out_stride`. `out` is a distinct
    // `&mut` slice, so it aliases neither input; T is f32 or f64, which gemm supports.
    unsafe {
        gemm::gemm(
            m,
            k,
            n,
            out.as_mut_ptr(),
            1,
            signed(out_stride),
            false,
            x.as_ptr(),
            1,
            signed(x_stride),
            w.as_ptr(),
            signed(w_stride),
            1,
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}
