"""The crossbar's periphery: XBTorch's DAC/ADC and linear bit slices reproduced (data from
scripts/xbtorch-periphery-reference.py), per-slice fixed point against a loop of per-slice calls,
grids against exact rational arithmetic, level tables against a brute-force search, noise and
stochastic rounding by their statistics, and the straight-through gradients."""

from fractions import Fraction

import numpy as np
import pytest
import torch

import xbquant
from conftest import DATA, DTYPES


def test_xbtorch_dac_adc_and_linear_slices():
    data = np.load(DATA / "xbtorch_periphery.npz")
    for bits in (2, 3, 4, 5, 8):
        v, i = torch.from_numpy(data[f"v{bits}"]), torch.from_numpy(data[f"i{bits}"])
        # SimpleFixedPoint's DAC ("instant") and ADC: one call each.
        assert torch.equal(xbquant.dac(v, bits), torch.from_numpy(data[f"dac{bits}"])), bits
        assert torch.equal(xbquant.adc(i, bits), torch.from_numpy(data[f"adc{bits}"])), bits
        # The "linear" encoding: XBTorch's normalization, rounded to integers by a grid of step
        # 1, then one bit_slices call.
        m = v.abs().max()
        k = xbquant.quantize_grid(torch.clamp(v / m, -1.0, 1.0) * (2**bits - 1), 1.0)
        planes = xbquant.bit_slices(k, bits) * m
        assert torch.equal(planes, torch.from_numpy(data[f"linear{bits}"])), bits
    # A zero input gives zeros (XBTorch's formula: NaN).
    assert torch.equal(xbquant.dac(torch.zeros(5), 4), torch.zeros(5))
    assert torch.equal(xbquant.adc(torch.zeros(2, 3), 4, axis=1), torch.zeros(2, 3))


def per_slice_loop(x, wl, fls, axis, **kw):
    """One quantize call per slice along `axis`."""
    out = torch.empty_like(x)
    for j, fl in enumerate(fls):
        index = [slice(None)] * x.dim()
        index[axis] = j
        out[tuple(index)] = xbquant.quantize(x[tuple(index)].contiguous(), wl, fl, **kw)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_per_axis_equals_a_loop_of_per_slice_calls(dtype):
    g = torch.Generator().manual_seed(1)
    for shape in [(37,), (5, 30), (3, 4, 10), (2, 3, 4, 5)]:
        x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3).to(dtype)
        for axis in range(len(shape)):
            for method in ("auto", "sqnr"):
                for kw in ({}, {"rounding": "floor", "overflow": "wrap"}):
                    overflow = kw.get("overflow", "saturate-symmetric")
                    fls = xbquant.choose_fl(x, 6, axis=axis, method=method, overflow=overflow)
                    assert len(fls) == shape[axis]
                    ours = xbquant.quantize(x, 6, method, axis=axis, **kw)
                    want = per_slice_loop(x, 6, fls, axis, **kw)
                    assert torch.equal(ours, want), (shape, axis, method, kw)
                    # Strided: the same data through a transposed view.
                    if x.dim() > 1:
                        t = x.transpose(0, -1).contiguous().transpose(0, -1)
                        assert not t.is_contiguous() or x.dim() == 1
                        assert torch.equal(xbquant.quantize(t, 6, method, axis=axis, **kw), ours)
            # Explicit fractional lengths, negative axis.
            fls = [(j % 4) + 1 for j in range(shape[axis])]
            ours = xbquant.quantize(x, 8, fls, axis=axis - len(shape))
            assert torch.equal(ours, per_slice_loop(x, 8, fls, axis))


def test_choose_fl_and_errors():
    w = np.array([[0.3, -0.6], [3.3, 1.2], [0.0, 0.0]], dtype=np.float32)
    assert xbquant.choose_fl(w, 8) == 5
    assert xbquant.choose_fl(w, 8, axis=0) == [7, 5, 6]
    assert xbquant.choose_fl(w, 8, axis=0, signed=False) == [8, 6, 7]
    # fl="auto" for the whole tensor is one format of the chosen fl.
    assert np.array_equal(xbquant.quantize(w, 8, "auto"), xbquant.quantize(w, 8, 5))
    with pytest.raises(ValueError, match="slices"):
        xbquant.quantize(w, 8, [1, 2], axis=0)
    with pytest.raises(ValueError, match="axis"):
        xbquant.quantize(w, 8, "auto", axis=2)
    with pytest.raises(ValueError, match="method"):
        xbquant.choose_fl(w, 8, method="best")
    with pytest.raises(ValueError, match="fl must be a whole number"):
        xbquant.quantize(w, 8, [1.5, 2, 3], axis=0)
    with pytest.raises(ValueError):
        xbquant.quantize(w, 8, [5000, 2, 3], axis=0)


def exact_grid_index(x, step, offset):
    """round((x - offset) / step) to nearest, ties to even, in exact rational arithmetic."""
    t = (Fraction(float(x)) - Fraction(offset)) / Fraction(step)
    k = t.numerator // t.denominator
    r = t - k
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and k % 2 == 1):
        k += 1
    return k


def test_grids_are_exact():
    g = torch.Generator().manual_seed(2)
    for bits in (3, 5):
        step = 1.0 / (2**bits - 1)
        x = torch.rand(2000, generator=g, dtype=torch.float64) * 2 - 1
        q = xbquant.quantize_grid(x, step, offset=-1.0, levels=2 ** (bits + 1) - 1)
        for a, b in zip(x.tolist(), q.tolist()):
            k = min(max(exact_grid_index(a, step, -1.0), 0), 2 ** (bits + 1) - 2)
            # The point, offset + k * step rounded once (int / int division is correctly rounded).
            point = k * Fraction(step) - 1
            assert b == point.numerator / point.denominator, (a, b, k)
    # Conductances G_min + k * d (XBTorch's weight encoding grid), f32, with ties to even.
    c = torch.tensor([50.0, 54.9, 55.0, 65.0, 99.0, 120.0, -3.0, float("nan")])
    q = xbquant.quantize_grid(c, 10.0, offset=50.0, levels=6)
    assert q[:7].tolist() == [50.0, 50.0, 50.0, 70.0, 100.0, 100.0, 50.0] and q[7].isnan()
    with pytest.raises(ValueError):
        xbquant.quantize_grid(c, 0.0)
    with pytest.raises(ValueError):
        xbquant.quantize_grid(c, 1.0, levels=0)


def test_level_tables_equal_a_brute_force_search():
    g = torch.Generator().manual_seed(3)
    levels = torch.sort(torch.rand(64, generator=g, dtype=torch.float64) * 100 + 10).values
    levels = torch.round(levels * 64) / 64  # dyadic: midpoints and distances are exact
    x = torch.round((torch.rand(5000, generator=g, dtype=torch.float64) * 130) * 256) / 256
    x = torch.cat([x, (levels[1:] + levels[:-1]) / 2])  # every midpoint: a tie
    d = (x[:, None] - levels[None, :]).abs()
    best = d.argmin(dim=1)  # the first (lower) of two equally near levels
    tie = torch.zeros_like(best, dtype=torch.bool)
    upper = (best + 1).clamp(max=63)
    tie = (d[torch.arange(len(x)), upper] == d[torch.arange(len(x)), best]) & (best < 63)
    want_index = torch.where(tie & (best % 2 == 1), upper, best)  # ties to the even index
    ours = xbquant.quantize_levels(x, levels)
    assert torch.equal(ours, levels[want_index])
    # Shuffled input table, f32 data, numpy.
    perm = torch.randperm(64, generator=g)
    assert torch.equal(xbquant.quantize_levels(x, levels[perm]), ours)
    q32 = xbquant.quantize_levels(x.float(), levels.numpy())
    assert q32.dtype == torch.float32
    with pytest.raises(ValueError):
        xbquant.quantize_levels(x, [])
    with pytest.raises(ValueError):
        xbquant.quantize_levels(x, [1.0, float("nan")])


def test_stochastic_levels_and_noise_statistics():
    n = 200_000
    levels = [0.0, 0.1, 0.7, 1.0]
    for value in (0.05, 0.4, 0.95):
        q = xbquant.quantize_levels(torch.full((n,), value, dtype=torch.float64), levels, "stochastic", seed=4)
        sigma = (0.6**2 / 4 / n) ** 0.5
        assert abs(q.mean().item() - value) < 4 * sigma
        again = xbquant.quantize_levels(torch.full((n,), value, dtype=torch.float64), levels, "stochastic", seed=4)
        assert torch.equal(q, again)
    zeros = torch.zeros(n, dtype=torch.float64)
    for noise in ("gaussian", "uniform"):
        y = xbquant.adc(zeros, 24, range=1.0, noise_std=0.01, noise=noise, seed=9)
        assert torch.equal(y, xbquant.adc(zeros, 24, range=1.0, noise_std=0.01, noise=noise, seed=9))
        assert not torch.equal(y, xbquant.adc(zeros, 24, range=1.0, noise_std=0.01, noise=noise, seed=10))
        var = 1e-4
        assert abs(y.mean().item()) < 4 * (var / n) ** 0.5, noise
        assert abs(y.var().item() - var) < 4 * (2 * var * var / n) ** 0.5 + var * 1e-3, noise
    # Without a seed, torch's generator decides: manual_seed repeats a run.
    torch.manual_seed(0)
    a = xbquant.dac(zeros[:100] + 0.3, 4, range=1.0, noise_std=0.1)
    torch.manual_seed(0)
    assert torch.equal(a, xbquant.dac(zeros[:100] + 0.3, 4, range=1.0, noise_std=0.1))


def test_converter_ranges_and_devices():
    y = torch.tensor([[0.25, 2.0], [1.0, -1.0]])
    assert xbquant.adc(y, 4, axis=1).tolist() == [[0.25, 1.75], [0.875, -1.0]]
    assert xbquant.adc(y, 4, range=[1.0, 4.0], axis=1).tolist() == [[0.25, 2.0], [0.875, -1.0]]
    assert xbquant.adc(y, 4, range=torch.tensor([1.0, 4.0]), axis=-1).tolist() == [
        [0.25, 2.0],
        [0.875, -1.0],
    ]
    assert xbquant.dac(y, 3, range=0.5).tolist() == [[0.25, 0.375], [0.375, -0.375]]
    for bad in ("max", -1.0, [1.0]):
        with pytest.raises(ValueError):
            xbquant.dac(y, 3, range=bad, axis=1)
    with pytest.raises(ValueError):
        xbquant.dac(y, 1)
    with pytest.raises(ValueError):
        xbquant.dac(y, 4, noise_std=-1.0)
    for dtype in DTYPES:
        x = y.to(dtype)
        assert xbquant.dac(x, 4).dtype == dtype
    nd = xbquant.dac(y.numpy(), 4)
    assert isinstance(nd, np.ndarray) and nd.tolist() == xbquant.dac(y, 4).tolist()


def test_straight_through_gradients():
    # dac: zero gradient where the value saturated (the range's own maximum, at 4 bits).
    x = torch.tensor([0.3, -2.0, 1.0], requires_grad=True)
    y = xbquant.dac(x, 4, range=1.0)
    y.backward(torch.ones(3))
    assert x.grad.tolist() == [1.0, 0.0, 0.0]
    # Levels and bounded grids: zero outside the table's span.
    x = torch.tensor([0.5, 5.0, -1.0], requires_grad=True)
    xbquant.quantize_levels(x, [0.0, 1.0, 2.0]).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 0.0]
    x = torch.tensor([0.5, 5.0, -1.0], requires_grad=True)
    xbquant.quantize_grid(x, 0.5, levels=5).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 0.0]
    # quantize, per tensor and per slice: zero where the code overflowed.
    x = torch.tensor([[0.3, 9.0], [0.2, -0.1]], requires_grad=True)
    q = xbquant.quantize(x, 4, 2)
    q.sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0], [1.0, 1.0]]
    x.grad = None
    xbquant.quantize(x, 4, [0, 2], axis=0).sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0], [1.0, 1.0]]  # 9 > 7 at fl = 0
    # A constant when the input does not require grad, or under no_grad.
    with torch.no_grad():
        assert not xbquant.dac(x, 4).requires_grad


def test_bit_slices():
    codes = torch.arange(-15, 16)
    for encoding, bits in [("sign-magnitude", 4), ("twos-complement", 5), ("offset-binary", 5)]:
        c = codes if encoding == "sign-magnitude" else torch.arange(-16, 16)
        for slice_bits in (1, 2, 3):
            planes = xbquant.bit_slices(c, bits, slice_bits, encoding)
            assert planes.shape == (-(-bits // slice_bits), len(c)) and planes.dtype == c.dtype
            assert torch.equal(xbquant.from_bit_slices(planes, bits, slice_bits, encoding), c)
    # Float codes of any shape keep their dtype; non-integers are refused.
    f = torch.tensor([[3.0, -2.0], [0.0, 1.0]], dtype=torch.float64)
    p = xbquant.bit_slices(f, 2)
    assert p.shape == (2, 2, 2) and p.dtype == torch.float64
    assert p[:, 0, 1].tolist() == [0.0, -1.0]
    assert torch.equal(xbquant.from_bit_slices(p, 2), f)
    with pytest.raises(ValueError, match="integer"):
        xbquant.bit_slices(torch.tensor([0.5]), 4)
    with pytest.raises(ValueError, match="outside"):
        xbquant.bit_slices(torch.tensor([16]), 4)
    with pytest.raises(ValueError):
        xbquant.bit_slices(torch.tensor([1]), 4, encoding="gray")
    with pytest.raises(ValueError):
        xbquant.from_bit_slices(torch.zeros(3, 2, dtype=torch.int64), 4)
    assert np.array_equal(xbquant.bit_slices(np.array([5, -5]), 3), [[1, -1], [0, 0], [1, -1]])


def test_scaled_fixed_point():
    """`quantize(x, wl, fl, scale=...)`: s * Q(x / s) in the tensor's float arithmetic, with any
    format and mode; abs-max, a number or a scale per slice; zeros for a zero scale."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 50, generator=g) * torch.tensor([0.1, 1, 10, 0, 3, 0.5])[:, None]
    for kw in ({}, {"overflow": "wrap"}, {"signed": False, "overflow": "saturate"}, {"rounding": "floor"}):
        ours = xbquant.quantize(x, 6, 4, scale="absmax", axis=0, **kw)
        for r in range(6):
            s = x[r].abs().max()
            want = s * xbquant.quantize(x[r] / s, 6, 4, **kw) if s > 0 else torch.zeros(50)
            assert torch.equal(ours[r], want), (kw, r)
        # A scale per slice, a number, the whole tensor.
        scales = torch.tensor([0.5, 1.0, 2.0, 0.0, 4.0, 1.0])
        ours = xbquant.quantize(x, 6, 4, scale=scales, axis=0, **kw)
        for r in range(6):
            s = scales[r]
            want = s * xbquant.quantize(x[r] / s, 6, 4, **kw) if s > 0 else torch.zeros(50)
            assert torch.equal(ours[r], want), (kw, r)
        assert torch.equal(xbquant.quantize(x, 6, 4, scale=2.0, **kw), 2.0 * xbquant.quantize(x / 2.0, 6, 4, **kw))
    with pytest.raises(ValueError):
        xbquant.quantize(x, 6, "auto", scale="absmax")
    with pytest.raises(ValueError):
        xbquant.quantize(x, 6, 4, scale=[1.0, 2.0], axis=0)
    # The straight-through gradient stops where Q saturated.
    w = torch.tensor([0.5, 1.0, -1.0], requires_grad=True)
    xbquant.quantize(w, 4, 3, scale="absmax").sum().backward()
    assert w.grad.tolist() == [1.0, 0.0, 0.0]
