//! The options of `xbquant quantize` and `xbquant dequantize`, and the scheme they name.

use std::path::PathBuf;

use anyhow::{bail, Result};
use xbquant::{BlockFormat, FloatFormat, FracLengthRule, Granularity, Scale, Scheme};

use crate::spec::{self, FormatArgs, ModeArgs};

/// Options of `xbquant quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// Input: a .npy or .safetensors file, a sharded model's `*.safetensors.index.json`, or a
    /// directory holding one.
    pub input: PathBuf,
    /// Output: a file of the same kind, or a directory for a sharded model.
    pub output: PathBuf,
    #[command(flatten)]
    format: FormatArgs,
    #[command(flatten)]
    mode: ModeArgs,
    /// A whole scheme in xbquant's text form instead of the format options, such as
    /// "fixed<8,7> overflow=saturate-symmetric group=axis:0 range=percentile:99.9" (an 8-bit
    /// converter whose range per output channel is the 99.9th percentile of its magnitudes) or
    /// "e4m3fn rounding=stochastic:3"; see the README for the grammar.
    #[arg(long, value_parser = parse_scheme, conflicts_with_all = ["wl", "fl", "format", "asymmetric", "unsigned", "rounding", "overflow", "sat_bits", "no_clamp", "float", "block", "exp", "axis"])]
    scheme: Option<Scheme>,
    /// Round to a low-precision floating-point format instead of fixed point: float16,
    /// bfloat16, e5m2, e4m3fn, or eXmY (eXmYfn without infinities, eXmYnx QPyTorch's, with no
    /// special values); rounding nearest (the default) or stochastic.
    #[arg(long, value_name = "FORMAT", conflicts_with_all = ["wl", "fl", "format", "asymmetric", "unsigned", "overflow", "sat_bits", "no_clamp", "codes"])]
    float: Option<String>,
    /// Block floating point of this word length instead of fixed point, one block per tensor:
    /// the tensor's largest magnitude sets a shared power-of-two scale (QPyTorch's
    /// `block_quantize(x, wl)`); any rounding.
    #[arg(long, value_name = "WL", conflicts_with_all = ["wl", "fl", "format", "asymmetric", "unsigned", "overflow", "sat_bits", "no_clamp", "codes", "float"])]
    block: Option<u32>,
    /// With --man: QPyTorch's floating point `FloatingPoint(exp, man)` (no infinities or NaN
    /// reserved, saturating), the same as --float eXmYnx.
    #[arg(long, requires = "man", conflicts_with_all = ["wl", "fl", "format", "asymmetric", "unsigned", "overflow", "sat_bits", "no_clamp", "codes", "float", "block"])]
    exp: Option<u32>,
    /// The mantissa bits of --exp.
    #[arg(long, requires = "exp")]
    man: Option<u32>,
    /// With --fl auto: a fractional length per index of this axis of each tensor (0: per output
    /// channel of a weight; negative: counted from the last, -1 the last); tensors without the
    /// axis get one per tensor.
    #[arg(long, requires = "fl", allow_negative_numbers = true)]
    axis: Option<i64>,
    /// Quantize only the float tensors whose name matches this regular expression
    /// (.safetensors); the others are copied unchanged.
    #[arg(long)]
    pub tensors: Option<String>,
    /// Write each quantized tensor as its integer codes in the smallest integer type that holds
    /// the word, with the format in the file's metadata (.safetensors); `xbquant dequantize`
    /// turns them back into values.
    #[arg(long)]
    pub codes: bool,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `xbquant dequantize`.
#[derive(Debug, clap::Args)]
pub struct DequantizeArgs {
    /// Input: a .safetensors file written by `xbquant quantize --codes`, or such a sharded
    /// model's index or directory.
    pub input: PathBuf,
    /// Output: a .safetensors file, or a directory for a sharded model.
    pub output: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_scheme(s: &str) -> Result<Scheme, String> {
    s.parse().map_err(|e: xbquant::Error| e.to_string())
}

impl QuantizeArgs {
    /// The scheme the options name: `--scheme`, or a floating-point format (`--float`, `--exp`
    /// with `--man`), block floating point (`--block`), fixed point with fractional lengths
    /// chosen from the data (`--fl auto`, per `--axis` index), or fixed point.
    pub fn scheme(&self) -> Result<Scheme> {
        if let Some(s) = &self.scheme {
            let rounding = self.mode.rounding_or(s.rounding())?;
            return Ok(s.clone().with_rounding(rounding)?);
        }
        let qpytorch = match (self.exp, self.man) {
            (Some(e), Some(m)) => Some(format!("e{e}m{m}nx")),
            _ => None,
        };
        let nearest = xbquant::Rounding::NearestEven;
        Ok(
            match (self.float.as_ref().or(qpytorch.as_ref()), self.block) {
                (Some(name), _) => {
                    let format: FloatFormat = name.parse()?;
                    Scheme::new(format).with_rounding(self.mode.rounding_or(nearest)?)?
                }
                (None, Some(wl)) => BlockFormat::new(wl)?
                    .scheme(Granularity::Tensor)?
                    .with_rounding(self.mode.rounding_or(nearest)?)?,
                (None, None) if self.format.fl_auto() => {
                    let spec = spec::quant_spec(&self.format, &self.mode)?;
                    let granularity = self.axis.map_or(Granularity::Tensor, Granularity::Axis);
                    Scheme::from(spec)
                        .with_granularity(granularity)?
                        .with_scale(Scale::PowerOfTwo(FracLengthRule::Max))?
                }
                (None, None) => {
                    if self.axis.is_some() {
                        bail!("--axis goes with --fl auto");
                    }
                    Scheme::from(spec::quant_spec(&self.format, &self.mode)?)
                }
            },
        )
    }
}
