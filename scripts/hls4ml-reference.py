"""Makes the reference data of `crates/xbquant-fixed/tests/hls4ml.rs`: hls4ml's dense layer
(`nnet::dense_latency`, the latency strategy, with `nnet::product::mult`) compiled with `g++` and
the `ap_types` headers of the hls4ml wheel, run on seeded random data, for a table of types:
wrapping and saturating accumulators, every rounding of the result, signed and unsigned types,
widths up to 64 bits, layers up to 512 inputs.

    pip download --no-deps hls4ml==1.3.0 -d /tmp/hls4ml && unzip -q /tmp/hls4ml/*.whl -d /tmp/hls4ml/wheel
    python scripts/hls4ml-reference.py /tmp/hls4ml/wheel crates/xbquant-fixed/tests/data/hls4ml_dense.json.gz

Each case's result codes are the bits of each `res_T` value (its `W` bits as an unsigned
integer), so widths beyond `double`'s 53 bits compare exactly.
"""

from __future__ import annotations

import gzip
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

ROUNDINGS = ["AP_TRN", "AP_TRN_ZERO", "AP_RND", "AP_RND_ZERO", "AP_RND_MIN_INF", "AP_RND_INF", "AP_RND_CONV"]


def cases() -> list:
    """(input, weight, bias, accum, result, n_in, n_out, rows, spread): `spread` scales the random
    values against each type's range (above 1, casts of the inputs overflow too)."""
    table = [
        # hls4ml's defaults: a wide accumulator, nothing overflows.
        ("ap_fixed<16,6>", "ap_fixed<8,3>", "ap_fixed<8,3>", "ap_fixed<32,16>", "ap_fixed<16,6>", 16, 5, 4, 0.9),
        # Narrow wrapping accumulators: the order does not matter, the overflows do.
        ("ap_fixed<16,6>", "ap_fixed<8,3>", "ap_fixed<8,3>", "ap_fixed<12,4>", "ap_fixed<16,6>", 32, 6, 4, 0.9),
        ("ap_fixed<16,6>", "ap_fixed<8,3>", "ap_fixed<8,3>", "ap_fixed<14,6,AP_RND,AP_WRAP>", "ap_fixed<16,6>", 64, 4, 3, 1.3),
        # Saturating accumulators: the order matters.
        ("ap_fixed<16,6>", "ap_fixed<8,3>", "ap_fixed<8,3>", "ap_fixed<12,4,AP_TRN,AP_SAT>", "ap_fixed<16,6>", 32, 6, 4, 0.9),
        ("ap_fixed<10,4>", "ap_fixed<6,2>", "ap_fixed<6,2>", "ap_fixed<10,5,AP_RND_CONV,AP_SAT>", "ap_fixed<10,5>", 48, 5, 4, 1.2),
        ("ap_fixed<10,4>", "ap_fixed<6,2>", "ap_fixed<6,2>", "ap_fixed<11,5,AP_RND,AP_SAT_SYM>", "ap_fixed<10,5>", 40, 5, 4, 1.0),
        ("ap_fixed<10,4>", "ap_fixed<6,2>", "ap_fixed<6,2>", "ap_fixed<10,5,AP_TRN_ZERO,AP_SAT_ZERO>", "ap_fixed<10,5>", 24, 5, 4, 1.0),
        # Wraps with saturation bits and sign-magnitude wraps.
        ("ap_fixed<10,4>", "ap_fixed<6,2>", "ap_fixed<6,2>", "ap_fixed<10,5,AP_TRN,AP_WRAP,2>", "ap_fixed<10,5>", 24, 5, 4, 1.0),
        ("ap_fixed<10,4>", "ap_fixed<6,2>", "ap_fixed<6,2>", "ap_fixed<10,5,AP_TRN,AP_WRAP_SM>", "ap_fixed<10,5>", 24, 5, 4, 1.0),
        ("ap_fixed<10,4>", "ap_fixed<6,2>", "ap_fixed<6,2>", "ap_fixed<10,5,AP_RND,AP_WRAP_SM,1>", "ap_fixed<10,5,AP_RND,AP_WRAP_SM,2>", 24, 5, 4, 1.0),
        # Unsigned inputs (after a ReLU) and an unsigned result.
        ("ap_ufixed<8,3>", "ap_fixed<8,2>", "ap_fixed<8,2>", "ap_fixed<14,7,AP_TRN,AP_SAT>", "ap_ufixed<8,4,AP_RND,AP_SAT>", 32, 6, 4, 1.1),
        ("ap_ufixed<8,3,AP_RND,AP_SAT>", "ap_ufixed<6,1>", "ap_ufixed<6,1>", "ap_ufixed<12,6>", "ap_ufixed<8,5>", 32, 4, 3, 1.2),
        # Wide words: 32-bit inputs and weights, a 64-bit accumulator and result.
        ("ap_fixed<32,12>", "ap_fixed<32,4>", "ap_fixed<32,4>", "ap_fixed<64,24>", "ap_fixed<64,24>", 64, 4, 3, 0.9),
        ("ap_fixed<32,12>", "ap_fixed<32,4>", "ap_fixed<32,4>", "ap_fixed<64,18,AP_RND_CONV,AP_SAT>", "ap_fixed<48,18,AP_RND,AP_SAT>", 64, 4, 3, 0.9),
        ("ap_fixed<24,8>", "ap_fixed<20,2>", "ap_fixed<20,2>", "ap_fixed<40,12,AP_RND_MIN_INF,AP_WRAP>", "ap_fixed<24,10,AP_RND_ZERO,AP_SAT_SYM>", 128, 3, 3, 1.0),
        # A layer of 512 inputs.
        ("ap_fixed<16,6>", "ap_fixed<8,3>", "ap_fixed<8,3>", "ap_fixed<20,8,AP_TRN,AP_SAT>", "ap_fixed<16,8>", 512, 4, 2, 0.9),
        ("ap_fixed<16,6>", "ap_fixed<8,3>", "ap_fixed<8,3>", "ap_fixed<18,8>", "ap_fixed<16,8>", 512, 4, 2, 0.9),
    ]
    # Every rounding of the result (and of the products into an accumulator with fewer
    # fractional bits than they have).
    for q in ROUNDINGS:
        table.append(
            ("ap_fixed<12,4>", "ap_fixed<8,2>", "ap_fixed<8,2>", f"ap_fixed<16,8,{q},AP_SAT>", f"ap_fixed<8,5,{q},AP_SAT>", 20, 5, 4, 1.0)
        )
    return table


def bounds(hls: str) -> tuple:
    """The range of an HLS type string's values."""
    signed = hls.startswith("ap_fixed")
    w, i = (int(v) for v in hls[hls.index("<") + 1 : -1].split(",")[:2])
    step = 2.0 ** (i - w)
    return (-(2.0 ** (i - 1)) if signed else 0.0, (2.0 ** (i - 1) if signed else 2.0**i) - step)


def source(index: int, case: tuple, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> str:
    inp, wt, bs, acc, res, n, k, rows, _ = case
    width = int(res[res.index("<") + 1 :].split(",")[0])

    def array(name: str, a: np.ndarray) -> str:
        return f"const double {name}[{a.size}] = {{" + ", ".join(repr(float(v)) for v in a.ravel()) + "};"

    return f"""
namespace case{index} {{
typedef {inp} input_t;
typedef {res} result_t;
struct config : nnet::dense_config {{
    typedef {bs} bias_t;
    typedef {wt} weight_t;
    typedef {acc} accum_t;
    static const unsigned n_in = {n};
    static const unsigned n_out = {k};
    static const unsigned reuse_factor = 1;
    template <class x_T, class y_T> using product = nnet::product::mult<x_T, y_T>;
}};
{array("x", x)}
{array("w", w)}
{array("b", b)}
void run() {{
    static config::weight_t weights[{n} * {k}];
    static config::bias_t biases[{k}];
    // hls4ml's weights are (n_in, n_out): element ii * n_out + jj is torch's w[jj][ii].
    for (int ii = 0; ii < {n}; ii++)
        for (int jj = 0; jj < {k}; jj++) weights[ii * {k} + jj] = w[jj * {n} + ii];
    for (int jj = 0; jj < {k}; jj++) biases[jj] = b[jj];
    for (int r = 0; r < {rows}; r++) {{
        input_t data[{n}];
        result_t out[{k}];
        for (int ii = 0; ii < {n}; ii++) data[ii] = x[r * {n} + ii];
        nnet::dense_latency<input_t, result_t, config>(data, out, weights, biases);
        for (int jj = 0; jj < {k}; jj++) {{
            ap_uint<{width}> bits = out[jj].range({width} - 1, 0);
            std::cout << {index} << " " << bits.to_uint64() << "\\n";
        }}
    }}
}}
}}
"""


def main() -> None:
    wheel, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    vivado = wheel / "hls4ml" / "templates" / "vivado"
    rng = np.random.default_rng(2026)
    table = cases()
    data = []
    parts = ["#include <iostream>", '#include "nnet_utils/nnet_dense.h"']
    for index, case in enumerate(table):
        inp, wt, bs, _, _, n, k, rows, spread = case
        lo, hi = (v * spread for v in bounds(inp))
        x = rng.uniform(lo, hi, size=(rows, n))
        lo, hi = (v * spread for v in bounds(wt))
        w = rng.uniform(lo, hi, size=(k, n))
        lo, hi = (v * spread for v in bounds(bs))
        b = rng.uniform(lo, hi, size=k)
        parts.append(source(index, case, x, w, b))
        data.append({"types": list(case[:5]), "n": n, "out": k, "rows": rows, "x": x.ravel().tolist(), "w": w.ravel().tolist(), "b": b.tolist()})
    parts.append("int main() {" + " ".join(f"case{i}::run();" for i in range(len(table))) + " return 0; }")
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = pathlib.Path(tmp) / "dense.cpp", pathlib.Path(tmp) / "dense"
        src.write_text("\n".join(parts))
        subprocess.run(
            ["g++", "-std=c++14", "-O1", "-w", f"-I{vivado / 'ap_types'}", f"-I{vivado}", str(src), "-o", str(exe)],
            check=True,
        )
        lines = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    for i in range(0, len(lines), 2):
        data[int(lines[i])].setdefault("result_bits", []).append(int(lines[i + 1]))
    for d in data:
        assert len(d["result_bits"]) == d["rows"] * d["out"]
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt") as f:
        json.dump({"hls4ml": "1.3.0", "cases": data}, f)
    print(f"{len(data)} cases, {sum(len(d['result_bits']) for d in data)} results -> {out}")


if __name__ == "__main__":
    main()
