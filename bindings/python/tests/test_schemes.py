"""Schemes at the Python edge: the text form, pickling, `quantize(x, scheme=...)`, percentile
ranges equal to numpy's percentiles, masks from the core, and the one data path's dtypes."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import xbquant
from xbquant import Scheme, _data, _schemes

TEXTS = [
    "fixed<8,4> overflow=saturate",
    "ufixed<6,2> overflow=wrap rounding=floor",
    "fixed<6,0> overflow=saturate rounding=stochastic:5 group=axis:-1 scale=pow2",
    "fixed<4,0> overflow=saturate-symmetric group=runs:32 scale=shared-exponent",
    "fixed<8,7> overflow=saturate-symmetric group=axis:1 range=percentile:99.9",
    "fixed<8,7> overflow=saturate-symmetric range=abs-max noise=gaussian:0.01 seed=3",
    "e4m3fn rounding=stochastic:9",
    "grid<0.1,-0.5,11>",
    "levels<-1.0,0.0,0.5,2.0>",
]


@pytest.mark.parametrize("text", TEXTS)
def test_the_text_form_round_trips_and_pickles(text):
    s = Scheme(text)
    assert str(s) == text
    assert repr(s) == f"Scheme({text!r})".replace("'", '"')
    assert Scheme(str(s)) == s and hash(Scheme(str(s))) == hash(s)
    assert pickle.loads(pickle.dumps(s)) == s


def test_quantize_takes_a_scheme():
    x = torch.tensor([[0.5, 10.0], [-2.0, 3.0]])
    text = "fixed<4,3> overflow=saturate-symmetric group=axis:1 range=percentile:50"
    # Column ranges 1.25 and 6.5: 0.5 -> 1.25 * 3/8; -2 and 10 clip at 7/8 of theirs.
    want = [[0.46875, 5.6875], [-1.09375, 3.25]]
    assert xbquant.quantize(x, scheme=text).tolist() == want
    assert xbquant.quantize(x, scheme=Scheme(text)).tolist() == want
    assert xbquant.quantize(x.numpy(), scheme=text).tolist() == want
    # The straight-through gradient, zero where it clipped; the mask on request.
    xg = x.clone().requires_grad_()
    y, mask = xbquant.quantize(xg, scheme=text, return_mask=True)
    y.sum().backward()
    assert xg.grad.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert mask.tolist() == [[False, True], [True, False]]
    # A seed fixes a stochastic scheme's noise.
    noisy = "fixed<8,7> overflow=saturate-symmetric range=abs-max noise=gaussian:0.05"
    a = xbquant.quantize(x, scheme=noisy, seed=4)
    assert torch.equal(a, xbquant.quantize(x, scheme=noisy, seed=4))
    assert not torch.equal(a, xbquant.quantize(x, scheme=noisy, seed=5))
    with pytest.raises(ValueError, match="not stochastic"):
        xbquant.quantize(x, scheme="fixed<8,4>", seed=4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_percentile_ranges_are_numpys(dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((50, 301)) * 3).astype(dtype)
    x[3, 7], x[9, 8], x[20, 8] = np.inf, np.nan, -np.inf
    magnitudes = np.abs(x.astype(np.float64))
    magnitudes[~np.isfinite(magnitudes)] = np.nan
    for p in [0.0, 12.5, 33.3, 50.0, 90.0, 99.5, 99.9, 100.0]:
        s = _schemes.converter(x, 8, f"percentile:{p}", 1, "nearest", 0.0, "gaussian", None)
        got = np.array(_data.calibrate(x, s).ranges)
        want = np.nanpercentile(magnitudes, p, axis=0)
        assert np.array_equal(got, want), p


def test_percentile_converters_follow_the_formula():
    """`r * Q(x / r)` with `r` numpy's percentile per column, in float64."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 40)) * np.exp2(rng.integers(-4, 4, (1, 40)))
    for bits, p in [(4, 90.0), (8, 99.0), (6, 50.0)]:
        r = np.percentile(np.abs(x), p, axis=0)
        top = 2.0 ** (bits - 1)
        want = r * np.clip(np.round(x / r * top), -(top - 1), top - 1) / top
        got = xbquant.adc(x, bits, range=f"percentile:{p}", axis=1)
        assert np.array_equal(got, want), (bits, p)
    assert np.array_equal(
        xbquant.adc(x, 8, range="percentile:100", axis=1), xbquant.adc(x, 8, range="absmax", axis=1)
    )


def test_grid_masks_are_the_cores():
    """The clip mask of a bounded grid uses its last point as the core computes it, `offset +
    (levels - 1) * step` rounded once (0.109); rounded twice it is 0.10900000000000001, and a
    value there lies beyond the grid, its gradient stopped."""
    offset, step, levels = 0.1, 0.003, 4
    assert offset + (levels - 1) * step == 0.10900000000000001
    x = torch.tensor([0.10900000000000001, 0.109], dtype=torch.float64, requires_grad=True)
    xbquant.quantize_grid(x, step, offset, levels).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0]


def test_every_dtype_takes_one_path():
    """float16, float32, float64 and byte-swapped arrays through every kind of scheme; numpy
    data never imports torch."""
    x = np.array([[0.3, -1.7], [2.5, 0.01]])
    for text in ["fixed<6,3>", "e4m3fn", "grid<0.25,0.0,5>", "fixed<4,0> overflow=saturate-symmetric group=axis:0 scale=shared-exponent"]:
        want = xbquant.quantize(x, scheme=text)
        for dtype in (np.float16, np.float32, ">f8", "<f4"):
            got = xbquant.quantize(x.astype(dtype), scheme=text)
            assert got.dtype == np.dtype(dtype)
            assert np.array_equal(got.astype(np.float64), want.astype(np.dtype(dtype)).astype(np.float64))
    code = (
        "import sys, numpy as np, xbquant\n"
        "x = np.array([0.3, 5.0, -2.0], np.float32)\n"
        "xbquant.block_quantize(x, 4, rounding='nearest')\n"
        "xbquant.quantize(x, scheme='fixed<8,7> overflow=saturate-symmetric range=percentile:90')\n"
        "xbquant.adc(x, 4)\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ml_dtypes_bfloat16_everywhere():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.array([0.3, -1.7, 2.5], dtype=ml_dtypes.bfloat16)
    for call in (
        lambda v: xbquant.quantize(v, 6, 3),
        lambda v: xbquant.quantize_float(v, "e4m3fn"),
        lambda v: xbquant.adc(v, 4),
        lambda v: xbquant.quantize_grid(v, 0.25),
        lambda v: xbquant.block_quantize(v, 4, rounding="nearest"),
    ):
        got = call(x)
        assert got.dtype == x.dtype
        want = call(torch.tensor(x.astype(np.float32)).to(torch.bfloat16)).float().numpy()
        assert np.array_equal(got.astype(np.float32), want)
