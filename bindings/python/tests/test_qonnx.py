"""`xbquant.qonnx`: QONNX's IntQuant, BipolarQuant and Trunc against their specification's
rounding table and a table of hand-checked cases, on tensors and arrays."""

import math

import numpy as np
import pytest
import torch

from xbquant import qonnx

# The specification's table (docs/qonnx-custom-ops/intquant_v1.md): each mode's result for each
# number, with scale 1, zero point 0 and a range wide enough not to clip.
NUMBERS = [5.5, 2.5, 1.6, 1.1, 1.0, -1.0, -1.1, -1.6, -2.5, -5.5]
TABLE = {
    "ROUND": [6, 2, 2, 1, 1, -1, -1, -2, -2, -6],
    "CEIL": [6, 3, 2, 2, 1, -1, -1, -1, -2, -5],
    "FLOOR": [5, 2, 1, 1, 1, -1, -2, -2, -3, -6],
    "UP": [6, 3, 2, 2, 1, -1, -2, -2, -3, -6],
    "DOWN": [5, 2, 1, 1, 1, -1, -1, -1, -2, -5],
    "HALF_UP": [6, 3, 2, 1, 1, -1, -1, -2, -3, -6],
    "HALF_DOWN": [5, 2, 2, 1, 1, -1, -1, -2, -2, -5],
}


@pytest.mark.parametrize("mode", sorted(TABLE))
@pytest.mark.parametrize("kind", ["tensor", "array"])
def test_the_specifications_rounding_table(mode, kind):
    x = torch.tensor(NUMBERS) if kind == "tensor" else np.array(NUMBERS, dtype=np.float32)
    for name in (mode, mode.lower()):
        y = qonnx.quant(x, 1.0, 0.0, 8, rounding_mode=name)
        assert [float(v) for v in y] == TABLE[mode]
    assert qonnx.quant(x, 1.0, 0.0, 8, rounding_mode="HALF_EVEN").tolist() == TABLE["ROUND"]


def test_hand_checked_cases():
    x = torch.tensor([0.26, -1.0, 3.9, -9.0, 100.0, math.nan])
    # 3 bits signed: codes -4..=3; narrow: -3..=3; unsigned: 0..=7, narrow 0..=6. The clip
    # comes before the rounding (3.9 / 0.5 = 7.8 clips to 3, not rounded to 8 first).
    assert qonnx.quant(x, 0.5, 0.0, 3).tolist()[:5] == [0.5, -1.0, 1.5, -2.0, 1.5]
    assert qonnx.quant(x, 0.5, 0.0, 3, narrow=True).tolist()[:5] == [0.5, -1.0, 1.5, -1.5, 1.5]
    assert qonnx.quant(x, 0.5, 0.0, 3, signed=False).tolist()[:5] == [0.5, 0.0, 3.5, 0.0, 3.5]
    assert qonnx.quant(x, 0.5, 0.0, 3, signed=False, narrow=True).tolist()[:5] == [0.5, 0.0, 3.0, 0.0, 3.0]
    assert math.isnan(qonnx.quant(x, 0.5, 0.0, 3)[5])
    # A zero point: y = x / s + z, clipped to 0..=15, rounded, then (y - z) * s.
    assert qonnx.quant(torch.tensor([0.0, 1.2, -2.0]), 0.25, 3.0, 4, signed=False).tolist() == [0.0, 1.25, -0.75]
    # Per-channel scales broadcast over x's dimensions.
    xc = torch.tensor([[1.3, 1.3], [1.3, 1.3]])
    assert qonnx.quant(xc, torch.tensor([[0.5], [0.25]]), 0.0, 8).tolist() == [[1.5, 1.5], [1.25, 1.25]]
    # A signed 1-bit quantization is bipolar, as the reference implementation makes it.
    assert qonnx.quant(torch.tensor([0.3, -0.3, 0.0]), 1.0, 0.0, 1).tolist() == [1.0, -1.0, 1.0]
    assert qonnx.bipolar_quant(torch.tensor([0.3, -0.3, 0.0]), 0.5).tolist() == [0.5, -0.5, 0.5]
    # Trunc: 8-bit codes at scale 1/16 truncated to 4 bits at scale 1: round(x * 16) / 16,
    # clipped to -8..=7, floored.
    t = torch.tensor([2.75, -2.75, 7.9, -9.0, 0.03125])
    assert qonnx.trunc(t, 1 / 16, 0.0, 8, 1.0, 4).tolist() == [2.0, -3.0, 7.0, -8.0, 0.0]
    assert qonnx.trunc(t, 1 / 16, 0.0, 8, 1.0, 4, rounding_mode="ROUND").tolist() == [3.0, -3.0, 7.0, -8.0, 0.0]
    # Results keep x's kind, dtype and device; float64 stays float64.
    y64 = qonnx.quant(np.array([0.26]), 0.5, 0.0, 3)
    assert y64.dtype == np.float64 and qonnx.quant(torch.ones(2, dtype=torch.float64), 0.5, 0.0, 3).dtype == torch.float64
