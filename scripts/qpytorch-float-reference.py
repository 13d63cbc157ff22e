#!/usr/bin/env python3
"""Reference outputs of QPyTorch 0.3.0's `float_quantize(x, exp, man, "nearest")` (its CPU
kernel), for the tests of `FloatFormat::without_specials` (crates/xbquant/tests/float.rs).

    pip install qtorch==0.3.0 ninja    # QPyTorch compiles its C++ kernels at import
    python scripts/qpytorch-float-reference.py   # writes crates/xbquant/tests/data/qpytorch_float.bin.gz

Inputs (float32): 8,000 bit patterns spread over every sign and exponent, values around each
format's grid (every value, the midpoints to the next, and their float32 neighbours, both
signs), zeros, infinities and NaN.

File layout (little-endian, gzip-compressed): b"XBQP", u32 F (formats), then per format u32 exp,
u32 man, u32 N, N u32 input bit patterns and N u32 output bit patterns.
"""

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from qtorch.quant import float_quantize

FORMATS = [(2, 2), (3, 1), (3, 4), (4, 3), (5, 2), (5, 10), (6, 5), (8, 7)]
OUT = Path(__file__).resolve().parent.parent / "crates/xbquant/tests/data/qpytorch_float.bin.gz"


def grid(exp, man):
    """Every positive value of QPyTorch's format (no special values), as float64."""
    bias = 2 ** (exp - 1) - 1
    values = []
    for field in range(2**exp):
        for mant in range(2**man):
            frac = mant / 2**man
            values.append(frac * 2.0 ** (1 - bias) if field == 0 else (1 + frac) * 2.0 ** (field - bias))
    return values


def inputs(exp, man):
    rng = np.random.default_rng(exp * 100 + man)
    spread = rng.integers(0, 2**32, 8_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    values = grid(exp, man)
    # Keep float32-representable values (8 exponent bits reach past float32).
    values = [v for v in values if v < 3.0e38]
    if len(values) > 2000:
        values = values[:500] + values[-500:] + values[500:-500:53]
    around = []
    for a, b in zip(values, values[1:]):
        mid = np.float32((a + b) / 2)
        around += [a, mid, np.nextafter(mid, np.float32(0)), np.nextafter(mid, np.float32(np.inf))]
    around = np.array(around, dtype=np.float32)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=np.float32)
    return np.concatenate([spread, around, -around, specials]).astype(np.float32)


def main():
    blob = [b"XBQP", struct.pack("<I", len(FORMATS))]
    for exp, man in FORMATS:
        x = inputs(exp, man)
        y = float_quantize(torch.from_numpy(x.copy()), exp, man, "nearest").numpy()
        blob += [struct.pack("<III", exp, man, len(x)), x.view(np.uint32).astype("<u4").tobytes(),
                 y.view(np.uint32).astype("<u4").tobytes()]
    OUT.write_bytes(gzip.compress(b"".join(blob), compresslevel=9, mtime=0))
    print(f"{len(FORMATS)} formats -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
