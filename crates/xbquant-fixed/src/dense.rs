//! hls4ml's dense layer (`nnet::dense_latency`), bit for bit: the inputs, weights and biases
//! cast to their types, each product `x * w` (exact) cast to the accumulator's type, the
//! accumulator started at the bias cast to it, the products added in the order of the inputs
//! with the accumulator's overflow at every addition, and the sum cast to the result's type.

use crate::ty::{exact, value, FixedType};
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
}

/// The dense layer `y = x w^T + b` of `rows` input vectors `x` (each of `n`, row-major) and the
/// weight `w` (`out` rows of `n`, as `torch.nn.Linear`), with hls4ml's semantics and the types
/// of `types`: the result codes (each `code * 2^-types.result.frac()`), row-major, and the
/// overflows. Exact for every width up to 64 bits and every rounding and overflow mode.
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
///     "ap_fixed<8,4>", "ap_fixed<6,2>", "ap_fixed<6,2>",
///     "ap_fixed<10,6,AP_TRN,AP_SAT>", "ap_fixed<8,4,AP_TRN,AP_SAT>",
/// )?;
/// // Three products of 4.0 * 1.0 and a bias of 1.0: 13.0 fits the accumulator (up to
/// // 31.9375), but not the result (up to 7.9375): code 208 saturates at 127.
/// let (codes, overflows) = dense_codes(&[4.0f64; 3], 1, 3, &[1.0f64; 3], 1, Some(&[1.0]), &types)?;
/// assert_eq!(codes, [127]);
/// assert_eq!(overflows.results, [1]);
/// assert_eq!(overflows.accumulator(), 0);
/// # Ok::<(), xbquant_fixed::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn dense_codes<T: Copy + Into<f64>>(
    x: &[T],
    rows: usize,
    n: usize,
    w: &[T],
    out: usize,
    b: Option<&[T]>,
    types: &DenseTypes,
) -> Result<(Vec<i128>, Overflows), Error> {
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
    // The product's magnitude has the sum of the two words' magnitude bits.
    let bits = |t: &FixedType| t.width() - u32::from(t.signed());
    if bits(&types.input) + bits(&types.weight) > 127 {
        return Err(Error::InvalidType(
            format!("{} x {}", types.input.hls(), types.weight.hls()),
            "the product of two unsigned 64-bit words does not fit 127 bits".into(),
        ));
    }
    let mut overflows = Overflows {
        weights: vec![0; out],
        biases: vec![0; out],
        products: vec![0; out],
        accumulations: vec![0; out],
        results: vec![0; out],
        ..Overflows::default()
    };
    let codes =
        |values: &[T], ty: &FixedType, what: &'static str| -> Result<Vec<(i128, bool)>, Error> {
            values
                .iter()
                .map(|&v| {
                    let (code, frac) = exact(v.into()).ok_or(Error::NotFinite(what))?;
                    Ok(ty.cast(code, frac))
                })
                .collect()
        };
    let xs = codes(x, &types.input, "x")?;
    overflows.inputs = xs.iter().filter(|c| c.1).count() as u64;
    let ws = codes(w, &types.weight, "w")?;
    // The accumulator starts at the bias cast to its type (0 without one).
    let mut start = vec![0i128; out];
    if let Some(b) = b {
        for (j, (code, over)) in codes(b, &types.bias, "b")?.into_iter().enumerate() {
            let (acc, over_acc) = types.accum.cast(code, types.bias.frac());
            start[j] = acc;
            overflows.biases[j] = u64::from(over || over_acc);
        }
    }
    for (j, row) in ws.chunks(n.max(1)).enumerate().take(out) {
        overflows.weights[j] = row.iter().filter(|c| c.1).count() as u64;
    }
    let (product_frac, accum_frac) = (types.input.frac() + types.weight.frac(), types.accum.frac());
    let mut result = vec![0i128; rows * out];
    for r in 0..rows {
        let xr = &xs[r * n..(r + 1) * n];
        for j in 0..out {
            let wj = &ws[j * n..(j + 1) * n];
            let mut acc = start[j];
            for (&(xc, _), &(wc, _)) in xr.iter().zip(wj) {
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
pub fn dense<T: Copy + Into<f64>>(
    x: &[T],
    rows: usize,
    n: usize,
    w: &[T],
    out: usize,
    b: Option<&[T]>,
    types: &DenseTypes,
) -> Result<(Vec<f64>, Overflows), Error> {
    let (codes, overflows) = dense_codes(x, rows, n, w, out, b, types)?;
    let frac = types.result.frac();
    Ok((
        codes.into_iter().map(|c| value(c, frac)).collect(),
        overflows,
    ))
}
