#!/usr/bin/env python3
"""Reference outputs of QPyTorch 0.3.0's `block_quantize(x, wl, dim, "nearest")` (its CPU
kernel), for the Python tests of `xbquant.block_quantize` (bindings/python/tests/test_block.py).

    pip install qtorch==0.3.0 ninja    # QPyTorch compiles its C++ kernels at import
    python scripts/qpytorch-block-reference.py   # writes crates/xbquant/tests/data/qpytorch_block.npz

Cases: tensors of shape (6, 40) and (3, 4, 25) whose rows span many magnitudes, with grid
midpoints mixed in, for wl in 3, 4, 6, 8, 12 and dim -1, 0 and 1.
"""

from pathlib import Path

import numpy as np
import torch
from qtorch.quant import block_quantize

OUT = Path(__file__).resolve().parent.parent / "crates/xbquant/tests/data/qpytorch_block.npz"


def tensor(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2.0 ** rng.integers(-12, 12, shape[:1] + (1,) * (len(shape) - 1))
    # Some values on the midpoints of a coarse grid: ties for the small word lengths.
    flat = x.reshape(-1)
    flat[::7] = np.round(flat[::7] * 8) / 8 + 1 / 16
    return x.astype(np.float32)


def main():
    arrays = {}
    for s, shape in enumerate([(6, 40), (3, 4, 25)]):
        x = tensor(shape, s)
        arrays[f"x{s}"] = x
        for wl in (3, 4, 6, 8, 12):
            for dim in (-1, 0, 1):
                y = block_quantize(torch.from_numpy(x.copy()), wl, dim, "nearest").numpy()
                arrays[f"y{s}_{wl}_{dim}"] = y
    np.savez_compressed(OUT, **arrays)
    print(f"{len(arrays)} arrays -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
