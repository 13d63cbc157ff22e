//! The quantize methods of [`QuantSpec`] and [`FixedPoint`]: thin generic shims over the kernel
//! entry points of [`Element`], so that a caller in any crate compiles a call, not a kernel.

use crate::kernel::{Buffers, Job, Plan};
use crate::quantizer::check_len;
use crate::{Element, Error, FixedPoint, QuantSpec, Rounding};

#[inline]
fn run<T: Element>(spec: &QuantSpec, job: Job<'_, T>) {
    T::run(&Plan::of(spec), job);
}

impl QuantSpec {
    /// Runs one call on `data`, with the mask when given (the mask's length checked by the
    /// caller).
    pub(crate) fn run<T: Element>(
        &self,
        data: crate::Data<'_, T>,
        mask: Option<&mut [bool]>,
    ) -> Result<(), Error> {
        let buffers = match data {
            crate::Data::Into { x, out } => {
                check_len(x.len(), out.len())?;
                Buffers::Into {
                    src: x,
                    dst: out,
                    mask,
                }
            }
            crate::Data::InPlace(buf) => Buffers::InPlace { buf, mask },
        };
        run(self, Job::Quantize(buffers));
        Ok(())
    }

    /// Quantizes `x` into a new vector of the same type.
    ///
    /// `T` is `f32` or `f64` (and `f16`, `bf16` with the `half` feature). NaN stays NaN, zero
    /// comes out as `+0.0`, `+-inf` follows the overflow mode (see
    /// [`Overflow`](crate::Overflow)). Large inputs are split over rayon's threads; the result
    /// never depends on the thread count.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, QuantSpec, Rounding};
    /// let spec = QuantSpec::new(FixedPoint::new(8, 4)?, Rounding::NearestEven); // step 1/16
    /// let y = spec.quantize(&[0.03125f64, 0.09375, 100.0, f64::NAN]);
    /// assert_eq!(&y[..3], &[0.0, 0.125, 7.9375]); // ties to even, then saturate
    /// assert!(y[3].is_nan());
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn quantize<T: Element>(&self, x: &[T]) -> Vec<T> {
        let mut out = vec![T::from_f64(0.0); x.len()];
        let (src, dst, mask) = (x, out.as_mut_slice(), None);
        run(self, Job::Quantize(Buffers::Into { src, dst, mask }));
        out
    }

    /// Quantizes `x` into the caller's buffer `out`.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `out.len() != x.len()`; nothing is written then.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, QuantSpec};
    /// let spec = QuantSpec::from(FixedPoint::new(4, 2)?); // nearest rounding
    /// let mut y = [0.0f32; 3];
    /// spec.quantize_into(&[0.3f32, -0.6, 5.0], &mut y)?;
    /// assert_eq!(y, [0.25, -0.5, 1.75]);
    /// assert!(spec.quantize_into(&[1.0f32], &mut y).is_err());
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn quantize_into<T: Element>(&self, x: &[T], out: &mut [T]) -> Result<(), Error> {
        check_len(x.len(), out.len())?;
        let (src, dst, mask) = (x, out, None);
        run(self, Job::Quantize(Buffers::Into { src, dst, mask }));
        Ok(())
    }

    /// Quantizes `x` in place.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, QuantSpec, Rounding};
    /// let spec = QuantSpec::new(FixedPoint::new(8, 0)?, Rounding::Stochastic { seed: 7 });
    /// let mut x = vec![0.5f32; 10_000];
    /// spec.quantize_in_place(&mut x);
    /// assert!(x.iter().all(|&v| v == 0.0 || v == 1.0));
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn quantize_in_place<T: Element>(&self, x: &mut [T]) {
        run(self, Job::Quantize(Buffers::InPlace { buf: x, mask: None }));
    }

    /// Quantizes `x` and reports which elements overflowed (their rounded code was outside the
    /// range, so the overflow mode changed it): the mask for a clamp-aware straight-through
    /// gradient. NaN is never marked; with [`Overflow::Unbounded`](crate::Overflow::Unbounded)
    /// nothing is.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, QuantSpec};
    /// let spec = QuantSpec::from(FixedPoint::new(4, 2)?); // values -1.75..=1.75 (symmetric)
    /// let (y, overflow) = spec.quantize_with_mask(&[0.5f32, 1.9, -2.0]);
    /// assert_eq!(y, [0.5, 1.75, -1.75]);
    /// assert_eq!(overflow, [false, true, true]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn quantize_with_mask<T: Element>(&self, x: &[T]) -> (Vec<T>, Vec<bool>) {
        let mut out = vec![T::from_f64(0.0); x.len()];
        let mut mask = vec![false; x.len()];
        let (src, dst, mask_buf) = (x, out.as_mut_slice(), Some(mask.as_mut_slice()));
        run(
            self,
            Job::Quantize(Buffers::Into {
                src,
                dst,
                mask: mask_buf,
            }),
        );
        (out, mask)
    }

    /// [`quantize_with_mask`](QuantSpec::quantize_with_mask) into the caller's buffers.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `out` or `mask` differs in length from `x`.
    pub fn quantize_into_with_mask<T: Element>(
        &self,
        x: &[T],
        out: &mut [T],
        mask: &mut [bool],
    ) -> Result<(), Error> {
        check_len(x.len(), out.len())?;
        check_len(x.len(), mask.len())?;
        let (src, dst, mask) = (x, out, Some(mask));
        run(self, Job::Quantize(Buffers::Into { src, dst, mask }));
        Ok(())
    }

    /// [`quantize_in_place`](QuantSpec::quantize_in_place) that also writes the overflow mask.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `mask` differs in length from `x`.
    pub fn quantize_in_place_with_mask<T: Element>(
        &self,
        x: &mut [T],
        mask: &mut [bool],
    ) -> Result<(), Error> {
        check_len(x.len(), mask.len())?;
        let (buf, mask) = (x, Some(mask));
        run(self, Job::Quantize(Buffers::InPlace { buf, mask }));
        Ok(())
    }

    /// The overflow mask of quantizing `x`, without the values: what
    /// [`quantize_with_mask`](QuantSpec::quantize_with_mask) reports, for a backward pass that
    /// needs the mask of a forward pass whose output it does not have. Stochastic rounding with
    /// a fixed seed gives the mask of the same draws.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, QuantSpec};
    /// let spec = QuantSpec::from(FixedPoint::new(4, 2)?); // codes -7..=7
    /// assert_eq!(spec.overflow_mask(&[0.5f32, 1.8, 1.9, -2.0]), [false, false, true, true]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn overflow_mask<T: Element>(&self, x: &[T]) -> Vec<bool> {
        let mut mask = vec![false; x.len()];
        run(
            self,
            Job::Mask {
                src: x,
                mask: &mut mask,
            },
        );
        mask
    }

    /// [`overflow_mask`](QuantSpec::overflow_mask) into the caller's buffer.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `mask` differs in length from `x`.
    pub fn overflow_mask_into<T: Element>(&self, x: &[T], mask: &mut [bool]) -> Result<(), Error> {
        check_len(x.len(), mask.len())?;
        run(self, Job::Mask { src: x, mask });
        Ok(())
    }

    /// One value, quantized (a convenience for scalars; use the slice functions for arrays).
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, QuantSpec};
    /// assert_eq!(QuantSpec::from(FixedPoint::new(4, 2)?).quantize_value(0.375), 0.5);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn quantize_value(&self, x: f64) -> f64 {
        let mut one = [x];
        self.quantize_in_place(&mut one);
        one[0]
    }
}

/// The same methods on a format, with the rounding as an argument: each is
/// `QuantSpec::new(*self, rounding).method(...)`.
impl FixedPoint {
    /// Quantizes `x` into a new vector of the same type: [`QuantSpec::quantize`].
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Rounding};
    /// let fmt = FixedPoint::new(8, 4)?; // step 1/16, range +-7.9375
    /// let y = fmt.quantize(&[0.03125f64, 0.09375, 100.0], Rounding::NearestEven);
    /// assert_eq!(y, [0.0, 0.125, 7.9375]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn quantize<T: Element>(&self, x: &[T], rounding: Rounding) -> Vec<T> {
        QuantSpec::new(*self, rounding).quantize(x)
    }

    /// Quantizes `x` into the caller's buffer `out`: [`QuantSpec::quantize_into`].
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `out.len() != x.len()`; nothing is written then.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Rounding};
    /// let fmt = FixedPoint::new(4, 2)?;
    /// let mut y = [0.0f32; 3];
    /// fmt.quantize_into(&[0.3f32, -0.6, 5.0], &mut y, Rounding::NearestEven)?;
    /// assert_eq!(y, [0.25, -0.5, 1.75]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn quantize_into<T: Element>(
        &self,
        x: &[T],
        out: &mut [T],
        rounding: Rounding,
    ) -> Result<(), Error> {
        QuantSpec::new(*self, rounding).quantize_into(x, out)
    }

    /// Quantizes `x` in place: [`QuantSpec::quantize_in_place`].
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Rounding};
    /// let mut x = [0.3f32, -5.0];
    /// FixedPoint::new(4, 2)?.quantize_in_place(&mut x, Rounding::NearestEven);
    /// assert_eq!(x, [0.25, -1.75]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn quantize_in_place<T: Element>(&self, x: &mut [T], rounding: Rounding) {
        QuantSpec::new(*self, rounding).quantize_in_place(x);
    }

    /// Quantizes `x` and reports which elements overflowed: [`QuantSpec::quantize_with_mask`].
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Rounding};
    /// let fmt = FixedPoint::new(4, 2)?; // values -1.75..=1.75 (symmetric)
    /// let (y, overflow) = fmt.quantize_with_mask(&[0.5f32, 1.9, -2.0], Rounding::NearestEven);
    /// assert_eq!(y, [0.5, 1.75, -1.75]);
    /// assert_eq!(overflow, [false, true, true]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn quantize_with_mask<T: Element>(
        &self,
        x: &[T],
        rounding: Rounding,
    ) -> (Vec<T>, Vec<bool>) {
        QuantSpec::new(*self, rounding).quantize_with_mask(x)
    }

    /// [`QuantSpec::quantize_into_with_mask`].
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `out` or `mask` differs in length from `x`.
    pub fn quantize_into_with_mask<T: Element>(
        &self,
        x: &[T],
        out: &mut [T],
        mask: &mut [bool],
        rounding: Rounding,
    ) -> Result<(), Error> {
        QuantSpec::new(*self, rounding).quantize_into_with_mask(x, out, mask)
    }

    /// [`QuantSpec::quantize_in_place_with_mask`].
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `mask` differs in length from `x`.
    pub fn quantize_in_place_with_mask<T: Element>(
        &self,
        x: &mut [T],
        mask: &mut [bool],
        rounding: Rounding,
    ) -> Result<(), Error> {
        QuantSpec::new(*self, rounding).quantize_in_place_with_mask(x, mask)
    }

    /// One value, quantized: [`QuantSpec::quantize_value`].
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Rounding};
    /// assert_eq!(FixedPoint::new(4, 2)?.quantize_value(0.375, Rounding::NearestEven), 0.5);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    #[must_use]
    pub fn quantize_value(&self, x: f64, rounding: Rounding) -> f64 {
        QuantSpec::new(*self, rounding).quantize_value(x)
    }
}

impl crate::Quantizer for QuantSpec {
    /// Element `i` of the data draws stream index `stream_start + part.start() + i`.
    fn quantize_part<T: Element>(
        &self,
        data: crate::Data<'_, T>,
        mask: Option<&mut [bool]>,
        part: crate::Part<'_>,
    ) -> Result<(), Error> {
        crate::quantizer::check_call(&data, mask.as_deref(), part)?;
        let start = self.stream_start().wrapping_add(part.start() as u64);
        self.with_stream_start(start).run(data, mask)
    }
}
