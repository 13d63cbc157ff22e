#!/usr/bin/env python3
"""Every float32 input (all 2^32 bit patterns) through xbquant.quantize_float and through torch's
casts to float16, bfloat16, float8_e5m2 and float8_e4m3fn, compared bit for bit (NaN with NaN).
Takes a few minutes; prints the number of differences per format.

    python scripts/verify-float-casts.py      # needs torch and the xbquant package
"""

import sys
import time

import torch

import xbquant

FORMATS = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "e5m2": torch.float8_e5m2,
    "e4m3fn": torch.float8_e4m3fn,
}
CHUNK = 1 << 24


def main():
    names = sys.argv[1:] or list(FORMATS)
    start = time.time()
    for name in names:
        differ = 0
        for first in range(0, 1 << 32, CHUNK):
            bits = torch.arange(first, first + CHUNK, dtype=torch.int64).to(torch.int32)
            x = bits.view(torch.float32)
            ours = xbquant.quantize_float(x, name)
            torch_cast = x.to(FORMATS[name]).to(torch.float32)
            same = (ours.view(torch.int32) == torch_cast.view(torch.int32)) | (
                torch.isnan(ours) & torch.isnan(torch_cast)
            )
            differ += int((~same).sum())
        print(f"{name}: {differ} of 2^32 inputs differ ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
