"""The pure-torch path (used for tensors on CUDA and other devices) equals the Rust kernels, bit
for bit, in every mode: run here on CPU tensors forced through it."""

import itertools

import pytest
import torch
from conftest import DTYPES, assert_same, sample, make_scheme

from xbquant import _data, _torch_ops

ROUNDINGS = [
    "nearest",
    "nearest-up",
    "nearest-down",
    "nearest-toward-zero",
    "nearest-away",
    "floor",
    "toward-zero",
    "stochastic",
]
SIGNED_OVERFLOWS = [
    "saturate",
    "saturate-symmetric",
    "saturate-zero",
    "wrap",
    "wrap:1",
    "wrap:3",
    "wrap-sign-magnitude",
    "wrap-sign-magnitude:1",
    "wrap-sign-magnitude:2",
    "unbounded",
]
UNSIGNED_OVERFLOWS = ["saturate", "saturate-zero", "wrap", "unbounded"]
# (wl, fl, signed): small words, negative fl, fl beyond wl, words wider than float32's
# significand and the widest word.
FORMATS = [(4, 2, True), (8, -2, True), (6, 9, True), (5, 1, False), (30, 12, True), (64, 3, True), (40, 0, False)]


def kernels_and_torch(x, spec, with_mask=True):
    spec = _data.resolve(spec, x)
    a, mask_a = _data.run(x, spec, with_mask)
    b, mask_b = _torch_ops.quantize(x, spec, with_mask)
    return a, b, mask_a, mask_b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wl, fl, signed", FORMATS)
def test_every_mode_equals_the_kernels(dtype, wl, fl, signed):
    x = sample(dtype, n=1500, seed=wl) * (2.0 ** (wl - fl - 2))
    x = torch.cat([x, sample(dtype, n=300, seed=1)])
    overflows = SIGNED_OVERFLOWS if signed else UNSIGNED_OVERFLOWS
    checked = 0
    for rounding, overflow in itertools.product(ROUNDINGS, overflows):
        if overflow.endswith(":3") and wl < 3:
            continue
        spec = make_scheme(wl, fl, overflow=overflow, rounding=rounding, signed=signed)
        a, b, mask_a, mask_b = kernels_and_torch(x, spec)
        context = f"{dtype} wl={wl} fl={fl} signed={signed} {rounding} {overflow}"
        assert_same(b, a, context)
        assert torch.equal(mask_a, mask_b), context
        checked += 1
    assert checked == len(ROUNDINGS) * len(overflows)


def test_stochastic_draws_are_the_kernels_draws():
    # The generator itself: the same uniforms as the Rust side, for seeds with high bits set.
    x = torch.full((5000,), 0.5, dtype=torch.float64)
    for seed in (0, 1, 2**63 + 5, 2**64 - 1):
        spec = make_scheme(8, 0, rounding="stochastic", seed=seed)
        a, b, _, _ = kernels_and_torch(x, spec, with_mask=False)
        assert_same(b, a, f"seed {seed}")
        assert 2300 < a.sum().item() < 2700  # P(up) = 1/2


def test_torch_draws_are_the_kernels_draws_in_every_bit():
    # Fractions equal to each element's draw never round up, and the next float64 above it
    # always does: only draws equal to the kernels' in all 52 bits decide these alike. The
    # kernels' loops see the high bits first and must settle these undecided elements exactly.
    n = 5000
    odd = torch.arange(n) % 2 == 1
    for seed in (0, 7, 2**64 - 1):
        u = _torch_ops.uniform(seed, n, "cpu")
        x = torch.where(odd, torch.nextafter(u, torch.ones_like(u)), u)
        spec = make_scheme(8, 0, rounding="stochastic", seed=seed)
        a, b, _, _ = kernels_and_torch(x, spec, with_mask=False)
        assert torch.equal(a, odd.to(torch.float64)), f"seed {seed}"
        assert_same(b, a, f"seed {seed}")


def test_narrow_types_with_wide_words_use_the_kernels():
    x = sample(torch.bfloat16, n=500) * 1000
    spec = make_scheme(40, 20, overflow="wrap-sign-magnitude", rounding="nearest")
    assert _torch_ops.needs_kernels(x, spec)
    # The path of tensors on other devices, forced here on a CPU tensor, takes the kernels.
    a, _ = _data.run(x, spec, False)
    b, _ = _data._run_other_device(x, spec, False, "x")
    assert_same(b, a, "bf16 wl 40")


def test_results_keep_shape_and_layout():
    x = sample(torch.float32, n=600)[:600].reshape(20, 30).t()
    spec = make_scheme(8, 4, rounding="nearest")
    a, b, _, _ = kernels_and_torch(x, spec)
    assert a.shape == b.shape == x.shape
    assert_same(b, a, "transposed")
