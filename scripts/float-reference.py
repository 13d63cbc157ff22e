#!/usr/bin/env python3
"""Reference outputs of torch's casts to float16, bfloat16, float8_e5m2 and float8_e4m3fn, for
the floating-point tests of the core (crates/xbquant/tests/float.rs).

    python scripts/float-reference.py   # needs torch; writes crates/xbquant/tests/data/float_casts.bin.gz

Inputs (float32):
- 65,536 bit patterns spread over every sign and exponent (pattern i * 2^16 plus pseudo-random
  low bits);
- for each format, values around its grid: a representable value, the exact midpoint to the
  next one (a tie), and the float32 numbers just below and above that midpoint, with both signs:
  every value of the 8-bit formats; for float16 and bfloat16 every value of the lowest three and
  highest three binades and of the subnormals, and every 61st value elsewhere;
- zeros, infinities, NaN and the float32 extremes.

File layout (little-endian, gzip-compressed): b"XBQF", u32 N, N u32 input bit patterns, then for
each format in the order above N u32 bit patterns of `x.to(format).to(torch.float32)`.
"""

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

FORMATS = [torch.float16, torch.bfloat16, torch.float8_e5m2, torch.float8_e4m3fn]
OUT = Path(__file__).resolve().parent.parent / "crates/xbquant/tests/data/float_casts.bin.gz"


def grid_inputs(dtype):
    """Values around the positive finite grid of `dtype`, as float64."""
    bits = 8 if dtype in (torch.float8_e5m2, torch.float8_e4m3fn) else 16
    int_type = torch.uint8 if bits == 8 else torch.int16
    patterns = torch.arange(0, 1 << (bits - 1), dtype=torch.int64)
    values = patterns.to(int_type).view(dtype).to(torch.float64)
    values = values[torch.isfinite(values)].unique().sort().values
    values = values[values >= 0]
    if bits == 16:
        exponents = torch.frexp(values).exponent
        lowest, highest = exponents[1:].min(), exponents.max()
        keep = (exponents <= lowest + 2) | (exponents >= highest - 2)
        keep |= torch.arange(len(values)) % 61 == 0
        keep[0] = True
        keep_index = keep.nonzero().flatten()
    else:
        keep_index = torch.arange(len(values))
    out = []
    for i in keep_index.tolist():
        v = values[i].item()
        if i + 1 < len(values):
            nxt = values[i + 1].item()
        else:
            # Past the largest value: the next point of its binade's grid.
            nxt = v + (v - values[i - 1].item())
        mid = (v + nxt) / 2
        m32 = np.float32(mid)
        assert float(m32) == mid, (dtype, v, nxt)
        out += [v, mid, float(np.nextafter(m32, np.float32(0))), float(np.nextafter(m32, np.float32(np.inf)))]
    out = np.array(out, dtype=np.float32)
    return np.concatenate([out, -out])


def main():
    i = np.arange(1 << 16, dtype=np.uint64)
    spread = ((i << np.uint64(16)) | ((i * np.uint64(40503)) & np.uint64(0xFFFF))).astype(np.uint32)
    specials = np.array(
        [0.0, -0.0, np.inf, -np.inf, np.nan, np.finfo(np.float32).max, -np.finfo(np.float32).max,
         np.finfo(np.float32).tiny, 1e-45, -1e-45], dtype=np.float32)
    parts = [spread.view(np.float32), specials] + [grid_inputs(d) for d in FORMATS]
    inputs = np.concatenate(parts).astype(np.float32)
    x = torch.from_numpy(inputs.copy())
    blob = [b"XBQF", struct.pack("<I", len(inputs)), inputs.view(np.uint32).astype("<u4").tobytes()]
    for dtype in FORMATS:
        y = x.to(dtype).to(torch.float32).numpy()
        blob.append(y.view(np.uint32).astype("<u4").tobytes())
    OUT.write_bytes(gzip.compress(b"".join(blob), compresslevel=9, mtime=0))
    print(f"{len(inputs)} inputs -> {OUT} ({OUT.stat().st_size} bytes), torch {torch.__version__}")


if __name__ == "__main__":
    main()
