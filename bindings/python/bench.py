"""Time the Python entry points on a large CPU tensor against `tensor.clone()` (one read and one
write of the same buffer, allocating its output, as quantization does), in one process.

    python bindings/python/bench.py [--elements N] [--repeats R] [--dtype float32] [--compiled]

Prints the median time of each and its ratio to the clone (below 1.0 = slower than a copy).
"""

import argparse
import statistics
import time

import torch

import xbquant
from xbquant.quantizers import fixed_point_quantize_wrapper

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=16 * 2**20)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    parser.add_argument("--compiled", action="store_true",
                        help="also time a training-style step (quantize, scale, ADC) eager and under torch.compile")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    x = (torch.randn(args.elements) * 4).to(dtype)
    cases = {
        "tensor.clone()": lambda: x.clone(),
        "fixed_point_quantize_wrapper(x, 8, 5)": lambda: fixed_point_quantize_wrapper(x, 8, 5),
        "  ... rounding='stochastic'": lambda: fixed_point_quantize_wrapper(x, 8, 5, rounding="stochastic"),
        "fixed_point_quantize(x, 8, 5) (stochastic)": lambda: xbquant.fixed_point_quantize(x, 8, 5),
        "quantize(x, 8, 5, overflow='wrap')": lambda: xbquant.quantize(x, 8, 5, overflow="wrap"),
        "x.requires_grad_() through the wrapper": None,
    }
    xg = x.clone().requires_grad_()
    cases["x.requires_grad_() through the wrapper"] = lambda: fixed_point_quantize_wrapper(xg, 8, 5)
    if args.compiled:
        def step(v):
            return xbquant.adc(fixed_point_quantize_wrapper(v, 8, 5) * 0.5, 8)

        compiled = torch.compile(step, fullgraph=True)
        cases["step: wrapper, scale, adc (eager)"] = lambda: step(x)
        cases["step: the same, torch.compile(fullgraph=True)"] = lambda: compiled(x)
        # A training step of xbquant.nn: 8-bit learned input step, 4-bit learned weight steps per
        # output channel, forward and backward; the batch holds about as many elements as x.
        from xbquant.nn import Quant, QuantLinear

        width = 256
        layer = QuantLinear(width, width, weight=Quant(4, channels=width, scale="learned"), input=8)
        batch = torch.randn(max(1, args.elements // width), width)
        layer(batch)

        def train_step(module):
            layer.zero_grad(set_to_none=True)
            module(batch).square().mean().backward()

        compiled_layer = torch.compile(layer, fullgraph=True)
        cases[f"QuantLinear({width}, {width}) step (eager)"] = lambda: train_step(layer)
        cases["  ... torch.compile(fullgraph=True)"] = lambda: train_step(compiled_layer)
        plain = torch.nn.Linear(width, width)
        cases[f"  ... torch.nn.Linear({width}, {width}) step"] = lambda: (plain.zero_grad(set_to_none=True), plain(batch).square().mean().backward())
    print(f"{args.elements:,} {args.dtype} elements, {torch.get_num_threads()} torch threads, "
          f"median of {args.repeats}")
    # Interleave the repeats so that a slow spell of a shared machine hits every case alike.
    timings = {name: [] for name in cases}
    for fn in cases.values():
        fn()
    for _ in range(args.repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - start)
    copy = statistics.median(timings["tensor.clone()"])
    for name, values in timings.items():
        t = statistics.median(values)
        over = (t - copy) * 1e6
        print(f"{name:45s} {t * 1e3:10.4f} ms   {copy / t:5.2f}x clone   {over:+10.1f} us over clone")

if __name__ == "__main__":
    main()
