//! The text form of a [`Scheme`]: an element format, then `key=value` options separated by
//! spaces. [`Display`](fmt::Display) prints the canonical form and [`FromStr`] parses it back
//! (and HLS types, names of floating-point formats, and options in any order).
//!
//! ```text
//! scheme   = element { " " option }
//! element  = "fixed<" W "," F ">" | "ufixed<" W "," F ">"     fixed point, F fractional bits
//!          | "ap_fixed<...>" | "ap_ufixed<...>"                an HLS type (its modes too)
//!          | "float16" | "bfloat16" | "e5m2" | "e4m3fn" | "eXmY" | "eXmYfn" | "eXmYnx"
//!          | "grid<" step "," offset [ "," levels ] ">" | "levels<" v { "," v } ">"
//! option   = "overflow=" mode            fixed: saturate, saturate-symmetric, wrap, ...;
//!                                        float: infinity or saturate
//!          | "rounding=" mode            nearest, stochastic, stochastic:SEED, floor, ...
//!          | "group=" ( "tensor" | "axis:" N | "runs:" K )
//!          | "scale=" ( "pow2" | "pow2-sqnr" | "shared-exponent" | "fl:" F { "," F } )
//!          | "range=" ( "abs-max" | "percentile:" P | R | "each:" R { "," R } )
//!          | "noise=" ( "gaussian:" S | "uniform:" H )
//!          | "seed=" SEED                the noise's seed
//! ```

use std::fmt;
use std::str::FromStr;

use crate::scheme::converter::{ConverterNoise, ConverterRange};
use crate::scheme::granularity::Granularity;
use crate::scheme::groups::FracLengthRule;
use crate::scheme::{ElementFormat, Scale, Scheme};
use crate::{
    Error, FixedPoint, FloatEncoding, FloatFormat, FloatOverflow, Grid, Levels, Overflow,
    QuantSpec, Rounding,
};

impl fmt::Display for Scheme {
    /// The canonical text form: the element, then the options that differ from the defaults
    /// (fixed point always names its overflow), in the grammar's order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.element() {
            ElementFormat::Fixed(x) => write!(
                f,
                "{}<{},{}> overflow={}",
                if x.is_signed() { "fixed" } else { "ufixed" },
                x.word_length(),
                x.frac_length(),
                x.overflow()
            )?,
            ElementFormat::Float(x) => {
                let name = x.to_string();
                f.write_str(name.split(',').next().unwrap_or(&name))?;
                if x.overflow() != default_float_overflow(x.encoding()) {
                    write!(f, " overflow={}", float_overflow_name(x.overflow()))?;
                }
            }
            ElementFormat::Grid(g) => {
                write!(f, "grid<{:?},{:?}", g.step(), g.offset())?;
                if let Some(n) = g.levels() {
                    write!(f, ",{n}")?;
                }
                f.write_str(">")?;
            }
            ElementFormat::Levels(l) => {
                let values: Vec<String> = l.levels().iter().map(|v| format!("{v:?}")).collect();
                write!(f, "levels<{}>", values.join(","))?;
            }
        }
        if self.rounding() != Rounding::NearestEven {
            write!(f, " rounding={}", self.rounding())?;
        }
        match self.granularity() {
            Granularity::Tensor => {}
            Granularity::Axis(a) => write!(f, " group=axis:{a}")?,
            Granularity::Runs(k) => write!(f, " group=runs:{k}")?,
        }
        match self.scale() {
            Scale::None => {}
            Scale::PowerOfTwo(FracLengthRule::Max) => f.write_str(" scale=pow2")?,
            Scale::PowerOfTwo(FracLengthRule::Sqnr) => f.write_str(" scale=pow2-sqnr")?,
            Scale::SharedExponent => f.write_str(" scale=shared-exponent")?,
            Scale::FracLengths(fls) => {
                let fls: Vec<String> = fls.iter().map(ToString::to_string).collect();
                write!(f, " scale=fl:{}", fls.join(","))?;
            }
            Scale::Range(ConverterRange::AbsMax) => f.write_str(" range=abs-max")?,
            Scale::Range(ConverterRange::Percentile(p)) => write!(f, " range=percentile:{p:?}")?,
            Scale::Range(ConverterRange::Fixed(r)) => write!(f, " range={r:?}")?,
            Scale::Range(ConverterRange::PerSlice(rs)) => {
                let rs: Vec<String> = rs.iter().map(|r| format!("{r:?}")).collect();
                write!(f, " range=each:{}", rs.join(","))?;
            }
        }
        let (noise, seed) = self.noise();
        match noise {
            ConverterNoise::None => {}
            ConverterNoise::Gaussian(s) => write!(f, " noise=gaussian:{s:?}")?,
            ConverterNoise::Uniform(h) => write!(f, " noise=uniform:{h:?}")?,
        }
        if let Some(seed) = seed {
            write!(f, " seed={seed}")?;
        }
        Ok(())
    }
}

fn default_float_overflow(encoding: FloatEncoding) -> FloatOverflow {
    match encoding {
        FloatEncoding::Ieee => FloatOverflow::Infinity,
        FloatEncoding::FiniteNan | FloatEncoding::AllFinite => FloatOverflow::Saturate,
    }
}

fn float_overflow_name(o: FloatOverflow) -> &'static str {
    match o {
        FloatOverflow::Infinity => "infinity",
        FloatOverflow::Saturate => "saturate",
    }
}

/// Splits `s` at spaces outside angle brackets.
fn tokens(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut begin) = (Vec::new(), 0i32, None);
    for (i, c) in s.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            _ => {}
        }
        if c.is_whitespace() && depth <= 0 {
            if let Some(b) = begin.take() {
                out.push(&s[b..i]);
            }
        } else if begin.is_none() {
            begin = Some(i);
        }
    }
    if let Some(b) = begin {
        out.push(&s[b..]);
    }
    out
}

/// The numbers between `prefix<` and `>` of `token`, or `None` when it has another form.
fn bracketed<'a>(token: &'a str, prefix: &str) -> Option<Vec<&'a str>> {
    let lower = token.to_ascii_lowercase();
    if !lower.starts_with(prefix) {
        return None;
    }
    let body = token[prefix.len()..].trim_start().strip_prefix('<')?;
    let body = body.strip_suffix('>')?;
    Some(body.split(',').map(str::trim).collect())
}

impl FromStr for Scheme {
    type Err = Error;

    fn from_str(s: &str) -> Result<Scheme, Error> {
        let bad = |reason: String| Error::InvalidSchemeText {
            text: s.to_string(),
            reason,
        };
        let tokens = tokens(s);
        let Some((first, options)) = tokens.split_first() else {
            return Err(bad("it is empty".into()));
        };
        let (element, mut rounding) = element(first).map_err(|e| bad(e.to_string()))?;
        let mut element = element;
        let mut granularity = Granularity::Tensor;
        let mut scale = Scale::None;
        let mut noise = ConverterNoise::None;
        let mut seed = None;
        for option in options {
            let Some((key, value)) = option.split_once('=') else {
                return Err(bad(format!("{option:?} is not key=value")));
            };
            let value = value.trim();
            let number = |v: &str| -> Result<f64, Error> {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| bad(format!("{v:?} in {option:?} is not a number")))
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "overflow" => {
                    element = match element {
                        ElementFormat::Fixed(f) => {
                            ElementFormat::Fixed(f.with_overflow(value.parse::<Overflow>()?)?)
                        }
                        ElementFormat::Float(f) => ElementFormat::Float(f.with_overflow(
                            match value.to_ascii_lowercase().as_str() {
                                "infinity" | "inf" => FloatOverflow::Infinity,
                                "saturate" | "sat" => FloatOverflow::Saturate,
                                _ => {
                                    return Err(bad(format!(
                                        "a float overflow of {value:?} (infinity or saturate)"
                                    )))
                                }
                            },
                        )),
                        _ => return Err(bad("a grid or table has no overflow mode".into())),
                    };
                }
                "rounding" => rounding = value.parse()?,
                "group" => {
                    let v = value.to_ascii_lowercase();
                    granularity = if v == "tensor" {
                        Granularity::Tensor
                    } else if let Some(a) = v.strip_prefix("axis:") {
                        Granularity::Axis(
                            a.trim()
                                .parse()
                                .map_err(|_| bad(format!("an axis of {a:?}")))?,
                        )
                    } else if let Some(k) = v.strip_prefix("runs:") {
                        Granularity::Runs(
                            k.trim()
                                .parse()
                                .map_err(|_| bad(format!("a run length of {k:?}")))?,
                        )
                    } else {
                        return Err(bad(format!(
                            "a group of {value:?} (tensor, axis:N or runs:K)"
                        )));
                    };
                }
                "scale" => {
                    let v = value.to_ascii_lowercase();
                    scale = match v.as_str() {
                        "pow2" | "pow2-max" => Scale::PowerOfTwo(FracLengthRule::Max),
                        "pow2-sqnr" => Scale::PowerOfTwo(FracLengthRule::Sqnr),
                        "shared-exponent" => Scale::SharedExponent,
                        other => match other.strip_prefix("fl:") {
                            Some(list) => Scale::FracLengths(
                                list.split(',')
                                    .map(|f| {
                                        f.trim().parse::<i32>().map_err(|_| {
                                            bad(format!("a fractional length of {f:?}"))
                                        })
                                    })
                                    .collect::<Result<_, _>>()?,
                            ),
                            None => {
                                return Err(bad(format!(
                                    "a scale of {value:?} (pow2, pow2-sqnr, shared-exponent or \
                                     fl:F,F,...)"
                                )))
                            }
                        },
                    };
                }
                "range" => {
                    let v = value.to_ascii_lowercase().replace('_', "-");
                    scale = Scale::Range(if v == "abs-max" || v == "absmax" {
                        ConverterRange::AbsMax
                    } else if let Some(p) = v.strip_prefix("percentile:") {
                        ConverterRange::Percentile(number(p)?)
                    } else if let Some(list) = v.strip_prefix("each:") {
                        ConverterRange::PerSlice(
                            list.split(',').map(number).collect::<Result<_, _>>()?,
                        )
                    } else {
                        ConverterRange::Fixed(number(&v)?)
                    });
                }
                "noise" => {
                    let v = value.to_ascii_lowercase();
                    noise = if v == "none" {
                        ConverterNoise::None
                    } else if let Some(w) = v.strip_prefix("gaussian:") {
                        ConverterNoise::Gaussian(number(w)?)
                    } else if let Some(w) = v.strip_prefix("uniform:") {
                        ConverterNoise::Uniform(number(w)?)
                    } else {
                        return Err(bad(format!(
                            "a noise of {value:?} (gaussian:S, uniform:H or none)"
                        )));
                    };
                }
                "seed" => {
                    seed = Some(
                        value
                            .parse::<u64>()
                            .map_err(|_| bad(format!("a seed of {value:?} (0 to 2^64 - 1)")))?,
                    );
                }
                other => return Err(bad(format!("an unknown option {other:?}"))),
            }
        }
        Scheme::new(element)
            .with_granularity(granularity)?
            .with_scale(scale)?
            .with_noise(noise, seed)?
            .with_rounding(rounding)
    }
}

/// The element of the first token, and the rounding it implies (an HLS type's).
fn element(token: &str) -> Result<(ElementFormat, Rounding), Error> {
    let lower = token.to_ascii_lowercase();
    if lower.starts_with("ap_") {
        let spec = QuantSpec::from_hls(token)?;
        return Ok((ElementFormat::Fixed(*spec.format()), spec.rounding()));
    }
    let nearest = Rounding::NearestEven;
    let invalid = |what: &str| Error::InvalidBlocks(format!("{what} in {token:?}"));
    for (prefix, signed) in [("ufixed", false), ("fixed", true)] {
        if let Some(args) = bracketed(token, prefix) {
            let [w, f] = args.as_slice() else {
                return Err(invalid("two numbers, word and fractional length, expected"));
            };
            let w: u32 = w.parse().map_err(|_| invalid("a word length"))?;
            let f: i32 = f.parse().map_err(|_| invalid("a fractional length"))?;
            let format = FixedPoint::new(w, f)?.with_signed(signed)?;
            return Ok((ElementFormat::Fixed(format), nearest));
        }
    }
    if let Some(args) = bracketed(token, "grid") {
        let num = |v: &str| v.parse::<f64>().map_err(|_| invalid("a number"));
        let grid = match args.as_slice() {
            [step, offset] => Grid::new(num(step)?, num(offset)?, None)?,
            [step, offset, n] => Grid::new(
                num(step)?,
                num(offset)?,
                Some(n.parse().map_err(|_| invalid("a count of levels"))?),
            )?,
            _ => return Err(invalid("step, offset and an optional count expected")),
        };
        return Ok((ElementFormat::Grid(grid), nearest));
    }
    if let Some(args) = bracketed(token, "levels") {
        let values = args
            .iter()
            .map(|v| v.parse::<f64>().map_err(|_| invalid("a level")))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((ElementFormat::Levels(Levels::new(values)?), nearest));
    }
    let float: FloatFormat = token.parse()?;
    Ok((ElementFormat::Float(float), nearest))
}
