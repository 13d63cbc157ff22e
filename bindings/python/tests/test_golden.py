"""Bit-exact golden vectors: QPyTorch's nearest rounding (with its known defects corrected) and
every rounding and overflow mode of the HLS ap_fixed types, through the Rust kernels and through
the pure-torch path."""

import pytest
import torch
from conftest import assert_same, f32_from_bits, f64_from_bits, make_scheme

import xbquant
from xbquant import _data, _torch_ops


def through(path, x, spec):
    if path == "kernels":
        return _data.run(x, spec)[0]
    return _torch_ops.quantize(x, _data.resolve(spec, x), False)[0]


def hls_name(case):
    kind = "ap_fixed" if case["signed"] else "ap_ufixed"
    w, i = case["wl"], case["wl"] - case["fl"]
    return f"{kind}<{w},{i},{case['rounding']},{case['overflow']},{case['sat_bits']}>"


def zero_as_positive(t):
    # QPyTorch's sign of zero is an accident of its arithmetic: compare -0.0 as +0.0.
    return torch.where(t == 0, torch.zeros_like(t), t)


@pytest.mark.parametrize("path", ["kernels", "torch"])
def test_qpytorch_nearest(nearest_golden, path):
    for case in nearest_golden["cases"]:
        x = f32_from_bits(case["x_bits"])
        want = zero_as_positive(f32_from_bits(case["q_bits"]))
        overflow = ("saturate-symmetric" if case["symmetric"] else "saturate") if case["clamp"] else "unbounded"
        spec = make_scheme(case["wl"], case["fl"], overflow=overflow, rounding="nearest")
        got = through(path, x, spec)
        assert_same(got, want, f"{path} {case['wl']},{case['fl']} {overflow}")
        # The public drop-in gives the same.
        if path == "kernels":
            dropin = xbquant.fixed_point_quantize(
                x, case["wl"], case["fl"], clamp=case["clamp"], symmetric=case["symmetric"],
                rounding="nearest",
            )
            assert_same(dropin, want, "fixed_point_quantize")


@pytest.mark.parametrize("path", ["kernels", "torch"])
def test_qpytorch_deviations_are_corrected(nearest_golden, path):
    deviations = nearest_golden["deviations"]
    assert len(deviations) > 100
    for case in deviations:
        x = f32_from_bits(case["x_bits"])
        overflow = ("saturate-symmetric" if case["symmetric"] else "saturate") if case["clamp"] else "unbounded"
        spec = make_scheme(case["wl"], case["fl"], overflow=overflow, rounding="nearest")
        got = through(path, x, spec)
        assert_same(got, zero_as_positive(f32_from_bits(case["exact_bits"])), "exact")
        assert not torch.equal(got, f32_from_bits(case["qtorch_bits"]))


@pytest.mark.parametrize("path", ["kernels", "torch"])
def test_ap_fixed_every_mode(ap_fixed_golden, path):
    cases = ap_fixed_golden["cases"]
    assert len(cases) == 1260
    for case in cases:
        x32 = f32_from_bits(case["x_bits"])
        want = f64_from_bits(case["q_bits64"])
        # Through the HLS type name, as the reference was made (it carries one HLS quirk: a
        # 1-bit signed AP_SAT_SYM type behaves as AP_SAT).
        spec = make_scheme(**xbquant.parse_hls(hls_name(case)))
        context = f"{path} wl={case['wl']} fl={case['fl']} {case['rounding']} {case['overflow']}:{case['sat_bits']}"
        assert_same(through(path, x32.to(torch.float64), spec), want, context)
        if case["wl"] <= 24:
            # Exact in float32 too.
            assert_same(through(path, x32, spec), want.to(torch.float32), context + " f32")


def test_hls_names_reach_the_kernels(ap_fixed_golden):
    # The same cases through the public `quantize(..., hls=...)`.
    done = 0
    for case in ap_fixed_golden["cases"][::7]:
        name = hls_name(case)
        x = f32_from_bits(case["x_bits"]).to(torch.float64)
        assert_same(xbquant.quantize(x, hls=name), f64_from_bits(case["q_bits64"]), name)
        done += 1
    assert done >= 150
