//! The widths a layer's accumulator needs: hls4ml's precision inference (`InferPrecisionTypes`,
//! from the types alone).

use crate::ty::FixedType;
use crate::Error;

/// hls4ml's accumulator type for a dense layer of `n` inputs (or a convolution whose kernel
/// holds `n` weights per output), from the types of its inputs, weights and bias (`None`: no
/// bias): `W = W_w + W_x + ceil(log2 n)` bits with `I = I_w + I_x + ceil(log2 n)` integer bits,
/// signed when either is; a bias widens it to hold both (`I = max(I, I_b) + 1`, one more integer
/// bit where only one of them is signed, and the larger fraction). The type truncates and wraps
/// (hls4ml's default), which this width never needs. As `hls4ml`'s
/// `optimizer/passes/infer_precision.py` (1.3.0), without its `maximum_precision` cap.
///
/// # Errors
///
/// [`Error::InvalidType`] when the type is wider than the 64 bits this crate computes.
///
/// # Examples
///
/// ```
/// use xbquant_fixed::{accum_type, FixedType};
/// let x = FixedType::parse("ap_fixed<16,6>")?;
/// let w = FixedType::parse("ap_fixed<8,3>")?;
/// assert_eq!(accum_type(&x, &w, 64, None)?.hls(), "ap_fixed<30,15,AP_TRN,AP_WRAP,0>");
/// assert_eq!(accum_type(&x, &w, 64, Some(&w))?.hls(), "ap_fixed<31,16,AP_TRN,AP_WRAP,0>");
/// # Ok::<(), xbquant_fixed::Error>(())
/// ```
pub fn accum_type(
    input: &FixedType,
    weight: &FixedType,
    n: usize,
    bias: Option<&FixedType>,
) -> Result<FixedType, Error> {
    let integer_of = |t: &FixedType| i64::from(t.width()) - i64::from(t.frac());
    // ceil(log2 n), 0 for n <= 1.
    let log = if n <= 1 {
        0
    } else {
        i64::from(usize::BITS - (n - 1).leading_zeros())
    };
    let mut width = i64::from(weight.width()) + i64::from(input.width()) + log;
    let mut integers = integer_of(weight) + integer_of(input) + log;
    let mut signed = weight.signed() || input.signed();
    let frac = width - integers;
    if let Some(b) = bias {
        let b_integers = integer_of(b);
        integers = (integers + i64::from(b.signed() && !signed))
            .max(b_integers + i64::from(signed && !b.signed()))
            + 1;
        width = integers + frac.max(i64::from(b.width()) - b_integers);
        signed = signed || b.signed();
    }
    let name = if signed { "ap_fixed" } else { "ap_ufixed" };
    let hls = format!("{name}<{width},{integers}>");
    if !(1..=64).contains(&width) {
        return Err(Error::InvalidType(
            hls,
            "hls4ml's accumulator is wider than the 64 bits this crate computes".into(),
        ));
    }
    FixedType::parse(&hls)
}

/// The smallest signed width that holds `v`.
fn bits_of(v: i128) -> u32 {
    let magnitude = if v < 0 { !v } else { v };
    129 - magnitude.leading_zeros()
}

/// The accumulator width each output channel needs so that no input of the type `input` can
/// overflow it, for the integer weight codes `w` (`out` rows of `n`): the exact worst case, each
/// input at the end of its range that the weight's sign pushes furthest (so a width one bit
/// narrower overflows for some input). A data-dependent bound in the spirit of A2Q, whose
/// condition `||w||_1 max|x| <= 2^(P-1) - 1` is at most one bit wider. Total bits of a signed
/// accumulator with the fractional bits of the products, from zero (hls4ml starts at the bias:
/// add its width to be safe), and every partial sum in any order within it.
///
/// # Errors
///
/// [`Error::ShapeMismatch`] when `w` does not hold `out * n` codes; [`Error::InvalidType`]
/// when a worst-case sum does not fit 128 bits.
///
/// # Examples
///
/// ```
/// use xbquant_fixed::{accum_bits, FixedType};
/// // Inputs of ap_fixed<4,4>: codes -8..=7. Weights 3 and -2: the sum ranges over
/// // -8*3 + 7*(-2) = -38 ..= 7*3 + (-8)*(-2) = 37, which 7 signed bits hold.
/// let input = FixedType::parse("ap_fixed<4,4>")?;
/// assert_eq!(accum_bits(&[3, -2], 1, 2, &input)?, [7]);
/// # Ok::<(), xbquant_fixed::Error>(())
/// ```
pub fn accum_bits(w: &[i64], out: usize, n: usize, input: &FixedType) -> Result<Vec<u32>, Error> {
    if Some(w.len()) != out.checked_mul(n) {
        return Err(Error::ShapeMismatch(format!(
            "w holds {} codes, not {out} x {n}",
            w.len()
        )));
    }
    let (lo, hi) = input.word_codes();
    (0..out)
        .map(|j| {
            let (mut top, mut bottom) = (0i128, 0i128);
            for &c in &w[j * n..(j + 1) * n] {
                let c = i128::from(c);
                // Each product fits (a 64-bit code times a 65-bit one); their sum may not.
                let (a, b) = (c * lo, c * hi);
                top = top.checked_add(a.max(b)).ok_or_else(too_wide)?;
                bottom = bottom.checked_add(a.min(b)).ok_or_else(too_wide)?;
            }
            Ok(bits_of(top).max(bits_of(bottom)))
        })
        .collect()
}

/// The error of a sum beyond `i128`: an accumulator wider than any this crate computes.
fn too_wide() -> Error {
    Error::InvalidType(
        "the accumulator".into(),
        "the sums need more than 128 bits, beyond the 64 this crate computes".into(),
    )
}

/// The accumulator width each output channel needed on the inputs `x` (integer codes, `rows`
/// rows of `n`) with the weight codes `w` (`out` rows of `n`): the widest partial sum of the
/// products in hls4ml's order (the inputs in turn, from zero), as total bits of a signed
/// accumulator. A width of at least this never overflowed on this data.
///
/// # Errors
///
/// [`Error::ShapeMismatch`] when `x` or `w` does not hold its shape; [`Error::InvalidType`] when
/// a partial sum does not fit 128 bits.
///
/// # Examples
///
/// ```
/// use xbquant_fixed::accum_bits_used;
/// // Partial sums 3*5 = 15, then 15 - 2*5 = 5: 15 needs 5 signed bits.
/// assert_eq!(accum_bits_used(&[5, 5], 1, 2, &[3, -2], 1)?, [5]);
/// # Ok::<(), xbquant_fixed::Error>(())
/// ```
pub fn accum_bits_used(
    x: &[i64],
    rows: usize,
    n: usize,
    w: &[i64],
    out: usize,
) -> Result<Vec<u32>, Error> {
    for (what, len, a) in [("x", x.len(), rows), ("w", w.len(), out)] {
        if Some(len) != a.checked_mul(n) {
            return Err(Error::ShapeMismatch(format!(
                "{what} holds {len} codes, not {a} x {n}"
            )));
        }
    }
    let mut bits = vec![1u32; out];
    for r in 0..rows {
        let xr = &x[r * n..(r + 1) * n];
        for (j, b) in bits.iter_mut().enumerate() {
            let mut sum = 0i128;
            for (&xi, &wi) in xr.iter().zip(&w[j * n..(j + 1) * n]) {
                sum = sum
                    .checked_add(i128::from(xi) * i128::from(wi))
                    .ok_or_else(too_wide)?;
                *b = (*b).max(bits_of(sum));
            }
        }
    }
    Ok(bits)
}
