"""Hostile arguments, table-driven: every public function against a table of bad values per kind
of parameter. Each must raise the stated exception type (TypeError for a value of the wrong kind,
ValueError for one of the right kind out of range, never OverflowError, RuntimeError or a
crash) with a message that names the parameter."""

import math
import re

import numpy as np
import pytest
import torch

import xbquant
from xbquant import analog, fixed, nn, qonnx, quantizers

X = torch.tensor([[0.5, -0.25], [1.5, 0.125]])

# Bad values per kind of parameter: (value, exception).
INTEGER = [
    (True, TypeError),
    ("8", TypeError),
    ([8], TypeError),
    (None, TypeError),
    (8.5, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (10**20, ValueError),
    (-(10**20), ValueError),
    (2**64, ValueError),
]
COUNT = INTEGER + [(-3, ValueError), (0, ValueError)]  # a positive integer (bits, levels)
# quantize's fl: an integer, a method name, or one per slice (a one-element list is one slice).
FL = [(v, e) for v, e in INTEGER if v != "8" and v != [8]] + [("8", ValueError), ({}, ValueError)]
NUMBER = [
    ("0.1", TypeError),
    (True, TypeError),
    (None, TypeError),
    (1 + 1j, TypeError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (-math.inf, ValueError),
]
POSITIVE = NUMBER + [(-1.0, ValueError)]  # 0 or more (a range, a noise width)
# A range or scale: also "absmax" (so another string is a ValueError).
RANGE = [(v, e) for v, e in POSITIVE if v != "0.1"] + [("0.1", ValueError), ("bogus", ValueError)]
FLAG = [("no", TypeError), (1, TypeError), (None, TypeError), ([True], TypeError), (0.0, TypeError)]
NAME = [(["nearest"], TypeError), (5, TypeError), (None, TypeError), ("bogus", ValueError)]
SEED = [(True, TypeError), ("1", TypeError), (1.5, TypeError), (2**64, ValueError), (-(2**63) - 1, ValueError)]
AXIS = [(True, TypeError), ("0", TypeError), (1.0, TypeError), (5, ValueError), (-3, ValueError)]
# An HLS type string: another type, a string that is no type, a word this cannot compute.
HLS_TYPE = [(5, TypeError), (b"ap_fixed<8,3>", TypeError), ("float", ValueError), ("ap_fixed<8", ValueError),
            ("ap_fixed<65,3>", ValueError), ("ap_fixed<8,3,AP_BOGUS>", ValueError)]
DATA = [
    ("abc", TypeError),
    ([1.0, 2.0], TypeError),
    (torch.tensor([1, 2]), TypeError),
    (torch.tensor([1.0, 2.0]).to_sparse(), TypeError),
    (torch.tensor([1 + 1j]), TypeError),
    (np.array(["a"]), TypeError),
    (np.array([1, 2]), TypeError),
]


def nested():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])


# Each public function: its base call with keyword arguments, and the kind of each parameter.
FUNCTIONS = {
    "quantize": (
        lambda **k: xbquant.quantize(**{"x": X, "wl": 8, "fl": 4, **k}),
        {"x": DATA, "wl": INTEGER, "fl": FL, "rounding": NAME, "overflow": NAME,
         "sat_bits": INTEGER, "signed": FLAG, "seed": SEED, "return_mask": FLAG, "axis": AXIS},
    ),
    "quantize hls": (
        lambda **k: xbquant.quantize(**{"x": X, "hls": "ap_fixed<8,3>", **k}),
        {"hls": [(5, TypeError), ("ap_fixed<8>", ValueError), ("bogus", ValueError)],
         "seed": SEED},
    ),
    "quantize scheme": (
        lambda **k: xbquant.quantize(**{"x": X, "scheme": "fixed<8,4>", **k}),
        {"x": DATA, "scheme": [(5, TypeError), (["fixed<8,4>"], TypeError), ("bogus", ValueError),
                               ("fixed<8,4> range=-1", ValueError), ("", ValueError)],
         "seed": SEED, "wl": [(8, ValueError)], "axis": [(0, ValueError)]},
    ),
    "quantize per slice": (
        lambda **k: xbquant.quantize(**{"x": X, "wl": 8, "fl": [3, 4], "axis": 0, **k}),
        {"fl": [([2**63, 1], ValueError), (["3", 4], TypeError), ([3.5, 4], ValueError),
                ([None, 4], TypeError), ([True, 4], TypeError), ([3], ValueError)]},
    ),
    "quantize scaled": (
        lambda **k: xbquant.quantize(**{"x": X, "wl": 8, "fl": 6, "scale": 1.0, **k}),
        {"scale": [(v, e) for v, e in RANGE if v is not None]
                   + [(1e39, ValueError), ([1.0, 2.0], ValueError)]},
    ),
    "quantize_": (
        lambda **k: xbquant.quantize_(**{"x": X.clone(), "wl": 8, "fl": 4, **k}),
        {"x": DATA, "wl": INTEGER, "fl": INTEGER, "rounding": NAME, "overflow": NAME,
         "sat_bits": INTEGER, "signed": FLAG, "seed": SEED},
    ),
    "choose_fl": (
        lambda **k: xbquant.choose_fl(**{"x": X, "wl": 8, **k}),
        {"x": DATA, "wl": INTEGER, "axis": AXIS, "method": NAME, "signed": FLAG},
    ),
    "quantize_grid": (
        lambda **k: xbquant.quantize_grid(**{"x": X, "step": 0.25, **k}),
        {"x": DATA, "step": POSITIVE + [(0.0, ValueError), (1e308, ValueError)],
         "offset": NUMBER, "levels": [(v, e) for v, e in COUNT if v is not None],
         "rounding": NAME, "seed": SEED},
    ),
    "quantize_levels": (
        lambda **k: xbquant.quantize_levels(**{"x": X, "levels": [0.0, 1.0], **k}),
        {"x": DATA, "levels": [(None, TypeError), ("ab", TypeError), ([], ValueError),
                               ([0.0, math.nan], ValueError), ([1e39], ValueError),
                               ([True, 1.0], TypeError)],
         "rounding": NAME, "seed": SEED},
    ),
    "dac": (
        lambda **k: xbquant.dac(**{"x": X, "bits": 4, **k}),
        {"x": DATA, "bits": COUNT + [(1, ValueError), (65, ValueError)],
         "range": RANGE + [(1e39, ValueError), ([1.0, 2.0], ValueError)],
         "axis": AXIS, "rounding": NAME, "noise_std": POSITIVE, "noise": NAME, "seed": SEED},
    ),
    "adc": (
        lambda **k: xbquant.adc(**{"x": X, "bits": 4, "axis": 1, **k}),
        {"bits": COUNT, "range": [([1.0, "2"], TypeError), ([1.0, -2.0], ValueError),
                                   ([1.0, math.nan], ValueError), ([1.0], ValueError),
                                   ("percentile:101", ValueError), ("percentile:-1", ValueError),
                                   ("percentile:nan", ValueError), ("percentile:", ValueError),
                                   ("percentile:1e999", ValueError)],
         "noise_std": POSITIVE},
    ),
    "bit_slices": (
        lambda **k: xbquant.bit_slices(**{"codes": torch.tensor([3, -2]), "bits": 4, **k}),
        {"codes": [("abc", TypeError), (torch.tensor([True]), TypeError),
                   (np.array([2**64 - 1], dtype=np.uint64), ValueError),
                   (np.array([math.inf]), ValueError), (np.array([1e30]), ValueError),
                   (np.array([0.5]), ValueError)],
         "bits": COUNT + [(63, ValueError)], "slice_bits": COUNT + [(5, ValueError)],
         "encoding": NAME},
    ),
    "from_bit_slices": (
        lambda **k: xbquant.from_bit_slices(**{"slices": torch.zeros(4, 2, dtype=torch.int64), "bits": 4, **k}),
        {"slices": [("abc", TypeError), (torch.zeros(3, 2, dtype=torch.int64), ValueError),
                    (torch.zeros(4, 2, dtype=torch.bool), TypeError)],
         "bits": COUNT, "slice_bits": COUNT, "encoding": NAME},
    ),
    "fixed_point_quantize": (
        lambda **k: xbquant.fixed_point_quantize(**{"x": X, "wl": 8, "fl": 4, "rounding": "nearest", **k}),
        {"x": DATA, "wl": INTEGER, "fl": INTEGER, "clamp": FLAG, "symmetric": FLAG,
         "rounding": NAME, "seed": SEED, "signed": FLAG},
    ),
    "fixed_point_quantize_wrapper": (
        lambda **k: quantizers.fixed_point_quantize_wrapper(**{"input": X, "wl": 8, "fl": 4, **k}),
        {"input": DATA, "wl": INTEGER, "fl": INTEGER, "symmetric": FLAG, "rounding": NAME},
    ),
    "quantize_float": (
        lambda **k: xbquant.quantize_float(**{"x": X, "format": "e4m3fn", **k}),
        {"x": DATA, "format": NAME + [((4, -1), ValueError), ((4, True), TypeError)],
         "rounding": NAME, "seed": SEED},
    ),
    "float_quantize": (
        lambda **k: xbquant.float_quantize(**{"x": X, "exp": 4, "man": 3, "rounding": "nearest", **k}),
        {"x": DATA, "exp": COUNT, "man": INTEGER, "rounding": NAME, "seed": SEED},
    ),
    "block_quantize": (
        lambda **k: xbquant.block_quantize(**{"x": X, "wl": 8, "rounding": "nearest", **k}),
        {"x": DATA, "wl": COUNT, "dim": INTEGER + [(5, ValueError)], "rounding": NAME},
    ),
    "FixedPoint": (
        lambda **k: xbquant.FixedPoint(**{"wl": 8, "fl": 4, **k}),
        {"wl": INTEGER, "fl": INTEGER, "clamp": FLAG, "symmetric": FLAG},
    ),
    "FloatingPoint": (
        lambda **k: xbquant.FloatingPoint(**{"exp": 4, "man": 3, **k}),
        {"exp": COUNT, "man": INTEGER},
    ),
    "BlockFloatingPoint": (
        lambda **k: xbquant.BlockFloatingPoint(**{"wl": 8, **k}),
        {"wl": COUNT, "dim": INTEGER},
    ),
    "quantizer": (
        lambda **k: xbquant.quantizer(**{"forward_number": xbquant.FixedPoint(8, 4), **k}),
        {"forward_number": [("8", TypeError), (8, TypeError)], "backward_number": [(1.5, TypeError)],
         "forward_rounding": NAME, "backward_rounding": NAME, "clamping_grad_zero": FLAG,
         "backward_hooks": [(5, TypeError), ([5], TypeError)], "always_apply_backward": FLAG},
    ),
    "parse_hls": (
        lambda **k: xbquant.parse_hls(**{"name": "ap_fixed<8,3>", **k}),
        {"name": [(5, TypeError), (None, TypeError), ("ap_fixed<8>", ValueError)]},
    ),
    "Scheme": (
        lambda **k: xbquant.Scheme(**{"text": "fixed<8,4>", **k}),
        {"text": [(5, TypeError), (None, TypeError), (["fixed<8,4>"], TypeError), ("", ValueError),
                  ("bogus", ValueError), ("fixed<99,4>", ValueError), ("fixed<8,4> range=-1", ValueError),
                  ("fixed<8,4> range=nan", ValueError), ("fixed<8,4> range=percentile:101", ValueError),
                  ("fixed<8,4> group=runs:0", ValueError), ("fixed<8,4> seed=-1", ValueError),
                  ("fixed<8,4> range=1e400", ValueError), ("levels<1,inf>", ValueError)]},
    ),
    "nn.Quant": (
        lambda **k: nn.Quant(**{"bits": 8, **k}),
        {"bits": [(v, e) for v, e in COUNT if v is not None] + [(1, ValueError), (25, ValueError)],
         "channels": [(v, e) for v, e in COUNT if v is not None],
         "axis": [(v, e) for v, e in INTEGER if v is not None],
         "scale": [(v, e) for v, e in POSITIVE if v != "0.1"] + [("0.1", ValueError), ("lsq", ValueError),
                   (0.0, ValueError), ([1.0, 2.0], ValueError), ([1.0, "2"], TypeError)],
         "signed": FLAG, "narrow": FLAG, "grad_scale": FLAG, "rounding": NAME},
    ),
    "nn.Quant float": (
        lambda **k: nn.Quant(**{"float_format": "e4m3fn", **k}),
        {"float_format": [(5, TypeError), ("bogus", ValueError), ("e9m2", ValueError)],
         "bits": [(8, ValueError)], "rounding": NAME + [("floor", ValueError)]},
    ),
    "nn.Quant call": (
        lambda **k: nn.Quant(8)(**{"x": X, **k}),
        {"x": DATA},
    ),
    "nn.Quant fixed step": (
        lambda **k: nn.Quant(8, scale=k["scale"])(X.to(torch.float16)),
        {"scale": [(1e5, ValueError), (1e-30, ValueError)]},
    ),
    "nn.QuantAct": (
        lambda **k: nn.QuantAct(**{"bits": 8, **k}),
        {"bits": [(v, e) for v, e in COUNT if v is not None], "scale": [("bogus", ValueError), (-1.0, ValueError)],
         "signed": FLAG},
    ),
    "nn.QuantLinear": (
        lambda **k: nn.QuantLinear(**{"in_features": 4, "out_features": 2, **k}),
        {"in_features": INTEGER, "out_features": INTEGER,
         "weight": [("8", TypeError), (8.0, TypeError), (True, TypeError), (0, ValueError),
                    (nn.Quant(8, channels=3), ValueError)],
         "input": [("8", TypeError), (1.5, TypeError), (99, ValueError)],
         "output": [([8], TypeError), (False, TypeError)]},
    ),
    "nn.QuantConv2d": (
        lambda **k: nn.QuantConv2d(**{"in_channels": 2, "out_channels": 3, "kernel_size": 2, **k}),
        {"in_channels": COUNT, "out_channels": COUNT,
         "weight": [("4", TypeError), (nn.Quant(4, channels=2), ValueError)],
         "input": [("4", TypeError)], "output": [(2.0, TypeError)]},
    ),
    "nn.QuantConv1d": (
        lambda **k: nn.QuantConv1d(**{"in_channels": 2, "out_channels": 3, "kernel_size": 2, **k}),
        {"in_channels": COUNT, "out_channels": COUNT, "weight": [(3.5, TypeError)]},
    ),
    "analog.IOParameters": (
        lambda **k: analog.IOParameters(**k),
        {"inp_bound": POSITIVE, "out_bound": POSITIVE, "inp_res": POSITIVE, "out_res": POSITIVE,
         "inp_noise": POSITIVE, "out_noise": POSITIVE, "w_noise": POSITIVE, "nm_thres": POSITIVE,
         "max_bm_res": POSITIVE, "out_scale": NUMBER, "max_bm_factor": NUMBER + [(0.0, ValueError)],
         "is_perfect": FLAG, "inp_sto_round": FLAG, "out_sto_round": FLAG,
         "noise_management": NAME, "bound_management": NAME, "w_noise_type": NAME},
    ),
    "analog.mvm": (
        lambda **k: analog.mvm(**{"x": X, "w": torch.ones(3, 2), **k}),
        {"x": DATA + [(torch.ones(2, 5), ValueError), (X.double(), TypeError)],
         "w": [("abc", TypeError), (torch.ones(3), ValueError), (torch.ones(3, 2, dtype=torch.float16), TypeError),
               (np.ones((3, 2), dtype=np.float32), TypeError)],
         "io": [("abc", TypeError), ({}, TypeError)],
         "tile_size": [(512, TypeError), ((1, 2, 3), TypeError), ((-1, 5), ValueError), (("a", 5), TypeError),
                       ((math.nan, 5), ValueError)],
         "seed": SEED},
    ),
    "analog.PCMLikeNoise": (
        lambda **k: analog.PCMLikeNoise(**k),
        {"g_max": NUMBER + [(-1.0, ValueError), (0.0, ValueError)], "g_min": POSITIVE,
         "t_0": NUMBER + [(0.0, ValueError)], "t_read": NUMBER + [(-1.0, ValueError)],
         "prog_noise_scale": POSITIVE, "read_noise_scale": POSITIVE, "drift_scale": POSITIVE,
         "prog_coeff": [("abc", TypeError), (5, TypeError), ((), ValueError), ((1.0, math.nan), ValueError),
                        ((1.0, "2"), TypeError)]},
    ),
    "analog.XBTorchDevice": (
        lambda **k: analog.XBTorchDevice(**k),
        {"g_max": NUMBER + [(10.0, ValueError)], "g_min": POSITIVE, "write_noise": POSITIVE,
         "read_noise": POSITIVE, "drift_variation": POSITIVE, "drift_coefficient": NUMBER,
         "drift_t0": NUMBER + [(0.0, ValueError)], "stuck_fraction": POSITIVE + [(1.5, ValueError)]},
    ),
    "analog.AnalogLinear": (
        lambda **k: analog.AnalogLinear(**{"in_features": 4, "out_features": 2, **k}),
        {"io": [("abc", TypeError), ({}, TypeError)], "noise_model": [("pcm", TypeError), (5, TypeError)],
         "tile_size": [(512, TypeError), ((-1, 5), ValueError)], "weight_noise": POSITIVE},
    ),
    "analog.AnalogConv2d": (
        lambda **k: analog.AnalogConv2d(**{"in_channels": 2, "out_channels": 3, "kernel_size": 2, **k}),
        {"groups": [(2, ValueError)], "padding_mode": [("reflect", ValueError)], "padding": [("same", ValueError)],
         "weight_noise": POSITIVE},
    ),
    "analog.convert_to_analog": (
        lambda **k: analog.convert_to_analog(**{"module": torch.nn.Linear(2, 2), **k}),
        {"module": [("model", TypeError), (None, TypeError)], "weight_noise": POSITIVE,
         "tile_size": [("512", TypeError)]},
    ),
    "fixed.linear": (
        lambda **k: fixed.linear(
            **{"x": X, "w": torch.ones(3, 2), "input": "ap_fixed<16,6>", "weight": "ap_fixed<8,3>", **k}
        ),
        {"x": DATA + [(torch.ones(2, 5), ValueError), (X.double(), TypeError), (X * math.nan, ValueError),
                      (X * math.inf, ValueError)],
         "w": [("abc", TypeError), (torch.ones(3), ValueError), (torch.ones(3, 2, dtype=torch.float16), TypeError),
               (np.ones((3, 2), dtype=np.float32), TypeError), (torch.full((3, 2), math.nan), ValueError)],
         "b": [("abc", TypeError), (torch.ones(2), ValueError), (torch.ones(3, dtype=torch.float64), TypeError),
               (torch.tensor([1.0, math.inf, 0.0]), ValueError)],
         "input": HLS_TYPE, "weight": HLS_TYPE, "bias": HLS_TYPE, "accum": HLS_TYPE, "result": HLS_TYPE,
         "return_overflow": FLAG},
    ),
    "fixed.conv2d": (
        lambda **k: fixed.conv2d(
            **{"x": torch.ones(1, 2, 4, 4), "w": torch.ones(3, 2, 2, 2), "input": "ap_fixed<16,6>",
               "weight": "ap_fixed<8,3>", **k}
        ),
        {"x": [("abc", TypeError), (torch.ones(2, 4, 4), ValueError), (torch.ones(1, 3, 4, 4), ValueError),
               (torch.ones(1, 2, 1, 1), ValueError), (torch.full((1, 2, 4, 4), math.nan), ValueError)],
         "w": [("abc", TypeError), (torch.ones(3, 2, 2), ValueError)],
         "stride": [(0, ValueError), ("1", TypeError), ((1, 2, 3), ValueError), (1.5, TypeError)],
         "padding": [(-1, ValueError), ("0", TypeError)],
         "input": HLS_TYPE, "weight": HLS_TYPE, "accum": HLS_TYPE},
    ),
    "fixed.conv1d": (
        lambda **k: fixed.conv1d(
            **{"x": torch.ones(1, 2, 6), "w": torch.ones(3, 2, 2), "input": "ap_fixed<16,6>",
               "weight": "ap_fixed<8,3>", **k}
        ),
        {"x": [("abc", TypeError), (torch.ones(2, 6), ValueError)], "w": [(torch.ones(3, 2), ValueError)],
         "stride": [(0, ValueError), ((1, 2), TypeError)], "padding": [(-2, ValueError)], "result": HLS_TYPE},
    ),
    "fixed.accum_bits": (
        lambda **k: fixed.accum_bits(**{"w": torch.ones(3, 2), "input": "ap_fixed<8,8>", **k}),
        {"w": [("abc", TypeError), (torch.ones(3), ValueError), (torch.tensor([[1, 2]]), TypeError),
               (torch.full((2, 2), 0.5), ValueError), (torch.full((2, 2), math.nan), ValueError)],
         "input": HLS_TYPE, "weight": HLS_TYPE,
         "x": [("abc", TypeError), (torch.ones(2, 5), ValueError), (torch.full((2, 2), math.inf), ValueError)]},
    ),
    "qonnx.quant": (
        lambda **k: qonnx.quant(**{"x": X, "scale": 0.5, "zero_point": 0.0, "bitwidth": 4, **k}),
        {"x": DATA, "scale": NUMBER + [(0.0, ValueError), (-1.0, ValueError), (torch.ones(3), ValueError)],
         "zero_point": NUMBER + [(torch.ones(5, 5, 5), ValueError)],
         "bitwidth": [(True, TypeError), ("4", TypeError), (0, ValueError), (65, ValueError), (2.5, ValueError),
                      (math.nan, ValueError)],
         "signed": FLAG, "narrow": FLAG, "rounding_mode": NAME},
    ),
    "qonnx.bipolar_quant": (
        lambda **k: qonnx.bipolar_quant(**{"x": X, "scale": 0.5, **k}),
        {"x": DATA, "scale": NUMBER + [(0.0, ValueError)]},
    ),
    "qonnx.trunc": (
        lambda **k: qonnx.trunc(
            **{"x": X, "scale": 0.5, "zero_point": 0.0, "input_bitwidth": 8, "output_scale": 1.0,
               "output_bitwidth": 4, **k}
        ),
        {"x": DATA, "scale": NUMBER + [(0.0, ValueError)], "output_scale": NUMBER + [(-2.0, ValueError)],
         "input_bitwidth": [(0, ValueError), ("8", TypeError)], "output_bitwidth": [(70, ValueError)],
         "signed": FLAG, "narrow": FLAG, "rounding_mode": NAME},
    ),
    "fixed.accum_type": (
        lambda **k: fixed.accum_type(**{"input": "ap_fixed<16,6>", "weight": "ap_fixed<8,3>", "n": 4, **k}),
        {"input": HLS_TYPE, "weight": HLS_TYPE, "bias": HLS_TYPE,
         "n": [(True, TypeError), ("4", TypeError), (4.0, TypeError), (0, ValueError), (2**41, ValueError)]},
    ),
    "fixed.emulate": (
        lambda **k: fixed.emulate(
            **{"model": torch.nn.Sequential(torch.nn.Linear(2, 3)), "config": {}, "x": torch.ones(4, 2), **k}
        ),
        {"model": [("abc", TypeError), (None, TypeError)],
         "config": [("ap_fixed<16,6>", TypeError), ({"Model": []}, TypeError), ({"LayerName": 5}, TypeError),
                    ({"Model": {"Precision": "ap_fixed<99,6>"}}, ValueError),
                    ({"Model": {"Precision": 16}}, TypeError)],
         "x": [("abc", TypeError), (torch.ones(4, 2, dtype=torch.int64), TypeError),
               (torch.full((4, 2), math.nan), ValueError)]},
    ),
    "fixed.hls4ml_config": (
        lambda **k: fixed.hls4ml_config(
            **{"model": torch.nn.Sequential(torch.nn.Linear(2, 3)), "x": torch.ones(4, 2), **k}
        ),
        {"model": [("abc", TypeError)], "x": [(np.ones((4, 2)), TypeError), (torch.ones(0, 2), ValueError)],
         "bits": [(1, ValueError), (True, ValueError), (2.5, ValueError), (64, ValueError)],
         "weight_bits": [(0, ValueError), ("8", ValueError)],
         "input_type": [(8, TypeError), ("ap_fixed<99,3>", ValueError)]},
    ),
    "get_range_fixed_point": (
        lambda **k: quantizers.get_range_fixed_point(**{"num_format": xbquant.FixedPoint(8, 4), **k}),
        {"num_format": [("8", TypeError), (None, TypeError), (8, TypeError)]},
    ),
}

ROWS = [
    pytest.param(function, param, value, error, id=f"{function}-{param}-{value!r:.30}")
    for function, (_, kinds) in FUNCTIONS.items()
    for param, values in kinds.items()
    for value, error in values
]


@pytest.mark.parametrize("function,param,value,error", ROWS)
def test_hostile_argument(function, param, value, error):
    call, _ = FUNCTIONS[function]
    with pytest.raises(error) as info:
        call(**{param: value})
    # The exception is exactly of the stated kind: no OverflowError (an ArithmeticError) for a
    # ValueError, and no internal error dressed as one.
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert re.search(rf"\b{re.escape(param)}\b", str(info.value)), (
        f"the message does not name {param!r}: {info.value}"
    )


@pytest.mark.parametrize("function", ["quantize", "quantize_", "choose_fl", "quantize_grid",
                                      "quantize_levels", "dac", "fixed_point_quantize",
                                      "quantize_float", "float_quantize", "block_quantize"])
def test_nested_tensors_are_refused_by_name(function):
    call, _ = FUNCTIONS[function]
    with pytest.raises(TypeError, match="nested"):
        call(x=nested())


def test_every_public_function_has_rows():
    names = set(xbquant.__all__) - {"__version__"}
    # The submodules' functions too, by their qualified names (constants aside).
    for module in (analog, fixed, qonnx):
        names |= {f"{module.__name__.split('.')[-1]}.{n}" for n in module.__all__ if not n.isupper()}
    names |= {"fixed.emulate", "fixed.hls4ml_config"}
    covered = {f.split(" ")[0] for f in FUNCTIONS}
    assert names <= covered, names - covered


def test_schemes_are_built_in_public_only_from_text():
    # The builders behind the functions (`Scheme._fixed`, `Scheme._with_axis`, ...) take the
    # values those functions have checked; a user builds a scheme from its text (rows above).
    public = {a for a in vars(xbquant.Scheme) if not a.startswith("_") and callable(getattr(xbquant.Scheme, a))}
    assert public == {"to_hls"}, public


@pytest.mark.parametrize("order", [">", "<"])
@pytest.mark.parametrize("dtype", ["f4", "f8", "f2"])
def test_either_byte_order_is_accepted(order, dtype):
    """Big-endian arrays give the values of native ones, in the input's dtype."""
    x = np.array([0.3, -1.7, 2.5, 100.0], dtype=f"<{dtype}")
    y = x.astype(f"{order}{dtype}")
    for f in [
        lambda v: xbquant.quantize(v, 8, 4),
        lambda v: xbquant.quantize(v, 8, "auto"),
        lambda v: xbquant.quantize_float(v, "e4m3fn"),
        lambda v: xbquant.fixed_point_quantize(v, 8, 4, rounding="nearest"),
        lambda v: xbquant.float_quantize(v, 4, 3, rounding="nearest"),
        lambda v: xbquant.block_quantize(v, 6, rounding="nearest"),
        lambda v: xbquant.quantize_grid(v, 0.5),
        lambda v: xbquant.quantize_levels(v, [0.0, 1.0]),
        lambda v: xbquant.dac(v, 4),
    ]:
        got = f(y)
        assert got.dtype == y.dtype
        np.testing.assert_array_equal(got.astype(x.dtype), f(x))
    z = y.copy()
    assert xbquant.quantize_(z, 8, 4) is z
    np.testing.assert_array_equal(z.astype(x.dtype), xbquant.quantize(x, 8, 4))
