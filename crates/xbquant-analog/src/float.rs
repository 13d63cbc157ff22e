//! The element types of a tile: `f32` and `f64`, with the arithmetic aihwkit's torch tile does
//! in them.

use std::ops::{Add, Div, Mul, Sub};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// `f32` or `f64`: the data of a tile's inputs, weights and outputs.
pub trait Float:
    sealed::Sealed
    + Copy
    + Send
    + Sync
    + PartialOrd
    + std::fmt::Debug
    + Default
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// The nearest value of this type (a Python number meeting a tensor of this dtype).
    fn of(v: f64) -> Self;
    /// The value as `f64` (exact).
    fn f64(self) -> f64;
    /// Rounded to the nearest integer, ties to even (`torch.round`).
    fn round_even(self) -> Self;
    /// The absolute value.
    fn abs(self) -> Self;
    /// Whether the value is NaN.
    fn is_nan(self) -> bool;
    /// `self * a + b` with one rounding.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// Fills `out` with the standard Gaussian draws of indices `start..start + out.len()` of the
    /// stream `key`, computed in this type (see the `normal` module).
    fn normals(key: u64, start: u64, out: &mut [Self]);
    /// Runs `f` on a buffer of `len` values of this type kept by the thread between calls (its
    /// contents are whatever the last call left), or on a new one when the thread's is in use.
    #[doc(hidden)]
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
    /// The slice as `f32` when this is `f32`.
    #[doc(hidden)]
    fn as_f32(data: &[Self]) -> Option<&[f32]>;
    /// The slice as `f64` when this is `f64`.
    #[doc(hidden)]
    fn as_f64(data: &[Self]) -> Option<&[f64]>;
    /// The slice as `f32` when this is `f32`.
    #[doc(hidden)]
    fn as_f32_mut(data: &mut [Self]) -> Option<&mut [f32]>;
    /// The slice as `f64` when this is `f64`.
    #[doc(hidden)]
    fn as_f64_mut(data: &mut [Self]) -> Option<&mut [f64]>;
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn f64(self) -> f64 {
        f64::from(self)
    }
    #[inline]
    fn round_even(self) -> Self {
        self.round_ties_even()
    }
    #[inline]
    fn abs(self) -> Self {
        f32::abs(self)
    }
    #[inline]
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32::mul_add(self, a, b)
    }
    fn normals(key: u64, start: u64, out: &mut [Self]) {
        crate::normal::fill(key, start, out);
    }
    fn as_f32(data: &[Self]) -> Option<&[f32]> {
        Some(data)
    }
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        scratch(&SCRATCH, len, f)
    }
    fn as_f64(_: &[Self]) -> Option<&[f64]> {
        None
    }
    fn as_f32_mut(data: &mut [Self]) -> Option<&mut [f32]> {
        Some(data)
    }
    fn as_f64_mut(_: &mut [Self]) -> Option<&mut [f64]> {
        None
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline]
    fn of(v: f64) -> Self {
        v
    }
    #[inline]
    fn f64(self) -> f64 {
        self
    }
    #[inline]
    fn round_even(self) -> Self {
        self.round_ties_even()
    }
    #[inline]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
    }
    fn normals(key: u64, start: u64, out: &mut [Self]) {
        crate::normal::fill(key, start, out);
    }
    fn as_f64(data: &[Self]) -> Option<&[f64]> {
        Some(data)
    }
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        scratch(&SCRATCH, len, f)
    }
    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }
    fn as_f64_mut(data: &mut [Self]) -> Option<&mut [f64]> {
        Some(data)
    }
    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}

/// [`Float::with_scratch`] on the thread's buffer `cell` (grown to `len`; at most 64 MiB kept).
fn scratch<T: Copy + Default + 'static, R>(
    cell: &'static std::thread::LocalKey<std::cell::RefCell<Vec<T>>>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    const KEEP: usize = 64 << 20;
    cell.with(|c| match c.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < len {
                buffer.resize(len, T::default());
            }
            let result = f(&mut buffer[..len]);
            if buffer.len() * std::mem::size_of::<T>() > KEEP {
                *buffer = Vec::new();
            }
            result
        }
        Err(_) => f(&mut vec![T::default(); len]),
    })
}
