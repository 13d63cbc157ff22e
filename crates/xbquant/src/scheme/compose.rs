//! [`Scheme`]: a quantizer composed from an element format, a granularity, a scale rule, optional
//! noise and a rounding, checked once when built. Block floating point, per-channel fixed point
//! and the ADC/DAC converter are compositions of these parts, and so is every new scheme.

use crate::quantizer::check_call;
use crate::scheme::block_float::shared_frac_length;
use crate::scheme::converter::{Converter, ConverterNoise, ConverterRange};
use crate::scheme::element_format::ElementFormat;
use crate::scheme::granularity::Granularity;
use crate::scheme::grouped::PerBlock;
use crate::scheme::groups::{FracLengthRule, GroupJob};
use crate::scheme::scale::{Observation, Scale};
use crate::Part;
use crate::{Data, Quantizer};
use crate::{Element, Error, FixedPoint, QuantSpec, Rounding};

/// A quantization scheme: an element format, which elements share a scale (a [`Granularity`]),
/// how each group's scale is chosen (a [`Scale`]), optional noise added before rounding (in
/// units of the range) and the rounding. Every combination the builders accept is checked when
/// built, so a call fails only on its data (lengths, layout, values the element type cannot
/// hold).
///
/// The schemes of this crate's other types are compositions:
///
/// | scheme | element | granularity | scale |
/// |---|---|---|---|
/// | [`QuantSpec`] | fixed point | tensor | none |
/// | per-channel fixed point ([`FixedPoint::quantize_slices_into`]) | fixed point | axis | given fractional lengths |
/// | `--fl auto`, QKeras' `auto_po2` | fixed point | any | power of two from the maximum (or the best SQNR) |
/// | [`BlockFormat`](crate::BlockFormat) | fixed point, saturating symmetrically | any | shared exponent |
/// | [`Converter`] (ADC/DAC) | fixed point of `bits - 1` fractional bits | any | range: abs-max, given or a percentile |
///
/// It has a text form, parsed by [`FromStr`](std::str::FromStr) and printed by
/// [`Display`](std::fmt::Display) (see the crate's README for the grammar):
///
/// # Examples
///
/// ```
/// use xbquant::{Quantizer, Scheme};
/// // An 8-bit ADC whose range per column is the 99th percentile of its magnitudes.
/// let adc: Scheme = "fixed<8,7> overflow=saturate-symmetric group=axis:1 range=percentile:99".parse()?;
/// assert_eq!(adc.to_string().parse::<Scheme>()?, adc);
/// let y = adc.quantize_shaped(&[0.5f32, 10.0, -2.0, 3.0], &[2, 2])?;
/// assert_eq!(y.len(), 4);
/// // Block floating point of 4 bits, one block per row.
/// let b: Scheme = "fixed<4,0> overflow=saturate-symmetric group=axis:0 scale=shared-exponent".parse()?;
/// assert_eq!(b.quantize_shaped(&[0.3f32, 5.0, 0.1, 0.2], &[2, 2])?, [0.0, 5.0, 0.09375, 0.1875]);
/// # Ok::<(), xbquant::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Scheme {
    element: ElementFormat,
    granularity: Granularity,
    scale: Scale,
    noise: ConverterNoise,
    noise_seed: Option<u64>,
    rounding: Rounding,
}

impl From<QuantSpec> for Scheme {
    fn from(spec: QuantSpec) -> Self {
        Scheme {
            rounding: spec.rounding(),
            ..Scheme::new(*spec.format())
        }
    }
}

impl Scheme {
    /// The element format alone: one group, no scale, no noise, nearest rounding (ties to even).
    #[must_use]
    pub fn new(element: impl Into<ElementFormat>) -> Scheme {
        Scheme {
            element: element.into(),
            granularity: Granularity::Tensor,
            scale: Scale::None,
            noise: ConverterNoise::None,
            noise_seed: None,
            rounding: Rounding::NearestEven,
        }
    }

    /// The same scheme with groups of `granularity`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBlocks`] for runs of 0 elements.
    pub fn with_granularity(mut self, granularity: Granularity) -> Result<Scheme, Error> {
        if granularity == Granularity::Runs(0) {
            return Err(Error::InvalidBlocks("a run length of 0".into()));
        }
        self.granularity = granularity;
        Ok(self)
    }

    /// The same scheme with scales chosen by `scale`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidScheme`] for a scale on an element format other than fixed point;
    /// [`Error::FracLengthOutOfRange`] for a given fractional length the format's word does not
    /// take; [`Error::InvalidRange`] for a negative or non-finite range, or a percentile
    /// outside `[0, 100]`.
    pub fn with_scale(mut self, scale: Scale) -> Result<Scheme, Error> {
        let fixed = self.fixed();
        match (&scale, fixed) {
            (Scale::None, _) => {}
            (_, None) => {
                return Err(Error::InvalidScheme(
                    "a scale takes a fixed-point element format".into(),
                ))
            }
            (Scale::FracLengths(fls), Some(_)) if fls.is_empty() => {
                return Err(Error::InvalidScheme(
                    "given fractional lengths: none given (one per group)".into(),
                ))
            }
            (Scale::FracLengths(fls), Some(f)) => {
                for &fl in fls {
                    f.with_frac_length(fl)?;
                }
            }
            (Scale::SharedExponent, Some(f)) if !f.is_signed() => {
                return Err(Error::InvalidScheme(
                    "a shared exponent takes a signed element format".into(),
                ))
            }
            (Scale::Range(range), Some(_)) => check_range(range)?,
            _ => {}
        }
        if !matches!(scale, Scale::Range(_)) && self.noise != ConverterNoise::None {
            return Err(Error::InvalidScheme(
                "noise is in units of a range: give the scheme a range".into(),
            ));
        }
        self.scale = scale;
        Ok(self)
    }

    /// The same scheme with noise added before rounding, in units of the range: with a seed,
    /// element `i` draws index `i` of that seed's stream (apart from stochastic rounding's);
    /// without one each call draws a fresh seed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidNoise`] for a negative or non-finite width; [`Error::InvalidScheme`] for
    /// noise on a scheme without a range.
    pub fn with_noise(mut self, noise: ConverterNoise, seed: Option<u64>) -> Result<Scheme, Error> {
        let width = match noise {
            ConverterNoise::None => 0.0,
            ConverterNoise::Gaussian(w) | ConverterNoise::Uniform(w) => w,
        };
        if !(width >= 0.0 && width.is_finite()) {
            return Err(Error::InvalidNoise(width.to_string()));
        }
        if noise != ConverterNoise::None && !matches!(self.scale, Scale::Range(_)) {
            return Err(Error::InvalidScheme(
                "noise is in units of a range: give the scheme a range".into(),
            ));
        }
        self.noise = noise;
        self.noise_seed = if noise == ConverterNoise::None {
            None
        } else {
            seed
        };
        Ok(self)
    }

    /// The same scheme with `rounding`.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedFloatRounding`] for a floating-point element format and a rounding
    /// other than nearest or stochastic.
    pub fn with_rounding(mut self, rounding: Rounding) -> Result<Scheme, Error> {
        if let ElementFormat::Float(f) = &self.element {
            f.check_rounding(rounding)?;
        }
        self.rounding = rounding;
        Ok(self)
    }

    /// The element format.
    #[must_use]
    pub const fn element(&self) -> &ElementFormat {
        &self.element
    }

    /// The granularity.
    #[must_use]
    pub const fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// The scale rule.
    #[must_use]
    pub const fn scale(&self) -> &Scale {
        &self.scale
    }

    /// The noise and its seed.
    #[must_use]
    pub const fn noise(&self) -> (ConverterNoise, Option<u64>) {
        (self.noise, self.noise_seed)
    }

    /// The rounding.
    #[must_use]
    pub const fn rounding(&self) -> Rounding {
        self.rounding
    }

    /// The fixed-point spec of a scheme that is one (fixed point, no scale): the one whose
    /// integer codes a file can hold.
    #[must_use]
    pub fn spec(&self) -> Option<QuantSpec> {
        match (&self.element, &self.scale) {
            (ElementFormat::Fixed(f), Scale::None) => Some(QuantSpec::new(*f, self.rounding)),
            _ => None,
        }
    }

    /// Whether a call draws noise (stochastic rounding or additive noise).
    #[must_use]
    pub fn draws(&self) -> bool {
        self.rounding.is_stochastic() || self.noise != ConverterNoise::None
    }

    /// The same scheme with `seed` fixing its noise: the stochastic rounding's and the additive
    /// noise's (two streams of the seed, apart), for the schemes that draw them.
    ///
    /// # Errors
    ///
    /// [`Error::SeedWithoutStochastic`] for a scheme that draws no noise.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{Quantizer, Scheme};
    /// let s: Scheme = "fixed<8,7> range=abs-max noise=gaussian:0.1 rounding=stochastic".parse()?;
    /// let x = [0.3f32, -0.6, 0.9];
    /// assert_eq!(s.with_seed(5)?.quantize(&x)?, s.with_seed(5)?.quantize(&x)?);
    /// assert!("fixed<8,7>".parse::<Scheme>()?.with_seed(5).is_err());
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn with_seed(&self, seed: u64) -> Result<Scheme, Error> {
        let stochastic = self.rounding.is_stochastic();
        let noisy = self.noise != ConverterNoise::None;
        if !stochastic && !noisy {
            return Err(Error::SeedWithoutStochastic {
                rounding: self.rounding.name(),
            });
        }
        let mut s = self.clone();
        if stochastic {
            s.rounding = Rounding::Stochastic { seed };
        }
        if noisy {
            s.noise_seed = Some(seed);
        }
        Ok(s)
    }

    /// The same scheme with its noise fixed: a stochastic rounding or noise without a seed gets
    /// a fresh one, so that every part of a tensor (or a forward pass and its backward pass)
    /// sees the same noise.
    #[must_use]
    pub fn resolve(&self) -> Scheme {
        let mut s = self.clone();
        s.rounding = s.rounding.resolve();
        if s.noise != ConverterNoise::None && s.noise_seed.is_none() {
            s.noise_seed = Some(crate::rounding::fresh_seed());
        }
        s
    }

    /// The fixed-point element format, if the element is one.
    fn fixed(&self) -> Option<FixedPoint> {
        match &self.element {
            ElementFormat::Fixed(f) => Some(*f),
            _ => None,
        }
    }

    /// Gathers the statistics of a part of a tensor that the scale rule reads (nothing for the
    /// rules that read no data).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBlocks`] for data beyond the part's tensor, groups the tensor does not
    /// have, or an observation of another layout.
    pub fn observe<T: Element>(
        &self,
        x: &[T],
        part: Part<'_>,
        seen: &mut Observation,
    ) -> Result<(), Error> {
        part.check(x.len())?;
        let layout = self.granularity.layout(part)?;
        let keep = matches!(self.scale, Scale::Range(ConverterRange::Percentile(_)));
        seen.add(x, part, layout, keep)
    }

    /// The same scheme with the scales that its rule chooses for the observed tensor given
    /// (fractional lengths or ranges), for data of type `T`: a scheme that quantizes a tensor
    /// part by part as one call on the whole tensor would. A scheme whose rule reads no data is
    /// returned as it is; one group of a power-of-two scale becomes plain fixed point of that
    /// fractional length.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidScheme`] for the SQNR rule (it needs the whole tensor in one call) or an
    /// observation of nothing; [`Error::NotRepresentable`] for a range `T` cannot hold.
    pub fn calibrate<T: Element>(&self, seen: &Observation) -> Result<Scheme, Error> {
        if !self.scale.reads_data() {
            return Ok(self.clone());
        }
        if seen.maxima().is_empty() {
            return Err(Error::InvalidScheme(
                "calibrating a scale from an observation of no data".into(),
            ));
        }
        let scale = match &self.scale {
            Scale::PowerOfTwo(FracLengthRule::Sqnr) => {
                return Err(Error::InvalidScheme(
                    "the SQNR rule searches the whole tensor: quantize it in one call".into(),
                ))
            }
            Scale::PowerOfTwo(FracLengthRule::Max) => {
                let f = self.fixed().ok_or_else(no_fixed)?;
                Scale::FracLengths(
                    seen.maxima()
                        .iter()
                        .map(|&m| f.frac_length_within(m, T::MAX))
                        .collect(),
                )
            }
            Scale::SharedExponent => {
                let f = self.fixed().ok_or_else(no_fixed)?;
                Scale::FracLengths(seen.maxima().iter().map(|&m| shared_fl(&f, m)).collect())
            }
            Scale::Range(ConverterRange::AbsMax) => {
                Scale::Range(ConverterRange::PerSlice(seen.maxima().to_vec()))
            }
            Scale::Range(ConverterRange::Percentile(p)) => {
                Scale::Range(ConverterRange::PerSlice(seen.percentiles(*p)))
            }
            other => other.clone(),
        };
        let mut s = self.clone();
        // One group of a fractional length a format takes: plain fixed point, whose integer
        // codes a file can hold.
        if let (Granularity::Tensor, Scale::FracLengths(fls), Some(f)) =
            (self.granularity, &scale, self.fixed())
        {
            if let [fl] = fls.as_slice() {
                if let Ok(f) = f.with_frac_length(*fl) {
                    s.element = ElementFormat::Fixed(f);
                    s.scale = Scale::None;
                    return Ok(s);
                }
            }
        }
        s.scale = scale;
        Ok(s)
    }

    /// The same scheme with the scales its rule chooses for `x`, a whole tensor laid out as
    /// `part` says, given: [`calibrate`](Scheme::calibrate) on an observation of all of `x`, and
    /// the SQNR rule's search.
    ///
    /// # Errors
    ///
    /// As [`observe`](Scheme::observe) and [`calibrate`](Scheme::calibrate), and
    /// [`Error::InvalidBlocks`] when `x` is not the whole tensor.
    ///
    /// # Examples
    ///
    /// ```
    /// use xbquant::{Part, Scale, Scheme};
    /// let s: Scheme = "fixed<8,0> group=axis:0 scale=pow2".parse()?;
    /// let w = [0.5f32, -0.25, 3.0, 1.0]; // two rows of two
    /// let chosen = s.calibrated_on(&w, Part::shaped(&[2, 2])?)?;
    /// assert_eq!(chosen.scale(), &Scale::FracLengths(vec![7, 5]));
    /// # Ok::<(), xbquant::Error>(())
    /// ```
    pub fn calibrated_on<T: Element>(&self, x: &[T], part: Part<'_>) -> Result<Scheme, Error> {
        if !part.is_whole(x.len()) {
            return Err(Error::InvalidBlocks(format!(
                "{} elements for a whole tensor of {} from element {}",
                x.len(),
                part.len(),
                part.start()
            )));
        }
        if let Scale::PowerOfTwo(FracLengthRule::Sqnr) = self.scale {
            let f = self.fixed().ok_or_else(no_fixed)?;
            let (inner, count) = self.granularity.layout(part)?;
            let fls = f.choose_fls(x, inner, count, FracLengthRule::Sqnr);
            let mut s = self.clone();
            s.scale = Scale::FracLengths(fls);
            return Ok(s);
        }
        let mut seen = Observation::default();
        self.observe(x, part, &mut seen)?;
        self.calibrate::<T>(&seen)
    }
}

/// The fractional length of a shared exponent for a group whose largest magnitude is `max`.
fn shared_fl(f: &FixedPoint, max: f64) -> i32 {
    shared_frac_length(f.word_length(), crate::format::exponent(max.abs()))
}

fn no_fixed() -> Error {
    Error::InvalidScheme("a scale takes a fixed-point element format".into())
}

/// Checks a range rule's values.
fn check_range(range: &ConverterRange) -> Result<(), Error> {
    let bad = |r: f64| !(r >= 0.0 && r.is_finite());
    match range {
        ConverterRange::Fixed(r) if bad(*r) => Err(Error::InvalidRange(r.to_string())),
        ConverterRange::PerSlice(rs) if rs.is_empty() => Err(Error::InvalidScheme(
            "ranges per group: none given (one per group)".into(),
        )),
        ConverterRange::PerSlice(rs) => match rs.iter().find(|r| bad(**r)) {
            Some(r) => Err(Error::InvalidRange(r.to_string())),
            None => Ok(()),
        },
        ConverterRange::Percentile(p) if !(0.0..=100.0).contains(p) => Err(Error::InvalidRange(
            format!("a percentile of {p} (0 to 100)"),
        )),
        _ => Ok(()),
    }
}

impl Quantizer for Scheme {
    fn quantize_part<T: Element>(
        &self,
        data: Data<'_, T>,
        mask: Option<&mut [bool]>,
        part: Part<'_>,
    ) -> Result<(), Error> {
        check_call(&data, mask.as_deref(), part)?;
        let start = part.start();
        if self.scale.reads_data() {
            if !part.is_whole(data.len()) {
                return Err(Error::InvalidScheme(
                    "scales chosen from the data need the whole tensor: observe its parts and \
                     calibrate the scheme first"
                        .into(),
                ));
            }
            let x: &[T] = match &data {
                Data::Into { x, .. } => x,
                Data::InPlace(buf) => buf,
            };
            return self.calibrated_on(x, part)?.quantize_part(data, mask, part);
        }
        let rounding = self.rounding.resolve();
        match (&self.element, &self.scale) {
            (ElementFormat::Fixed(f), Scale::None) => {
                let spec = QuantSpec::new(*f, rounding).with_stream_start(start as u64);
                spec.run(data, mask)
            }
            (ElementFormat::Float(f), Scale::None) => {
                if let Some(mask) = mask {
                    match &data {
                        Data::Into { x, .. } => f.clip_mask(x, mask),
                        Data::InPlace(buf) => f.clip_mask(buf, mask),
                    }
                }
                match data {
                    Data::Into { x, out } => {
                        f.quantize_part_into(x, out, rounding, start as u64)?
                    }
                    Data::InPlace(buf) => f.quantize_part_in_place(buf, rounding, start as u64)?,
                }
                Ok(())
            }
            (ElementFormat::Grid(g), Scale::None) => {
                g.quantize_part(data, mask, rounding, start as u64)
            }
            (ElementFormat::Levels(l), Scale::None) => {
                l.quantize_part(data, mask, rounding, start as u64)
            }
            (ElementFormat::Fixed(f), Scale::FracLengths(fls)) => {
                let (inner, count) = self.granularity.layout(part)?;
                if fls.len() != count {
                    return Err(Error::InvalidBlocks(format!(
                        "{} fractional lengths for {count} groups",
                        fls.len()
                    )));
                }
                let job = PerBlock {
                    inner,
                    count,
                    base: *f,
                    fls,
                    rounding,
                    start,
                };
                with_input(data, |x, out| {
                    T::run_groups(GroupJob::Quantize { job, x, out, mask });
                });
                Ok(())
            }
            (ElementFormat::Fixed(f), Scale::Range(range)) => {
                let (inner, count) = self.granularity.layout(part)?;
                let ranges = match range {
                    ConverterRange::Fixed(r) => vec![*r; count],
                    ConverterRange::PerSlice(r) if r.len() == count => r.clone(),
                    ConverterRange::PerSlice(r) => {
                        return Err(Error::InvalidBlocks(format!(
                            "{} ranges for {count} groups",
                            r.len()
                        )))
                    }
                    // Chosen from the data above.
                    ConverterRange::AbsMax | ConverterRange::Percentile(_) => Vec::new(),
                };
                for &r in &ranges {
                    crate::element::check_holds::<T>("range", r, true)?;
                }
                let converter = Converter::from_format(*f)
                    .with_rounding(rounding)
                    .with_noise(self.noise, self.noise_seed)?
                    .resolve();
                let inner = if count == 1 { part.len().max(1) } else { inner };
                with_input(data, |x, out| {
                    T::run_groups(GroupJob::Convert {
                        converter: &converter,
                        ranges: &ranges,
                        inner,
                        start,
                        x,
                        out,
                        mask,
                    });
                });
                Ok(())
            }
            (_, scale) => Err(Error::InvalidScheme(format!(
                "{scale:?} on a {} element format",
                self.element_kind()
            ))),
        }
    }
}

impl Scheme {
    /// The element format's kind, as the text form names it.
    pub(crate) fn element_kind(&self) -> &'static str {
        match self.element {
            ElementFormat::Fixed(_) => "fixed-point",
            ElementFormat::Float(_) => "floating-point",
            ElementFormat::Grid(_) => "grid",
            ElementFormat::Levels(_) => "levels",
        }
    }
}

/// Runs `f(x, out)` on the data; in place through a copy of the input (the engines of scales
/// per group read and write separate buffers).
fn with_input<T: Element>(data: Data<'_, T>, f: impl FnOnce(&[T], &mut [T])) {
    match data {
        Data::Into { x, out } => f(x, out),
        Data::InPlace(buf) => {
            let x = buf.to_vec();
            f(&x, buf);
        }
    }
}
