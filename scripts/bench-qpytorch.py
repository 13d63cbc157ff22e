#!/usr/bin/env python3
"""Float and block quantization of a 16M-element float32 CPU tensor: xbquant against
`tensor.clone()` and against QPyTorch 0.3.0's CPU kernels, side by side in one run (medians).

    pip install qtorch==0.3.0 ninja   # QPyTorch compiles its C++ kernels at import
    python scripts/bench-qpytorch.py
"""
import time, torch, xbquant
from qtorch.quant import float_quantize as qf, block_quantize as qb
x = torch.randn(1 << 24)
def t(f, n=5):
    f(); best = []
    for _ in range(n):
        s = time.perf_counter(); f(); best.append(time.perf_counter() - s)
    best.sort(); return best[len(best)//2]
c = t(lambda: x.clone())
rows = [
 ("clone", c),
 ("xbquant.quantize_float e4m3fn nearest", t(lambda: xbquant.quantize_float(x, "e4m3fn"))),
 ("xbquant.float_quantize(4,3) nearest", t(lambda: xbquant.float_quantize(x, 4, 3, "nearest"))),
 ("xbquant.float_quantize(4,3) stochastic", t(lambda: xbquant.float_quantize(x, 4, 3))),
 ("xbquant.block_quantize(8) nearest", t(lambda: xbquant.block_quantize(x, 8, rounding="nearest"))),
 ("xbquant.block_quantize(8) stochastic", t(lambda: xbquant.block_quantize(x, 8))),
 ("qtorch float_quantize(4,3) nearest", t(lambda: qf(x, 4, 3, "nearest"), 3)),
 ("qtorch float_quantize(4,3) stochastic", t(lambda: qf(x, 4, 3, "stochastic"), 3)),
 ("qtorch block_quantize(8) nearest", t(lambda: qb(x, 8, -1, "nearest"), 3)),
]
for name, s in rows:
    print(f"{name:42s} {s*1e3:9.1f} ms   {c/s:5.2f}x clone")
w = x.view(4096, 4096)
rows = [
 ("xbquant.block_quantize(w, 8, 0) nearest", t(lambda: xbquant.block_quantize(w, 8, 0, "nearest"))),
 ("xbquant.block_quantize(w, 8, 1) nearest", t(lambda: xbquant.block_quantize(w, 8, 1, "nearest"))),
 ("xbquant.block_quantize(w, 8, 0) stochastic", t(lambda: xbquant.block_quantize(w, 8, 0))),
 ("xbquant.block_quantize(w, 8, block_size=32)", t(lambda: xbquant.block_quantize(w, 8, rounding="nearest", block_size=32))),
 ("qtorch block_quantize(w, 8, 0) nearest", t(lambda: qb(w, 8, 0, "nearest"), 3)),
 ("qtorch block_quantize(w, 8, 1) nearest", t(lambda: qb(w, 8, 1, "nearest"), 3)),
]
print("w: x as 4096 x 4096")
for name, s in rows:
    print(f"{name:42s} {s*1e3:9.1f} ms   {c/s:5.2f}x clone")
print("threads", torch.get_num_threads())
