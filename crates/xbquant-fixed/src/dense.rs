//! hls4ml's dense layer (`nnet::dense_latency`), bit for bit: the inputs, weights and biases
//! cast to their types, each product `x * w` (exact) cast to the accumulator's type, the
//! accumulator started at the bias cast to it, the products added in the order of the inputs
//! with the accumulator's overflow at every addition, and the sum cast to the result's type.

use xbquant::Element;

use crate::ty::{value, FixedType};
use crate::Error;

/// The five types of a dense layer, as hls4ml's configuration names them: `input` (the layer's
/// `data_T`), `weight`, `bias`, `accum` and `result`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenseTypes {
    /// The inputs' type.
    pub input: FixedType,
    /// The weights' type.
    pub weight: FixedType,
    /// The biases' type.
    pub bias: FixedType,
    /// The accumulator's type: each product is cast to it, and each addition overflows in it.
    pub accum: FixedType,
    /// The result's type.
    pub result: FixedType,
}

impl DenseTypes {
    /// The types of five HLS type strings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidType`] naming the first string that is not a supported type.
    pub fn parse(
        input: &str,
        weight: &str,
        bias: &str,
        accum: &str,
        result: &str,
    ) -> Result<DenseTypes, Error> {
        Ok(DenseTypes {
            input: FixedType::parse(input)?,
            weight: FixedType::parse(weight)?,
            bias: FixedType::parse(bias)?,
            accum: FixedType::parse(accum)?,
            result: FixedType::parse(result)?,
        })
    }
}

/// How many casts overflowed in a layer, per output channel (each vector of length `out`):
/// where the overflow mode changed a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overflows {
    /// Inputs whose cast to the input type overflowed (per layer: an input feeds every channel).
    pub inputs: u64,
    /// Weights whose cast overflowed, per output channel.
    pub weights: Vec<u64>,
    /// Biases whose cast (to the bias type, then to the accumulator's) overflowed, per channel.
    pub biases: Vec<u64>,
    /// Products whose cast to the accumulator overflowed, per output channel (over the batch).
    pub products: Vec<u64>,
    /// Additions in the accumulator that overflowed, per output channel (over the batch).
    pub accumulations: Vec<u64>,
    /// Results whose cast to the result type overflowed, per output channel (over the batch).
    pub results: Vec<u64>,
}

impl Overflows {
    /// The overflows of the accumulator (products and additions), summed over the channels.
    #[must_use]
    pub fn accumulator(&self) -> u64 {
        self.products.iter().chain(&self.accumulations).sum()
    }

    /// The counts of the operands' casts (whether each input and weight cast overflowed, `n`
    /// weights per output, and the bias's start per output), the others zero.
    fn of_operands(x_over: &[bool], w_over: &[bool], start: &[(i128, bool)], n: usize) -> Self {
        let out = start.len();
        let count = |over: &[bool]| over.iter().filter(|&&o| o).count() as u64;
        Overflows {
            inputs: count(x_over),
            weights: if n == 0 {
                vec![0; out]
            } else {
                w_over.chunks(n).take(out).map(count).collect()
            },
            biases: start.iter().map(|&(_, o)| u64::from(o)).collect(),
            products: vec![0; out],
            accumulations: vec![0; out],
            results: vec![0; out],
        }
    }
}

/// A layer's data: `rows` input vectors `x` of `n`, the weight `w` (`out` rows of `n`), the bias.
#[derive(Clone, Copy)]
struct Layer<'a, T> {
    x: &'a [T],
    rows: usize,
    n: usize,
    w: &'a [T],
    out: usize,
    b: Option<&'a [T]>,
}

impl<'a, T> Layer<'a, T> {
    fn new(x: &'a [T], rows: usize, n: usize, w: &'a [T], out: usize, b: Option<&'a [T]>) -> Self {
        Layer {
            x,
            rows,
            n,
            w,
            out,
            b,
        }
    }
}

/// A layer's operands as codes of their types: the checked shapes, and each cast's overflow.
struct Operands {
    x: Vec<i128>,
    x_over: Vec<bool>,
    w: Vec<i128>,
    w_over: Vec<bool>,
    /// The accumulator's first value per output: the bias cast to its type, then to the
    /// accumulator's (0 without a bias), and whether either cast overflowed.
    start: Vec<(i128, bool)>,
}

fn operands<T: Element>(layer: &Layer<'_, T>, types: &DenseTypes) -> Result<Operands, Error> {
    let Layer { x, w, out, b, .. } = *layer;
    check(layer, types)?;
    let (x, x_over) = types.input.cast_all(x, "x")?;
    let (w, w_over) = types.weight.cast_all(w, "w")?;
    Ok(Operands {
        x,
        x_over,
        w,
        w_over,
        start: start(b, out, types)?,
    })
}

/// The accumulator's first value per output: the bias cast to its type, then to the
/// accumulator's (0 without a bias), and whether either cast overflowed.
fn start<T: Element>(
    b: Option<&[T]>,
    out: usize,
    types: &DenseTypes,
) -> Result<Vec<(i128, bool)>, Error> {
    Ok(match b {
        Some(b) => {
            let (codes, over) = types.bias.cast_all(b, "b")?;
            codes
                .into_iter()
                .zip(over)
                .map(|(c, o)| {
                    let (acc, o_acc) = types.accum.cast(c, types.bias.frac());
                    (acc, o || o_acc)
                })
                .collect()
        }
        None => vec![(0, false); out],
    })
}

/// The shapes, and the product's width.
fn check<T>(layer: &Layer<'_, T>, types: &DenseTypes) -> Result<(), Error> {
    let Layer {
        x,
        rows,
        n,
        w,
        out,
        b,
    } = *layer;
    for (what, len, a, c) in [("x", x.len(), rows, n), ("w", w.len(), out, n)] {
        if Some(len) != a.checked_mul(c) {
            return Err(Error::ShapeMismatch(format!(
                "{what} holds {len} values, not {a} x {c}"
            )));
        }
    }
    if let Some(b) = b {
        if b.len() != out {
            return Err(Error::ShapeMismatch(format!(
                "b holds {} values, not {out}",
                b.len()
            )));
        }
    }
    // The result's `rows x out` codes (16 bytes each) must be a size a buffer can have: with no
    // inputs per output, the shapes alone can ask for more.
    if rows
        .checked_mul(out)
        .is_none_or(|cells| cells > isize::MAX as usize / 16)
    {
        return Err(Error::ShapeMismatch(format!(
            "a result of {rows} x {out} codes is larger than any buffer"
        )));
    }
    // The product's magnitude has the sum of the two words' magnitude bits.
    let bits = |t: &FixedType| t.width() - u32::from(t.signed());
    if bits(&types.input) + bits(&types.weight) > 127 {
        return Err(Error::InvalidType(
            format!("{} x {}", types.input.hls(), types.weight.hls()),
            "the product of two unsigned 64-bit words does not fit 127 bits".into(),
        ));
    }
    Ok(())
}

/// The dense layer `y = x w^T + b` of `rows` input vectors `x` (each of `n`, row-major) and the
/// weight `w` (`out` rows of `n`, as `torch.nn.Linear`), with hls4ml's semantics and the types
/// of `types`: the result codes (each `code * 2^-types.result.frac()`), row-major. Exact for
/// every width up to 64 bits and every rounding and overflow mode. A wrapping accumulator that
/// holds the products exactly takes integer dot products, vectorized and on threads (the order
/// cannot change a wrapped sum); [`dense_with_overflows`] also counts the overflows.
///
/// # Errors
///
/// [`Error::ShapeMismatch`] when a buffer does not hold its shape; [`Error::NotFinite`] for NaN
/// or infinite values; [`Error::InvalidType`] when an input and a weight are so wide that their
/// product does not fit 127 bits (two unsigned 64-bit words).
///
/// # Examples
///
/// ```
/// use xbquant_fixed::{dense_codes, DenseTypes};
/// let types = DenseTypes::parse(
///     "ap_fixed<8,4>", "ap_fixed<6,2>", "ap_fixed<6,2>", "ap_fixed<10,6>", "ap_fixed<8,4>",
/// )?;
/// // Three products of 4.0 * 1.0 and a bias of 1.0: 13.0 in the accumulator; the result wraps
/// // (up to 7.9375): code 208 at 4 fractional bits becomes 208 - 256.
/// let codes = dense_codes(&[4.0f64; 3], 1, 3, &[1.0f64; 3], 1, Some(&[1.0]), &types)?;
/// assert_eq!(codes, [-48]);
/// # Ok::<(), xbquant_fixed::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn dense_codes<T: Element>(
    x: &[T],
    rows: usize,
    n: usize,
    w: &[T],
    out: usize,
    b: Option<&[T]>,
    types: &DenseTypes,
) -> Result<Vec<i128>, Error> {
    let layer = Layer::new(x, rows, n, w, out, b);
    if let Some(values) = fast(&layer, types)? {
        let scale = 2f64.powi(types.result.frac());
        return Ok(values.into_iter().map(|v| (v * scale) as i128).collect());
    }
    let Some(lanes) = crate::wrap::lanes(types) else {
        return dense_with_overflows(x, rows, n, w, out, b, types).map(|(codes, _)| codes);
    };
    // A wrapping accumulator or result too wide for f64's values: the codes in integers.
    check(&layer, types)?;
    let xc = types.input.codes(x, "x", |v| v)?;
    let wc = types.weight.codes(w, "w", |v| v)?;
    let start = start(b, out, types)?;
    let sums = crate::wrap::sums(&xc, rows, n, &wc, out, lanes);
    let (accum, result) = (&types.accum, &types.result);
    let shift = accum.frac() - (types.input.frac() + types.weight.frac());
    Ok(sums
        .iter()
        .enumerate()
        .map(|(e, &s)| {
            let acc = at_step(s, shift).wrapping_add(start[e % out.max(1)].0 as i64);
            let (acc, _) = accum.cast(i128::from(acc), accum.frac());
            result.cast(acc, accum.frac()).0
        })
        .collect())
}

/// The fast path's values: a wrapping accumulator that holds the products exactly, with the
/// accumulator and the result at most 53 bits wide (their values exact in `f64`): the integer
/// dot products, the bias, one wrap, and the result's cast by the core's vectorized
/// quantization. None where it does not apply.
fn fast<T: Element>(layer: &Layer<'_, T>, types: &DenseTypes) -> Result<Option<Vec<f64>>, Error> {
    let Layer {
        x,
        rows,
        n,
        w,
        out,
        b,
    } = *layer;
    let (accum, result) = (&types.accum, &types.result);
    let Some(lanes) = crate::wrap::lanes(types) else {
        return Ok(None);
    };
    if accum.width() > 53 || result.width() > 53 {
        return Ok(None);
    }
    check(layer, types)?;
    let sums = if lanes == crate::wrap::Lanes::Wide {
        let xc = types.input.codes(x, "x", |v| v)?;
        let wc = types.weight.codes(w, "w", |v| v)?;
        crate::wrap::sums(&xc, rows, n, &wc, out, lanes)
    } else {
        let xc = types.input.codes(x, "x", |v| v as i16)?;
        let wc = types.weight.codes(w, "w", |v| v as i16)?;
        crate::wrap::narrow_sums(&xc, rows, n, &wc, out, lanes)
    };
    let start: Vec<i64> = start(b, out, types)?
        .into_iter()
        .map(|(c, _)| c as i64)
        .collect();
    let shift = accum.frac() - (types.input.frac() + types.weight.frac());
    // The accumulator's wrap: its low W bits, sign-extended when signed.
    let spare = 64 - accum.width();
    let signed = accum.signed();
    let step = 2f64.powi(-accum.frac());
    let accumulator = |e: usize, s: i64| {
        let acc = at_step(s, shift)
            .wrapping_add(start[e % out.max(1)])
            .wrapping_shl(spare);
        let acc = if signed {
            acc >> spare
        } else {
            ((acc as u64) >> spare) as i64
        };
        acc as f64 * step
    };
    Ok(Some(cast_values(result, &sums, accumulator)))
}

/// A sum of products `s` (modulo `2^64`) at the accumulator's step, `shift` bits finer than the
/// products' (`0 <= shift`; all 64 bits shifted out beyond 63).
fn at_step(s: i64, shift: i32) -> i64 {
    if shift < 64 {
        s.wrapping_shl(shift as u32)
    } else {
        0
    }
}

/// The accumulators' values `value(e, sums[e])` cast to `result` by the core's vectorized
/// quantization, in pieces through a small buffer.
fn cast_values<S: Copy + Sync>(
    result: &FixedType,
    sums: &[S],
    value: impl Fn(usize, S) -> f64 + Sync,
) -> Vec<f64> {
    use rayon::prelude::*;
    let mut values = vec![0.0f64; sums.len()];
    const PIECE: usize = 1 << 16;
    sums.par_chunks(PIECE)
        .zip(values.par_chunks_mut(PIECE))
        .enumerate()
        .for_each(|(p, (piece, dst))| {
            let buffer: Vec<f64> = piece
                .iter()
                .enumerate()
                .map(|(k, &s)| value(p * PIECE + k, s))
                .collect();
            result
                .spec()
                .quantize_into(&buffer, dst)
                .expect("the same lengths");
        });
    values
}

/// [`dense_codes`], each step as hls4ml takes it, with the overflows counted: where the
/// accumulator saturates the order matters, and this is hls4ml's (the inputs in turn, from the
/// bias).
///
/// # Errors
///
/// As [`dense_codes`].
///
/// # Examples
///
/// ```
/// use xbquant_fixed::{dense_with_overflows, DenseTypes};
/// let types = DenseTypes::parse(
///     "ap_fixed<8,4>", "ap_fixed<6,2>", "ap_fixed<6,2>",
///     "ap_fixed<10,6,AP_TRN,AP_SAT>", "ap_fixed<8,4,AP_TRN,AP_SAT>",
/// )?;
/// // 13.0 fits the accumulator (up to 31.9375), not the result (up to 7.9375): code 208
/// // saturates at 127.
/// let (codes, overflows) =
///     dense_with_overflows(&[4.0f64; 3], 1, 3, &[1.0f64; 3], 1, Some(&[1.0]), &types)?;
/// assert_eq!(codes, [127]);
/// assert_eq!(overflows.results, [1]);
/// assert_eq!(overflows.accumulator(), 0);
/// # Ok::<(), xbquant_fixed::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn dense_with_overflows<T: Element>(
    x: &[T],
    rows: usize,
    n: usize,
    w: &[T],
    out: usize,
    b: Option<&[T]>,
    types: &DenseTypes,
) -> Result<(Vec<i128>, Overflows), Error> {
    let layer = Layer::new(x, rows, n, w, out, b);
    if let Some(word) = crate::steps::Word::of(types) {
        return vectorized(&layer, types, word);
    }
    let ops = operands(&layer, types)?;
    let mut overflows = Overflows::of_operands(&ops.x_over, &ops.w_over, &ops.start, n);
    let (product_frac, accum_frac) = (types.input.frac() + types.weight.frac(), types.accum.frac());
    let mut result = vec![0i128; rows * out];
    for r in 0..rows {
        let xr = &ops.x[r * n..(r + 1) * n];
        for j in 0..out {
            let wj = &ops.w[j * n..(j + 1) * n];
            let mut acc = ops.start[j].0;
            for (&xc, &wc) in xr.iter().zip(wj) {
                let (p, over_p) = types.accum.cast(xc * wc, product_frac);
                overflows.products[j] += u64::from(over_p);
                let (sum, over_s) = types.accum.cast(acc + p, accum_frac);
                overflows.accumulations[j] += u64::from(over_s);
                acc = sum;
            }
            let (y, over_y) = types.result.cast(acc, accum_frac);
            overflows.results[j] += u64::from(over_y);
            result[r * out + j] = y;
        }
    }
    Ok((result, overflows))
}

/// [`dense_codes`] as values, `f64` (exact for results of up to 53 significant bits).
///
/// # Errors
///
/// As [`dense_codes`].
pub fn dense<T: Element>(
    x: &[T],
    rows: usize,
    n: usize,
    w: &[T],
    out: usize,
    b: Option<&[T]>,
    types: &DenseTypes,
) -> Result<Vec<f64>, Error> {
    let layer = Layer::new(x, rows, n, w, out, b);
    if let Some(values) = fast(&layer, types)? {
        return Ok(values);
    }
    if let Some(word) = crate::steps::Word::of(types) {
        if types.result.width() <= 53 {
            // The accumulators step by step, their values cast by the core's quantization.
            let (acc, _) = stepped(&layer, types, word)?;
            let step = 2f64.powi(-types.accum.frac());
            return Ok(cast_values(&types.result, &acc, |_, a| f64::from(a) * step));
        }
    }
    let codes = dense_codes(x, rows, n, w, out, b, types)?;
    let frac = types.result.frac();
    Ok(codes.into_iter().map(|c| value(c, frac)).collect())
}

/// [`dense_with_overflows`] for an accumulator of at most 30 bits (the products shifted, floored
/// or rounded up into it): the steps in 32-bit lanes over the outputs (`crate::steps`).
fn vectorized<T: Element>(
    layer: &Layer<'_, T>,
    types: &DenseTypes,
    word: crate::steps::Word,
) -> Result<(Vec<i128>, Overflows), Error> {
    let (acc, mut overflows) = stepped(layer, types, word)?;
    let (accum_frac, out) = (types.accum.frac(), layer.out);
    let codes = acc
        .iter()
        .enumerate()
        .map(|(e, &a)| {
            let (y, over) = types.result.cast(i128::from(a), accum_frac);
            overflows.results[e % out.max(1)] += u64::from(over);
            y
        })
        .collect();
    Ok((codes, overflows))
}

/// The accumulators after the last input (`rows x out`), step by step in 32-bit lanes, and the
/// overflows of every step but the results' casts.
fn stepped<T: Element>(
    layer: &Layer<'_, T>,
    types: &DenseTypes,
    word: crate::steps::Word,
) -> Result<(Vec<i32>, Overflows), Error> {
    let Layer {
        x,
        rows,
        n,
        w,
        out,
        b,
    } = *layer;
    check(layer, types)?;
    let (xc, x_over) = types.input.codes_with_overflows(x, "x")?;
    let (wc, w_over) = types.weight.codes_with_overflows(w, "w")?;
    let start = start(b, out, types)?;
    let first: Vec<i32> = start.iter().map(|&(c, _)| c as i32).collect();
    let (acc, counts) = crate::steps::accumulate(&xc, rows, n, &wc, out, &first, word);
    let overflows = Overflows {
        products: counts.products,
        accumulations: counts.accumulations,
        ..Overflows::of_operands(&x_over, &w_over, &start, n)
    };
    Ok((acc, overflows))
}
