//! Formats and modes from the command line, and `xbquant range`.

use anyhow::{bail, Context, Result};
use xbquant::{FixedPoint, Overflow, QuantSpec, Rounding};

/// A format, as in the seed's wrapper: symmetric, clamping on by default.
#[derive(Debug, clap::Args)]
pub struct FormatArgs {
    /// Word length in bits (1..=64).
    #[arg(long, allow_negative_numbers = true)]
    wl: Option<u32>,
    /// Fractional length in bits (may be negative or exceed the word length), or `auto` (with
    /// `xbquant quantize`): per tensor, or per index of --axis, the largest fractional length
    /// whose range holds the largest magnitude.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_fl, value_name = "FL|auto")]
    fl: Option<Fl>,
    /// Keep the most negative code (range [-2^(wl-1), 2^(wl-1)-1] steps) instead of the seed's
    /// symmetric range.
    #[arg(long)]
    asymmetric: bool,
    /// An unsigned word (codes 0..2^wl-1).
    #[arg(long)]
    unsigned: bool,
    /// An HLS type such as "ap_fixed<8,3,AP_RND_CONV,AP_SAT>" instead of --wl/--fl.
    #[arg(long, conflicts_with_all = ["wl", "fl", "asymmetric", "unsigned"])]
    format: Option<String>,
}

/// A fractional length, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fl {
    Bits(i32),
    Auto,
}

fn parse_fl(s: &str) -> Result<Fl, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(Fl::Auto);
    }
    s.parse::<i32>()
        .map(Fl::Bits)
        .map_err(|_| format!("expected an integer or \"auto\", got {s:?}"))
}

/// A seed: a 64-bit pattern, from a signed or an unsigned integer.
fn parse_seed(s: &str) -> Result<u64, String> {
    if let Ok(v) = s.parse::<u64>() {
        return Ok(v);
    }
    #[allow(clippy::cast_sign_loss)]
    s.parse::<i64>()
        .map(|v| v as u64)
        .map_err(|_| format!("expected an integer from -2^63 to 2^64 - 1, got {s:?}"))
}

impl FormatArgs {
    /// Whether `--fl auto` was given.
    pub fn fl_auto(&self) -> bool {
        self.fl == Some(Fl::Auto)
    }
}

/// How values are rounded and what happens beyond the range.
#[derive(Debug, clap::Args)]
pub struct ModeArgs {
    /// Rounding: nearest (ties to even; the default), nearest-up, nearest-down,
    /// nearest-toward-zero, nearest-away, floor, toward-zero, stochastic, or an HLS name
    /// (AP_RND_CONV, AP_TRN, ...).
    #[arg(long, value_parser = parse_rounding)]
    rounding: Option<Rounding>,
    /// Seed for stochastic rounding (fresh noise on every run without it): any integer from
    /// -2^63 to 2^64 - 1, a negative one taken modulo 2^64 as Python's `seed=` takes it.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_seed)]
    seed: Option<u64>,
    /// Overflow: saturate, saturate-symmetric (the default), saturate-zero, wrap,
    /// wrap-sign-magnitude, unbounded, or an HLS name (AP_SAT, AP_WRAP, ...).
    #[arg(long, value_parser = parse_overflow)]
    overflow: Option<Overflow>,
    /// Saturation bits for the wrap modes (HLS N).
    #[arg(long)]
    sat_bits: Option<u32>,
    /// No clamping: values beyond the range keep their rounded value.
    #[arg(long, conflicts_with = "overflow")]
    no_clamp: bool,
}

fn parse_rounding(s: &str) -> Result<Rounding, String> {
    s.parse().map_err(|e: xbquant::Error| e.to_string())
}

fn parse_overflow(s: &str) -> Result<Overflow, String> {
    s.parse().map_err(|e: xbquant::Error| e.to_string())
}

impl ModeArgs {
    /// The rounding of `--rounding` (else `default`), with `--seed` applied.
    pub fn rounding_or(&self, default: Rounding) -> Result<Rounding> {
        let rounding = self.rounding.unwrap_or(default);
        match self.seed {
            Some(seed) => Ok(rounding.with_seed(seed).context("--seed")?),
            None => Ok(rounding),
        }
    }
}

/// Options of `xbquant range`.
#[derive(Debug, clap::Args)]
pub struct RangeArgs {
    #[command(flatten)]
    format: FormatArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The format of `--wl/--fl/...` or `--format`, and the rounding an HLS type names (if any).
fn format(args: &FormatArgs) -> Result<(FixedPoint, Option<Rounding>)> {
    if let Some(hls) = &args.format {
        let spec = QuantSpec::from_hls(hls)?;
        return Ok((*spec.format(), Some(spec.rounding())));
    }
    let (Some(wl), Some(fl)) = (args.wl, args.fl) else {
        bail!("give a format: --wl and --fl, or --format \"ap_fixed<W,I>\"");
    };
    // `auto` is resolved per tensor by `xbquant quantize`; 0 stands in until then.
    let fl = match fl {
        Fl::Bits(fl) => fl,
        Fl::Auto => 0,
    };
    let mut format = FixedPoint::new(wl, fl)?.with_symmetric(!args.asymmetric);
    if args.unsigned {
        format = format.with_signed(false)?;
    }
    Ok((format, None))
}

/// The spec of the options: the format with the overflow options applied, and the rounding.
pub fn quant_spec(args: &FormatArgs, mode: &ModeArgs) -> Result<QuantSpec> {
    let (mut format, hls_rounding) = format(args)?;
    if mode.no_clamp {
        format = format.with_clamp(false);
    }
    if let Some(overflow) = mode.overflow {
        format = format.with_overflow(overflow)?;
    }
    if let Some(bits) = mode.sat_bits {
        let overflow = format
            .overflow()
            .with_sat_bits(bits)
            .with_context(|| format!("--sat-bits {bits}"))?;
        format = format.with_overflow(overflow)?;
    }
    let rounding = mode.rounding_or(hls_rounding.unwrap_or_default())?;
    Ok(QuantSpec::new(format, rounding))
}

/// `xbquant range`.
pub fn range(args: &RangeArgs) -> Result<()> {
    if args.format.fl_auto() {
        bail!("--fl auto is chosen from data: xbquant range needs a number");
    }
    let (format, _) = format(&args.format)?;
    let json = args.json;
    let (min, max) = format.range();
    let levels = format.levels();
    if json {
        let value = serde_json::json!({
            "word_length": format.word_length(),
            "frac_length": format.frac_length(),
            "signed": format.is_signed(),
            "symmetric": format.is_symmetric(),
            "min": min,
            "max": max,
            "step": format.step(),
            "levels": u64::try_from(levels).map_or(serde_json::Value::from(levels as f64), serde_json::Value::from),
            "hls_type": format.hls_name(),
        });
        println!("{value}");
    } else {
        println!("format  {}", format.hls_name());
        println!("min     {min}");
        println!("max     {max}");
        println!("step    {}", format.step());
        println!("levels  {levels}");
    }
    Ok(())
}
