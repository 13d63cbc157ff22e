"""Low-precision floating point from Python: torch's casts reproduced, numpy arrays and every
tensor dtype, stochastic rounding's noise, and the torch path of other devices (run here on CPU
tensors forced through it) equal to the kernels."""

import numpy as np
import pytest
import torch

import xbquant
from xbquant import _schemes, _torch_ops

CASTS = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "e5m2": torch.float8_e5m2,
    "e4m3fn": torch.float8_e4m3fn,
}


def sample():
    torch.manual_seed(0)
    bits = torch.randint(-(2**31), 2**31, (200_000,), dtype=torch.int64).to(torch.int32)
    x = bits.view(torch.float32)
    edges = torch.tensor(
        [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 448.0, 464.0, 470.0, 480.0,
         57344.0, 61440.0, 65504.0, 65520.0, 2.0**-9, 2.0**-10, 1.5 * 2.0**-17, 3.0e38],
        dtype=torch.float32,
    )
    scaled = torch.randn(100_000) * torch.exp2(torch.randint(-30, 20, (100_000,)).float())
    return torch.cat([x, edges, -edges, scaled])


def same(a, b):
    return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())


@pytest.mark.parametrize("name", list(CASTS))
def test_nearest_equals_torch_casts(name):
    x = sample()
    want = x.to(CASTS[name]).to(torch.float32)
    assert same(xbquant.quantize_float(x, name), want)
    assert same(xbquant.quantize_float(x, "float8_" + name if "e" in name[:2] else name), want)
    got = xbquant.quantize_float(x.numpy(), name)
    assert same(torch.from_numpy(got), want)
    # float64 input gives the same values for float32-exact inputs.
    assert same(xbquant.quantize_float(x.double(), name).float(), want)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_every_tensor_dtype_and_strides(dtype):
    x = (torch.randn(64, 33) * 30).to(dtype)
    q = xbquant.quantize_float(x.t(), "e4m3fn")
    assert q.dtype == dtype and q.shape == x.t().shape
    want = x.t().float().to(torch.float8_e4m3fn).float().to(dtype)
    assert same(q.float(), want.float())


def test_stochastic_is_reproducible_and_unbiased():
    x = torch.full((50_000,), 1.0 / 3.0, dtype=torch.float64)
    a = xbquant.quantize_float(x, "e5m2", rounding="stochastic", seed=4)
    b = xbquant.quantize_float(x, "e5m2", rounding="stochastic", seed=4)
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) == {0.3125, 0.375}
    p = (1 / 3 - 0.3125) / 0.0625
    sigma = 0.0625 * (p * (1 - p) / len(x)) ** 0.5
    assert abs(a.mean().item() - 1 / 3) < 4 * sigma
    torch.manual_seed(1)
    c = xbquant.quantize_float(x, "e5m2", rounding="stochastic")
    torch.manual_seed(1)
    d = xbquant.quantize_float(x, "e5m2", rounding="stochastic")
    assert torch.equal(c, d) and not torch.equal(a, c)


@pytest.mark.parametrize("name", ["e4m3fn", "e5m2", "bfloat16", "e3m2", "e3m2fn"])
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
@pytest.mark.parametrize("overflow", [None, "saturate", "infinity"])
def test_torch_path_equals_the_kernels(name, rounding, overflow):
    x = sample().double()
    seed = 7 if rounding == "stochastic" else None
    spec = _schemes.floating(name, rounding, overflow, seed)
    kernels = xbquant.quantize_float(x, name, rounding=rounding, overflow=overflow, seed=seed)
    torch_path = _torch_ops.quantize_float(x, spec, spec.seed)
    assert same(kernels, torch_path)
    x32 = x.float()
    assert same(
        xbquant.quantize_float(x32, name, rounding=rounding, overflow=overflow, seed=seed),
        _torch_ops.quantize_float(x32, spec, spec.seed),
    )


def test_errors():
    x = torch.ones(3)
    for bad in ["float32", "e9m2", "e4m0", "e4"]:
        with pytest.raises(ValueError):
            xbquant.quantize_float(x, bad)
    with pytest.raises(ValueError, match="floor"):
        xbquant.quantize_float(x, "e5m2", rounding="floor")
    with pytest.raises(ValueError, match="seed"):
        xbquant.quantize_float(x, "e5m2", seed=3)
    with pytest.raises(ValueError):
        xbquant.quantize_float(x, "e5m2", overflow="wrap")
    with pytest.raises(ValueError):
        xbquant.quantize_float(x, (5, 2, 1))
    with pytest.raises(TypeError):
        xbquant.quantize_float(torch.ones(3, dtype=torch.int32), "e5m2")
    assert xbquant.quantize_float(np.float32(0.3), (4, 3)) == np.float32(0.3125)


def test_qpytorch_float_quantize_and_floating_point():
    # QPyTorch's format: no values reserved, so e2m2 reaches 7; overflow saturates.
    x = torch.tensor([0.3, 5.4, 100.0, float("inf"), -0.1, float("nan")])
    q = xbquant.float_quantize(x, 2, 2, "nearest")
    assert q[:5].tolist() == [0.25, 5.0, 7.0, 7.0, -0.0] and torch.isnan(q[5])
    # Ties to even (QPyTorch rounds 1 + 2**-11 away from zero, to 1 + 2**-10).
    assert xbquant.float_quantize(torch.tensor([1.0 + 2.0**-11]), 5, 10, "nearest").item() == 1.0
    # man = 23 keeps float32 values (QPyTorch flips signs there).
    y = torch.randn(1000)
    assert torch.equal(xbquant.float_quantize(y, 8, 23, "nearest"), y)
    # Stochastic by default, reproducible with a seed, and the same as quantize_float.
    a = xbquant.float_quantize(y, 4, 3, seed=5)
    assert torch.equal(a, xbquant.float_quantize(y, 4, 3, seed=5))
    assert torch.equal(a, xbquant.quantize_float(y, "e4m3nx", rounding="stochastic", seed=5))
    fp = xbquant.FloatingPoint(5, 2)
    assert repr(fp) == "FloatingPoint (exponent=5, mantissa=2)"
    assert fp == xbquant.FloatingPoint(5, 2) and fp != xbquant.FloatingPoint(5, 3)
    with pytest.raises(ValueError):
        xbquant.FloatingPoint(9, 2)
    with pytest.raises(ValueError):
        xbquant.float_quantize(y, 4, 0)


def test_quantizer_takes_floating_point():
    x = torch.tensor([0.3, 5.4, 100.0], requires_grad=True)
    q = xbquant.quantizer(
        xbquant.FloatingPoint(2, 2),
        xbquant.FloatingPoint(2, 1),
        forward_rounding="nearest",
        backward_rounding="nearest",
    )
    y = q(x)
    assert y.detach().tolist() == [0.25, 5.0, 7.0]
    y.backward(torch.tensor([0.3, 2.6, 9.0]))
    # The gradient rounded to e2m1 (values 0.5 steps below 2, max 6), straight through.
    assert x.grad.tolist() == [0.5, 3.0, 6.0]

    class QPyTorchLike:  # an object with QPyTorch's attributes
        exp, man = 3, 2

    assert xbquant.quantizer(QPyTorchLike(), forward_rounding="nearest")(torch.tensor([0.3])).item() == 0.3125
    with pytest.raises(ValueError, match="clamping_grad_zero"):
        xbquant.quantizer(xbquant.FloatingPoint(5, 2), clamping_grad_zero=True)
