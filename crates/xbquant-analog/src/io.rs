//! The converters and their management around an analog tile: aihwkit's `IOParameters`, with its
//! field names and defaults, checked once when a tile is built.

use crate::Error;

/// How each input vector is scaled before the DAC (aihwkit's `NoiseManagementType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseManagement {
    /// No scaling.
    None,
    /// Each vector divided by its largest magnitude (at most `nm_thres` when that is above 0).
    #[default]
    AbsMax,
    /// Each vector divided by its largest value (at most `nm_thres` when that is above 0).
    Max,
    /// Every vector divided by `nm_thres` (1 when `nm_thres` is 0).
    Constant,
}

/// How the range is widened when outputs clip (aihwkit's `BoundManagementType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BoundManagement {
    /// Outputs clip at `out_bound`.
    None,
    /// While any output of the batch clips, the inputs are halved again and the product redone
    /// (aihwkit's torch tile: one decision for the whole batch).
    #[default]
    Iterative,
    /// The same, decided for each input vector on its own (aihwkit's C++ simulator).
    IterativePerVector,
}

/// Noise on the weights at each product (aihwkit's `WeightNoiseType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightNoise {
    /// No weight noise.
    #[default]
    None,
    /// Gaussian noise of standard deviation `w_noise` added to every weight at each product.
    AdditiveConstant,
}

/// The parameters of a tile's forward pass, as aihwkit's `IOParameters` names them, with its
/// defaults (`IoParameters::default()`): a 7-bit DAC (`inp_res = 1/126` of the range
/// `[-inp_bound, inp_bound] = [-1, 1]`) and a 9-bit ADC (`out_res = 1/510` of `[-12, 12]`), output
/// noise 0.06, absolute-maximum noise management and iterative bound management.
///
/// A resolution above 1 is a number of states (`inp_res = 256.0` is the same as `1/256`); a
/// resolution of 0 turns that converter's quantization off; a bound of 0 turns its clipping off
/// (an ADC with a resolution needs a bound: its steps are fractions of the range).
///
/// # Examples
///
/// ```
/// use xbquant_analog::IoParameters;
/// let io = IoParameters { out_noise: 0.0, ..IoParameters::default() };
/// assert_eq!(io.inp_res, 1.0 / 126.0);
/// io.check()?;
/// let bad = IoParameters { inp_bound: -1.0, ..io };
/// assert!(bad.check().is_err());
/// # Ok::<(), xbquant_analog::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IoParameters {
    /// An ideal product: no converters, no noise, no management.
    pub is_perfect: bool,
    /// The DAC's range `[-inp_bound, inp_bound]`; 0 or less: no clipping.
    pub inp_bound: f64,
    /// The DAC's step, as a fraction of the range `2 inp_bound` (or a number of states when
    /// above 1); 0: no quantization.
    pub inp_res: f64,
    /// Gaussian noise added to each input after the DAC, in units of the range's half.
    pub inp_noise: f64,
    /// Stochastic rounding in the DAC.
    pub inp_sto_round: bool,
    /// The ADC's range `[-out_bound, out_bound]`; 0 or less: no clipping.
    pub out_bound: f64,
    /// The ADC's step, as `inp_res` is the DAC's.
    pub out_res: f64,
    /// Gaussian noise added to each output before the ADC.
    pub out_noise: f64,
    /// Stochastic rounding in the ADC.
    pub out_sto_round: bool,
    /// A factor applied to every output after the ADC.
    pub out_scale: f64,
    /// The input vectors' scaling.
    pub noise_management: NoiseManagement,
    /// The threshold of noise management (see [`NoiseManagement`]).
    pub nm_thres: f64,
    /// The range's widening when outputs clip.
    pub bound_management: BoundManagement,
    /// Iterative bound management stops once the inputs have been divided by more than this.
    pub max_bm_factor: f64,
    /// It also stops once the division exceeds `max_bm_res` over the DAC's step.
    pub max_bm_res: f64,
    /// The weight noise's standard deviation.
    pub w_noise: f64,
    /// The weight noise's kind.
    pub w_noise_type: WeightNoise,
}

impl Default for IoParameters {
    fn default() -> Self {
        IoParameters {
            is_perfect: false,
            inp_bound: 1.0,
            inp_res: 1.0 / 126.0,
            inp_noise: 0.0,
            inp_sto_round: false,
            out_bound: 12.0,
            out_res: 1.0 / 510.0,
            out_noise: 0.06,
            out_sto_round: false,
            out_scale: 1.0,
            noise_management: NoiseManagement::AbsMax,
            nm_thres: 0.0,
            bound_management: BoundManagement::Iterative,
            max_bm_factor: 1000.0,
            max_bm_res: 0.25,
            w_noise: 0.0,
            w_noise_type: WeightNoise::None,
        }
    }
}

impl IoParameters {
    /// Checks every field: finite numbers, noises and resolutions of 0 or more, a positive
    /// `max_bm_factor`, and a bound for each converter that quantizes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming the field.
    pub fn check(&self) -> Result<(), Error> {
        let fields = [
            ("inp_bound", self.inp_bound),
            ("inp_res", self.inp_res),
            ("inp_noise", self.inp_noise),
            ("out_bound", self.out_bound),
            ("out_res", self.out_res),
            ("out_noise", self.out_noise),
            ("out_scale", self.out_scale),
            ("nm_thres", self.nm_thres),
            ("max_bm_factor", self.max_bm_factor),
            ("max_bm_res", self.max_bm_res),
            ("w_noise", self.w_noise),
        ];
        for (name, v) in fields {
            if !v.is_finite() {
                return Err(Error::InvalidParameter(
                    name,
                    format!("must be finite, got {v}"),
                ));
            }
        }
        for (name, v) in [
            ("inp_res", self.inp_res),
            ("out_res", self.out_res),
            ("inp_noise", self.inp_noise),
            ("out_noise", self.out_noise),
            ("nm_thres", self.nm_thres),
            ("w_noise", self.w_noise),
            ("inp_bound", self.inp_bound),
            ("out_bound", self.out_bound),
            ("max_bm_res", self.max_bm_res),
        ] {
            if v < 0.0 {
                return Err(Error::InvalidParameter(
                    name,
                    format!("must be 0 or more, got {v}"),
                ));
            }
        }
        if self.max_bm_factor <= 0.0 {
            return Err(Error::InvalidParameter(
                "max_bm_factor",
                format!("must be above 0, got {}", self.max_bm_factor),
            ));
        }
        // A step is a fraction of the range: without a bound it would be 0 (aihwkit divides by
        // it and returns NaN).
        if self.inp_res > 0.0 && self.inp_bound == 0.0 {
            return Err(Error::InvalidParameter(
                "inp_bound",
                "must be above 0 when inp_res quantizes the inputs".into(),
            ));
        }
        if self.out_res > 0.0 && self.out_bound == 0.0 {
            return Err(Error::InvalidParameter(
                "out_bound",
                "must be above 0 when out_res quantizes the outputs".into(),
            ));
        }
        if self.w_noise > 0.0 && self.w_noise_type == WeightNoise::None {
            return Err(Error::InvalidParameter(
                "w_noise_type",
                "w_noise is above 0: choose AdditiveConstant".into(),
            ));
        }
        Ok(())
    }

    /// The DAC's or ADC's step: `res` (a fraction, or a number of states when above 1) of the
    /// range `2 bound`, computed as aihwkit's `UniformQuantize` does; `None` when `res` is 0.
    pub(crate) fn step(res: f64, bound: f64) -> Option<f64> {
        if res <= 0.0 {
            return None;
        }
        let res = if res > 1.0 { 1.0 / res } else { res };
        Some(res * (2.0 * bound))
    }
}
