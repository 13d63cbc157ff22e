"""Times hls4ml's dense layer as `xbquant.fixed.linear` computes it, against `torch.matmul` in
float32 on the same shapes in the same process, and (with `--hls4ml WHEEL`) against hls4ml's C
simulation of the same layer: `nnet::dense_latency` compiled with `g++ -O2` and the wheel's
`ap_types` headers, timed inside the program.

    python scripts/bench-fixed.py [--batch 256] [--size 1024] [--repeats 11] [--isa avx2]
    python scripts/bench-fixed.py --hls4ml /tmp/hls4ml/wheel      # unzipped hls4ml 1.3.0 wheel

The layer: 16-bit inputs (`ap_fixed<16,6>`), 8-bit weights (`ap_fixed<8,3>`), and
- a wrapping accumulator, hls4ml's inferred type (`ap_fixed<34,19>` for 1,024 inputs);
- a saturating one, `ap_fixed<24,12,AP_RND,AP_SAT>` (the products rounded into it);
- the wrapping one with every step counted (`return_overflow=True`, a 24-bit accumulator).
Medians of the repeats, one case after the other.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

# `--isa avx2`: what a machine without AVX-512 gets, for torch (MKL and its own kernels read these
# when they load) and for xbquant alike.
if "--isa" in sys.argv and sys.argv[sys.argv.index("--isa") + 1 :][:1] == ["avx2"]:
    os.environ["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"
    os.environ["ATEN_CPU_CAPABILITY"] = "avx2"

import numpy as np  # noqa: E402
import torch  # noqa: E402

from xbquant import _xbquant, fixed  # noqa: E402

INPUT, WEIGHT = "ap_fixed<16,6>", "ap_fixed<8,3>"
SATURATING = "ap_fixed<24,12,AP_RND,AP_SAT>"
COUNTED = "ap_fixed<24,12>"


def median(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def c_simulation(wheel: pathlib.Path, x: np.ndarray, w: np.ndarray, accum: str) -> float:
    """Seconds of hls4ml's C simulation of the layer on the batch `x` (timed in the program)."""
    rows, n = x.shape
    out = w.shape[0]
    vivado = wheel / "hls4ml" / "templates" / "vivado"
    src = f"""
#include <chrono>
#include <cstdio>
#include <vector>
#include "nnet_utils/nnet_dense.h"
typedef {INPUT} input_t;
typedef {INPUT} result_t;
struct config : nnet::dense_config {{
    typedef {WEIGHT} bias_t;
    typedef {WEIGHT} weight_t;
    typedef {accum} accum_t;
    static const unsigned n_in = {n};
    static const unsigned n_out = {out};
    static const unsigned reuse_factor = 1;
    template <class x_T, class y_T> using product = nnet::product::mult<x_T, y_T>;
}};
int main() {{
    std::vector<double> x({rows} * {n}), w({out} * {n});
    std::FILE* f = std::fopen("data.bin", "rb");
    if (std::fread(x.data(), sizeof(double), x.size(), f) != x.size()) return 1;
    if (std::fread(w.data(), sizeof(double), w.size(), f) != w.size()) return 1;
    static config::weight_t weights[{n} * {out}];
    static config::bias_t biases[{out}];
    for (int ii = 0; ii < {n}; ii++)
        for (int jj = 0; jj < {out}; jj++) weights[ii * {out} + jj] = w[jj * {n} + ii];
    static input_t data[{n}];
    static result_t res[{out}];
    auto start = std::chrono::steady_clock::now();
    double check = 0;
    for (int r = 0; r < {rows}; r++) {{
        for (int ii = 0; ii < {n}; ii++) data[ii] = x[r * {n} + ii];
        nnet::dense_latency<input_t, result_t, config>(data, res, weights, biases);
        check += res[0].to_double();
    }}
    auto end = std::chrono::steady_clock::now();
    std::printf("%.6f %f\\n", std::chrono::duration<double>(end - start).count(), check);
    return 0;
}}
"""
    with tempfile.TemporaryDirectory() as tmp:
        d = pathlib.Path(tmp)
        (d / "dense.cpp").write_text(src)
        np.concatenate([x.ravel(), w.ravel()]).astype(np.float64).tofile(d / "data.bin")
        subprocess.run(
            ["g++", "-std=c++14", "-O2", "-w", f"-I{vivado / 'ap_types'}", f"-I{vivado}", "dense.cpp", "-o", "dense"],
            cwd=d,
            check=True,
        )
        # dense_latency keeps n_in * n_out accumulators on the stack.
        run = subprocess.run(["bash", "-c", "ulimit -s unlimited && ./dense"], cwd=d, check=True, capture_output=True, text=True)
    return float(run.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--isa", default="avx512", choices=["avx512", "avx2"])
    parser.add_argument("--hls4ml", type=pathlib.Path, help="an unzipped hls4ml wheel: time its C simulation too")
    parser.add_argument("--c-rows", type=int, default=8, help="rows of the batch the C simulation runs (scaled)")
    args = parser.parse_args()
    isa = _xbquant.set_max_instruction_set(args.isa)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.size, generator=g) * 4
    w = torch.randn(args.size, args.size, generator=g) * 0.3
    wrap = fixed.accum_type(INPUT, WEIGHT, args.size)
    cases = {
        "torch.matmul (float32)": lambda: x @ w.T,
        f"linear, wrapping {wrap}": lambda: fixed.linear(x, w, input=INPUT, weight=WEIGHT, result=INPUT),
        f"linear, saturating {SATURATING}": lambda: fixed.linear(
            x, w, input=INPUT, weight=WEIGHT, accum=SATURATING, result=INPUT
        ),
        f"linear, {COUNTED}, every step counted": lambda: fixed.linear(
            x, w, input=INPUT, weight=WEIGHT, accum=COUNTED, result=INPUT, return_overflow=True
        ),
    }
    times = {name: median(fn, args.repeats) for name, fn in cases.items()}
    print(
        f"batch {args.batch}, {args.size} x {args.size}, {torch.get_num_threads()} threads; xbquant: {isa}, "
        f"torch: {torch.backends.cpu.get_cpu_capability()}"
    )
    base = times["torch.matmul (float32)"]
    for name, t in times.items():
        print(f"{name:55s} {t * 1e3:10.2f} ms {t / base:8.2f}x matmul")
    if args.hls4ml is not None:
        rows = min(args.c_rows, args.batch)
        for accum, name in ((wrap, f"linear, wrapping {wrap}"), (SATURATING, f"linear, saturating {SATURATING}")):
            seconds = c_simulation(args.hls4ml, x[:rows].double().numpy(), w.double().numpy(), accum) * args.batch / rows
            print(f"hls4ml C simulation, {accum:35s} {seconds:10.2f} s (for {args.batch} rows, "
                  f"{rows} run)  {seconds / times[name]:8.0f}x ours")


if __name__ == "__main__":
    sys.exit(main())
