"""Values at the edges of the dtypes, each once a hang or a silent wrong answer: grids whose
points overflow float64, fractional lengths chosen at a dtype's largest value, ranges and levels
a dtype cannot hold, and bit planes that wrapped in the codes' dtype."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import xbquant


def run_briefly(code: str, seconds: float = 60):
    """Runs `code` in a fresh interpreter that must finish within `seconds` (a hang fails the
    test instead of stopping the suite)."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=seconds,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_grids_of_huge_steps_return():
    out = run_briefly(
        """
        import numpy as np, torch, xbquant
        print(xbquant.quantize_grid(np.array([1e308]), 1e308).tolist())
        print(xbquant.quantize_grid(torch.tensor([0.0], dtype=torch.float64), 1e308, offset=-1e308).tolist())
        print(xbquant.quantize_grid(np.array([1.7976931348623157e308]), 2.0**1000, rounding="floor").tolist())
        for r in ["nearest", "nearest-up", "floor", "toward-zero", "stochastic"]:
            q = xbquant.quantize_grid(np.array([1e308, -1e308, 0.0, 5e-324]), 2.0**1023, rounding=r)
            # Floor takes -1e308 to the point -2^1024, beyond float64: minus infinity; stochastic
            # rounding takes 1e308 there with probability 0.11 (and -1e308 to -2^1024 likewise).
            beyond = {float("inf"), -float("inf")} if r == "stochastic" else {-float("inf")}
            assert set(q.tolist()) <= {2.0**1023, -(2.0**1023), 0.0} | beyond, (r, q)
        """
    )
    assert out.split("\n")[:3] == ["[1e+308]", "[0.0]", f"[{(2.0**24 - 1) * 2.0**1000!r}]"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_grids_the_dtype_cannot_hold_are_refused(dtype):
    with pytest.raises(ValueError, match="step"):
        xbquant.quantize_grid(torch.tensor([1.0], dtype=dtype), 1e308)
    with pytest.raises(ValueError, match="offset"):
        xbquant.quantize_grid(torch.tensor([0.0], dtype=dtype), 1.0, offset=-1e308)


@pytest.mark.parametrize(
    "dtype,top,expected,overflows",
    [
        (torch.float16, 65504.0, 57344.0, True),  # 7.996 steps of 2^13: 8 overflows
        (torch.float32, 3.4e38, 7 * 2.0**125, True),
        (torch.bfloat16, 3e38, 7 * 2.0**125, False),  # 3.004e38: 7.06 steps, rounds to 7
    ],
)
def test_fl_auto_stays_finite_at_a_dtypes_largest(dtype, top, expected, overflows):
    x = torch.tensor([top, 1.0, -top], dtype=dtype)
    for fl in ["auto", "sqnr"]:
        q = xbquant.quantize(x, 4, fl)
        assert torch.isfinite(q).all(), (fl, q)
        assert q.tolist() == [expected, 0.0, -expected]
        q, mask = xbquant.quantize(x, 4, fl, return_mask=True)
        assert mask.tolist() == [overflows, False, overflows]
    assert xbquant.choose_fl(x, 4) == -13 if dtype == torch.float16 else -125


def test_ranges_and_levels_the_dtype_cannot_hold():
    x = torch.tensor([0.5, -0.25])
    for call, name in [
        (lambda: xbquant.quantize(x, 8, 6, scale=1e39), "scale"),
        (lambda: xbquant.dac(x.half(), 8, range=1e5), "range"),
        (lambda: xbquant.adc(x, 8, range=1e308), "range"),
        (lambda: xbquant.quantize_levels(x.half(), [-1e5, 1e5]), "levels"),
        (lambda: xbquant.quantize_grid(x.half(), 1e5), "step"),
    ]:
        with pytest.raises(ValueError, match=name):
            call()
    # In float64 the same values are held: r * Q(x / r) with x / r tiny gives zeros.
    assert xbquant.quantize(x.double(), 8, 6, scale=1e39).tolist() == [0.0, 0.0]
    assert xbquant.quantize_levels(x.double(), [-1e5, 1e5]).tolist() == [1e5, -1e5]


def test_bit_planes_never_wrap():
    planes = xbquant.bit_slices(torch.tensor([100], dtype=torch.int8), 8, slice_bits=8, encoding="offset-binary")
    assert planes.dtype == torch.int64 and planes.tolist() == [[228]]
    codes = xbquant.from_bit_slices(torch.ones(8, 1, dtype=torch.int8), 8)
    assert codes.dtype == torch.int64 and codes.tolist() == [255]
    # Where the dtype holds every value, it is kept.
    planes = xbquant.bit_slices(torch.tensor([-5, 6], dtype=torch.int8), 4)
    assert planes.dtype == torch.int8
    assert xbquant.from_bit_slices(planes, 4).dtype == torch.int8
    for codes in [np.array([2**64 - 1], dtype=np.uint64), np.array([np.inf]), np.array([1e30])]:
        with pytest.raises(ValueError, match="codes"):
            xbquant.bit_slices(codes, 8)
    with pytest.raises(ValueError, match="outside 0..=3"):
        xbquant.from_bit_slices(torch.tensor([[5], [3]]), 4, slice_bits=2, encoding="twos-complement")


def test_in_place_on_an_expanded_view_is_refused():
    with pytest.raises(ValueError, match="clone"):
        xbquant.quantize_(torch.ones(1).expand(4), 8, 4)
