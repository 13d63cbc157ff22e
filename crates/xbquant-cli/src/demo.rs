//! `xbquant demo`: hardware-aware training on real data. A 64-64-10 MLP learns the UCI digits
//! (embedded) in floating point, with quantization-aware training (fixed-point weights through a
//! straight-through estimator, 8-bit activations), and is compared with post-training
//! quantization of the float model at the same widths.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::{loss, AdamW, Linear, Optimizer, ParamsAdamW};
use xbquant::{FixedPoint, Rounding};
use xbquant_candle::{QuantLinear, Quantizer};

/// The UCI "Optical Recognition of Handwritten Digits" test set (CC BY 4.0): 64 pixels (0..16)
/// and a label per row. See `data/README.md`.
const DIGITS: &[u8] = include_bytes!("../data/digits.csv.gz");
/// Images in the training part of the fixed split (the remaining 360 are the test set).
const TRAIN: usize = 1437;
/// The seed of the fixed split (independent of `--seed`).
const SPLIT_SEED: u64 = 0x5EED_0D16;
/// Activations: 8 bits, 5 of them fractional (step 1/32, so the pixels are exact; range +-3.97).
const ACT_WL: u32 = 8;
const ACT_FL: i32 = 5;

/// Options of `xbquant demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Weight widths to train and evaluate (fl = bits - 1).
    #[arg(long, value_delimiter = ',', default_values_t = [8u32, 6, 4, 3, 2])]
    bits: Vec<u32>,
    /// Training epochs per run.
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    /// Seed of the weight initialisation and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the SVG plot (default: xbquant-demo.svg in the system's temporary
    /// directory).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print the results as JSON on stdout (the progress lines go to stderr).
    #[arg(long)]
    json: bool,
}

/// A small deterministic generator (SplitMix64) for the split, the initialisation and the
/// batch order, so that a run is reproducible from its seed alone.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

struct Data {
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
}

fn load_digits(device: &Device) -> Result<Data> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS)
        .read_to_string(&mut text)
        .context("the embedded digits data is corrupt")?;
    let mut rows: Vec<(Vec<f32>, u32)> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 65 {
            bail!("digits row {i}: {} fields, expected 65", fields.len());
        }
        let pixels = fields[..64]
            .iter()
            .map(|f| f.trim().parse::<f32>().map(|v| v / 16.0))
            .collect::<std::result::Result<Vec<_>, _>>()
            .with_context(|| format!("digits row {i}"))?;
        let label: u32 = fields[64]
            .trim()
            .parse()
            .with_context(|| format!("digits row {i}"))?;
        rows.push((pixels, label));
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    Rng(SPLIT_SEED).shuffle(&mut order);
    let part = |idx: &[usize]| -> Result<(Tensor, Tensor)> {
        let x: Vec<f32> = idx
            .iter()
            .flat_map(|&i| rows[i].0.iter().copied())
            .collect();
        let y: Vec<u32> = idx.iter().map(|&i| rows[i].1).collect();
        Ok((
            Tensor::from_vec(x, (idx.len(), 64), device)?,
            Tensor::from_vec(y, idx.len(), device)?,
        ))
    };
    let (train_x, train_y) = part(&order[..TRAIN])?;
    let (test_x, test_y) = part(&order[TRAIN..])?;
    Ok(Data {
        train_x,
        train_y,
        test_x,
        test_y,
    })
}

/// How a run quantizes: the weight format (None for float) and the activations.
#[derive(Clone, Copy)]
struct Scheme {
    weights: Option<Quantizer>,
    activations: Option<Quantizer>,
}

impl Scheme {
    fn float() -> Scheme {
        Scheme {
            weights: None,
            activations: None,
        }
    }

    fn fixed(bits: u32) -> Result<Scheme> {
        let w = FixedPoint::new(bits, bits as i32 - 1)?;
        let a = FixedPoint::new(ACT_WL, ACT_FL)?;
        Ok(Scheme {
            weights: Some(Quantizer::new(w.with_rounding(Rounding::NearestEven))),
            activations: Some(Quantizer::new(a.with_rounding(Rounding::NearestEven))),
        })
    }
}

/// A 64-64-10 MLP with ReLU; PyTorch's default initialisation (uniform in +-1/sqrt(fan_in)).
struct Mlp {
    vars: Vec<Var>,
}

impl Mlp {
    fn new(seed: u64, device: &Device) -> Result<Mlp> {
        let mut rng = Rng(seed);
        let mut param = |shape: &[usize], fan_in: usize| -> Result<Var> {
            let bound = 1.0 / (fan_in as f32).sqrt();
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.uniform(-bound, bound)).collect();
            Ok(Var::from_tensor(&Tensor::from_vec(v, shape, device)?)?)
        };
        let vars = vec![
            param(&[64, 64], 64)?,
            param(&[64], 64)?,
            param(&[10, 64], 64)?,
            param(&[10], 64)?,
        ];
        Ok(Mlp { vars })
    }

    fn layer(&self, i: usize, scheme: Scheme) -> Box<dyn Module> {
        let (w, b) = (
            self.vars[2 * i].as_tensor().clone(),
            self.vars[2 * i + 1].as_tensor().clone(),
        );
        match scheme.weights {
            Some(wq) => Box::new(QuantLinear::new(w, Some(b), wq, scheme.activations)),
            None => Box::new(Linear::new(w, Some(b))),
        }
    }

    fn forward(&self, x: &Tensor, scheme: Scheme) -> Result<Tensor> {
        let h = self.layer(0, scheme).forward(x)?.relu()?;
        Ok(self.layer(1, scheme).forward(&h)?)
    }

    fn accuracy(&self, x: &Tensor, y: &Tensor, scheme: Scheme) -> Result<f64> {
        let predicted = self.forward(x, scheme)?.argmax(D::Minus1)?;
        let correct = predicted.eq(y)?.to_dtype(DType::F64)?.mean_all()?;
        Ok(correct.to_scalar::<f64>()?)
    }
}

fn train(data: &Data, scheme: Scheme, epochs: usize, seed: u64) -> Result<Mlp> {
    let device = data.train_x.device();
    let model = Mlp::new(seed, device)?;
    let params = ParamsAdamW {
        lr: 1e-2,
        weight_decay: 0.0,
        ..ParamsAdamW::default()
    };
    let mut opt = AdamW::new(model.vars.clone(), params)?;
    let mut rng = Rng(seed ^ 0x0BA7_C4E5);
    let mut order: Vec<u32> = (0..TRAIN as u32).collect();
    for _ in 0..epochs {
        rng.shuffle(&mut order);
        for batch in order.chunks(32) {
            let idx = Tensor::new(batch, device)?;
            let x = data.train_x.index_select(&idx, 0)?;
            let y = data.train_y.index_select(&idx, 0)?;
            let l = loss::cross_entropy(&model.forward(&x, scheme)?, &y)?;
            opt.backward_step(&l)?;
        }
    }
    Ok(model)
}

/// The results of one demo run.
struct Results {
    float_accuracy: f64,
    rows: Vec<(u32, f64, f64)>,
}

/// `xbquant demo`.
pub fn run(args: &DemoArgs) -> Result<()> {
    if args.bits.is_empty() {
        bail!("--bits: give at least one width");
    }
    if let Some(&b) = args.bits.iter().find(|&&b| !(2..=24).contains(&b)) {
        bail!("--bits {b}: weight widths must be 2..=24 (fl = bits - 1)");
    }
    if args.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    let start = Instant::now();
    let device = Device::Cpu;
    let data = load_digits(&device)?;
    let status = |line: String| eprintln!("{line}");
    status(format!(
        "digits: {TRAIN} training and {} test images; 64-64-10 MLP, Adam lr 0.01, batch 32, {} epochs, seed {}",
        data.test_y.dims()[0],
        args.epochs,
        args.seed
    ));
    let float_model = train(&data, Scheme::float(), args.epochs, args.seed)?;
    let float_accuracy = float_model.accuracy(&data.test_x, &data.test_y, Scheme::float())?;
    status(format!("float32 baseline: {:.1} %", 100.0 * float_accuracy));
    let mut rows = Vec::new();
    for &bits in &args.bits {
        let scheme = Scheme::fixed(bits)?;
        let qat = train(&data, scheme, args.epochs, args.seed)?.accuracy(
            &data.test_x,
            &data.test_y,
            scheme,
        )?;
        let ptq = float_model.accuracy(&data.test_x, &data.test_y, scheme)?;
        status(format!(
            "{bits}-bit weights: QAT {:.1} %, PTQ {:.1} %",
            100.0 * qat,
            100.0 * ptq
        ));
        rows.push((bits, qat, ptq));
    }
    let results = Results {
        float_accuracy,
        rows,
    };
    let plot = args
        .plot
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("xbquant-demo.svg"));
    draw(&results, &plot).with_context(|| format!("{}: cannot write the plot", plot.display()))?;
    if args.json {
        let rows: Vec<_> = results
            .rows
            .iter()
            .map(|&(bits, qat, ptq)| {
                serde_json::json!({"bits": bits, "qat_accuracy": qat, "ptq_accuracy": ptq})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"float_accuracy": results.float_accuracy, "rows": rows})
        );
    } else {
        println!();
        println!(
            "Weights in fixed point (fl = bits - 1, symmetric, nearest), activations {ACT_WL}-bit;"
        );
        println!(
            "test accuracy on 360 held-out digits. Float32 baseline: {:.1} %",
            100.0 * float_accuracy
        );
        println!();
        println!(
            "{:>5}  {:>22}  {:>24}",
            "bits", "quantization-aware", "post-training quantized"
        );
        for &(bits, qat, ptq) in &results.rows {
            println!("{bits:>5}  {:>21.1}%  {:>23.1}%", 100.0 * qat, 100.0 * ptq);
        }
        println!();
    }
    eprintln!(
        "plot: {} ({:.1} s)",
        plot.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn draw(results: &Results, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let lo_bits = results.rows.iter().map(|r| r.0).min().unwrap_or(2);
    let hi_bits = results.rows.iter().map(|r| r.0).max().unwrap_or(8);
    let lowest = results
        .rows
        .iter()
        .flat_map(|r| [r.1, r.2])
        .chain([results.float_accuracy])
        .fold(1.0f64, f64::min);
    let y_lo = ((lowest * 100.0 - 5.0) / 5.0).floor() * 5.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Digits MLP: test accuracy against weight bits",
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
        .x_desc("weight bits (fixed point, fl = bits - 1)")
        .y_desc("test accuracy (%)")
        .x_labels((hi_bits - lo_bits + 1) as usize)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    let float = 100.0 * results.float_accuracy;
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
    let mut rows = results.rows.clone();
    rows.sort_by_key(|r| r.0);
    for (name, color, pick) in [
        ("quantization-aware training", BLUE, 1usize),
        ("post-training quantization", RED, 2usize),
    ] {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (f64::from(r.0), 100.0 * if pick == 1 { r.1 } else { r.2 }))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
