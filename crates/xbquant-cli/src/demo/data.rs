//! The embedded digits data set, its fixed split, and the random numbers of a run.

use std::io::Read;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

/// The UCI "Optical Recognition of Handwritten Digits" test set (CC BY 4.0): 64 pixels (0..16)
/// and a label per row. See `data/README.md`.
const DIGITS: &[u8] = include_bytes!("../../data/digits.csv.gz");
/// Images in the training part of the fixed split (the remaining 360 are the test set).
pub(super) const TRAIN: usize = 1437;
/// The seed of the fixed split (independent of `--seed`).
const SPLIT_SEED: u64 = 0x5EED_0D16;

/// The split, the initialisation and the batch order draw from the core's seed streams, so that
/// a run is reproducible from its seed alone.
pub(super) struct Rng(xbquant::SeedStream);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(xbquant::SeedStream::new(seed))
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0.next_seed()
    }

    /// Uniform in [lo, hi).
    pub(super) fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    pub(super) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

pub(super) struct Data {
    pub(super) train_x: Tensor,
    pub(super) train_y: Tensor,
    pub(super) test_x: Tensor,
    pub(super) test_y: Tensor,
}

pub(super) fn load_digits(device: &Device) -> Result<Data> {
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
    Rng::new(SPLIT_SEED).shuffle(&mut order);
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
