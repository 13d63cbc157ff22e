"""Times the analog tile's forward pass (`xbquant.analog.mvm`) against `torch.matmul` of the same
shapes and dtype, and against aihwkit's torch tile (`AnalogMVM.matmul`) when aihwkit can be
imported, in one process; medians of interleaved repeats.

    python scripts/bench-analog.py [--batch 256] [--size 512] [--repeats 21] [--isa avx2]
    PYTHONPATH=/tmp/aihwkit/aihwkit-1.2.0/src python scripts/bench-analog.py   # with aihwkit

Each case runs its repeats one after the other (``--interleave`` alternates the cases: torch's
OpenMP threads, still spinning after a torch call, then share the cores with ours). Prints each
median and its ratio to `torch.matmul` (the target: a 512 x 512 tile on a batch of 256
with the default IOParameters within 1.3x of it) and, for one input vector, the ratio of aihwkit's
time to ours.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from unittest import mock

# `--isa avx2`: what a machine without AVX-512 gets, for torch (MKL and its own kernels, which
# read these when they load) and for xbquant alike.
if "--isa" in sys.argv and sys.argv[sys.argv.index("--isa") + 1 :][:1] == ["avx2"]:
    os.environ["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"
    os.environ["ATEN_CPU_CAPABILITY"] = "avx2"

import torch  # noqa: E402

from xbquant import _xbquant  # noqa: E402
from xbquant.analog import IOParameters, mvm  # noqa: E402


def aihwkit_tile():
    """aihwkit's torch tile and its default IOParameters, or None where aihwkit is missing."""
    try:
        import aihwkit.simulator as simulator
    except ImportError:
        return None
    if "aihwkit.simulator.rpu_base" not in sys.modules:
        stand_in = mock.MagicMock()  # its compiled extension, which the torch tile does not use
        sys.modules["aihwkit.simulator.rpu_base"] = stand_in
        simulator.rpu_base = stand_in
    from aihwkit.simulator.parameters.io import IOParameters as AihwkitIO
    from aihwkit.simulator.tiles.analog_mvm import AnalogMVM

    return AnalogMVM, AihwkitIO()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--interleave", action="store_true", help="alternate the cases in each repeat")
    parser.add_argument("--isa", default="avx512", choices=["avx512", "avx2"], help="the widest vectors to use")
    args = parser.parse_args()
    isa = _xbquant.set_max_instruction_set(args.isa)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.size, dtype=dtype)
    one = x[:1].clone()
    w = torch.randn(args.size, args.size, dtype=dtype) * 0.05
    io = IOParameters()
    cases = {
        "torch.matmul": lambda: x @ w.T,
        "xbquant.analog.mvm (default IOParameters)": lambda: mvm(x, w, io, seed=1),
        "  ... noise off": lambda: mvm(x, w, IOParameters(out_noise=0.0), seed=1),
        "one vector: torch.matmul": lambda: one @ w.T,
        "one vector: xbquant.analog.mvm": lambda: mvm(one, w, io, seed=1),
    }
    tile = aihwkit_tile()
    if tile is not None:
        analog, their_io = tile
        cases["aihwkit AnalogMVM.matmul"] = lambda: analog.matmul(w, x, their_io, is_test=True)
        cases["one vector: aihwkit AnalogMVM.matmul"] = lambda: analog.matmul(w, one, their_io, is_test=True)
    timings = {name: [] for name in cases}
    for name, fn in cases.items():
        # Each case's repeats one after the other (warm caches, as in a loop of the same call);
        # `--interleave` alternates the cases instead.
        fn()
        if not args.interleave:
            for _ in range(args.repeats):
                start = time.perf_counter()
                fn()
                timings[name].append(time.perf_counter() - start)
    if args.interleave:
        for _ in range(args.repeats):
            for name, fn in cases.items():
                start = time.perf_counter()
                fn()
                timings[name].append(time.perf_counter() - start)
    median = {name: statistics.median(v) for name, v in timings.items()}
    print(f"batch {args.batch}, tile {args.size} x {args.size}, {args.dtype}, {torch.get_num_threads()} torch threads, "
          f"median of {args.repeats}; xbquant: {isa}, torch: {torch.backends.cpu.get_cpu_capability()}")
    for name, t in median.items():
        base = median["one vector: torch.matmul" if name.startswith("one vector") else "torch.matmul"]
        print(f"{name:45s} {t * 1e3:9.3f} ms   {t / base:6.2f}x matmul")
    if tile is not None:
        ratio = median["one vector: aihwkit AnalogMVM.matmul"] / median["one vector: xbquant.analog.mvm"]
        print(f"one vector: aihwkit's time / ours = {ratio:.2f}")


if __name__ == "__main__":
    main()
