"""Makes the reference data of `crates/xbquant-fixed/tests/widths.rs`: the accumulator type that
hls4ml 1.3.0's precision inference (`InferPrecisionTypes._infer_dense_precision`, from
`optimizer/passes/infer_precision.py`) gives a dense layer, for a table of input, weight and bias
types and layer sizes. It runs hls4ml's own function on a minimal layer object; of hls4ml it
imports only `model/types.py` and that pass (the rest of the package needs Keras and more).

    pip download --no-deps hls4ml==1.3.0 -d /tmp/hls4ml && unzip -q /tmp/hls4ml/*.whl -d /tmp/hls4ml/wheel
    python scripts/hls4ml-precision-reference.py /tmp/hls4ml/wheel crates/xbquant-fixed/tests/data/hls4ml_accum.json
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import pathlib
import sys
import types


def load(wheel: pathlib.Path):
    """hls4ml's types module and its precision pass, with stand-ins for the package around them."""
    for name in ("hls4ml", "hls4ml.model", "hls4ml.model.optimizer", "hls4ml.model.optimizer.passes"):
        sys.modules[name] = types.ModuleType(name)

    class Pass:
        def __init__(self, *args, **kwargs):
            pass

    sys.modules["hls4ml.model.optimizer"].ConfigurableOptimizerPass = Pass
    bit_exact = types.ModuleType("hls4ml.model.optimizer.passes.bit_exact")
    bit_exact.minimal_kif = None
    sys.modules["hls4ml.model.optimizer.passes.bit_exact"] = bit_exact

    def module(name: str, path: pathlib.Path):
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod

    root = wheel / "hls4ml" / "model"
    hls_types = module("hls4ml.model.types", root / "types.py")
    passes = module("hls4ml.model.optimizer.passes.infer_precision", root / "optimizer" / "passes" / "infer_precision.py")
    return hls_types, passes


class Weights:
    def __init__(self, nonzeros: int):
        self.nonzeros = nonzeros

    def update_precision(self, precision):
        pass


class Layer:
    """What `_infer_common_precision` reads of a dense layer."""

    def __init__(self, hls_types, x, w, b, n_in: int):
        named = hls_types.NamedType
        self.name = "fc1"
        self.attrs = {"n_in": n_in}
        self.types = {
            "weight_t": named("w", w),
            "bias_t": named("b", b),
            "accum_t": named("a", hls_types.UnspecifiedPrecisionType()),
            "result_t": named("r", hls_types.UnspecifiedPrecisionType()),
        }
        self.weights = {"weight": Weights(1), "bias": Weights(0 if b is None else 1)}
        self.input = types.SimpleNamespace(type=types.SimpleNamespace(precision=x))

    def get_attr(self, key, default=None):
        return self.attrs.get(key, default)

    def get_input_variable(self):
        return self.input


def main() -> None:
    wheel, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    hls_types, passes = load(wheel)
    fixed = hls_types.FixedPrecisionType
    pass_ = passes.InferPrecisionTypes()
    pass_.infer_no_bias = True
    pass_._get_maximum_precision = lambda node: None
    inputs = [(16, 6, True), (8, 3, True), (8, 3, False), (12, 12, True), (4, 1, False), (10, -2, True)]
    weights = [(8, 3, True), (6, 1, True), (4, 4, False), (16, 2, True)]
    biases = [None, (8, 3, True), (12, 6, False), (16, 10, True), (4, -1, True)]
    sizes = [1, 2, 3, 16, 17, 512, 1000]
    rows = []
    for x, w, b, n in itertools.product(inputs, weights, biases, sizes):
        bias = fixed(*b) if b is not None else fixed(8, 3, True)
        layer = Layer(hls_types, fixed(*x), fixed(*w), bias, n)
        if b is None:
            layer.weights["bias"].nonzeros = 0
        pass_._infer_dense_precision(layer, ["accum_t"])
        acc = layer.types["accum_t"].precision
        rows.append({"input": list(x), "weight": list(w), "bias": b and list(b), "n": n, "accum": [acc.width, acc.integer, acc.signed]})
    out.write_text(json.dumps({"hls4ml": "1.3.0", "cases": rows}, indent=None) + "\n")
    print(f"{len(rows)} cases -> {out}")


if __name__ == "__main__":
    main()
