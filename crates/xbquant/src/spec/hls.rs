//! HLS type strings: `ap_fixed<W,I,Q,O,N>` and `ap_ufixed<...>` to a format and a rounding mode,
//! and back.

use crate::{Error, FixedPoint, Overflow, QuantSpec, Rounding};

/// `ap_fixed<...>` to a spec: see [`QuantSpec::from_hls`].
pub(crate) fn parse(s: &str) -> Result<QuantSpec, Error> {
    let invalid = |reason: &str| Error::InvalidHlsType {
        input: s.to_string(),
        reason: reason.to_string(),
    };
    let text = s.trim();
    let open = text
        .find('<')
        .ok_or_else(|| invalid("expected ap_fixed<W,I,...> or ap_ufixed<W,I,...>"))?;
    let signed = match text[..open].trim() {
        "ap_fixed" => true,
        "ap_ufixed" => false,
        _ => return Err(invalid("the type must be ap_fixed or ap_ufixed")),
    };
    let inner = text[open + 1..]
        .strip_suffix('>')
        .ok_or_else(|| invalid("missing the closing '>'"))?;
    let params: Vec<&str> = inner.split(',').map(str::trim).collect();
    if params.len() < 2 || params.len() > 5 {
        return Err(invalid("expected 2 to 5 parameters: W, I, Q, O, N"));
    }
    let width: u32 = params[0]
        .parse()
        .map_err(|_| invalid("the width W must be a positive integer"))?;
    let integer: i64 = params[1]
        .parse()
        .map_err(|_| invalid("the integer bits I must be an integer"))?;
    let rounding = match params.get(2) {
        Some(q) if q.starts_with("AP_") => q.parse::<Rounding>()?,
        Some(q) => return Err(invalid(&format!("unknown rounding mode {q:?}"))),
        None => Rounding::Floor,
    };
    let mut overflow = match params.get(3) {
        Some(o) if o.starts_with("AP_") && !o.contains(':') => o.parse::<Overflow>()?,
        Some(o) => return Err(invalid(&format!("unknown overflow mode {o:?}"))),
        None => Overflow::Wrap { sat_bits: 0 },
    };
    if let Some(n) = params.get(4) {
        let n: u32 = n
            .parse()
            .map_err(|_| invalid("the saturation bits N must be a non-negative integer"))?;
        overflow = overflow
            .with_sat_bits(n)
            .map_err(|_| invalid("saturation bits N only apply to AP_WRAP and AP_WRAP_SM"))?;
    }
    if signed && width == 1 && overflow == Overflow::SaturateSymmetric {
        overflow = Overflow::Saturate;
    }
    let frac = i64::from(width) - integer;
    let frac = i32::try_from(frac).map_err(|_| invalid("the integer bits I are out of range"))?;
    let format = FixedPoint::new(width, frac)?
        .with_signed(signed)?
        .with_overflow(overflow)?;
    Ok(QuantSpec::new(format, rounding))
}

/// A format and a rounding as a full HLS type: see [`QuantSpec::to_hls`].
pub(crate) fn write(format: &FixedPoint, rounding: Rounding) -> Result<String, Error> {
    let q = rounding
        .hls_name()
        .ok_or_else(|| Error::NotExpressibleInHls(format!("{rounding} rounding")))?;
    let o = format
        .overflow()
        .hls_name()
        .ok_or_else(|| Error::NotExpressibleInHls("an unbounded word".to_string()))?;
    let name = format.hls_name();
    let head = name.trim_end_matches('>');
    Ok(format!("{head},{q},{o},{}>", format.overflow().sat_bits()))
}
