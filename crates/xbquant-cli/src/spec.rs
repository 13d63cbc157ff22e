//! Formats and modes from the command line, and `xbquant range`.

use anyhow::{bail, Context, Result};
use xbquant::{FixedPoint, Overflow, Rounding};

use crate::{FormatArgs, ModeArgs};

/// The format of `--wl/--fl/...` or `--format`, and the rounding an HLS type names (if any).
pub fn format(args: &FormatArgs) -> Result<(FixedPoint, Option<Rounding>)> {
    if let Some(hls) = &args.format {
        let (format, rounding) = FixedPoint::from_hls(hls)?;
        return Ok((format, Some(rounding)));
    }
    let (Some(wl), Some(fl)) = (args.wl, args.fl) else {
        bail!("give a format: --wl and --fl, or --format \"ap_fixed<W,I>\"");
    };
    let mut format = FixedPoint::new(wl, fl)?.with_symmetric(!args.asymmetric);
    if args.unsigned {
        format = format.with_signed(false)?;
    }
    Ok((format, None))
}

/// The format with the overflow options applied, and the rounding to use.
pub fn format_and_mode(args: &FormatArgs, mode: &ModeArgs) -> Result<(FixedPoint, Rounding)> {
    let (mut format, hls_rounding) = format(args)?;
    if mode.no_clamp {
        format = format.with_clamp(false);
    }
    if let Some(name) = &mode.overflow {
        let overflow: Overflow = name.parse()?;
        format = format.with_overflow(overflow)?;
    }
    if let Some(bits) = mode.sat_bits {
        let overflow = format
            .overflow()
            .with_sat_bits(bits)
            .with_context(|| format!("--sat-bits {bits}"))?;
        format = format.with_overflow(overflow)?;
    }
    let mut rounding = match (&mode.rounding, hls_rounding) {
        (Some(name), _) => name.parse()?,
        (None, Some(r)) => r,
        (None, None) => Rounding::NearestEven,
    };
    if let Some(seed) = mode.seed {
        if !rounding.is_stochastic() {
            bail!("--seed is for stochastic rounding, but the rounding is {rounding}");
        }
        rounding = Rounding::Stochastic { seed };
    }
    Ok((format, rounding))
}

/// `xbquant range`.
pub fn range(args: &FormatArgs, json: bool) -> Result<()> {
    let (format, _) = format(args)?;
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
