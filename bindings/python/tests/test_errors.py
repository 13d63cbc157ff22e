"""Bad input gives ValueError or TypeError with a clear message, never a crash."""

import numpy as np
import pytest
import torch

import xbquant
from xbquant.quantizers import FixedPointQuantF, fixed_point_quantize_wrapper

X = torch.tensor([0.5, -1.0])


@pytest.mark.parametrize(
    "wl, fl, match",
    [
        (0, 0, "word length"),
        (-3, 0, "word length"),
        (65, 0, "word length"),
        (2**40, 0, "word length"),
        (8, 2000, "fractional length"),
        (8, -2000, "fractional length"),
        (8, 10**30, "fl must be between"),
        (8.5, 2, "whole number"),
        (8, float("nan"), "whole number"),
    ],
)
def test_bad_formats_are_value_errors(wl, fl, match):
    with pytest.raises(ValueError, match=match):
        fixed_point_quantize_wrapper(X, wl, fl)
    with pytest.raises(ValueError):
        xbquant.fixed_point_quantize(X, wl, fl)
    with pytest.raises(ValueError):
        FixedPointQuantF.apply(X, wl, fl)


def test_whole_floats_and_numpy_integers_are_accepted():
    assert fixed_point_quantize_wrapper(X, 8.0, np.int64(2)).tolist() == [0.5, -1.0]


@pytest.mark.parametrize("bad", ["eight", None, [8], True])
def test_non_numbers_are_type_errors(bad):
    with pytest.raises(TypeError, match="wl must be an integer"):
        fixed_point_quantize_wrapper(X, bad, 2)


def test_unknown_modes_are_value_errors():
    with pytest.raises(ValueError, match="rounding"):
        fixed_point_quantize_wrapper(X, 8, 2, rounding="up-ish")
    with pytest.raises(ValueError, match="overflow"):
        xbquant.quantize(X, 8, 2, overflow="bounce")
    with pytest.raises(ValueError, match="saturation bits"):
        xbquant.quantize(X, 4, 2, overflow="wrap", sat_bits=5)
    with pytest.raises(ValueError):
        xbquant.quantize(X, 4, 2, overflow="saturate", sat_bits=1)
    with pytest.raises(ValueError, match="signed"):
        xbquant.quantize(X, 4, 2, overflow="wrap-sign-magnitude", signed=False)
    with pytest.raises(ValueError, match="not stochastic"):
        xbquant.quantize(X, 4, 2, rounding="nearest", seed=3)
    with pytest.raises(ValueError):
        xbquant.quantize(X, hls="ap_fixed<8>")
    with pytest.raises(TypeError, match="rounding must be a string"):
        xbquant.quantize(X, 4, 2, rounding=1)
    with pytest.raises(TypeError, match="seed"):
        xbquant.quantize(X, 4, 2, rounding="stochastic", seed=1.5)
    with pytest.raises(ValueError, match="64 bits"):
        xbquant.quantize(X, 4, 2, rounding="stochastic", seed=2**64)


@pytest.mark.parametrize(
    "data",
    [
        torch.tensor([1, 2]),
        torch.tensor([True, False]),
        torch.tensor([1 + 2j]),
        np.array([1, 2]),
        np.array(["a"]),
    ],
)
def test_non_float_data_is_a_type_error(data):
    with pytest.raises(TypeError, match="floating-point"):
        xbquant.quantize(data, 8, 2)
    with pytest.raises(TypeError, match="floating-point"):
        fixed_point_quantize_wrapper(data, 8, 2)


@pytest.mark.parametrize("data", [[0.5, 1.0], 0.5, "x", None])
def test_non_arrays_are_type_errors(data):
    with pytest.raises(TypeError, match="torch.Tensor or a numpy array"):
        xbquant.quantize(data, 8, 2)


def test_the_extension_checks_its_buffers():
    from xbquant import _xbquant

    a = np.zeros(4, np.float32)
    scheme = _xbquant.Scheme._fixed(8, 2, True, "saturate", 0, "nearest", None)
    with pytest.raises(ValueError, match="length"):
        _xbquant.quantize(scheme, a, np.zeros(3, np.float32), None, "float32", None)
    with pytest.raises(TypeError, match="float32"):
        _xbquant.quantize(scheme, a, np.zeros(4, np.float64), None, "float32", None)
    with pytest.raises(ValueError, match="contiguous"):
        _xbquant.quantize(scheme, np.zeros(8, np.float32)[::2], a, None, "float32", None)
    with pytest.raises(ValueError, match="shares memory"):
        _xbquant.quantize(scheme, a, a[::1], None, "float32", None)
    with pytest.raises(TypeError, match="dtype"):
        _xbquant.quantize(scheme, a, a, None, "int8", None)
    with pytest.raises(ValueError, match="not stochastic"):
        _xbquant.quantize(scheme, a, a, None, "float32", 7)
    # In place when the output is the input.
    b = np.array([0.3, 99.0], np.float32)
    assert _xbquant.quantize(scheme, b, b) is None and b.tolist() == [0.25, 31.75]
    # No output: a new array of the input's shape and dtype, or a clear error.
    q = _xbquant.quantize(scheme, np.array([[0.3, 99.0]], np.float64))
    assert q.dtype == np.float64 and q.shape == (1, 2) and q.tolist() == [[0.25, 31.75]]
    with pytest.raises(ValueError, match="contiguous"):
        _xbquant.quantize(scheme, np.zeros(8, np.float32)[::2])
    with pytest.raises(TypeError, match="float32 or float64"):
        _xbquant.quantize(scheme, np.zeros(4, np.int32))
