//! `xbquant demo`: hardware-aware training on real data. A 64-64-10 MLP learns the UCI digits
//! (embedded) in floating point and aware of the hardware, and is compared with post-training
//! quantization of the float model at the same widths, over several seeds:
//! - weights: fixed-point weights through a straight-through estimator, 8-bit activations;
//! - crossbar: each layer as an analog crossbar, with DAC-quantized inputs (a range per input
//!   vector) and ADC-quantized column outputs (a range per column, or per tensor), optionally
//!   with noise, through the straight-through gradient that stops where a converter saturates;
//! - pcm (only when asked for): the float models and models trained with weight noise,
//!   programmed onto PCM devices on analog tiles and read from 1 second to 1 year after (`pcm`).
//!
//! `data` holds the embedded data set and the run's random numbers, `plot` the SVG plot.

mod data;
mod pcm;
mod plot;

use data::{load_digits, Data, Rng, TRAIN};
use plot::{check_plot_path, draw};

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::{loss, AdamW, Linear, Optimizer, ParamsAdamW};
use xbquant::{Converter, ConverterNoise, ConverterRange, FixedPoint, Rounding};
use xbquant_candle::{BlockShape, ConverterF, QuantLinear, Quantizer};

/// Activations: 8 bits, 5 of them fractional (step 1/32, so the pixels are exact; range +-3.97).
const ACT_WL: u32 = 8;
const ACT_FL: i32 = 5;

/// Which experiments a demo run makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Fixed-point weights.
    Weights,
    /// ADC and DAC widths of an analog crossbar.
    Crossbar,
    /// Both.
    Both,
    /// PCM devices on analog tiles, read from 1 second to 1 year after programming.
    Pcm,
}

/// The ADC's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AdcRange {
    /// The largest magnitude of each column of the layer's output.
    Column,
    /// The largest magnitude of the layer's whole output.
    Tensor,
}

/// Options of `xbquant demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Weight widths to train and evaluate (fl = bits - 1).
    #[arg(long, value_delimiter = ',', default_values_t = [8u32, 6, 4, 3, 2])]
    bits: Vec<u32>,
    /// ADC/DAC widths of the crossbar experiment.
    #[arg(long, value_delimiter = ',', default_values_t = [8u32, 6, 4, 3, 2])]
    converter_bits: Vec<u32>,
    /// The experiments to run.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// The ADC's range in the crossbar experiment (the DAC's is the largest magnitude of each
    /// input vector).
    #[arg(long, value_enum, default_value_t = AdcRange::Column)]
    adc_range: AdcRange,
    /// Gaussian noise of both converters, standard deviation in units of their range (training
    /// draws new noise every step; evaluation uses the run's seed).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    noise: f64,
    /// The pcm experiment's weight noise in training, relative to each layer's largest weight.
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    weight_noise: f64,
    /// Training epochs per run.
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    /// The first seed of the weight initialisation and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Runs per configuration, seeds --seed, --seed + 1, ...: the table gives their mean and
    /// range.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Where to write the SVG plot (default: xbquant-demo.svg in the system's temporary
    /// directory).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print the results as JSON on stdout (the progress lines go to stderr).
    #[arg(long)]
    json: bool,
}

/// The converters of an analog crossbar layer: a DAC on each input vector, an ADC on the
/// column outputs (before the bias, which the periphery adds digitally).
#[derive(Clone, Copy)]
struct Crossbar {
    converter: Converter,
    adc_range: AdcRange,
    /// Gaussian noise of both converters, in units of their range.
    noise: f64,
    /// The seed of evaluation noise; training draws fresh noise on every application.
    seed: Option<u64>,
}

impl Crossbar {
    /// The converter with its noise; `stream` keeps the converters' noise apart.
    fn noisy(&self, stream: u64) -> Result<Converter> {
        if self.noise == 0.0 {
            return Ok(self.converter);
        }
        let seed = self
            .seed
            .map(|s| s ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Ok(self
            .converter
            .with_noise(ConverterNoise::Gaussian(self.noise), seed)?)
    }

    fn dac(&self, layer: usize) -> Result<ConverterF> {
        let c = self.noisy(2 * layer as u64 + 1)?;
        Ok(ConverterF::new(
            c,
            BlockShape::Dim(0),
            ConverterRange::AbsMax,
        ))
    }

    fn adc(&self, layer: usize) -> Result<ConverterF> {
        let shape = match self.adc_range {
            AdcRange::Column => BlockShape::Dim(1),
            AdcRange::Tensor => BlockShape::Whole,
        };
        let c = self.noisy(2 * layer as u64 + 2)?;
        Ok(ConverterF::new(c, shape, ConverterRange::AbsMax))
    }
}

/// How a run quantizes: the weight format (None for float) and the activations, or the
/// converters of a crossbar.
#[derive(Clone, Copy)]
struct Scheme {
    weights: Option<Quantizer>,
    activations: Option<Quantizer>,
    crossbar: Option<Crossbar>,
    /// Gaussian weight noise in training, relative to the largest weight, and its seed.
    weight_noise: Option<(f64, u64)>,
}

impl Scheme {
    fn float() -> Scheme {
        Scheme {
            weights: None,
            activations: None,
            crossbar: None,
            weight_noise: None,
        }
    }

    fn fixed(bits: u32) -> Result<Scheme> {
        let w = FixedPoint::new(bits, bits as i32 - 1)?;
        let a = FixedPoint::new(ACT_WL, ACT_FL)?;
        Ok(Scheme {
            weights: Some(Quantizer::new(w.with_rounding(Rounding::NearestEven))),
            activations: Some(Quantizer::new(a.with_rounding(Rounding::NearestEven))),
            crossbar: None,
            weight_noise: None,
        })
    }

    /// Converters of `bits`, with fresh Gaussian noise of `noise` (in units of the range) on
    /// every application: the training scheme.
    fn crossbar(bits: u32, adc_range: AdcRange, noise: f64) -> Result<Scheme> {
        Ok(Scheme {
            crossbar: Some(Crossbar {
                converter: Converter::new(bits)?,
                adc_range,
                noise,
                seed: None,
            }),
            ..Scheme::float()
        })
    }

    /// The evaluation scheme: the noise, if any, fixed by `seed`.
    fn evaluated(self, seed: u64) -> Scheme {
        Scheme {
            crossbar: self.crossbar.map(|c| Crossbar {
                seed: Some(seed),
                ..c
            }),
            ..self
        }
    }
}

/// A 64-64-10 MLP with ReLU; PyTorch's default initialisation (uniform in +-1/sqrt(fan_in)).
struct Mlp {
    vars: Vec<Var>,
    draws: std::cell::Cell<u64>, // layers drawn with weight noise so far: a run repeats
}

impl Mlp {
    fn new(seed: u64, device: &Device) -> Result<Mlp> {
        let mut rng = Rng::new(seed);
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
        let draws = std::cell::Cell::new(0);
        Ok(Mlp { vars, draws })
    }

    fn layer(&self, i: usize, scheme: Scheme) -> Result<Box<dyn Module>> {
        let (mut w, b) = (
            self.vars[2 * i].as_tensor().clone(),
            self.vars[2 * i + 1].as_tensor().clone(),
        );
        if let Some((relative, seed)) = scheme.weight_noise {
            let call = self.draws.replace(self.draws.get() + 1);
            w = pcm::noisy(&w, relative, seed, call)?;
        }
        Ok(match scheme.weights {
            Some(wq) => Box::new(QuantLinear::new(w, Some(b), wq, scheme.activations)),
            None => Box::new(Linear::new(w, Some(b))),
        })
    }

    /// Layer `i` as an analog crossbar: DAC, the weights' matrix product, ADC, then the bias.
    fn crossbar_layer(&self, i: usize, x: &Tensor, c: &Crossbar) -> Result<Tensor> {
        let (w, b) = (
            self.vars[2 * i].as_tensor(),
            self.vars[2 * i + 1].as_tensor(),
        );
        let v = x.apply_op1(c.dac(i)?)?;
        let currents = v.matmul(&w.t()?)?;
        Ok(currents.apply_op1(c.adc(i)?)?.broadcast_add(b)?)
    }

    fn forward(&self, x: &Tensor, scheme: Scheme) -> Result<Tensor> {
        if let Some(c) = &scheme.crossbar {
            let h = self.crossbar_layer(0, x, c)?.relu()?;
            return self.crossbar_layer(1, &h, c);
        }
        let h = self.layer(0, scheme)?.forward(x)?.relu()?;
        Ok(self.layer(1, scheme)?.forward(&h)?)
    }

    fn accuracy(&self, x: &Tensor, y: &Tensor, scheme: Scheme) -> Result<f64> {
        let predicted = self.forward(x, scheme)?.argmax(D::Minus1)?;
        let correct = predicted.eq(y)?.to_dtype(DType::F64)?.mean_all()?;
        Ok(correct.to_scalar::<f64>()?)
    }
}

/// The most epochs of one run (40 by default; each takes about 10 ms on 2 cores).
const MAX_EPOCHS: usize = 100_000;
/// The most runs per configuration.
const MAX_SEEDS: u64 = 10_000;

fn train(data: &Data, scheme: Scheme, epochs: usize, seed: u64) -> Result<Mlp> {
    let device = data.train_x.device();
    let model = Mlp::new(seed, device)?;
    let params = ParamsAdamW {
        lr: 1e-2,
        weight_decay: 0.0,
        ..ParamsAdamW::default()
    };
    let mut opt = AdamW::new(model.vars.clone(), params)?;
    let mut rng = Rng::new(seed ^ 0x0BA7_C4E5);
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

/// Test accuracies of the runs of one configuration, one per seed.
#[derive(Debug, Clone, Default)]
struct Spread(Vec<f64>);

impl Spread {
    fn mean(&self) -> f64 {
        self.0.iter().sum::<f64>() / self.0.len().max(1) as f64
    }

    fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    /// `96.1 % (95.3-97.2)`, or only the mean for one run.
    fn text(&self) -> String {
        if self.0.len() == 1 {
            format!("{:.1} %", 100.0 * self.mean())
        } else {
            format!(
                "{:.1} % ({:.1}-{:.1})",
                100.0 * self.mean(),
                100.0 * self.min(),
                100.0 * self.max()
            )
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({"mean": self.mean(), "min": self.min(), "max": self.max(), "runs": self.0})
    }
}

/// One experiment: hardware-aware training against post-training quantization, per width.
struct Experiment {
    /// What the widths are of, for the table and the plot.
    what: &'static str,
    /// The experiment's setting, in words.
    setting: String,
    /// `(bits, aware, post-training)`.
    rows: Vec<(u32, Spread, Spread)>,
}

/// The results of one demo run.
struct Results {
    float: Spread,
    experiments: Vec<Experiment>,
}

fn check_widths(name: &str, bits: &[u32], max: u32) -> Result<()> {
    if bits.is_empty() {
        bail!("--{name}: give at least one width");
    }
    if let Some(&b) = bits.iter().find(|&&b| !(2..=max).contains(&b)) {
        bail!("--{name} {b}: widths must be 2..={max}");
    }
    Ok(())
}

/// `xbquant demo`.
pub fn run(args: &DemoArgs) -> Result<()> {
    let weights = matches!(args.mode, Mode::Weights | Mode::Both);
    let crossbar = matches!(args.mode, Mode::Crossbar | Mode::Both);
    if weights {
        check_widths("bits", &args.bits, 24)?;
    }
    if crossbar {
        check_widths("converter-bits", &args.converter_bits, 24)?;
    }
    // The plot's path is checked before the runs, not after them.
    let plot = args
        .plot
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("xbquant-demo.svg"));
    check_plot_path(&plot)?;
    // Bounded: each is a loop of whole training runs, and the seeds' accuracies are held at
    // once (10^11 seeds once asked for 800 GB).
    if !(1..=MAX_EPOCHS).contains(&args.epochs) {
        bail!("--epochs must be 1 to {MAX_EPOCHS}, got {}", args.epochs);
    }
    if !(1..=MAX_SEEDS).contains(&args.seeds) {
        bail!("--seeds must be 1 to {MAX_SEEDS}, got {}", args.seeds);
    }
    if !(args.noise >= 0.0 && args.noise.is_finite()) {
        bail!("--noise must be finite and 0 or more, got {}", args.noise);
    }
    if !(args.weight_noise >= 0.0 && args.weight_noise.is_finite()) {
        bail!(
            "--weight-noise must be finite and 0 or more, got {}",
            args.weight_noise
        );
    }
    let start = Instant::now();
    let device = Device::Cpu;
    let data = load_digits(&device)?;
    let status = |line: String| eprintln!("{line}");
    let seeds: Vec<u64> = (0..args.seeds).map(|k| args.seed.wrapping_add(k)).collect();
    status(format!(
        "digits: {TRAIN} training and {} test images; 64-64-10 MLP, Adam lr 0.01, batch 32, {} epochs, seeds {}..={}",
        data.test_y.dims()[0],
        args.epochs,
        seeds[0],
        seeds[seeds.len() - 1]
    ));
    let (x, y) = (&data.test_x, &data.test_y);
    let mut floats = Vec::new();
    let mut float = Spread::default();
    for &seed in &seeds {
        let model = train(&data, Scheme::float(), args.epochs, seed)?;
        float.0.push(model.accuracy(x, y, Scheme::float())?);
        floats.push(model);
    }
    status(format!("float32 baseline: {}", float.text()));
    if args.mode == Mode::Pcm {
        return run_pcm(args, &data, &seeds, &floats, &float, &plot, start);
    }
    // Each width: trained aware of it on every seed, and each seed's float model quantized.
    let compare = |bits: u32, scheme: Scheme, label: &str| -> Result<(u32, Spread, Spread)> {
        let (mut aware, mut post) = (Spread::default(), Spread::default());
        for (&seed, model) in seeds.iter().zip(&floats) {
            let evaluated = scheme.evaluated(seed);
            aware
                .0
                .push(train(&data, scheme, args.epochs, seed)?.accuracy(x, y, evaluated)?);
            post.0.push(model.accuracy(x, y, evaluated)?);
        }
        status(format!(
            "{bits}-bit {label}: aware {}, post-training {}",
            aware.text(),
            post.text()
        ));
        Ok((bits, aware, post))
    };
    let mut experiments = Vec::new();
    if weights {
        let mut rows = Vec::new();
        for &bits in &args.bits {
            rows.push(compare(bits, Scheme::fixed(bits)?, "weights")?);
        }
        experiments.push(Experiment {
            what: "weight",
            setting: format!(
                "Weights in fixed point (fl = bits - 1, symmetric, nearest), activations {ACT_WL}-bit."
            ),
            rows,
        });
    }
    if crossbar {
        let mut rows = Vec::new();
        for &bits in &args.converter_bits {
            let scheme = Scheme::crossbar(bits, args.adc_range, args.noise)?;
            rows.push(compare(bits, scheme, "ADC/DAC")?);
        }
        let range = match args.adc_range {
            AdcRange::Column => "each column's largest output",
            AdcRange::Tensor => "the layer's largest output",
        };
        let noise = if args.noise > 0.0 {
            format!(", Gaussian noise of {} of the range", args.noise)
        } else {
            String::new()
        };
        experiments.push(Experiment {
            what: "ADC/DAC",
            setting: format!(
                "Crossbar layers: DAC on each input vector (range: its largest value), float weights, ADC on the outputs (range: {range}){noise}."
            ),
            rows,
        });
    }
    let results = Results { float, experiments };
    draw(&results, &plot).with_context(|| format!("{}: cannot write the plot", plot.display()))?;
    if args.json {
        let rows = |e: &Experiment| -> Vec<serde_json::Value> {
            e.rows
                .iter()
                .map(|(bits, aware, post)| {
                    serde_json::json!({
                        "bits": bits,
                        "qat_accuracy": aware.mean(),
                        "ptq_accuracy": post.mean(),
                        "qat": aware.json(),
                        "ptq": post.json(),
                    })
                })
                .collect()
        };
        let mut value = serde_json::json!({
            "float_accuracy": results.float.mean(),
            "float": results.float.json(),
            "seeds": seeds,
        });
        for e in &results.experiments {
            let key = if e.what == "weight" {
                "rows"
            } else {
                "crossbar"
            };
            value[key] = rows(e).into();
        }
        println!("{value}");
    } else {
        println!();
        println!(
            "Test accuracy on 360 held-out digits, mean (and range) over {} seeds. Float32: {}",
            seeds.len(),
            results.float.text()
        );
        for e in &results.experiments {
            println!();
            println!("{}", e.setting);
            println!(
                "{:>5}  {:>26}  {:>26}",
                "bits", "trained aware", "post-training quantized"
            );
            for (bits, aware, post) in &e.rows {
                println!("{bits:>5}  {:>26}  {:>26}", aware.text(), post.text());
            }
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

/// `xbquant demo --mode pcm`: the float models and models trained with weight noise, programmed
/// onto PCM tiles and read over time.
fn run_pcm(
    args: &DemoArgs,
    data: &Data,
    seeds: &[u64],
    floats: &[Mlp],
    float: &Spread,
    plot: &std::path::Path,
    start: Instant,
) -> Result<()> {
    let mut aware = Vec::new();
    for &seed in seeds {
        let scheme = Scheme {
            weight_noise: Some((args.weight_noise, seed ^ 0x57EE_D0CA)),
            ..Scheme::float()
        };
        aware.push(train(data, scheme, args.epochs, seed)?);
    }
    let rows = pcm::rows(floats, &aware, seeds, data)?;
    pcm::draw(&rows, float, plot)
        .with_context(|| format!("{}: cannot write the plot", plot.display()))?;
    if args.json {
        let value: Vec<serde_json::Value> = pcm::TIMES
            .iter()
            .zip(&rows)
            .map(|(&(t, name), r)| {
                serde_json::json!({
                    "seconds": t, "time": name,
                    "float": r.float.json(), "float_compensated": r.float_compensated.json(),
                    "aware": r.aware.json(), "aware_compensated": r.aware_compensated.json(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"float": float.json(), "seeds": seeds, "weight_noise": args.weight_noise, "pcm": value})
        );
    } else {
        println!();
        println!(
            "Test accuracy on 360 held-out digits, mean (and range) over {} seeds. Float32, digital: {}",
            seeds.len(),
            float.text()
        );
        println!();
        println!(
            "PCM tiles (aihwkit's PCM model, default IOParameters), weights programmed once and read later; \
             trained aware: weight noise {} of the largest weight.",
            args.weight_noise
        );
        println!(
            "{:>9}  {:>22}  {:>22}  {:>22}  {:>22}",
            "read at", "float-trained", "  + compensation", "trained aware", "  + compensation"
        );
        for (&(_, name), r) in pcm::TIMES.iter().zip(&rows) {
            println!(
                "{name:>9}  {:>22}  {:>22}  {:>22}  {:>22}",
                r.float.text(),
                r.float_compensated.text(),
                r.aware.text(),
                r.aware_compensated.text()
            );
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
