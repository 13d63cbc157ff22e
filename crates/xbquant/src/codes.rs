//! Integer codes for deployment: quantize straight to the codes a fixed-point datapath stores,
//! and turn codes back into values.

use rayon::prelude::*;

use crate::kernel::{codes, Plan};
use crate::quantizer::check_len;
use crate::{Element, Error, FixedPoint, QuantSpec, Rounding};

/// Elements per block of the codes loop (its `f64` buffers stay in the L1 cache).
const BLOCK: usize = 256;

/// An integer type that can hold fixed-point codes: `i8` to `i64`, and `u8` to `u64` for unsigned
/// formats.
pub trait Code: Copy + Send + Sync + std::fmt::Debug + sealed::Sealed + 'static {
    /// The type's name, as `i8`.
    const NAME: &'static str;
    /// Its width in bits.
    const BITS: u32;
    /// Whether it is signed.
    const SIGNED: bool;
    /// From an `i128` known to fit.
    fn from_i128(value: i128) -> Self;
    /// To `i128`, exactly.
    fn to_i128(self) -> i128;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! impl_code {
    ($($t:ty: $signed:expr),*) => {$(
        impl sealed::Sealed for $t {}
        impl Code for $t {
            const NAME: &'static str = stringify!($t);
            const BITS: u32 = <$t>::BITS;
            const SIGNED: bool = $signed;
            #[inline(always)]
            fn from_i128(value: i128) -> Self {
                value as $t
            }
            #[inline(always)]
            fn to_i128(self) -> i128 {
                i128::from(self)
            }
        }
    )*};
}
impl_code!(i8: true, i16: true, i32: true, i64: true, u8: false, u16: false, u32: false, u64: false);

impl FixedPoint {
    pub(crate) fn check_code_type<C: Code>(&self) -> Result<(), Error> {
        let wl = self.word_length();
        let fits = match (self.is_signed(), C::SIGNED) {
            (true, true) | (false, false) => wl <= C::BITS,
            (false, true) => wl < C::BITS,
            (true, false) => false,
        };
        if fits {
            Ok(())
        } else {
            Err(Error::CodeTypeTooNarrow {
                code_type: C::NAME,
                word_length: self.word_length(),
                signed: self.is_signed(),
            })
        }
    }

    /// Quantizes `x` to integer codes `k` (the value is `k * 2^-fl`), as `i64`:
    /// [`QuantSpec::to_codes`].
    ///
    /// # Errors
    ///
    /// Those of [`QuantSpec::to_codes`].
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Rounding};
    /// let fmt = FixedPoint::new(8, 4)?;
    /// let codes = fmt.to_codes(&[0.5f32, -1.03, 100.0], Rounding::NearestEven)?;
    /// assert_eq!(codes, [8, -16, 127]);
    /// assert_eq!(fmt.from_codes::<_, f32>(&codes)?, [0.5, -1.0, 7.9375]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn to_codes<T: Element>(&self, x: &[T], rounding: Rounding) -> Result<Vec<i64>, Error> {
        QuantSpec::new(*self, rounding).to_codes(x)
    }

    /// Quantizes `x` to integer codes in the caller's buffer: [`QuantSpec::to_codes_into`].
    ///
    /// # Errors
    ///
    /// Those of [`QuantSpec::to_codes_into`].
    pub fn to_codes_into<T: Element, C: Code>(
        &self,
        x: &[T],
        out: &mut [C],
        rounding: Rounding,
    ) -> Result<(), Error> {
        QuantSpec::new(*self, rounding).to_codes_into(x, out)
    }

    /// The values of integer codes, `k * 2^-fl`, in the element type `T` (exact when the code
    /// fits `T`'s significand, else the nearest value).
    ///
    /// # Errors
    ///
    /// [`Error::CodeOutOfRange`] when a code lies outside the word's code range.
    pub fn from_codes<C: Code, T: Element>(&self, codes: &[C]) -> Result<Vec<T>, Error> {
        let mut out = vec![T::from_f64(0.0); codes.len()];
        self.from_codes_into(codes, &mut out)?;
        Ok(out)
    }

    /// [`from_codes`](FixedPoint::from_codes) into the caller's buffer.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`]; [`Error::CodeOutOfRange`].
    pub fn from_codes_into<C: Code, T: Element>(
        &self,
        codes: &[C],
        out: &mut [T],
    ) -> Result<(), Error> {
        check_len(codes.len(), out.len())?;
        let (lo, hi) = self.word_codes();
        let step = self.step();
        crate::kernel::in_pool(codes.len(), || {
            if let Some((index, code)) = codes
                .par_iter()
                .map(|c| c.to_i128())
                .enumerate()
                .find_first(|(_, c)| *c < lo || *c > hi)
            {
                return Err(Error::CodeOutOfRange { index, code });
            }
            codes
                .par_chunks(SPLIT)
                .zip(out.par_chunks_mut(SPLIT))
                .for_each(|(cs, os)| {
                    for (o, c) in os.iter_mut().zip(cs) {
                        *o = T::from_f64(c.to_i128() as f64 * step);
                    }
                });
            Ok(())
        })
    }
}

impl QuantSpec {
    /// Quantizes `x` to integer codes `k` (the value is `k * 2^-fl`), as `i64`.
    ///
    /// # Errors
    ///
    /// [`Error::UnboundedCodes`] when the overflow mode is [`Overflow::Unbounded`](crate::Overflow::Unbounded);
    /// [`Error::CodeTypeTooNarrow`] for an unsigned format wider than 63 bits (use
    /// [`to_codes_into`](QuantSpec::to_codes_into) with `u64`); [`Error::NanInput`] when an
    /// input is NaN.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::QuantSpec;
    /// let spec = QuantSpec::from_hls("ap_fixed<8,3,AP_RND_CONV,AP_SAT>")?;
    /// let codes = spec.to_codes(&[1.0f32, -0.5, 100.0])?;
    /// assert_eq!(codes, [32, -16, 127]);
    /// assert_eq!(spec.format().from_codes::<_, f32>(&codes)?, [1.0, -0.5, 3.96875]);
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn to_codes<T: Element>(&self, x: &[T]) -> Result<Vec<i64>, Error> {
        let mut out = vec![0i64; x.len()];
        self.to_codes_into(x, &mut out)?;
        Ok(out)
    }

    /// Quantizes `x` to integer codes in the caller's buffer: `i8` .. `i64` hold signed words up
    /// to their width and unsigned words one bit narrower; `u8` .. `u64` hold unsigned words.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`]; [`Error::CodeTypeTooNarrow`] when the word does not fit `C` or
    /// the signedness differs; [`Error::UnboundedCodes`]; [`Error::NanInput`].
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, QuantSpec};
    /// let spec = QuantSpec::from(FixedPoint::new(8, 7)?.with_symmetric(false));
    /// let mut codes = [0i8; 3];
    /// spec.to_codes_into(&[0.5f32, -1.0, 0.99], &mut codes)?;
    /// assert_eq!(codes, [64, -128, 127]);
    /// let mut too_narrow = [0i8; 3];
    /// let wide = QuantSpec::from(FixedPoint::new(12, 7)?);
    /// assert!(wide.to_codes_into(&[0.0f32; 3], &mut too_narrow).is_err());
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn to_codes_into<T: Element, C: Code>(&self, x: &[T], out: &mut [C]) -> Result<(), Error> {
        check_len(x.len(), out.len())?;
        let format = self.format();
        if !format.clamps() {
            return Err(Error::UnboundedCodes);
        }
        format.check_code_type::<C>()?;
        // In parts over rayon's threads, each drawing the noise of its own elements; the
        // first NaN in order is the one reported.
        let results: Vec<Result<(), Error>> = crate::kernel::in_pool(x.len(), || {
            x.par_chunks(SPLIT)
                .zip(out.par_chunks_mut(SPLIT))
                .enumerate()
                .map(|(c, (xs, os))| self.codes_part(xs, os, c * SPLIT))
                .collect()
        });
        results.into_iter().collect()
    }

    /// The codes of `x`, elements `at..` of the call, into `out`.
    fn codes_part<T: Element, C: Code>(
        &self,
        x: &[T],
        out: &mut [C],
        at: usize,
    ) -> Result<(), Error> {
        let format = self.format();
        let (lo, hi) = format.word_codes();
        let nan = |i: usize| Error::NanInput { index: at + i };
        if codes_are_exact::<T>(format) {
            // Every value of the format is exact in T: the vector kernel's value times 2^fl is
            // its code, exactly.
            let scale = crate::format::pow2(i64::from(format.frac_length()));
            let mut values = [T::from_f64(0.0); BLOCK];
            for (b, (src, dst)) in x.chunks(BLOCK).zip(out.chunks_mut(BLOCK)).enumerate() {
                let n = src.len();
                let start = self.stream_start().wrapping_add((at + b * BLOCK) as u64);
                self.with_stream_start(start)
                    .quantize_into(src, &mut values[..n])?;
                for (i, (q, o)) in values[..n].iter().zip(dst).enumerate() {
                    let k = q.to_f64() * scale;
                    if k.is_nan() {
                        return Err(nan(b * BLOCK + i));
                    }
                    *o = C::from_i128((k as i128).clamp(lo, hi));
                }
            }
            return Ok(());
        }
        let plan = Plan::of(self);
        let mut values = [0.0f64; BLOCK];
        let mut ks = [0.0f64; BLOCK];
        for (b, (src, dst)) in x.chunks(BLOCK).zip(out.chunks_mut(BLOCK)).enumerate() {
            let n = src.len();
            for (v, s) in values.iter_mut().zip(src) {
                *v = s.to_f64();
            }
            codes(&plan, &values[..n], &mut ks[..n], (at + b * BLOCK) as u64);
            for (i, (k, o)) in ks[..n].iter().zip(dst).enumerate() {
                if k.is_nan() {
                    return Err(nan(b * BLOCK + i));
                }
                // Exact below 2^53; beyond, the nearest f64 of an in-range code, clamped back
                // into the word (2^63 - 1 is held as 2^63).
                *o = C::from_i128((*k as i128).clamp(lo, hi));
            }
        }
        Ok(())
    }
}

/// Elements per part of a call split over rayon's threads.
const SPLIT: usize = 1 << 16;

/// Whether every value of `format` is exact in `T`: then a quantized value times `2^fl` is its
/// code. True when `T`'s significand holds the word and both the step and the largest
/// magnitude, `(2^wl - 1) * step`, are exact in `T` (every multiple of the step in between then
/// is: above `T`'s normal range it needs at most `wl` significant bits, below it it is a
/// multiple of the smallest subnormal).
fn codes_are_exact<T: Element>(format: &FixedPoint) -> bool {
    let wl = format.word_length();
    let exact = |v: f64| T::from_f64(v).to_f64() == v;
    let step = format.step();
    #[allow(clippy::cast_precision_loss)]
    let top = ((1u128 << wl) - 1) as f64 * step;
    wl <= T::SIGNIFICAND_BITS && exact(step) && exact(top)
}
