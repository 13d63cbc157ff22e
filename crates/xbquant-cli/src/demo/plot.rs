//! The demo's SVG plot: accuracy against width, per experiment, written atomically.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{Experiment, Results, Spread};

/// A plot replaces only a plot: an existing file at `path` must be an SVG file (a previous
/// run's), never a model or anything else given by mistake.
pub(super) fn check_plot_path(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => bail!(
            "{}: --plot must name a file, and this is not a regular file",
            path.display()
        ),
        Ok(_) => {
            let mut head = [0u8; 4];
            let n = std::fs::File::open(path)
                .and_then(|mut f| f.read(&mut head))
                .with_context(|| format!("{}: cannot read it", path.display()))?;
            if &head[..n] != b"<svg" {
                bail!(
                    "{}: exists and is not an SVG plot, so it is not replaced; remove it or \
                     choose another --plot",
                    path.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{}: cannot use it for the plot", path.display())),
    }
}

/// Draws the plot and writes it through a temporary file renamed over `path`: an interrupted
/// run leaves the previous plot whole.
pub(super) fn draw(results: &Results, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let n = results.experiments.len().max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720 * n as u32, 440)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((1, n));
        for (e, area) in results.experiments.iter().zip(&panels) {
            panel(results, e, area)?;
        }
        root.present()?;
    }
    write(&svg, path)
}

/// Writes `svg` to `path` through a temporary file renamed over it.
pub(super) fn write(svg: &str, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".xbquant-plot-");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut temp = builder.tempfile_in(dir)?;
    std::io::Write::write_all(&mut temp, svg.as_bytes())?;
    temp.persist(path)?;
    Ok(())
}

fn panel<DB: plotters::prelude::DrawingBackend>(
    results: &Results,
    e: &Experiment,
    area: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    use plotters::prelude::*;
    let lo_bits = e.rows.iter().map(|r| r.0).min().unwrap_or(2);
    let hi_bits = e.rows.iter().map(|r| r.0).max().unwrap_or(8);
    let lowest = e
        .rows
        .iter()
        .flat_map(|r| [r.1.min(), r.2.min()])
        .chain([results.float.min()])
        .fold(1.0f64, f64::min);
    let y_lo = ((lowest * 100.0 - 5.0) / 5.0).floor() * 5.0;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("Digits MLP: test accuracy against {} bits", e.what),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(
            (f64::from(lo_bits) - 0.5)..(f64::from(hi_bits) + 0.5),
            y_lo.max(0.0)..100.0,
        )?;
    chart
        .configure_mesh()
        .x_desc(format!("{} bits", e.what))
        .y_desc("test accuracy (%), mean and range over seeds")
        .x_labels((hi_bits - lo_bits + 1) as usize)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    let float = 100.0 * results.float.mean();
    chart
        .draw_series(LineSeries::new(
            [
                (f64::from(lo_bits) - 0.5, float),
                (f64::from(hi_bits) + 0.5, float),
            ],
            BLACK.stroke_width(1),
        ))?
        .label(format!("float32 ({float:.1} %)"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
    let mut rows: Vec<&(u32, Spread, Spread)> = e.rows.iter().collect();
    rows.sort_by_key(|r| r.0);
    for (name, color, aware) in [
        ("trained aware", BLUE, true),
        ("post-training quantization", RED, false),
    ] {
        let pick = |r: &(u32, Spread, Spread)| if aware { r.1.clone() } else { r.2.clone() };
        let points: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (f64::from(r.0), 100.0 * pick(r).mean()))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        // The range over seeds, as a vertical bar.
        chart.draw_series(rows.iter().map(|r| {
            let s = pick(r);
            let x = f64::from(r.0);
            PathElement::new(
                [(x, 100.0 * s.min()), (x, 100.0 * s.max())],
                color.stroke_width(1),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
