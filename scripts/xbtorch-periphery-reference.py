#!/usr/bin/env python3
"""Reference outputs of XBTorch's crossbar periphery as it runs on QPyTorch 0.3.0, for
bindings/python/tests/test_periphery.py: the DAC and ADC of its SimpleFixedPoint accelerator
(src/xbtorch/deployment/base.py, "instant" input encoding) and the bit slices of its "linear"
input encoding, written out here as XBTorch defines them (the same calls with the same
arguments), with rounding="nearest" (XBTorch leaves QPyTorch's stochastic default; the nearest
case is the exact one to compare).

    pip install qtorch==0.3.0 ninja
    python scripts/xbtorch-periphery-reference.py   # writes crates/xbquant/tests/data/xbtorch_periphery.npz
"""

from pathlib import Path

import numpy as np
import torch
from qtorch.quant import fixed_point_quantize

OUT = Path(__file__).resolve().parent.parent / "crates/xbquant/tests/data/xbtorch_periphery.npz"


def converter(vector, bits):
    """SimpleFixedPoint.DAC_quantize ("instant") and ADC_quantize: the same formula."""
    max_val = torch.max(torch.abs(vector))
    return max_val * fixed_point_quantize(
        vector / max_val, wl=bits, fl=bits - 1, symmetric=True, rounding="nearest"
    )


def linear_slices(vector, bits):
    """SimpleFixedPoint.DAC_quantize with the "linear" input encoding."""
    max_val = torch.max(torch.abs(vector))
    normalized = torch.clamp(vector / max_val, -1.0, 1.0)
    levels = 2**bits - 1
    quantized = torch.round(normalized * levels)
    sign = torch.sign(quantized)
    mag = torch.abs(quantized).long()
    return torch.stack([sign * ((mag >> bit) & 1).float() * max_val for bit in range(bits)])


def main():
    g = torch.Generator().manual_seed(0)
    arrays = {}
    for bits in (2, 3, 4, 5, 8):
        v = torch.randn(32, 48, generator=g) * 0.4  # input voltages (a batch of vectors)
        i = torch.randn(32, 40, generator=g).abs() * 3e-5  # output currents
        arrays[f"v{bits}"], arrays[f"i{bits}"] = v.numpy(), i.numpy()
        arrays[f"dac{bits}"] = converter(v, bits).numpy()
        arrays[f"adc{bits}"] = converter(i, bits).numpy()
        arrays[f"linear{bits}"] = linear_slices(v, bits).numpy()
    np.savez_compressed(OUT, **arrays)
    print(f"{len(arrays)} arrays -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
