#!/usr/bin/env python3
"""Reference outputs of XBTorch's WAGE quantizers (src/xbtorch/quant/wage_qtorch.py: QW, QG and
WAGEQuantizer) and of the ADC/DAC of its SimpleFixedPoint accelerator
(src/xbtorch/deployment/base.py) as they run on QPyTorch 0.3.0, for
bindings/python/tests/test_xbtorch_wage.py, which runs the same calls on the `qtorch` companion.

    pip install qtorch==0.3.0 ninja
    python scripts/xbtorch-wage-reference.py   # writes crates/xbquant/tests/data/xbtorch_wage.npz

The quantizers are written out here as XBTorch defines them (the same calls of `qtorch.quant`
with the same arguments), with rounding "nearest" (XBTorch's ADC/DAC leave QPyTorch's
stochastic default; the nearest case is the exact one to compare).
"""

from pathlib import Path

import numpy as np
import torch
from qtorch import FixedPoint
from qtorch.quant import fixed_point_quantize, quantizer

OUT = Path(__file__).resolve().parent.parent / "crates/xbquant/tests/data/xbtorch_wage.npz"


def shift(x):
    return x / 2.0 ** torch.ceil(torch.log2(x.abs().max()))


def qw(x, bits, scale=1.0):
    y = fixed_point_quantize(x, wl=bits, fl=bits - 1, clamp=True, symmetric=True, rounding="nearest")
    return y / scale if scale > 1.8 else y


def qg(x, bits, lr):
    x = shift(x)
    lr = lr / (2.0 ** (bits - 1))
    return fixed_point_quantize(lr * x, wl=bits, fl=bits - 1, clamp=False, symmetric=True, rounding="nearest")


def wage(bits_a, bits_e):
    number = lambda b: FixedPoint(wl=b, fl=b - 1, clamp=True, symmetric=True)  # noqa: E731
    return quantizer(forward_number=number(bits_a), forward_rounding="nearest",
                     backward_number=number(bits_e), backward_rounding="nearest",
                     clamping_grad_zero=True, backward_hooks=[shift])


def converter(v, bits):
    top = torch.max(v)
    return top * fixed_point_quantize(v / top, wl=bits, fl=bits - 1, symmetric=True, rounding="nearest")


def main():
    g = torch.Generator().manual_seed(0)
    arrays = {}
    for bits in (2, 4, 8):
        x = torch.randn(64, 32, generator=g) * 0.6
        grad = torch.randn(64, 32, generator=g) * 1e-3
        arrays[f"x{bits}"], arrays[f"grad{bits}"] = x.numpy(), grad.numpy()
        arrays[f"qw{bits}"] = qw(x, bits).numpy()
        arrays[f"qw_scaled{bits}"] = qw(x, bits, scale=2.5).numpy()
        arrays[f"qg{bits}"] = qg(grad, bits, lr=1.0).numpy()
        a = x.clone().requires_grad_(True)
        y = wage(bits, bits)(a)
        y.backward(grad)
        arrays[f"wage_y{bits}"], arrays[f"wage_grad{bits}"] = y.detach().numpy(), a.grad.numpy()
        v = torch.rand(256, generator=g) * 0.3
        arrays[f"v{bits}"], arrays[f"converter{bits}"] = v.numpy(), converter(v, bits).numpy()
    np.savez_compressed(OUT, **arrays)
    print(f"{len(arrays)} arrays -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
