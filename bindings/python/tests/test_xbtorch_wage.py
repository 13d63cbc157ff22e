"""XBTorch's WAGE quantizers (QW, QG and WAGEQuantizer of src/xbtorch/quant/wage_qtorch.py) and
its SimpleFixedPoint ADC/DAC (src/xbtorch/deployment/base.py), called as XBTorch calls them, on
the `qtorch` companion: the same bits as on QPyTorch 0.3.0 (data from
scripts/xbtorch-wage-reference.py), with rounding "nearest"."""

import numpy as np
import torch
from conftest import DATA

from qtorch import FixedPoint
from qtorch.quant import fixed_point_quantize, quantizer


def shift(x):
    return x / 2.0 ** torch.ceil(torch.log2(x.abs().max()))


def qw(x, bits, scale=1.0):
    y = fixed_point_quantize(x, wl=bits, fl=bits - 1, clamp=True, symmetric=True, rounding="nearest")
    return y / scale if scale > 1.8 else y


def qg(x, bits, lr):
    lr = lr / (2.0 ** (bits - 1))
    return fixed_point_quantize(
        lr * shift(x), wl=bits, fl=bits - 1, clamp=False, symmetric=True, rounding="nearest"
    )


def wage(bits_a, bits_e):
    def number(b):
        return FixedPoint(wl=b, fl=b - 1, clamp=True, symmetric=True)

    return quantizer(
        forward_number=number(bits_a),
        forward_rounding="nearest",
        backward_number=number(bits_e),
        backward_rounding="nearest",
        clamping_grad_zero=True,
        backward_hooks=[shift],
    )


def converter(v, bits):
    top = torch.max(v)
    return top * fixed_point_quantize(v / top, wl=bits, fl=bits - 1, symmetric=True, rounding="nearest")


def test_wage_quantizers_match_qpytorch():
    data = np.load(DATA / "xbtorch_wage.npz")
    for bits in (2, 4, 8):
        x = torch.from_numpy(data[f"x{bits}"])
        grad = torch.from_numpy(data[f"grad{bits}"])
        assert np.array_equal(qw(x, bits).numpy(), data[f"qw{bits}"]), bits
        assert np.array_equal(qw(x, bits, scale=2.5).numpy(), data[f"qw_scaled{bits}"]), bits
        assert np.array_equal(qg(grad, bits, lr=1.0).numpy(), data[f"qg{bits}"]), bits
        a = x.clone().requires_grad_(True)
        y = wage(bits, bits)(a)
        y.backward(grad)
        assert np.array_equal(y.detach().numpy(), data[f"wage_y{bits}"]), bits
        assert np.array_equal(a.grad.numpy(), data[f"wage_grad{bits}"]), bits
        v = torch.from_numpy(data[f"v{bits}"])
        assert np.array_equal(converter(v, bits).numpy(), data[f"converter{bits}"]), bits
