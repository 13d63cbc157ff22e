//! Throughput of the `xbquant` kernels against a plain copy of the same buffers, measured in one
//! run: the code behind `cargo bench -p xbquant-bench` and `xbquant bench`.
//!
//! [`run`] prints, per path and size, the median time per call, elements per
//! second and the ratio to a copy (a rayon-parallel `copy_from_slice` above the kernels'
//! parallel threshold, the plain one below it): 1.00x means as fast as the copy. Each call of a
//! kernel is timed right after a call of the copy, and the ratio is the median of these pairs'
//! ratios, so that a busy machine slows both sides of a ratio alike.

#![deny(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use xbquant::{
    instruction_set, Element, FixedPoint, FloatFormat, InstructionSet, Overflow, Rounding,
};

const PARALLEL_COPY_MIN: usize = 1 << 17;

fn timed(f: &mut impl FnMut()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median<V: PartialOrd + Copy>(mut v: Vec<V>) -> V {
    // A ratio of two zero-length timings is NaN: it sorts as equal rather than stopping the run.
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn copy<T: Element>(src: &[T], dst: &mut [T]) {
    if src.len() >= PARALLEL_COPY_MIN {
        dst.par_chunks_mut(1 << 15)
            .zip(src.par_chunks(1 << 15))
            .for_each(|(d, s)| d.copy_from_slice(s));
    } else {
        dst.copy_from_slice(src);
    }
}

fn inputs<T: Element>(n: usize) -> Vec<T> {
    // Values around the format's range: a mix of in-range and saturating inputs.
    (0..n)
        .map(|i| T::from_f64(((i as f64) * 0.618_033_988_7).sin() * 5.0))
        .collect()
}

struct Report<'c> {
    size_label: String,
    /// A copy of the size's input into a buffer of its own (or another baseline).
    copy: Box<dyn FnMut() + 'c>,
    /// What the ratio compares with: `copy`, or the baseline's name.
    baseline: &'static str,
    n: usize,
    reps: usize,
    filter: Option<String>,
}

impl Report<'_> {
    /// Times `f` and prints its line, unless a filter was given that the path does not contain.
    /// Each call of `f` follows a call of the copy, so that both meet the same conditions on a
    /// busy machine; the ratio printed is the median of the calls' ratios.
    fn run(&mut self, path: &str, mut f: impl FnMut()) {
        if let Some(filter) = &self.filter {
            if !path.contains(filter.as_str()) {
                return;
            }
        }
        // Warm up: page faults, the thread pool's start.
        (self.copy)();
        f();
        let (times, ratios): (Vec<Duration>, Vec<f64>) = (0..self.reps)
            .map(|_| {
                let c = timed(&mut self.copy);
                let t = timed(&mut f);
                (t, c.as_secs_f64() / t.as_secs_f64())
            })
            .unzip();
        self.line(path, median(times), median(ratios));
    }

    fn line(&self, path: &str, t: Duration, ratio: f64) {
        let rate = self.n as f64 / t.as_secs_f64();
        println!(
            "{:<44} {:>6} {:>11.3} us {:>9.0} Melem/s {:>7.2}x {}",
            path,
            self.size_label,
            t.as_secs_f64() * 1e6,
            rate / 1e6,
            ratio,
            self.baseline
        );
    }

    /// The copy's own line.
    fn copy_line(&mut self, path: &str) {
        (self.copy)();
        let times = (0..self.reps).map(|_| timed(&mut self.copy)).collect();
        self.line(path, median(times), 1.0);
    }
}

fn bench_type<T: Element>(
    sizes: &[(usize, &str)],
    reps: usize,
    full: bool,
    filter: &Option<String>,
) {
    let fmt = FixedPoint::new(8, 5).unwrap();
    let saturate = fmt.with_overflow(Overflow::Saturate).unwrap();
    for &(n, label) in sizes {
        let src: Vec<T> = inputs(n);
        let mut dst: Vec<T> = vec![T::from_f64(0.0); n];
        let mut mask = vec![false; n];
        let mut copy_dst = dst.clone();
        let mut report = Report {
            size_label: label.to_string(),
            copy: Box::new(|| copy(black_box(&src), &mut copy_dst)),
            baseline: "copy",
            n,
            reps: if n >= 1 << 20 { reps } else { reps * 20 },
            filter: filter.clone(),
        };
        report.copy_line(&format!("{} copy", T::NAME));
        let into = |f: &FixedPoint, r: Rounding, dst: &mut [T]| {
            f.quantize_into(black_box(&src), dst, r).unwrap()
        };
        report.run(
            &format!("{} into nearest saturate-symmetric", T::NAME),
            || into(&fmt, Rounding::NearestEven, &mut dst),
        );
        report.run(&format!("{} into nearest saturate", T::NAME), || {
            into(&saturate, Rounding::NearestEven, &mut dst)
        });
        report.run(&format!("{} into stochastic", T::NAME), || {
            into(&fmt, Rounding::Stochastic { seed: 1 }, &mut dst)
        });
        let mut buf = src.clone();
        report.run(&format!("{} in place nearest", T::NAME), || {
            fmt.quantize_in_place(&mut buf, Rounding::NearestEven)
        });
        report.run(&format!("{} into nearest with mask", T::NAME), || {
            fmt.quantize_into_with_mask(&src, &mut dst, &mut mask, Rounding::NearestEven)
                .unwrap()
        });
        for (name, float) in [
            ("e4m3fn", FloatFormat::E4M3FN),
            ("bfloat16", FloatFormat::BFLOAT16),
        ] {
            report.run(&format!("{} into float {name} nearest", T::NAME), || {
                float
                    .quantize_into(black_box(&src), &mut dst, Rounding::NearestEven)
                    .unwrap();
            });
            report.run(&format!("{} into float {name} stochastic", T::NAME), || {
                float
                    .quantize_into(black_box(&src), &mut dst, Rounding::Stochastic { seed: 1 })
                    .unwrap();
            });
        }
        if !full {
            continue;
        }
        for r in Rounding::DETERMINISTIC.into_iter().skip(1) {
            report.run(&format!("{} into {r} saturate", T::NAME), || {
                into(&saturate, r, &mut dst)
            });
        }
        for o in [
            Overflow::SaturateZero,
            Overflow::Wrap { sat_bits: 0 },
            Overflow::Wrap { sat_bits: 2 },
            Overflow::WrapSignMagnitude { sat_bits: 0 },
            Overflow::WrapSignMagnitude { sat_bits: 1 },
            Overflow::Unbounded,
        ] {
            let f = fmt.with_overflow(o).unwrap();
            report.run(&format!("{} into nearest {o}", T::NAME), || {
                into(&f, Rounding::NearestEven, &mut dst)
            });
        }
    }
}

/// The crossbar's periphery against the per-tensor fixed-point kernel (into a buffer, nearest)
/// on the same data, a `4096 x (n / 4096)` matrix: per-slice fractional lengths (given, or
/// chosen from the data), the ADC model, and rounding to grids and tables of levels.
fn bench_periphery(sizes: &[(usize, &str)], reps: usize, filter: &Option<String>) {
    use xbquant::{Blocks, Converter, ConverterRange, FracLengthRule, Grid, Levels};
    let fmt = FixedPoint::new(8, 5).unwrap();
    for &(n, label) in sizes {
        let rows = 4096.min(n);
        let shape = vec![rows, n / rows];
        let src: Vec<f32> = inputs(n);
        let mut dst = vec![0f32; n];
        let mut base_dst = dst.clone();
        let mut report = Report {
            size_label: label.to_string(),
            copy: Box::new(|| {
                fmt.quantize_into(black_box(&src), &mut base_dst, Rounding::NearestEven)
                    .unwrap();
            }),
            baseline: "per-tensor",
            n,
            reps: if n >= 1 << 20 { reps } else { reps * 20 },
            filter: filter.clone(),
        };
        for axis in [0, 1] {
            let blocks = Blocks::Axis {
                shape: shape.clone(),
                axis,
            };
            let fls: Vec<i32> = (0..shape[axis]).map(|j| 3 + (j % 4) as i32).collect();
            report.run(&format!("f32 per-axis {axis} given fl"), || {
                fmt.quantize_slices_into(
                    &src,
                    &mut dst,
                    None,
                    &blocks,
                    &fls,
                    Rounding::NearestEven,
                )
                .unwrap();
            });
            report.run(&format!("f32 per-axis {axis} fl auto"), || {
                let fls = fmt
                    .choose_frac_lengths(&src, &blocks, FracLengthRule::Max)
                    .unwrap();
                fmt.quantize_slices_into(
                    &src,
                    &mut dst,
                    None,
                    &blocks,
                    &fls,
                    Rounding::NearestEven,
                )
                .unwrap();
            });
        }
        let columns = Blocks::Axis {
            shape: shape.clone(),
            axis: 1,
        };
        let adc = Converter::new(8).unwrap();
        report.run("f32 adc 8 bits per-column abs-max", || {
            adc.convert_into(&src, &mut dst, None, &columns, &ConverterRange::AbsMax)
                .unwrap();
        });
        let grid = Grid::new(1.0 / 255.0, -1.0, Some(511)).unwrap();
        report.run("f32 grid step 1/255 nearest", || {
            grid.quantize_into(&src, &mut dst, Rounding::NearestEven)
                .unwrap();
        });
        let table = Levels::new((0..64).map(|k| f64::from(k * k) / 400.0 - 5.0).collect()).unwrap();
        report.run("f32 levels 64 nearest", || {
            table
                .quantize_into(&src, &mut dst, Rounding::NearestEven)
                .unwrap();
        });
        report.run("f32 levels 64 stochastic", || {
            table
                .quantize_into(&src, &mut dst, Rounding::Stochastic { seed: 1 })
                .unwrap();
        });
    }
}

/// An instruction set by name (`avx512`, `avx2`, `baseline`), for `--isa`.
///
/// # Errors
///
/// A message naming the accepted names.
pub fn parse_isa(name: &str) -> Result<InstructionSet, String> {
    match name.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
        "avx512" | "x8664v4" | "v4" => Ok(InstructionSet::Avx512),
        "avx2" | "x8664v3" | "v3" => Ok(InstructionSet::Avx2),
        "baseline" | "scalar" | "sse2" => Ok(InstructionSet::Baseline),
        _ => Err(format!(
            "unknown instruction set {name:?}: expected avx512, avx2 or baseline"
        )),
    }
}

/// Runs the benchmark: `quick` for fewer repetitions and sizes, `filter` to keep only the paths
/// whose name contains it. The kernels run with [`xbquant::instruction_set`], printed first
/// (limit it with [`xbquant::set_max_instruction_set`]). (`xbquant bench` runs this same code.)
pub fn run(quick: bool, filter: Option<String>) {
    let reps = if quick { 5 } else { 15 };
    println!(
        "instruction set: {} (this CPU: {})",
        instruction_set(),
        xbquant::detected_instruction_set()
    );
    println!(
        "threads: {}; medians of {reps} calls (x20 below 1M elements), each after a copy; format ap_fixed<8,3>, 16M inputs ~40% saturating",
        rayon::current_num_threads()
    );
    let sizes: &[(usize, &str)] = if quick {
        &[(1 << 10, "1K"), (1 << 20, "1M"), (1 << 24, "16M")]
    } else {
        &[
            (1 << 10, "1K"),
            (1 << 16, "64K"),
            (1 << 20, "1M"),
            (1 << 24, "16M"),
        ]
    };
    bench_type::<f32>(sizes, reps, true, &filter);
    bench_type::<f64>(sizes, reps, !quick, &filter);
    bench_periphery(&sizes[sizes.len() - 2..], reps, &filter);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_sets_parse_by_name() {
        assert_eq!(parse_isa("avx2"), Ok(InstructionSet::Avx2));
        assert_eq!(parse_isa("AVX-512"), Ok(InstructionSet::Avx512));
        assert_eq!(parse_isa("x86-64-v3"), Ok(InstructionSet::Avx2));
        assert_eq!(parse_isa("baseline"), Ok(InstructionSet::Baseline));
        assert!(parse_isa("neon")
            .unwrap_err()
            .contains("avx512, avx2 or baseline"));
    }

    #[test]
    fn median_takes_the_middle() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
    }
}
