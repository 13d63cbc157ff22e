"""Makes the reference data of `bindings/python/tests/test_fixed.py`'s convolution test: hls4ml's
2-D convolution (`nnet::conv_2d_latency_cl`, the latency strategy, io_parallel) compiled with
`g++` and the `ap_types` headers of the hls4ml wheel, with the buffer-filling function hls4ml
generates for each layer made by hls4ml's own generator (`generate_conv2d_line_buffer_fn` and
`_compute_conv2d_im2col` of `backends/fpga/fpga_backend.py`, taken from the wheel's source), run on
seeded random data for a table of types, strides and paddings.

    pip download --no-deps hls4ml==1.3.0 -d /tmp/hls4ml && unzip -q /tmp/hls4ml/*.whl -d /tmp/hls4ml/wheel
    python scripts/hls4ml-conv-reference.py /tmp/hls4ml/wheel bindings/python/tests/data/hls4ml_conv2d.json.gz
"""

from __future__ import annotations

import ast
import gzip
import json
import pathlib
import subprocess
import sys
import tempfile
import types
from collections.abc import Iterable

import numpy as np


def generator(wheel: pathlib.Path):
    """hls4ml's buffer generator: its two methods, from the wheel's source, on a stand-in object."""
    source = (wheel / "hls4ml" / "backends" / "fpga" / "fpga_backend.py").read_text()
    tree = ast.parse(source)
    wanted = {"_compute_conv2d_im2col", "generate_conv2d_line_buffer_fn"}
    namespace: dict = {"np": np, "Iterable": Iterable}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in wanted:
            exec(compile(ast.Module([node], []), "fpga_backend.py", "exec"), namespace)
    backend = types.SimpleNamespace()
    backend._compute_conv2d_im2col = lambda *a, **k: namespace["_compute_conv2d_im2col"](backend, *a, **k)
    return lambda *a, **k: namespace["generate_conv2d_line_buffer_fn"](backend, *a, **k)


# (input, weight, bias, accum, result, C, H, W, F, kh, kw, stride, pad, spread)
CASES = [
    ("ap_fixed<16,6>", "ap_fixed<8,3>", "ap_fixed<8,3>", "ap_fixed<32,14>", "ap_fixed<16,6>", 3, 5, 6, 4, 3, 3, 1, 0, 0.9),
    ("ap_fixed<12,4>", "ap_fixed<6,2>", "ap_fixed<6,2>", "ap_fixed<10,4,AP_RND,AP_SAT>", "ap_fixed<10,4>", 4, 6, 5, 3, 3, 2, 2, 1, 1.1),
    ("ap_fixed<10,4>", "ap_fixed<6,2>", "ap_fixed<6,2>", "ap_fixed<11,5,AP_TRN,AP_WRAP>", "ap_fixed<10,5,AP_RND_CONV,AP_SAT>", 2, 7, 7, 5, 2, 2, 1, 1, 1.2),
    ("ap_ufixed<8,3>", "ap_fixed<8,2>", "ap_fixed<8,2>", "ap_fixed<12,6,AP_TRN,AP_SAT_SYM>", "ap_ufixed<8,4,AP_RND,AP_SAT>", 3, 4, 4, 2, 1, 3, 1, 1, 1.0),
]


def bounds(hls: str) -> tuple:
    signed = hls.startswith("ap_fixed")
    w, i = (int(v) for v in hls[hls.index("<") + 1 : -1].split(",")[:2])
    step = 2.0 ** (i - w)
    return (-(2.0 ** (i - 1)) if signed else 0.0, (2.0 ** (i - 1) if signed else 2.0**i) - step)


def source(index: int, case: tuple, fill: str, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> str:
    inp, wt, bs, acc, res, c, h, wd, f, kh, kw, stride, pad, _ = case
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    width = int(res[res.index("<") + 1 :].split(",")[0])

    def array(name: str, a: np.ndarray) -> str:
        return f"const double {name}[{a.size}] = {{" + ", ".join(repr(float(v)) for v in a.ravel()) + "};"

    fill = fill.replace(f"fill_buffer_{index}", f"fill_buffer_{index}")
    return f"""
namespace case{index} {{
{fill}
typedef {inp} input_t;
typedef {res} result_t;
struct mult : nnet::dense_config {{
    static const unsigned n_in = {kh * kw * c};
    static const unsigned n_out = {f};
    static const unsigned reuse_factor = 1;
    static const unsigned multiplier_limit = n_in * n_out;
    typedef {acc} accum_t;
    typedef {bs} bias_t;
    typedef {wt} weight_t;
    template <class x_T, class y_T> using product = nnet::product::mult<x_T, y_T>;
}};
struct config : nnet::conv2d_config {{
    static const unsigned pad_top = {pad}, pad_bottom = {pad}, pad_left = {pad}, pad_right = {pad};
    static const unsigned in_height = {h}, in_width = {wd}, n_chan = {c};
    static const unsigned filt_height = {kh}, filt_width = {kw};
    static const unsigned kernel_size = filt_height * filt_width;
    static const unsigned n_filt = {f};
    static const unsigned stride_height = {stride}, stride_width = {stride};
    static const unsigned out_height = {oh}, out_width = {ow};
    static const unsigned reuse_factor = 1;
    static const unsigned n_partitions = 1;
    static const unsigned n_pixels = out_height * out_width / n_partitions;
    template <class data_T, class CONFIG_T> using fill_buffer = fill_buffer_{index}<data_T, CONFIG_T>;
    typedef {acc} accum_t;
    typedef {bs} bias_t;
    typedef {wt} weight_t;
    typedef mult mult_config;
}};
{array("x", x)}
{array("w", w)}
{array("b", b)}
void run() {{
    static config::weight_t weights[{kh * kw * c * f}];
    static config::bias_t biases[{f}];
    // hls4ml's kernel (kh, kw, C, F): element ((ky * kw + kx) * C + c) * F + f is torch's w[f][c][ky][kx].
    for (int f = 0; f < {f}; f++)
        for (int ch = 0; ch < {c}; ch++)
            for (int ky = 0; ky < {kh}; ky++)
                for (int kx = 0; kx < {kw}; kx++)
                    weights[((ky * {kw} + kx) * {c} + ch) * {f} + f] = w[((f * {c} + ch) * {kh} + ky) * {kw} + kx];
    for (int f = 0; f < {f}; f++) biases[f] = b[f];
    for (int n = 0; n < 2; n++) {{
        static input_t data[{h * wd * c}];
        static result_t out[{oh * ow * f}];
        // Channels last: data[(y * W + x) * C + c] is torch's x[n][c][y][x].
        for (int ch = 0; ch < {c}; ch++)
            for (int y = 0; y < {h}; y++)
                for (int xx = 0; xx < {wd}; xx++)
                    data[(y * {wd} + xx) * {c} + ch] = x[((n * {c} + ch) * {h} + y) * {wd} + xx];
        nnet::conv_2d_latency_cl<input_t, result_t, config>(data, out, weights, biases);
        // Out: (OH, OW, F); printed in torch's order (N, F, OH, OW).
        for (int f = 0; f < {f}; f++)
            for (int p = 0; p < {oh * ow}; p++) {{
                ap_uint<{width}> bits = out[p * {f} + f].range({width} - 1, 0);
                std::cout << {index} << " " << bits.to_uint64() << "\\n";
            }}
    }}
}}
}}
"""


def main() -> None:
    wheel, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    vivado = wheel / "hls4ml" / "templates" / "vivado"
    generate = generator(wheel)
    rng = np.random.default_rng(2027)
    parts = ["#include <iostream>", '#include "nnet_utils/nnet_conv2d.h"', '#include "nnet_utils/nnet_conv2d_latency.h"']
    data = []
    for index, case in enumerate(CASES):
        inp, wt, bs, _, _, c, h, wd, f, kh, kw, stride, pad, spread = case
        lo, hi = (v * spread for v in bounds(inp))
        x = rng.uniform(lo, hi, size=(2, c, h, wd))
        lo, hi = (v * spread for v in bounds(wt))
        w = rng.uniform(lo, hi, size=(f, c, kh, kw))
        lo, hi = (v * spread for v in bounds(bs))
        b = rng.uniform(lo, hi, size=f)
        fill = generate(index, 1, h, wd, c, kernel=(kh, kw), stride=(stride, stride), pad=(pad, pad, pad, pad))
        parts.append(source(index, case, fill, x, w, b))
        data.append({"types": list(case[:5]), "stride": stride, "padding": pad, "x": x.tolist(), "w": w.tolist(), "b": b.tolist()})
    parts.append("int main() {" + " ".join(f"case{i}::run();" for i in range(len(CASES))) + " return 0; }")
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = pathlib.Path(tmp) / "conv.cpp", pathlib.Path(tmp) / "conv"
        src.write_text("\n".join(parts))
        subprocess.run(
            ["g++", "-std=c++14", "-O1", "-w", f"-I{vivado / 'ap_types'}", f"-I{vivado}", str(src), "-o", str(exe)],
            check=True,
        )
        lines = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    for i in range(0, len(lines), 2):
        data[int(lines[i])].setdefault("result_bits", []).append(int(lines[i + 1]))
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt") as fh:
        json.dump({"hls4ml": "1.3.0", "cases": data}, fh)
    print(f"{len(data)} cases, {sum(len(d['result_bits']) for d in data)} results -> {out}")


if __name__ == "__main__":
    main()
