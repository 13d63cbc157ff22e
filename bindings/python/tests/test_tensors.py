"""Data in every shape the users have: dtypes, strides, 0-d, empty, requires_grad, numpy."""

import numpy as np
import pytest
import torch
from conftest import DTYPES, assert_same, sample

import xbquant
from xbquant import _checks, _data
from xbquant.quantizers import fixed_point_quantize_wrapper


def reference(x, wl, fl, **kw):
    """The same data made contiguous and float64 first: the kernels' f64 path, cast back."""
    q = xbquant.quantize(x.detach().contiguous().to(torch.float64), wl, fl, **kw)
    return q.to(x.dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_in_is_dtype_out(dtype):
    x = sample(dtype)
    for kw in ({}, {"overflow": "wrap"}, {"rounding": "nearest-up", "overflow": "saturate-zero"}):
        q = xbquant.quantize(x, 6, 3, **kw)
        assert q.dtype == dtype and q.shape == x.shape
        # The narrow types give the correctly rounded f64 result (exact here: 6-bit codes).
        assert_same(q, reference(x, 6, 3, **kw), f"{dtype} {kw}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_views(dtype):
    base = sample(dtype, n=6000)[:6000].reshape(60, 100)
    views = {
        "transposed": base.t(),
        "step": base[::3, 1::2],
        "offset": base[5:, 7:],
        "expanded": base[:1].expand(4, 100),
        "channels_last": base.reshape(3, 4, 5, 100).to(memory_format=torch.channels_last),
    }
    for name, view in views.items():
        original = view.clone()
        q = xbquant.quantize(view, 8, 4)
        assert q.shape == view.shape and q.dtype == dtype
        assert_same(q, reference(view, 8, 4), name)
        assert_same(view, original, f"{name}: the input is unchanged")
        torch.manual_seed(3)
        s = xbquant.quantize(view, 8, 4, rounding="stochastic")
        torch.manual_seed(3)
        # The draw of an element follows its position in the logical (row-major) order.
        assert_same(s, xbquant.quantize(view.contiguous(), 8, 4, rounding="stochastic"), name)


def test_zero_dim_empty_and_requires_grad():
    scalar = torch.tensor(0.3)
    q = xbquant.quantize(scalar, 4, 2)
    assert q.shape == () and q.item() == 0.25
    empty = torch.empty(0, 3)
    assert xbquant.quantize(empty, 4, 2).shape == (0, 3)
    assert fixed_point_quantize_wrapper(torch.empty(0, requires_grad=True), 4, 2).shape == (0,)
    x = torch.tensor([0.3, 0.6], requires_grad=True)
    q = xbquant.fixed_point_quantize(x, 4, 2, rounding="nearest")
    assert q.tolist() == [0.25, 0.5] and not q.requires_grad  # as QPyTorch: no gradient here
    assert x.grad is None


def _general(x, wl, fl, **kw):
    """`quantize` through its general path (asking for the mask takes it)."""
    return xbquant.quantize(x, wl, fl, return_mask=True, **kw)[0]


def test_the_shortest_path_gives_the_general_paths_results():
    base = sample(torch.float32, n=3000)
    tensors = {
        "float32": base,
        "float64": base.to(torch.float64),
        "float16": base.to(torch.float16),
        "bfloat16": base.to(torch.bfloat16),
        "strided": base[::3],
        "transposed": base[:2900].reshape(29, 100).t(),
        "0-d": torch.tensor(0.3),
        "empty": torch.empty(0, 3),
        "parameter": torch.nn.Parameter(base.clone(), requires_grad=False),
        "requires grad": base.clone().requires_grad_(),
    }
    if hasattr(torch, "_neg_view"):
        tensors["negative view"] = torch._neg_view(base)  # numpy() refuses it
    for kw in ({}, {"rounding": "stochastic", "seed": 5, "overflow": "wrap"}):
        for name, x in tensors.items():
            for _ in range(2):  # the first call checks the arguments, the second finds them
                q = xbquant.quantize(x, 6, 3, **kw)
                want = _general(x, 6, 3, **kw)
                assert type(q) is torch.Tensor and q.dtype == x.dtype and q.shape == x.shape
                assert q.requires_grad == x.requires_grad, name
                assert q.numel() == 0 or q.data_ptr() != x.data_ptr(), name
                assert_same(q.detach(), want.detach(), f"{name} {kw}")
            w = fixed_point_quantize_wrapper(x, 6, 3)
            assert_same(w.detach(), _general(x, 6, 3), f"wrapper {name}")
            f = xbquant.fixed_point_quantize(x, 6, 3, rounding="nearest")
            want = _general(x, 6, 3, overflow="saturate")
            assert_same(f, want.detach(), f"fixed_point_quantize {name}")
    key = (6, 3, "nearest", _checks.DEFAULT_OVERFLOW, True, None, 0)
    assert key in _data.FAST.schemes  # the second calls above found their format there


def test_the_shortest_path_keeps_the_general_paths_checks_and_fresh_seeds():
    x = sample(torch.float32, n=100)
    xbquant.quantize(x, 1, 0)
    # Equal to the cached 1 or not, these are never accepted.
    with pytest.raises(TypeError):
        xbquant.quantize(x, True, 0)
    with pytest.raises(ValueError):
        xbquant.quantize(x, 1.5, 0)
    with pytest.raises(TypeError):
        fixed_point_quantize_wrapper(x, True, 0)
    xbquant.fixed_point_quantize(x, 1, 0, rounding="nearest")
    with pytest.raises(TypeError):
        xbquant.fixed_point_quantize(x, True, 0, rounding="nearest")
    # Unseeded stochastic rounding draws a fresh seed on each call: never cached.
    a, b = xbquant.quantize(x, 8, 6, rounding="stochastic"), xbquant.quantize(x, 8, 6, rounding="stochastic")
    assert not torch.equal(a[:90], b[:90])  # (the last elements are specials, NaN among them)
    assert not any(k[:3] == (8, 6, "stochastic") for k in _data.FAST.schemes)
    torch.manual_seed(3)
    a = xbquant.quantize(x, 8, 6, rounding="stochastic")
    torch.manual_seed(3)
    assert_same(a, xbquant.quantize(x, 8, 6, rounding="stochastic"), "seeded by torch")


@pytest.mark.skipif(not hasattr(torch, "_neg_view"), reason="no negative-bit views")
def test_negative_bit_views_are_read_as_their_values():
    base = sample(torch.float32, n=500)
    view, values = torch._neg_view(base), -base  # numpy() refuses the view
    cases = {
        "quantize": lambda t: xbquant.quantize(t, 6, 3),
        "quantize with mask": lambda t: xbquant.quantize(t, 6, 3, return_mask=True)[0],
        "fixed_point_quantize": lambda t: xbquant.fixed_point_quantize(t, 6, 3, seed=1),
        "float_quantize": lambda t: xbquant.float_quantize(t, 4, 3, seed=1),
        "block_quantize": lambda t: xbquant.block_quantize(t, 6, seed=1),
        "quantize per slice": lambda t: xbquant.quantize(t.reshape(5, -1), 6, "auto", axis=0),
        "dac": lambda t: xbquant.dac(t, 4),
    }
    for name, f in cases.items():
        assert_same(f(view), f(values), name)
    work = torch._neg_view(base.clone())
    xbquant.quantize_(work, 6, 3)
    assert_same(work, xbquant.quantize(values, 6, 3), "in place")


def test_outputs_are_new_and_inputs_untouched():
    x = sample(torch.float32)
    before = x.clone()
    q = xbquant.quantize(x, 4, 1)
    assert q.data_ptr() != x.data_ptr()
    assert_same(x, before, "input")


@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_tensors_reach_the_kernels_without_a_copy(dtype):
    x = sample(dtype)
    view = _data.tensor_numpy(x, _data.tensor_dtype_name(x))
    assert view.__array_interface__["data"][0] == x.data_ptr()
    assert view.size == x.numel()


def test_numpy_arrays():
    with np.errstate(over="ignore"):  # the huge samples become inf in the narrow types
        x = sample(torch.float64).numpy()
        narrow = {dtype: x.astype(dtype) for dtype in (np.float32, np.float64, np.float16)}
    for dtype in (np.float32, np.float64, np.float16):
        a = narrow[dtype]
        q = xbquant.quantize(a, 7, 3, overflow="wrap")
        assert isinstance(q, np.ndarray) and q.dtype == dtype and q.shape == a.shape
        want = reference(torch.from_numpy(a), 7, 3, overflow="wrap").numpy()
        np.testing.assert_array_equal(q, want)
    strided = narrow[np.float32][::2]
    np.testing.assert_array_equal(
        xbquant.quantize(strided, 7, 3), xbquant.quantize(np.ascontiguousarray(strided), 7, 3)
    )
    # Stochastic rounding on arrays follows numpy's global generator.
    np.random.seed(4)
    a = xbquant.fixed_point_quantize(np.full(1000, 0.3, np.float32), 8, 2)
    np.random.seed(4)
    assert np.array_equal(a, xbquant.fixed_point_quantize(np.full(1000, 0.3, np.float32), 8, 2))
    scalar = xbquant.quantize(np.float32(0.3), 4, 2)
    assert scalar == np.float32(0.25)


def test_large_tensor_runs_in_parallel_chunks_identically():
    # Above the kernels' thread threshold the work is split; the result and the noise must not
    # depend on it.
    x = torch.randn(300_001, dtype=torch.float32) * 3
    q = xbquant.quantize(x, 8, 4, rounding="stochastic", seed=11)
    head = xbquant.quantize(x[:1000], 8, 4, rounding="stochastic", seed=11)
    assert_same(q[:1000], head, "prefix")
    assert_same(q, xbquant.quantize(x.to(torch.float64), 8, 4, rounding="stochastic", seed=11).float(), "f64")


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place(dtype):
    x = sample(dtype, n=2000)
    want = xbquant.quantize(x, 6, 2, overflow="wrap")
    ptr = x.data_ptr()
    assert xbquant.quantize_(x, 6, 2, overflow="wrap") is x
    assert x.data_ptr() == ptr
    assert_same(x, want, "contiguous")
    # A strided view writes through to its base.
    base = sample(dtype, n=2000)[:2000].reshape(40, 50)
    view = base.t()[::2]
    want = xbquant.quantize(view, 5, 1)
    xbquant.quantize_(view, 5, 1)
    assert_same(view, want, "view")
    assert_same(base.t()[::2], want, "base")
    # A parameter between training steps.
    p = torch.nn.Parameter(torch.tensor([0.3, -9.0]))
    with torch.no_grad():
        xbquant.quantize_(p, 4, 2)
    assert p.tolist() == [0.25, -1.75] and p.requires_grad


def test_in_place_numpy():
    a = np.array([0.3, -9.0, 0.6], dtype=np.float64)
    assert xbquant.quantize_(a, 4, 2) is a and a.tolist() == [0.25, -1.75, 0.5]
    strided = np.array([0.3, 7.0, -9.0, 7.0], dtype=np.float32)
    xbquant.quantize_(strided[::2], 4, 2)
    assert strided.tolist() == [0.25, 7.0, -1.75, 7.0]
    frozen = np.array([0.3], dtype=np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        xbquant.quantize_(frozen, 4, 2)
