//! HLS type strings: `ap_fixed<W,I,Q,O,N>` and `ap_ufixed<...>` to a format and a rounding mode,
//! and back.

use crate::{Error, FixedPoint, Overflow, Rounding};

impl FixedPoint {
    /// Parses an HLS fixed-point type, `ap_fixed<W, I, Q, O, N>` or `ap_ufixed<...>`, into the
    /// format and the rounding mode it stands for.
    ///
    /// `W` is the word length and `I` the integer bits (the sign included), so `fl = W - I`.
    /// `Q`, `O` and `N` default to the HLS defaults `AP_TRN`, `AP_WRAP` and 0. Whitespace is
    /// tolerated. One HLS quirk is kept: a 1-bit signed `AP_SAT_SYM` type behaves as `AP_SAT`
    /// (its symmetric range would hold zero alone), so it parses to [`Overflow::Saturate`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHlsType`] for anything that is not such a type, and the errors of
    /// [`FixedPoint::new`] and [`FixedPoint::with_overflow`] for values out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Overflow, Rounding};
    /// let (fmt, rounding) = FixedPoint::from_hls("ap_fixed<8,3,AP_RND_CONV,AP_SAT>")?;
    /// assert_eq!((fmt.word_length(), fmt.frac_length()), (8, 5));
    /// assert_eq!(fmt.overflow(), Overflow::Saturate);
    /// assert_eq!(rounding, Rounding::NearestEven);
    ///
    /// let (u, r) = FixedPoint::from_hls(" ap_ufixed< 6 , 2 > ")?;
    /// assert!(!u.is_signed());
    /// assert_eq!((r, u.overflow()), (Rounding::Floor, Overflow::Wrap { sat_bits: 0 }));
    ///
    /// assert!(FixedPoint::from_hls("ap_fixed<8>").is_err());
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn from_hls(s: &str) -> Result<(FixedPoint, Rounding), Error> {
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
        let frac =
            i32::try_from(frac).map_err(|_| invalid("the integer bits I are out of range"))?;
        let format = FixedPoint::new(width, frac)?
            .with_signed(signed)?
            .with_overflow(overflow)?;
        Ok((format, rounding))
    }

    /// The full HLS type of this format with `rounding`, as
    /// `ap_fixed<8,2,AP_RND_CONV,AP_SAT_SYM,0>`; [`from_hls`](FixedPoint::from_hls) parses it back.
    ///
    /// # Errors
    ///
    /// [`Error::NotExpressibleInHls`] for stochastic rounding and [`Overflow::Unbounded`].
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{FixedPoint, Rounding};
    /// let fmt = FixedPoint::new(8, 6)?;
    /// let hls = fmt.to_hls(Rounding::NearestEven)?;
    /// assert_eq!(hls, "ap_fixed<8,2,AP_RND_CONV,AP_SAT_SYM,0>");
    /// assert_eq!(FixedPoint::from_hls(&hls)?, (fmt, Rounding::NearestEven));
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn to_hls(&self, rounding: Rounding) -> Result<String, Error> {
        let q = rounding
            .hls_name()
            .ok_or_else(|| Error::NotExpressibleInHls(format!("{rounding} rounding")))?;
        let o = self
            .overflow()
            .hls_name()
            .ok_or_else(|| Error::NotExpressibleInHls("an unbounded word".to_string()))?;
        let name = self.hls_name();
        let head = name.trim_end_matches('>');
        Ok(format!("{head},{q},{o},{}>", self.overflow().sat_bits()))
    }
}
