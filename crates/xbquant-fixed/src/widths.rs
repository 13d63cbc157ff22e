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
