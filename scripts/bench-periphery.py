#!/usr/bin/env python3
"""The crossbar periphery from Python, medians, side by side in one run:

- level tables: `xbquant.quantize_levels` against the brute-force search XBTorch writes
  (`levels[(x[:, None] - levels[None, :]).abs().argmin(1)]`, memory inputs x levels), 64 levels;
- per-axis fixed point: `xbquant.quantize(w, 8, fl, axis=...)` against the per-tensor call on the
  same 4096 x 4096 float32 tensor;
- the ADC model per column against the per-tensor quantize call.

    python scripts/bench-periphery.py
"""
import time

import torch

import xbquant


def t(f, n=5):
    f()
    runs = []
    for _ in range(n):
        s = time.perf_counter()
        f()
        runs.append(time.perf_counter() - s)
    runs.sort()
    return runs[len(runs) // 2]


torch.manual_seed(0)
levels = torch.sort(torch.rand(64) * 100).values
print(f"threads {torch.get_num_threads()}")
for n in (1 << 20, 1 << 22):
    x = torch.rand(n) * 110 - 5
    ours = t(lambda: xbquant.quantize_levels(x, levels))
    brute = t(lambda: levels[(x[:, None] - levels[None, :]).abs().argmin(1)], 3)
    # The broadcast search rounds x - level in float32 and breaks ties to the lower index: it
    # differs where two levels are nearly (or exactly) equally near.
    differ = (xbquant.quantize_levels(x, levels) != levels[(x[:, None] - levels[None, :]).abs().argmin(1)]).sum()
    print(f"levels 64, {n >> 20}M: xbquant {ours * 1e3:.1f} ms, torch broadcast {brute * 1e3:.1f} ms: "
          f"{brute / ours:.1f}x ({int(differ)} near-tie elements differ)")
w = torch.randn(4096, 4096)
per_tensor = t(lambda: xbquant.quantize(w, 8, 5))
for axis in (0, 1):
    fls = xbquant.choose_fl(w, 8, axis=axis)
    given = t(lambda: xbquant.quantize(w, 8, fls, axis=axis))
    auto = t(lambda: xbquant.quantize(w, 8, "auto", axis=axis))
    print(f"per-axis {axis}: given fl {given * 1e3:.1f} ms ({per_tensor / given:.2f}x per-tensor), "
          f"fl auto {auto * 1e3:.1f} ms ({per_tensor / auto:.2f}x); per-tensor {per_tensor * 1e3:.1f} ms")
adc = t(lambda: xbquant.adc(w, 8, axis=1))
print(f"adc 8 bits per column: {adc * 1e3:.1f} ms ({per_tensor / adc:.2f}x per-tensor)")
