//! The matrix product of a tile, from the `gemm` crate (the one candle uses).

use crate::float::Float;

/// `out = x w^T` for `x` of `m` rows of `n` and `w` of `k` rows of `n` (both row-major), into
/// `out`, `m` rows of `k`.
///
/// # Panics
///
/// When a buffer is shorter than its shape (the callers check the shapes first).
pub(crate) fn matmul<T: Float>(x: &[T], m: usize, n: usize, w: &[T], k: usize, out: &mut [T]) {
    assert!(
        x.len() >= m * n && w.len() >= k * n && out.len() >= m * k,
        "buffers shorter than their shapes"
    );
    if m == 0 || k == 0 {
        return;
    }
    if n == 0 {
        out[..m * k].fill(T::ZERO);
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
    let (n_i, k_i) = (n as isize, k as isize);
    #[allow(unsafe_code)]
    // SAFETY: the three pointers come from slices at least as long as the strides read (checked
    // above): `x` holds `m * n` elements read with row stride `n`, `w` holds `k * n` read as the
    // transposed `n x k` matrix (row stride 1, column stride `n`), `out` holds `m * k` written
    // with row stride `k`. `out` is a distinct `&mut` slice, so it aliases neither input; T is
    // f32 or f64, which gemm supports.
    unsafe {
        gemm::gemm(
            m,
            k,
            n,
            out.as_mut_ptr(),
            1,
            k_i,
            false,
            x.as_ptr(),
            1,
            n_i,
            w.as_ptr(),
            n_i,
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
