//! The one error type of the crate. Every fallible operation returns it; kernels never panic on
//! any input value.

use std::fmt;

/// Everything that can go wrong in `xbquant`.
///
/// Messages are short and lowercase, in the style of the standard library.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The word length is 0 or wider than the 64-bit integer codes.
    InvalidWordLength {
        /// The word length that was asked for.
        word_length: u32,
        /// The smallest word length allowed here (1 for fixed point, 2 for block floating point
        /// and converters).
        min: u32,
    },
    /// The fractional length would put the step or the range outside the `f64` range.
    FracLengthOutOfRange {
        /// The fractional length that was asked for.
        frac_length: i32,
        /// The smallest fractional length allowed for this word length.
        min: i32,
        /// The largest fractional length allowed.
        max: i32,
    },
    /// A rounding-mode name that is not known.
    UnknownRounding(String),
    /// An overflow-mode name that is not known.
    UnknownOverflow(String),
    /// The number of saturation bits of a wrap mode is larger than the word length.
    InvalidSatBits {
        /// The saturation bits asked for.
        sat_bits: u32,
        /// The word length of the format.
        word_length: u32,
    },
    /// The overflow mode is only defined for signed formats.
    SignedOnly {
        /// The overflow mode, by name.
        overflow: String,
    },
    /// An input buffer and an output buffer have different lengths.
    LengthMismatch {
        /// The length of the input.
        input: usize,
        /// The length of the output.
        output: usize,
    },
    /// A string is not a valid HLS fixed-point type such as `ap_fixed<8,3,AP_RND_CONV,AP_SAT>`.
    InvalidHlsType {
        /// The string that was parsed.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The format cannot be written as an HLS type (no HLS type has this rounding or overflow).
    NotExpressibleInHls(String),
    /// The integer code type is too narrow (or of the wrong signedness) for the format's words.
    CodeTypeTooNarrow {
        /// The code type, such as `i8`.
        code_type: &'static str,
        /// The word length of the format.
        word_length: u32,
        /// Whether the format is signed.
        signed: bool,
    },
    /// Integer codes need a bounded word: the format's overflow mode is `unbounded`.
    UnboundedCodes,
    /// An input is NaN where a number is required (integer codes have no NaN).
    NanInput {
        /// The index of the first NaN.
        index: usize,
    },
    /// A seed was given for a rounding mode that draws no random numbers.
    SeedWithoutStochastic {
        /// The rounding mode, by name.
        rounding: String,
    },
    /// An integer code lies outside the code range of the format.
    CodeOutOfRange {
        /// The index of the first offending code.
        index: usize,
        /// Its value.
        code: i128,
    },
    /// A floating-point format outside the supported sizes.
    InvalidFloatFormat {
        /// Exponent bits asked for.
        exponent_bits: u32,
        /// Stored mantissa bits asked for.
        mantissa_bits: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// A floating-point format name that is not known.
    UnknownFloatFormat(String),
    /// Blocks or slices that do not fit the data.
    InvalidBlocks(String),
    /// A scheme whose parts do not go together, or a call it cannot make (the reason).
    InvalidScheme(String),
    /// A scheme's text form that does not parse (the text, and what was wrong).
    InvalidSchemeText {
        /// The text.
        text: String,
        /// What was wrong.
        reason: String,
    },
    /// A converter range that is negative, NaN or infinite (the value, printed).
    InvalidRange(String),
    /// A noise width that is negative, NaN or infinite (the value, printed).
    InvalidNoise(String),
    /// A grid or table of levels that cannot be used (what is wrong with it).
    InvalidGrid(String),
    /// A bit slicing that cannot be used, or a code it cannot hold (what is wrong).
    InvalidBitSlicing(String),
    /// A finite range, scale, level or grid point that the data's element type cannot hold:
    /// it would be infinite there (or 0, for a range or scale), and so would the results.
    NotRepresentable {
        /// What the value is: `range`, `level`, `step`, ...
        what: &'static str,
        /// The value, printed.
        value: String,
        /// The element type, as `f16`.
        dtype: &'static str,
        /// The type's largest finite value, printed.
        max: String,
    },
    /// A rounding mode that floating-point quantization does not offer.
    UnsupportedFloatRounding {
        /// The rounding mode, by name.
        rounding: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidWordLength { word_length, min } => write!(
                f,
                "invalid word length {word_length}: it must be between {min} and 64 bits"
            ),
            Error::FracLengthOutOfRange {
                frac_length,
                min,
                max,
            } => write!(
                f,
                "fractional length {frac_length} is out of range: it must be between {min} and {max} for this word length"
            ),
            Error::UnknownRounding(name) => write!(
                f,
                "unknown rounding mode {name:?}: expected one of nearest, nearest-up, nearest-down, \
                 nearest-toward-zero, nearest-away, floor, toward-zero, stochastic (or stochastic:SEED), \
                 or an HLS name such as AP_RND_CONV"
            ),
            Error::UnknownOverflow(name) => write!(
                f,
                "unknown overflow mode {name:?}: expected one of saturate, saturate-symmetric, \
                 saturate-zero, wrap, wrap-sign-magnitude, unbounded, or an HLS name such as AP_SAT"
            ),
            Error::InvalidSatBits {
                sat_bits,
                word_length,
            } => write!(
                f,
                "{sat_bits} saturation bits do not fit a {word_length}-bit word"
            ),
            Error::SignedOnly { overflow } => {
                write!(f, "overflow mode {overflow} is only defined for signed formats")
            }
            Error::LengthMismatch { input, output } => write!(
                f,
                "length mismatch: the input has {input} elements but the output has {output}"
            ),
            Error::InvalidHlsType { input, reason } => {
                write!(f, "invalid HLS type {input:?}: {reason}")
            }
            Error::NotExpressibleInHls(what) => write!(f, "no HLS type expresses {what}"),
            Error::CodeTypeTooNarrow {
                code_type,
                word_length,
                signed,
            } => write!(
                f,
                "{code_type} cannot hold the codes of a {word_length}-bit {} word",
                if *signed { "signed" } else { "unsigned" }
            ),
            Error::UnboundedCodes => write!(
                f,
                "integer codes need a bounded word: choose an overflow mode other than unbounded"
            ),
            Error::NanInput { index } => {
                write!(f, "input {index} is NaN, which has no integer code")
            }
            Error::SeedWithoutStochastic { rounding } => write!(
                f,
                "a seed was given, but rounding {rounding} is not stochastic: use stochastic rounding or drop the seed"
            ),
            Error::CodeOutOfRange { index, code } => write!(
                f,
                "code {code} at index {index} is outside the code range of the format"
            ),
            Error::InvalidFloatFormat {
                exponent_bits,
                mantissa_bits,
                reason,
            } => write!(
                f,
                "invalid floating-point format with {exponent_bits} exponent and {mantissa_bits} \
                 mantissa bits: {reason}"
            ),
            Error::UnknownFloatFormat(name) => write!(
                f,
                "unknown floating-point format {name:?}: expected float16, bfloat16, e5m2, \
                 e4m3fn, or eXmY (IEEE-style, X exponent and Y mantissa bits; eXmYfn without \
                 infinities)"
            ),
            Error::InvalidBlocks(what) => write!(f, "invalid blocks: {what}"),
            Error::InvalidScheme(why) => write!(f, "invalid scheme: {why}"),
            Error::InvalidSchemeText { text, reason } => write!(
                f,
                "cannot parse the scheme {text:?}: {reason}; a scheme is an element format \
                 (fixed<W,F>, ufixed<W,F>, an HLS type, a float format such as e4m3fn, \
                 grid<step,offset[,levels]> or levels<a,b,...>) then any of overflow=, \
                 rounding=, group=, scale=, range=, noise=, seed="
            ),
            Error::InvalidRange(r) => write!(
                f,
                "a range or scale must be finite and 0 or more, got {r}"
            ),
            Error::InvalidGrid(what) => write!(f, "invalid grid: {what}"),
            Error::InvalidBitSlicing(what) => write!(f, "invalid bit slicing: {what}"),
            Error::InvalidNoise(w) => write!(
                f,
                "a noise width must be finite and 0 or more, got {w}"
            ),
            Error::NotRepresentable {
                what,
                value,
                dtype,
                max,
            } => write!(
                f,
                "{what} {value} cannot be held by {dtype} data (its values lie within +-{max}, \
                 and a nonzero one rounds to 0 below its smallest): convert the data to a wider \
                 type, or give a {what} that {dtype} holds"
            ),
            Error::UnsupportedFloatRounding { rounding } => write!(
                f,
                "floating-point quantization rounds to nearest (ties to even) or stochastically, \
                 not {rounding}"
            ),
        }
    }
}

impl std::error::Error for Error {}
