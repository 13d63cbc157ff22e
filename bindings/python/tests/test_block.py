"""Block floating point: QPyTorch's block_quantize reproduced (data from
scripts/qpytorch-block-reference.py), exactly where QPyTorch is exact; fixed-size blocks along
the last axis; the number format in quantizer."""

import numpy as np
import pytest
import torch

import xbquant
from xbquant import BlockFloatingPoint, block_quantize, quantizer

from conftest import DATA, make_scheme


def model(x, wl, dim):
    """The exact rule, in numpy float64: per block, the exponent of the largest magnitude, codes
    of step 2^(e + 2 - wl) rounded to nearest even, saturating at +-(2^(wl-1) - 1)."""
    a = x.astype(np.float64)
    if dim == -1:
        top = np.abs(a).max()
    else:
        axes = tuple(d for d in range(a.ndim) if d != dim)
        top = np.abs(a).max(axis=axes, keepdims=True)
    e = np.where(top > 0, np.floor(np.log2(np.where(top > 0, top, 1.0))), 0.0)
    step = 2.0 ** (e + 2 - wl)
    k = np.clip(np.round(a / step), -(2 ** (wl - 1) - 1), 2 ** (wl - 1) - 1)
    return k * step, step, e


def test_qpytorch_block_quantize():
    data = np.load(DATA / "qpytorch_block.npz")
    differ = 0
    for s in (0, 1):
        x = data[f"x{s}"]
        for wl in (3, 4, 6, 8, 12):
            for dim in (-1, 0, 1):
                theirs = data[f"y{s}_{wl}_{dim}"]
                ours = block_quantize(torch.from_numpy(x), wl, dim, "nearest").numpy()
                want, step, e = model(x, wl, dim)
                assert np.array_equal(ours, want.astype(np.float32)), (s, wl, dim)
                # QPyTorch agrees except next to a midpoint of the grid: it rounds ties away from
                # zero, and it adds 6 * 2^e in float32 first, which rounds by up to half an ulp
                # of that sum (2^(e + 2 - 23)).
                off = ours != theirs
                t = x.astype(np.float64) / step
                distance = np.abs(np.abs(t - np.floor(t)) - 0.5) * step
                slack = np.broadcast_to(2.0 ** (e + 2 - 24), x.shape)
                assert np.all(distance[off] <= slack[off]), (s, wl, dim)
                differ += int(off.sum())
    assert differ > 0  # the ties in the data do differ


def test_fixed_size_blocks_along_the_last_axis():
    torch.manual_seed(0)
    x = torch.randn(5, 64) * torch.exp2(torch.randint(-8, 8, (5, 64)).float())
    q = block_quantize(x, 6, rounding="nearest", block_size=16)
    for r in range(5):
        for b in range(4):
            block = x[r, b * 16 : (b + 1) * 16]
            assert torch.equal(q[r, b * 16 : (b + 1) * 16], block_quantize(block, 6, rounding="nearest"))
    with pytest.raises(ValueError, match="block_size"):
        block_quantize(x, 6, block_size=7)


def test_dtypes_specials_and_quantizer():
    x = torch.tensor([[0.0, 0.0], [3.0, float("nan")], [float("inf"), 1.0]])
    q = block_quantize(x, 4, dim=0, rounding="nearest")
    assert q[0].tolist() == [0.0, 0.0]  # a block of zeros stays zeros
    assert q[1, 0].item() == 3.0 and torch.isnan(q[1, 1])
    assert q[2].tolist() == [1.75, 1.0]  # the block's exponent comes from its finite values
    h = torch.randn(100, dtype=torch.float16)
    assert block_quantize(h, 8, rounding="nearest").dtype == torch.float16
    a = np.linspace(-3, 3, 50)
    assert np.array_equal(
        block_quantize(a, 5, rounding="nearest"),
        block_quantize(torch.from_numpy(a), 5, rounding="nearest").numpy(),
    )
    s = torch.randn(1000)
    assert torch.equal(block_quantize(s, 6, seed=3), block_quantize(s, 6, seed=3))
    w = torch.tensor([0.3, 5.0], requires_grad=True)
    y = quantizer(BlockFloatingPoint(4), forward_rounding="nearest")(w)
    assert y.tolist() == [0.0, 5.0]
    y.sum().backward()
    assert w.grad.tolist() == [1.0, 1.0]
    assert repr(BlockFloatingPoint(8, dim=0)) == "BlockFloatingPoint (wl=8, dim=0)"
    with pytest.raises(ValueError):
        BlockFloatingPoint(1)
    with pytest.raises(ValueError):
        block_quantize(x, 4, dim=5)
    with pytest.raises(ValueError, match="clamping_grad_zero"):
        quantizer(BlockFloatingPoint(8), clamping_grad_zero=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_torch_composition_equals_the_kernel(dtype, rounding):
    """The torch path (tensors on other devices), run on CPU tensors, equals the core's block
    kernel bit for bit, in every layout: one block, per slice along each axis, fixed-size runs;
    with zeros, infinities and NaN."""
    from xbquant import _data, _qpytorch, _torch_ops

    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 70, 40, generator=g, dtype=torch.float64) * torch.exp2(
        torch.randint(-12, 12, (6, 70, 40), generator=g).to(torch.float64)
    )
    x[1] = 0.0
    x[2, 3, 4], x[3, 0, 0], x[4, 5, 6] = float("inf"), float("-inf"), float("nan")
    x = x.to(dtype)
    for wl in (3, 8, 12):
        seed = 17 if rounding == "stochastic" else None
        for dim, block_size in [(-1, None), (0, None), (1, None), (2, None), (-1, 8), (-1, 40)]:
            scheme = _qpytorch.block_scheme(x, wl, dim, rounding, block_size, seed)
            ours = _data.run(x, scheme)[0]
            theirs = _torch_ops.block_quantize(x, scheme, dim, block_size)
            same = (ours == theirs) | (ours.isnan() & theirs.isnan())
            assert bool(same.all()), (dtype, rounding, wl, dim, block_size)
            assert ours.dtype == dtype and ours.shape == x.shape
