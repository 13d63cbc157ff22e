"""XBTorch's `xbtorch.quant.quantizers` API: names, defaults, autograd and ranges."""

import inspect
import math
from collections import namedtuple

import pytest
import torch
from conftest import assert_same, sample

import xbquant
from xbquant.quantizers import (
    FixedPointQuantF,
    fixed_point_quantize_wrapper,
    get_range_fixed_point,
)

Format = namedtuple("Format", "wl fl symmetric")


def test_signatures_match_the_seed():
    forward = inspect.signature(FixedPointQuantF.forward)
    assert list(forward.parameters) == ["ctx", "input", "wl", "fl", "symmetric", "rounding"]
    assert forward.parameters["symmetric"].default is True
    assert forward.parameters["rounding"].default == "nearest"
    wrapper = inspect.signature(fixed_point_quantize_wrapper)
    assert list(wrapper.parameters) == ["input", "wl", "fl", "symmetric", "rounding"]
    assert wrapper.parameters["symmetric"].default is True
    assert wrapper.parameters["rounding"].default == "nearest"
    assert list(inspect.signature(get_range_fixed_point).parameters) == ["num_format"]
    assert issubclass(FixedPointQuantF, torch.autograd.Function)


def test_forward_is_the_symmetric_nearest_quantizer():
    x = torch.tensor([-2.375, -2.0, -0.375, 0.125, 0.375, 0.625, 1.875, 2.5, 9.0])
    # wl 4, fl 2: step 0.25; symmetric range [-1.75, 1.75]; ties to even.
    expected = torch.tensor([-1.75, -1.75, -0.5, 0.0, 0.5, 0.5, 1.75, 1.75, 1.75])
    assert_same(fixed_point_quantize_wrapper(x, 4, 2), expected, "wrapper")
    assert_same(FixedPointQuantF.apply(x, 4, 2), expected, "apply")
    asymmetric = fixed_point_quantize_wrapper(x, 4, 2, symmetric=False)
    assert asymmetric[0].item() == -2.0 and asymmetric[1].item() == -2.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_gradient_is_the_upstream_gradient(dtype):
    torch.manual_seed(0)
    x = (torch.randn(3, 50, dtype=torch.float64) * 4).to(dtype).requires_grad_()
    upstream = torch.randn(3, 50, dtype=torch.float64).to(dtype)
    for rounding in ("nearest", "stochastic"):
        x.grad = None
        q = fixed_point_quantize_wrapper(x, 6, 3, rounding=rounding)
        assert q.requires_grad and q.dtype == dtype and q.shape == x.shape
        q.backward(upstream)
        # Saturated elements get the gradient too: the seed's estimator is straight-through.
        assert torch.equal(x.grad, upstream)
    # Through a network: the gradient of a quantized layer equals that of the float layer
    # evaluated at the quantized weights.
    w = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    inputs = torch.randn(7, 5, dtype=torch.float64)
    loss = (inputs @ FixedPointQuantF.apply(w, 8, 5).t()).square().sum()
    loss.backward()
    wq = fixed_point_quantize_wrapper(w.detach(), 8, 5).requires_grad_()
    (inputs @ wq.t()).square().sum().backward()
    assert torch.equal(w.grad, wq.grad)


def test_rounding_argument_is_honoured():
    x = torch.full((20000,), 0.1)
    nearest = fixed_point_quantize_wrapper(x, 8, 2)
    assert torch.all(nearest == 0.0)
    torch.manual_seed(1)
    stochastic = fixed_point_quantize_wrapper(x, 8, 2, rounding="stochastic")
    assert set(stochastic.unique().tolist()) == {0.0, 0.25}
    # Unbiased: E[q] = 0.1; the mean of 20000 draws has a standard error of 0.0012.
    assert abs(stochastic.mean().item() - 0.1) < 0.006
    floor = fixed_point_quantize_wrapper(torch.tensor([0.49, -0.01]), 8, 2, rounding="floor")
    assert floor.tolist() == [0.25, -0.25]


def test_numpy_arrays_work_too():
    import numpy as np

    x = np.array([0.3, -9.0], dtype=np.float32)
    q = fixed_point_quantize_wrapper(x, 4, 2)
    assert isinstance(q, np.ndarray) and q.dtype == np.float32
    assert q.tolist() == [0.25, -1.75]


def test_ranges_match_the_golden_formula(range_golden):
    for case in range_golden["ranges"]:
        got = get_range_fixed_point(Format(case["wl"], case["fl"], case["symmetric"]))
        assert isinstance(got, tuple) and all(type(v) is float for v in got)
        want = (case["min"], case["max"])
        # Bit for bit, sign of zero included (repr tells -0.0 from 0.0).
        assert repr(got) == repr(want), case


def test_range_accepts_any_object_with_the_attributes():
    class QtorchLike:
        wl, fl, symmetric, clamp = 8, 6, False, True

    assert get_range_fixed_point(QtorchLike()) == (-2.0, 1.984375)
    assert get_range_fixed_point(xbquant.FixedPoint(8, 6)) == (-2.0, 1.984375)
    assert get_range_fixed_point(xbquant.FixedPoint(8, 6, symmetric=True)) == (-1.984375, 1.984375)
    unsigned = namedtuple("U", "wl fl symmetric signed")(8, 6, False, False)
    assert get_range_fixed_point(unsigned) == (0.0, 3.984375)
    assert get_range_fixed_point(Format(64, 0, False)) == (-(2.0**63), float(2**63 - 1))
    assert math.isfinite(get_range_fixed_point(Format(64, -900, True))[1])


def test_range_errors():
    with pytest.raises(TypeError, match="symmetric"):
        get_range_fixed_point(namedtuple("F", "wl fl")(8, 4))
    with pytest.raises(ValueError, match="word length"):
        get_range_fixed_point(Format(0, 4, True))
    with pytest.raises(ValueError):
        get_range_fixed_point(Format(65, 4, True))
    with pytest.raises(ValueError):
        get_range_fixed_point(Format(8, 5000, True))


def test_wrapper_keeps_dtype_shape_and_device():
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        x = sample(dtype, n=200).reshape(-1, 1)
        q = fixed_point_quantize_wrapper(x, 8, 4)
        assert q.dtype == dtype and q.shape == x.shape and q.device == x.device
