//! Bit slicing: integer codes split into planes of `slice_bits` bits each (1-bit cells or
//! multi-level cells), and put back together: [`BitSlicing`].

use crate::Error;

/// How a signed code becomes the digits of its planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SliceEncoding {
    /// Each plane holds the sign times a digit of the magnitude: `sign(c) * digit_j(|c|)`, so
    /// planes carry signed values (`-(2^s - 1) ..= 2^s - 1`), as XBTorch's linear input
    /// encoding. Codes satisfy `|c| < 2^bits` (`bits` magnitude bits and a sign).
    #[default]
    SignMagnitude,
    /// The digits of the `bits`-bit two's complement word, unsigned, the top plane weighing
    /// negative on the way back: codes `-2^(bits-1) ..= 2^(bits-1) - 1`.
    TwosComplement,
    /// The digits of `c + 2^(bits-1)`, unsigned: codes `-2^(bits-1) ..= 2^(bits-1) - 1`.
    OffsetBinary,
}

impl std::str::FromStr for SliceEncoding {
    type Err = Error;

    /// `sign-magnitude`, `twos-complement` or `offset-binary`.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "sign-magnitude" => Ok(SliceEncoding::SignMagnitude),
            "twos-complement" | "two's-complement" => Ok(SliceEncoding::TwosComplement),
            "offset-binary" => Ok(SliceEncoding::OffsetBinary),
            other => Err(Error::InvalidBitSlicing(format!(
                "unknown encoding {other:?}: expected sign-magnitude, twos-complement or offset-binary"
            ))),
        }
    }
}

/// Codes of `bits` bits split into planes of `slice_bits` bits. Plane `j` holds digit `j` of
/// the code, least significant first: its weight is `2^(j * slice_bits)`. There are
/// `ceil(bits / slice_bits)` planes; the last may hold fewer bits.
///
/// # Examples
///
/// ```
/// use xbquant::{BitSlicing, SliceEncoding};
/// // 4 magnitude bits and a sign, 1-bit planes: -5 = -(1 + 4).
/// let s = BitSlicing::new(4, 1, SliceEncoding::SignMagnitude)?;
/// assert_eq!(s.planes(&[-5, 6])?, [vec![-1, 0], vec![0, 1], vec![-1, 1], vec![0, 0]]);
/// // Two's complement, 2-bit planes: -5 in 4 bits is 1011: digits 3 and 2 (weighing -2).
/// let t = BitSlicing::new(4, 2, SliceEncoding::TwosComplement)?;
/// let planes = t.planes(&[-5])?;
/// assert_eq!(planes, [vec![3], vec![2]]);
/// assert_eq!(t.join(&planes)?, [-5]);
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BitSlicing {
    bits: u32,
    slice_bits: u32,
    encoding: SliceEncoding,
}

impl BitSlicing {
    /// `bits` (1 to 62) split into planes of `slice_bits` (1 to `bits`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBitSlicing`] otherwise.
    pub fn new(bits: u32, slice_bits: u32, encoding: SliceEncoding) -> Result<Self, Error> {
        if !(1..=62).contains(&bits) {
            return Err(Error::InvalidBitSlicing(format!("{bits} bits (1 to 62)")));
        }
        if !(1..=bits).contains(&slice_bits) {
            return Err(Error::InvalidBitSlicing(format!(
                "slices of {slice_bits} bits for {bits}-bit codes"
            )));
        }
        Ok(BitSlicing {
            bits,
            slice_bits,
            encoding,
        })
    }

    /// The number of planes.
    #[must_use]
    pub const fn count(&self) -> usize {
        self.bits.div_ceil(self.slice_bits) as usize
    }

    /// The codes this slicing takes, `(min, max)`.
    #[must_use]
    pub const fn code_range(&self) -> (i64, i64) {
        match self.encoding {
            SliceEncoding::SignMagnitude => (-((1i64 << self.bits) - 1), (1i64 << self.bits) - 1),
            _ => (-(1i64 << (self.bits - 1)), (1i64 << (self.bits - 1)) - 1),
        }
    }

    /// The digits of a code in the encoding's unsigned word, and the sign applied to planes.
    #[inline]
    fn word(&self, c: i64) -> (u64, i64) {
        match self.encoding {
            SliceEncoding::SignMagnitude => (c.unsigned_abs(), c.signum()),
            SliceEncoding::TwosComplement => {
                #[allow(clippy::cast_sign_loss)]
                let w = (c as u64) & ((1u64 << self.bits) - 1);
                (w, 1)
            }
            #[allow(clippy::cast_sign_loss)]
            SliceEncoding::OffsetBinary => ((c + (1i64 << (self.bits - 1))) as u64, 1),
        }
    }

    /// The planes of `codes`: `count()` vectors of `codes.len()` digits each.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBitSlicing`] for a code outside [`code_range`](BitSlicing::code_range),
    /// naming its index.
    pub fn planes(&self, codes: &[i64]) -> Result<Vec<Vec<i64>>, Error> {
        let mut planes = vec![vec![0i64; codes.len()]; self.count()];
        self.planes_into(codes, &mut planes)?;
        Ok(planes)
    }

    /// [`planes`](BitSlicing::planes) into the caller's buffers (`count()` of them, each of the
    /// codes' length).
    ///
    /// # Errors
    ///
    /// As [`planes`](BitSlicing::planes), and [`Error::LengthMismatch`] for buffers of the
    /// wrong number or length.
    pub fn planes_into<P: AsMut<[i64]>>(
        &self,
        codes: &[i64],
        planes: &mut [P],
    ) -> Result<(), Error> {
        if planes.len() != self.count() {
            return Err(Error::LengthMismatch {
                input: self.count(),
                output: planes.len(),
            });
        }
        for p in planes.iter_mut() {
            crate::quantizer::check_len(codes.len(), p.as_mut().len())?;
        }
        let (lo, hi) = self.code_range();
        if let Some(i) = codes.iter().position(|c| !(lo..=hi).contains(c)) {
            return Err(Error::InvalidBitSlicing(format!(
                "code {} at index {i} is outside {lo}..={hi}",
                codes[i]
            )));
        }
        let mask = (1u64 << self.slice_bits) - 1;
        for (j, plane) in planes.iter_mut().enumerate() {
            let shift = j as u32 * self.slice_bits;
            for (d, &c) in plane.as_mut().iter_mut().zip(codes) {
                let (w, sign) = self.word(c);
                #[allow(clippy::cast_possible_wrap)]
                let digit = ((w >> shift) & mask) as i64;
                *d = sign * digit;
            }
        }
        Ok(())
    }

    /// The codes whose planes are `planes` (the inverse of [`planes`](BitSlicing::planes)):
    /// `S = sum_j planes[j] * 2^(j * slice_bits)`, then in sign-magnitude `S` itself, in offset
    /// binary `S - 2^(bits-1)`, in two's complement `S` read as a `bits`-bit two's complement
    /// word (its top bit weighing `-2^(bits-1)`). Sign-magnitude and offset-binary planes need
    /// not be canonical digits: the sum is linear, as an analog accumulation of planes is.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] for planes of unequal lengths or the wrong number;
    /// [`Error::InvalidBitSlicing`] when a sum leaves the 64-bit range, or a two's complement
    /// plane holds a digit outside its bits.
    pub fn join<P: AsRef<[i64]>>(&self, planes: &[P]) -> Result<Vec<i64>, Error> {
        if planes.len() != self.count() {
            return Err(Error::LengthMismatch {
                input: self.count(),
                output: planes.len(),
            });
        }
        let len = planes.first().map_or(0, |p| p.as_ref().len());
        for p in planes {
            crate::quantizer::check_len(len, p.as_ref().len())?;
        }
        let overflow = || Error::InvalidBitSlicing("a sum of planes beyond 64 bits".into());
        if self.encoding == SliceEncoding::TwosComplement {
            // The sum is read modulo 2^bits: a digit outside its plane's bits would wrap
            // silently, so two's complement planes must hold their digits.
            for (j, plane) in planes.iter().enumerate() {
                let low = j as u32 * self.slice_bits;
                let width = self.slice_bits.min(self.bits - low);
                let top = (1i64 << width) - 1;
                if let Some(i) = plane.as_ref().iter().position(|d| !(0..=top).contains(d)) {
                    return Err(Error::InvalidBitSlicing(format!(
                        "digit {} of plane {j} at index {i} is outside 0..={top} (two's \
                         complement planes hold the word's unsigned digits)",
                        plane.as_ref()[i]
                    )));
                }
            }
        }
        let mut out = vec![0i64; len];
        for (j, plane) in planes.iter().enumerate() {
            let weight = 1i64 << (j as u32 * self.slice_bits);
            for (o, &d) in out.iter_mut().zip(plane.as_ref()) {
                *o = d
                    .checked_mul(weight)
                    .and_then(|v| o.checked_add(v))
                    .ok_or_else(overflow)?;
            }
        }
        let half = 1i64 << (self.bits - 1);
        match self.encoding {
            SliceEncoding::SignMagnitude => {}
            SliceEncoding::TwosComplement => {
                let modulus = 2 * i128::from(half);
                for o in &mut out {
                    let w = i128::from(*o).rem_euclid(modulus);
                    #[allow(clippy::cast_possible_truncation)]
                    let v = if w >= i128::from(half) {
                        w - modulus
                    } else {
                        w
                    } as i64;
                    *o = v;
                }
            }
            SliceEncoding::OffsetBinary => {
                for o in &mut out {
                    *o -= half;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code of small words, every encoding and slice width: planes are digits in range
    /// and join gives the code back; sign-magnitude planes sum linearly.
    #[test]
    fn every_code_round_trips() {
        for encoding in [
            SliceEncoding::SignMagnitude,
            SliceEncoding::TwosComplement,
            SliceEncoding::OffsetBinary,
        ] {
            for bits in 1..=7 {
                for slice_bits in 1..=bits {
                    let s = BitSlicing::new(bits, slice_bits, encoding).unwrap();
                    let (lo, hi) = s.code_range();
                    let codes: Vec<i64> = (lo..=hi).collect();
                    let planes = s.planes(&codes).unwrap();
                    assert_eq!(planes.len(), bits.div_ceil(slice_bits) as usize);
                    let top = (1i64 << slice_bits) - 1;
                    for p in &planes {
                        assert!(p
                            .iter()
                            .all(|d| if encoding == SliceEncoding::SignMagnitude {
                                d.abs() <= top
                            } else {
                                (0..=top).contains(d)
                            }));
                    }
                    assert_eq!(
                        s.join(&planes).unwrap(),
                        codes,
                        "{encoding:?} {bits}/{slice_bits}"
                    );
                    assert!(s.planes(&[hi + 1]).is_err() && s.planes(&[lo - 1]).is_err());
                }
            }
        }
        assert!(BitSlicing::new(0, 1, SliceEncoding::SignMagnitude).is_err());
        assert!(BitSlicing::new(4, 5, SliceEncoding::SignMagnitude).is_err());
        assert!("nope".parse::<SliceEncoding>().is_err());
        assert_eq!(
            "offset-binary".parse::<SliceEncoding>().unwrap(),
            SliceEncoding::OffsetBinary
        );
    }
}
