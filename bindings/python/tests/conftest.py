"""Shared helpers: the golden data (kept once, in the core crate's test data) and exact
comparisons of float bit patterns."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).resolve().parents[3] / "crates" / "xbquant" / "tests" / "data"

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def load(name):
    path = DATA / name
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def nearest_golden():
    return load("fixed_point_nearest.json")


@pytest.fixture(scope="session")
def ap_fixed_golden():
    return load("ap_fixed.json.gz")


@pytest.fixture(scope="session")
def range_golden():
    return load("fixed_point_range.json")


def f32_from_bits(bits):
    return torch.from_numpy(np.array(bits, dtype=np.uint32).view(np.float32).copy())


def f64_from_bits(bits):
    return torch.from_numpy(np.array(bits, dtype=np.uint64).view(np.float64).copy())


def same_bits(a, b):
    """Equal element by element, bit for bit: NaN equals NaN, and +0.0 differs from -0.0."""
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    a, b = a.detach().cpu(), b.detach().cpu()
    both_nan = torch.isnan(a) & torch.isnan(b)
    equal = (a == b) & (torch.signbit(a) == torch.signbit(b))
    return bool((both_nan | equal).all())


def assert_same(a, b, context=""):
    if same_bits(a, b):
        return
    a, b = a.detach().cpu(), b.detach().cpu()
    bad = ~((torch.isnan(a) & torch.isnan(b)) | ((a == b) & (torch.signbit(a) == torch.signbit(b))))
    i = torch.nonzero(bad.reshape(-1))[0].item()
    raise AssertionError(
        f"{context}: {int(bad.sum())} elements differ; first at {i}: "
        f"{a.reshape(-1)[i].item()!r} != {b.reshape(-1)[i].item()!r}"
    )


def special_values(dtype):
    """Values that stress every mode: ties, bounds, huge, tiny, subnormal, infinities, NaN, -0."""
    info = torch.finfo(dtype)
    base = [0.0, -0.0, 0.125, -0.125, 0.375, 0.625, -0.625, 1.875, -2.375, 2.5, 9.0, -9.0,
            1e30, -1e30, float("inf"), float("-inf"), float("nan"), info.tiny, -info.tiny,
            info.tiny / 4, info.max, -info.max, 2.0**20 + 0.5, 2.0**23 + 1, -(2.0**22) - 0.5]
    return torch.tensor(base, dtype=torch.float64).to(dtype)


def sample(dtype, n=4000, seed=0, scale=4.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g, dtype=torch.float64) * scale
    ties = (torch.randint(-64, 64, (n // 4,), generator=g).to(torch.float64) + 0.5) / 4
    return torch.cat([x, ties, special_values(torch.float64)]).to(dtype)


def make_scheme(wl, fl, *, overflow="saturate-symmetric", rounding="nearest", signed=True, seed=None, sat_bits=0):
    """A checked fixed-point scheme, as the package builds them (keyword arguments)."""
    from xbquant import _schemes

    return _schemes.fixed(wl, fl, overflow, rounding, signed, seed, sat_bits)
