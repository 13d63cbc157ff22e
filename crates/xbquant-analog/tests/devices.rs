//! XBTorch's device model: its write noise, stuck devices, drift coefficients, power-law drift
//! and read noise, by their statistics over many devices, and clear errors.

use xbquant_analog::{Error, XbtorchDevice};

fn moments(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[test]
fn write_noise_stuck_devices_drift_and_read_noise() {
    let n = 200_000;
    let device = XbtorchDevice {
        write_noise: 2.0,
        read_noise: 1.5,
        drift_coefficient: 0.05,
        drift_variation: 0.01,
        stuck_fraction: 0.1,
        ..XbtorchDevice::default()
    };
    let g = vec![75.0f64; n];
    let written = device.programming_noise(&g, 1).unwrap();
    let stuck: Vec<f64> = written
        .iter()
        .copied()
        .filter(|&v| v == 50.0 || v == 100.0)
        .collect();
    let free: Vec<f64> = written
        .iter()
        .copied()
        .filter(|&v| v != 50.0 && v != 100.0)
        .collect();
    // A tenth stuck (5.5 standard errors of a binomial), half of them high.
    let fraction = stuck.len() as f64 / n as f64;
    assert!(
        (fraction - 0.1).abs() < 5.5 * (0.1 * 0.9 / n as f64).sqrt(),
        "{fraction}"
    );
    let high = stuck.iter().filter(|&&v| v == 100.0).count() as f64 / stuck.len() as f64;
    assert!((high - 0.5).abs() < 0.02, "{high}");
    let (mean, std) = moments(&free);
    assert!(
        (mean - 75.0).abs() < 0.03 && (std - 2.0).abs() < 0.03,
        "{mean} {std}"
    );
    let nu = device.drift_coefficients(&g, 2).unwrap();
    let (nu_mean, nu_std) = moments(&nu);
    assert!(
        (nu_mean - 0.05).abs() < 2e-4 && (nu_std - 0.01).abs() < 2e-4,
        "{nu_mean} {nu_std}"
    );
    // Drift at t = 1000 t0 without read noise: g (1000)^-nu; read noise: uniform of half-width
    // 1.5 (standard deviation 1.5 / sqrt(3)).
    let quiet = XbtorchDevice {
        read_noise: 0.0,
        ..device.clone()
    };
    let drifted = quiet.drift(&g, &nu, 1000.0, 3).unwrap();
    for (d, n) in drifted.iter().zip(&nu).take(1000) {
        assert!((d - (75.0 * 1000f64.powf(-n)).clamp(50.0, 100.0)).abs() < 1e-12);
    }
    let flat = vec![0.0f64; n];
    let read = device.drift(&g, &flat, 1000.0, 3).unwrap();
    let (read_mean, read_std) = moments(&read);
    assert!((read_mean - 75.0).abs() < 0.01 && (read_std - 1.5 / 3f64.sqrt()).abs() < 0.01);
    assert!(read.iter().all(|&v| (73.5..=76.5).contains(&v)));
    // No drift at t = 0, and everything within [g_min, g_max].
    assert_eq!(quiet.drift(&g, &nu, 0.0, 3).unwrap(), g);
    assert!(written
        .iter()
        .chain(&read)
        .all(|&v| (50.0..=100.0).contains(&v)));
}

#[test]
fn bad_device_parameters_are_errors() {
    let g = [60.0f64];
    let base = XbtorchDevice::default();
    for (name, device) in [
        (
            "g_max",
            XbtorchDevice {
                g_max: 40.0,
                ..base.clone()
            },
        ),
        (
            "g_min",
            XbtorchDevice {
                g_min: -1.0,
                ..base.clone()
            },
        ),
        (
            "write_noise",
            XbtorchDevice {
                write_noise: f64::NAN,
                ..base.clone()
            },
        ),
        (
            "read_noise",
            XbtorchDevice {
                read_noise: -1.0,
                ..base.clone()
            },
        ),
        (
            "stuck_fraction",
            XbtorchDevice {
                stuck_fraction: 1.5,
                ..base.clone()
            },
        ),
        (
            "drift_t0",
            XbtorchDevice {
                drift_t0: 0.0,
                ..base.clone()
            },
        ),
        (
            "drift_coefficient",
            XbtorchDevice {
                drift_coefficient: f64::INFINITY,
                ..base.clone()
            },
        ),
    ] {
        match device.programming_noise(&g, 0) {
            Err(Error::InvalidParameter(field, _)) => assert_eq!(field, name),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(matches!(
        base.drift(&g, &g, -1.0, 0),
        Err(Error::InvalidParameter("t_inference", _))
    ));
    assert!(matches!(
        base.drift(&g, &[], 1.0, 0),
        Err(Error::ShapeMismatch(_))
    ));
}
