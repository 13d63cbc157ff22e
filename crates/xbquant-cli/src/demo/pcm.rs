//! `xbquant demo --mode pcm`: the digits MLP trained in floating point and with weight noise
//! injected (hardware-aware), programmed onto PCM devices on analog tiles (`xbquant-analog`:
//! aihwkit's PCM model and its default `IOParameters`), and read 1 s, 1 hour, 1 day and 1 year
//! after programming, with and without global drift compensation.

use std::path::Path;

use anyhow::Result;
use candle_core::{Tensor, D};
use xbquant::noise;
use xbquant_analog::{mvm, IoParameters, PcmLikeNoise};

use super::data::Data;
use super::{Mlp, Spread};

/// The read times after programming, in seconds, and their names.
pub(super) const TIMES: [(f64, &str); 4] = [
    (1.0, "1 second"),
    (3600.0, "1 hour"),
    (86_400.0, "1 day"),
    (3.15e7, "1 year"),
];

/// The accuracies at one read time: float-trained and hardware-aware models, each without and
/// with global drift compensation.
#[derive(Debug, Clone, Default)]
pub(super) struct Row {
    pub(super) float: Spread,
    pub(super) float_compensated: Spread,
    pub(super) aware: Spread,
    pub(super) aware_compensated: Spread,
}

/// `w` with additive Gaussian noise of `relative` times its largest magnitude (aihwkit's
/// `ADD_NORMAL` weight modifier), the run's draw number `call` (fresh at each call of a run, and
/// the same in every run of the seed); the noise is a constant for autograd.
pub(super) fn noisy(w: &Tensor, relative: f64, seed: u64, call: u64) -> Result<Tensor> {
    let n = w.elem_count();
    let largest = w.abs()?.max_all()?.to_scalar::<f32>()?;
    let key = noise::stream_key(seed ^ call.wrapping_mul(noise::STEP));
    let sigma = relative as f32 * largest;
    let v: Vec<f32> = (0..n as u64)
        .map(|i| sigma * noise::gaussian(key, i) as f32)
        .collect();
    Ok(w.add(&Tensor::from_vec(v, w.shape(), w.device())?)?)
}

/// One layer programmed onto PCM pairs: its programmed conductances, drift coefficients and
/// the readout of compensation at programming.
struct Programmed {
    plus: Vec<f32>,
    minus: Vec<f32>,
    nu_plus: Vec<f32>,
    nu_minus: Vec<f32>,
    ratio: f64,
    bias: Vec<f32>,
    out: usize,
    inp: usize,
    baseline: f64,
}

/// The tile's mean output magnitude for the one-hot inputs (aihwkit's global drift readout).
fn readout(w: &[f32], out: usize, inp: usize, io: &IoParameters, seed: u64) -> Result<f64> {
    let mut eye = vec![0f32; inp * inp];
    for i in 0..inp {
        eye[i * inp + i] = 1.0;
    }
    let y = mvm(
        &eye,
        inp,
        inp,
        w,
        out,
        io,
        xbquant_analog::DEFAULT_TILE,
        seed,
    )?;
    let mean = y.iter().map(|v| f64::from(v.abs())).sum::<f64>() / y.len().max(1) as f64;
    Ok(mean.max(1e-4))
}

fn program(
    model: &Mlp,
    layer: usize,
    pcm: &PcmLikeNoise,
    io: &IoParameters,
    seed: u64,
) -> Result<Programmed> {
    let w = model.vars[2 * layer].as_tensor();
    let (out, inp) = w.dims2()?;
    let w: Vec<f32> = w.flatten_all()?.to_vec1()?;
    let bias: Vec<f32> = model.vars[2 * layer + 1].as_tensor().to_vec1()?;
    let (plus, minus, ratio) = pcm.to_conductances(&w)?;
    let s = seed.wrapping_mul(16).wrapping_add(4 * layer as u64);
    let plus_prog = pcm.programming_noise(&plus, s)?;
    let minus_prog = pcm.programming_noise(&minus, s + 1)?;
    let nu_plus = pcm.drift_coefficients(&plus, s + 2)?;
    let nu_minus = pcm.drift_coefficients(&minus, s + 3)?;
    let programmed = pcm.from_conductances(&plus_prog, &minus_prog, ratio)?;
    let baseline = readout(&programmed, out, inp, io, s)?;
    Ok(Programmed {
        plus: plus_prog,
        minus: minus_prog,
        nu_plus,
        nu_minus,
        ratio,
        bias,
        out,
        inp,
        baseline,
    })
}

/// The layer's weights read at `t` and the compensation factor (1 without compensation).
fn read(
    p: &Programmed,
    pcm: &PcmLikeNoise,
    io: &IoParameters,
    t: f64,
    seed: u64,
) -> Result<(Vec<f32>, f64)> {
    let plus = pcm.drift(&p.plus, &p.nu_plus, t, seed)?;
    let minus = pcm.drift(&p.minus, &p.nu_minus, t, seed + 1)?;
    let w = pcm.from_conductances(&plus, &minus, p.ratio)?;
    let alpha = p.baseline / readout(&w, p.out, p.inp, io, seed)?;
    Ok((w, alpha))
}

/// The accuracies of `model` programmed with `seed`, at each of [`TIMES`], without and with
/// compensation.
fn accuracies(model: &Mlp, data: &Data, seed: u64) -> Result<Vec<(f64, f64)>> {
    let pcm = PcmLikeNoise::default();
    let io = IoParameters::default();
    let layers = [
        program(model, 0, &pcm, &io, seed)?,
        program(model, 1, &pcm, &io, seed)?,
    ];
    let x: Vec<f32> = data.test_x.flatten_all()?.to_vec1()?;
    let labels: Vec<u32> = data.test_y.to_vec1()?;
    let rows = labels.len();
    let mut out = Vec::new();
    for (k, &(t, _)) in TIMES.iter().enumerate() {
        let mut pair = [0.0; 2];
        let reads: Vec<(Vec<f32>, f64)> = layers
            .iter()
            .enumerate()
            .map(|(l, p)| {
                read(
                    p,
                    &pcm,
                    &io,
                    t,
                    seed.wrapping_mul(64) + 8 * k as u64 + 2 * l as u64,
                )
            })
            .collect::<Result<_>>()?;
        for (c, compensate) in [false, true].into_iter().enumerate() {
            let mut h = x.clone();
            let mut width = 64;
            for (l, (p, (w, alpha))) in layers.iter().zip(&reads).enumerate() {
                let tile_seed = seed.wrapping_mul(1024) + 16 * k as u64 + 4 * l as u64 + c as u64;
                let y = mvm(
                    &h,
                    rows,
                    width,
                    w,
                    p.out,
                    &io,
                    xbquant_analog::DEFAULT_TILE,
                    tile_seed,
                )?;
                let a = if compensate { *alpha as f32 } else { 1.0 };
                h = y
                    .chunks(p.out)
                    .flat_map(|row| row.iter().zip(&p.bias).map(move |(&v, &b)| v * a + b))
                    .map(|v| if l == 0 { v.max(0.0) } else { v })
                    .collect();
                width = p.out;
            }
            let logits = Tensor::from_vec(h, (rows, width), data.test_x.device())?;
            let predicted: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
            let correct = predicted
                .iter()
                .zip(&labels)
                .filter(|(a, b)| a == b)
                .count();
            pair[c] = correct as f64 / rows as f64;
        }
        out.push((pair[0], pair[1]));
    }
    Ok(out)
}

/// The table's rows: each read time's accuracies over the seeds' float-trained and aware models.
pub(super) fn rows(floats: &[Mlp], aware: &[Mlp], seeds: &[u64], data: &Data) -> Result<Vec<Row>> {
    let mut rows = vec![Row::default(); TIMES.len()];
    for ((float, aware), &seed) in floats.iter().zip(aware).zip(seeds) {
        for (row, (f, a)) in rows.iter_mut().zip(
            accuracies(float, data, seed)?
                .into_iter()
                .zip(accuracies(aware, data, seed)?),
        ) {
            row.float.0.push(f.0);
            row.float_compensated.0.push(f.1);
            row.aware.0.push(a.0);
            row.aware_compensated.0.push(a.1);
        }
    }
    Ok(rows)
}

/// Which of a row's spreads a line of the plot shows.
type Pick = fn(&Row) -> &Spread;

/// The plot: accuracy against the time after programming (log scale), four lines.
pub(super) fn draw(rows: &[Row], float: &Spread, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 460)).into_drawing_area();
        root.fill(&WHITE)?;
        let lowest = rows
            .iter()
            .flat_map(|r| {
                [
                    r.float.min(),
                    r.aware.min(),
                    r.float_compensated.min(),
                    r.aware_compensated.min(),
                ]
            })
            .fold(1.0f64, f64::min);
        let y_lo = ((lowest * 100.0 - 5.0) / 5.0).floor() * 5.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Digits MLP on PCM tiles: accuracy after programming",
                ("sans-serif", 20),
            )
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5f64..8.0, y_lo.max(0.0)..100.0)?;
        chart
            .configure_mesh()
            .x_desc("time after programming (log10 seconds)")
            .y_desc("test accuracy (%), mean over seeds")
            .draw()?;
        let f = 100.0 * float.mean();
        chart
            .draw_series(LineSeries::new(
                [(-0.5, f), (8.0, f)],
                BLACK.stroke_width(1),
            ))?
            .label(format!("float32, digital ({f:.1} %)"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
        let series: [(&str, RGBColor, Pick); 4] = [
            ("float-trained", RED, |r| &r.float),
            ("float-trained, compensated", MAGENTA, |r| {
                &r.float_compensated
            }),
            ("trained with weight noise", BLUE, |r| &r.aware),
            ("trained with weight noise, compensated", GREEN, |r| {
                &r.aware_compensated
            }),
        ];
        for (name, color, pick) in series {
            let points: Vec<(f64, f64)> = TIMES
                .iter()
                .zip(rows)
                .map(|(&(t, _), r)| (t.log10(), 100.0 * pick(r).mean()))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    super::plot::write(&svg, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_noise_is_a_function_of_the_seed_and_the_draw() {
        let w = Tensor::from_vec(
            vec![0.5f32, -1.0, 0.25, 2.0],
            (2, 2),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let draw = |seed, call| {
            noisy(&w, 0.05, seed, call)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap()
        };
        // The same draw twice in one process (a second run of the demo repeats the first).
        assert_eq!(draw(3, 0), draw(3, 0));
        assert_ne!(draw(3, 0), draw(3, 1));
        assert_ne!(draw(3, 0), draw(4, 0));
        // 0.05 of the largest magnitude (2.0): every change well within 6 of its 0.1.
        let base = w.to_vec2::<f32>().unwrap();
        for (row, noisy_row) in base.iter().zip(draw(3, 0)) {
            for (a, b) in row.iter().zip(noisy_row) {
                assert!((a - b).abs() < 0.6 && a != &b);
            }
        }
    }
}
