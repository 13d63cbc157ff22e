"""Bit-exact fixed-point layers: what a digital accelerator built by hls4ml computes, from PyTorch,
in seconds rather than a C simulation's minutes. Computed by xbquant's Rust crate
``xbquant-fixed``.

:func:`linear` is hls4ml's dense layer (``nnet::dense_latency``) bit for bit, with every type an
HLS ``ap_fixed`` / ``ap_ufixed`` string in any rounding and overflow mode: the inputs, weights and
biases cast to their types; each product (exact) cast to the accumulator's type; the accumulator
started at the bias cast to it; the products added in the order of the inputs with the
accumulator's overflow at every addition (a saturating accumulator depends on that order); the
sum cast to the result's type. It counts the overflows per output channel: the accumulator is
where models break (a jet tagger fell from 74.6 % to 20.2 % in hls4ml when its ``accum_t``
overflowed). :func:`accum_type` is hls4ml's precision inference for the accumulator.

:func:`conv2d` and :func:`conv1d` are hls4ml's convolutions, :func:`accum_bits` the width trained
weights need, and ``emulate(model, config, x)`` runs a PyTorch model through these layers with the
types of hls4ml's configuration dictionary, which ``hls4ml_config(model, x)`` chooses from data.

Checked against hls4ml 1.3.0's C++ compiled with ``g++`` (``crates/xbquant-fixed/tests``). Example::

    >>> import torch
    >>> from xbquant import fixed
    >>> x = torch.tensor([[0.5, -1.25, 3.0]], dtype=torch.float64)
    >>> w = torch.tensor([[1.5, 0.25, -0.75], [2.0, -1.0, 1.0]], dtype=torch.float64)
    >>> y, overflow = fixed.linear(x, w, torch.tensor([0.125, -0.5], dtype=torch.float64),
    ...     input="ap_fixed<16,6>", weight="ap_fixed<8,3>", accum="ap_fixed<10,3,AP_TRN,AP_SAT>",
    ...     result="ap_fixed<16,6>", return_overflow=True)
    >>> y.tolist()        # -0.5 + 1.0 + 1.25 + 3.0 saturates at 3.9921875 in the accumulator
    [[-1.6875, 3.9921875]]
    >>> overflow["accumulations"].tolist()
    [0, 1]
    >>> fixed.accum_type("ap_fixed<16,6>", "ap_fixed<8,3>", 64)
    'ap_fixed<30,15,AP_TRN,AP_WRAP,0>'
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _data, _ops, _xbquant
from ._checks import check_flag

# `emulate` and `hls4ml_config` (the model level, which needs torch) come from `_fixed_model` when
# first asked for (see `__getattr__` below).
__all__ = ["linear", "conv1d", "conv2d", "accum_type", "accum_bits"]

_COUNTS = ("weights", "biases", "products", "accumulations", "results")
# The most values a convolution's windows may hold (16 GiB of float64).
_MAX_CELLS = 2**31


def _type(value: Any, name: str) -> str:
    if isinstance(value, _xbquant.Scheme):
        # An xbquant fixed-point scheme: its HLS type (`Scheme("fixed<8,4> overflow=wrap")`).
        try:
            value = value.to_hls()
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be an HLS type string such as 'ap_fixed<16,6>' or a fixed-point xbquant.Scheme, "
            f"got {type(value).__name__}"
        )
    try:
        full: str = _xbquant.fixed_type(value)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
    return full


def accum_type(input: str, weight: str, n: int, bias: Optional[str] = None) -> str:  # noqa: A002 (hls4ml's name)
    """hls4ml's accumulator type for a layer of ``n`` inputs per output (hls4ml 1.3.0's precision
    inference): ``W = W_w + W_x + ceil(log2 n)`` bits with ``I = I_w + I_x + ceil(log2 n)`` integer
    bits, signed when either type is; a ``bias`` type widens it to hold the bias too (one more
    integer bit, and the larger fraction). A full HLS string; it truncates and wraps, which this
    width never needs.

    Raises:
        TypeError: a type that is not a string, or ``n`` that is not an integer.
        ValueError: a string that is not an HLS type, ``n`` below 1, or an accumulator wider than
            64 bits.
    """
    x, w = _type(input, "input"), _type(weight, "weight")
    b = None if bias is None else _type(bias, "bias")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer, got {type(n).__name__}")
    if not 1 <= int(n) <= 2**40:
        raise ValueError(f"n must be 1 to 2**40, got {n}")
    try:
        result: str = _xbquant.fixed_accum_type(x, w, int(n), b)
    except ValueError as e:
        raise ValueError(f"accum_type: {e}") from None
    return result


def accum_bits(w: Any, input: str, weight: Optional[str] = None, *, x: Any = None) -> Any:  # noqa: A002
    """The accumulator width each output channel needs, as total bits of a signed accumulator
    whose step is the products' (the data-dependent bound of trained weights, in the spirit of
    Brevitas' A2Q): the smallest width that no input of the type ``input`` can overflow, every
    partial sum included, for ``w`` of shape ``(out, in)``. ``w`` holds integer codes, or real
    weights cast to ``weight`` when it is given. The bound is the exact worst case (each input at
    the end of its range its weight's sign pushes furthest), so a width one bit narrower overflows
    for some input; A2Q's condition ``||w||_1 max|x| <= 2^(P-1) - 1`` is at most one bit wider.
    It counts from zero: hls4ml starts the accumulator at the bias, whose width adds to it.

    With ``x`` (inputs of shape ``(..., in)``, cast to ``input``): the width the partial sums in
    hls4ml's order actually needed on that data, which never exceeds the bound.

    Returns:
        An int64 tensor (``w`` a tensor) or array of ``out`` widths.

    Raises:
        TypeError: data that is not float32 or float64, or types that are not strings.
        ValueError: shapes that do not match, values that are not integer codes where no
            ``weight`` is given, or types this cannot compute.

    Under ``torch.compile``, ``torch.export`` and ``vmap`` it is one registered operation,
    ``torch.ops.xbquant.fixed_accum_bits`` (its arguments checked when it runs).
    """
    tensor = _data.is_tensor(w)
    if tensor and (_ops.in_graph(w) or (_data.is_tensor(x) and _ops.in_graph(x))):
        _ops.register()
        if len(w.shape) != 2:
            raise ValueError(f"w must be (out, in), got shape {tuple(w.shape)}")
        return _ACCUM_BITS(w.detach(), input, weight, None if x is None else x.detach())
    x_type = _type(input, "input")
    w_type = None if weight is None else _type(weight, "weight")
    ws = _array(w, "w")
    if str(ws.dtype) not in ("float32", "float64"):
        raise TypeError(f"w must hold float32 or float64 values, got {ws.dtype}")
    if ws.ndim != 2:
        raise ValueError(f"w must be (out, in), got shape {ws.shape}")
    ws = ws.astype(np.float64)
    if x is None:
        bits = _xbquant.fixed_accum_bits(ws, x_type, w_type)
    else:
        xs = _array(x, "x")
        if str(xs.dtype) not in ("float32", "float64"):
            raise TypeError(f"x must hold float32 or float64 values, got {xs.dtype}")
        if xs.ndim < 1 or xs.shape[-1] != ws.shape[1]:
            raise ValueError(f"x must be (..., {ws.shape[1]}) for w of shape {ws.shape}, got {xs.shape}")
        rows = math.prod(xs.shape[:-1])
        bits = _xbquant.fixed_accum_bits_used(xs.reshape(rows, xs.shape[-1]).astype(np.float64), ws, x_type, w_type)
    out = np.asarray(bits, dtype=np.int64)
    if tensor:
        import torch

        return torch.from_numpy(out)
    return out


def _check_data(**values: Any) -> None:
    """A TypeError naming the first of ``values`` (None skipped) that is not a tensor the kernels
    can read or a numpy array."""
    for name, value in values.items():
        if value is not None:
            _check_value(value, name)


def _check_value(value: Any, name: str) -> None:
    if _data.is_tensor(value):
        _data.check_layout(value, name)
    elif not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or a numpy array of floats, got {type(value).__name__}")


def _array(value: Any, name: str) -> Any:
    """``value`` (a tensor the kernels can read or a numpy array) as a C-contiguous numpy array on
    the CPU."""
    _check_value(value, name)
    if _data.is_tensor(value):
        return value.detach().cpu().resolve_neg().contiguous().numpy()
    return np.ascontiguousarray(value)


def linear(
    x: Any,
    w: Any,
    b: Any = None,
    *,
    input: str,  # noqa: A002 (hls4ml's name)
    weight: str,
    bias: Optional[str] = None,
    accum: Optional[str] = None,
    result: Optional[str] = None,
    return_overflow: bool = False,
) -> Any:
    """hls4ml's dense layer ``y = x w^T + b``, bit for bit, for ``x`` of shape ``(..., in)``, ``w``
    of ``(out, in)`` (as ``torch.nn.Linear``) and ``b`` of ``(out,)`` or None.

    Args:
        x, w, b: float32 or float64 tensors (any device and strides; computed on the CPU) or
            numpy arrays, of one dtype. The values are cast to their types as the HLS types cast
            a ``double``: real weights need not be on the grid.
        input, weight: HLS type strings (``"ap_fixed<16,6>"``, ``"ap_ufixed<8,3,AP_RND,AP_SAT>"``)
            or fixed-point :class:`xbquant.Scheme` objects (their HLS type, ``Scheme.to_hls()``),
            as every type here.
        bias: the bias's type; the weight's type by default.
        accum: the accumulator's type; by default hls4ml's inference (:func:`accum_type`), which
            never overflows.
        result: the result's type; the accumulator's by default.
        return_overflow: also return the overflow counts.

    Returns:
        The results, of ``x``'s kind, dtype and device, shape ``(..., out)``: exact when the
        result's type has at most 24 significant bits in float32, 53 in float64. With
        ``return_overflow``, also a dict of the casts the overflow mode changed: ``"inputs"`` (a
        count), and per output channel (integer tensors or arrays of length ``out``)
        ``"weights"``, ``"biases"``, ``"products"`` (products cast to the accumulator),
        ``"accumulations"`` (additions in it, over the batch) and ``"results"``. No gradient: this
        emulates inference.

    Under ``torch.compile`` and ``torch.export``, and for the tensors of ``vmap``, the layer is one
    registered operation, ``torch.ops.xbquant.fixed_dense`` (its types read once, at trace
    time); traced, the ``"inputs"`` count is a 0-d tensor.

    Raises:
        TypeError: data that is not float32 or float64, of two dtypes, or not a tensor or array;
            a type that is not a string.
        ValueError: shapes that do not match, NaN or infinite values, or a type this cannot
            compute (wider than 64 bits).
    """
    check_flag(return_overflow, "return_overflow")
    tensor = _data.is_tensor(x)
    traced = tensor and _ops.in_graph(x)
    if traced:
        _ops.register()
    _check_data(x=x, w=w, b=b)
    if tensor != _data.is_tensor(w) or (b is not None and tensor != _data.is_tensor(b)):
        raise TypeError("x, w and b must all be tensors or all numpy arrays")
    dtype = _dtype_name(x)
    for name, value in (("x", x), ("w", w), ("b", b)):
        if value is None:
            continue
        got = _dtype_name(value)
        if got not in ("float32", "float64"):
            raise TypeError(f"{name} must hold float32 or float64 values, got {got}")
        if got != dtype:
            raise TypeError(f"x, w and b must have one dtype, got {dtype} and {got} ({name})")
    w_shape, x_shape = tuple(w.shape), tuple(x.shape)
    if len(w_shape) != 2:
        raise ValueError(f"w must be (out, in), got shape {w_shape}")
    if len(x_shape) < 1 or x_shape[-1] != w_shape[1]:
        raise ValueError(f"x must be (..., {w_shape[1]}) for w of shape {w_shape}, got {x_shape}")
    if b is not None and tuple(b.shape) != (w_shape[0],):
        raise ValueError(f"b must be ({w_shape[0]},) for w of shape {w_shape}, got {tuple(b.shape)}")
    # The five types (a constant of a traced graph: read once, at trace time).
    types = _TYPES(input, weight, bias, accum, result, int(w_shape[1]), b is not None)
    if traced:
        # Traced, or a tensor of torch.func's transforms: the registered operation.
        import torch

        op = _register_op(torch)
        flat_x = x.detach().reshape(math.prod(x_shape[:-1]), w_shape[1])
        y, flat = op(flat_x, w.detach(), None if b is None else b.detach(), list(types), return_overflow)
        y = y.reshape(*x_shape[:-1], w_shape[0])
        return (y, _unflatten(flat, w_shape[0])) if return_overflow else y
    xs, ws = _array(x, "x"), _array(w, "w")
    bs = None if b is None else _array(b, "b")
    y, counts = _dense(xs.reshape(math.prod(x_shape[:-1]), w_shape[1]), ws, bs, types, return_overflow)
    y = y.reshape(*x_shape[:-1], w_shape[0])
    if tensor:
        import torch

        y = torch.from_numpy(y).to(x.device)
    if not return_overflow:
        return y
    overflow: dict = {"inputs": counts["inputs"]}
    for key in _COUNTS:
        counted = np.asarray(counts[key], dtype=np.int64)
        overflow[key] = torch.from_numpy(counted) if tensor else counted
    return y, overflow


def _types(
    input: Any,  # noqa: A002 (hls4ml's name)
    weight: Any,
    bias: Any,
    accum: Any,
    result: Any,
    n: int,
    has_bias: bool,
) -> Tuple[str, str, str, str, str]:
    """The layer's five HLS types in full, with :func:`linear`'s defaults."""
    x_type, w_type = _type(input, "input"), _type(weight, "weight")
    b_type = w_type if bias is None else _type(bias, "bias")
    a_type = (
        accum_type(x_type, w_type, max(n, 1), b_type if has_bias else None) if accum is None else _type(accum, "accum")
    )
    r_type = a_type if result is None else _type(result, "result")
    return (x_type, w_type, b_type, a_type, r_type)


# `_types`, or once the operation is registered, `_types` as a constant of traced graphs.
_TYPES: Any = _types
# The registered `accum_bits` (set when the operations are registered).
_ACCUM_BITS: Any = None


def _dtype_name(value: Any) -> str:
    return str(value.dtype).replace("torch.", "")


def _dense(xs: Any, ws: Any, bs: Any, types: Tuple[str, str, str, str, str], count: bool) -> Tuple[Any, Any]:
    """The layer on arrays: ``xs`` (rows, in), the results (rows, out) and the counts (a dict,
    or None without ``count``)."""
    out = np.empty((xs.shape[0], ws.shape[0]), dtype=xs.dtype)
    counts = _xbquant.fixed_dense(np.ascontiguousarray(xs), ws, bs, types, out, str(xs.dtype), count)
    return out, counts


def _unflatten(flat: Any, out: int) -> dict:
    """The counts of the registered operation (``[inputs, weights..., biases..., products...,
    accumulations..., results...]``) as :func:`linear` returns them."""
    overflow: dict = {"inputs": flat[0]}
    for k, key in enumerate(_COUNTS):
        overflow[key] = flat[1 + k * out : 1 + (k + 1) * out]
    return overflow


_OP: Any = None


def _register_op(torch: Any) -> Any:
    """``torch.ops.xbquant.fixed_dense(x, w, b, types, count)``: the layer of ``x`` (rows, in) as
    a registered operation (a fake implementation and a vmap rule by samples; no gradient), so
    that torch.compile, torch.export and vmap see one node. ``types`` are the five HLS strings;
    the counts are one int64 vector ``[inputs, weights..., biases..., products...,
    accumulations..., results...]`` (empty without ``count``)."""
    global _OP
    if _OP is not None:
        return _OP

    @torch.library.custom_op(
        "xbquant::fixed_dense",
        mutates_args=(),
        schema="(Tensor x, Tensor w, Tensor? b, str[] types, bool count) -> (Tensor, Tensor)",
    )
    def op(x: Any, w: Any, b: Any, types: Any, count: bool) -> Any:
        """hls4ml's dense layer of `x` (rows, in) and `w` (out, in)."""
        arrays = [None if t is None else _array(t, name) for t, name in ((x, "x"), (w, "w"), (b, "b"))]
        y, counts = _dense(arrays[0], arrays[1], arrays[2], (types[0], types[1], types[2], types[3], types[4]), count)
        out = w.shape[0]
        if count:
            flat = [counts["inputs"]]
            for key in _COUNTS:
                flat += list(counts[key])
            c = torch.tensor(flat, dtype=torch.int64)
        else:
            c = torch.zeros(0, dtype=torch.int64)
        assert c.numel() in (0, 1 + 5 * out)
        return torch.from_numpy(y).to(x.device), c.to(x.device)

    @op.register_fake
    def _(x: Any, w: Any, b: Any, types: Any, count: bool) -> Any:
        size = 1 + 5 * w.shape[0] if count else 0
        return x.new_empty((x.shape[0], w.shape[0])), x.new_empty((size,), dtype=torch.int64)

    def vmap_rule(info: Any, in_dims: Any, x: Any, w: Any, b: Any, types: Any, count: bool) -> Any:
        # Each sample as its own call, as a loop of calls would be.
        size = info.batch_size
        x_s, w_s, b_s = (_ops.vmap_samples(t, d, size) for t, d in zip((x, w, b), in_dims))
        calls = [op(a, c, d, types, count) for a, c, d in zip(x_s, w_s, b_s)]
        return (torch.stack([y for y, _ in calls]), torch.stack([k for _, k in calls])), (0, 0)

    op.register_vmap(vmap_rule)

    @torch.library.custom_op(
        "xbquant::fixed_accum_bits",
        mutates_args=(),
        schema="(Tensor w, str input, str? weight, Tensor? x) -> Tensor",
    )
    def widths(w: Any, input: str, weight: Optional[str], x: Any) -> Any:  # noqa: A002
        """:func:`accum_bits` of `w` (out, in), with the data `x` when given."""
        return accum_bits(w, input, weight, x=x).to(w.device)

    @widths.register_fake
    def _(w: Any, input: str, weight: Optional[str], x: Any) -> Any:  # noqa: A002
        return w.new_empty((w.shape[0],), dtype=torch.int64)

    def widths_vmap(info: Any, in_dims: Any, w: Any, input: str, weight: Any, x: Any) -> Any:  # noqa: A002
        # Each sample as its own call, as a loop of calls would be.
        size = info.batch_size
        ws, xs = _ops.vmap_samples(w, in_dims[0], size), _ops.vmap_samples(x, in_dims[3], size)
        return torch.stack([widths(a, input, weight, c) for a, c in zip(ws, xs)]), 0

    widths.register_vmap(widths_vmap)
    global _TYPES, _ACCUM_BITS
    _TYPES = torch.compiler.assume_constant_result(_types)
    _ACCUM_BITS = widths
    _OP = op
    return op


def _pair(value: Any, name: str) -> Tuple[int, int]:
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise ValueError(f"{name} must be an integer or a pair, got {value!r}")
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an integer or a pair of integers, got {type(v).__name__}")
        out.append(int(v))
    return out[0], out[1]


def conv2d(
    x: Any,
    w: Any,
    b: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    *,
    input: str,  # noqa: A002 (hls4ml's name)
    weight: str,
    bias: Optional[str] = None,
    accum: Optional[str] = None,
    result: Optional[str] = None,
    return_overflow: bool = False,
) -> Any:
    """hls4ml's 2-D convolution (``nnet::conv_2d_latency_cl``), bit for bit: ``x`` of shape
    ``(N, C, H, W)`` and ``w`` of ``(F, C, kh, kw)`` as ``torch.nn.Conv2d`` (no groups, no
    dilation), zero ``padding`` (an integer or ``(top and bottom, left and right)``) and
    ``stride``. Each output pixel is :func:`linear` of its window, the window in hls4ml's order
    (kernel rows, then columns, then channels: its im2col), so a saturating accumulator adds in
    hls4ml's order. The types and defaults are :func:`linear`'s, with ``n = C kh kw`` products
    per output; the overflows are counted per output channel over the batch and the pixels.

    Returns:
        ``(N, F, OH, OW)`` results of ``x``'s kind, dtype and device (and the overflow counts
        with ``return_overflow``).

    Raises:
        TypeError, ValueError: as :func:`linear`, and for shapes that do not match.
    """
    stride_h, stride_w = _pair(stride, "stride")
    pad_h, pad_w = _pair(padding, "padding")
    if stride_h < 1 or stride_w < 1 or pad_h < 0 or pad_w < 0:
        raise ValueError(f"stride must be at least 1 and padding at least 0, got {stride!r} and {padding!r}")
    tensor = _data.is_tensor(x)
    _check_data(x=x, w=w)
    if tensor != _data.is_tensor(w):
        raise TypeError("x, w and b must all be tensors or all numpy arrays")
    if len(x.shape) != 4 or len(w.shape) != 4 or x.shape[1] != w.shape[1]:
        raise ValueError(f"x must be (N, C, H, W) and w (F, C, kh, kw), got {tuple(x.shape)} and {tuple(w.shape)}")
    n, c, h, wd = (int(v) for v in x.shape)
    f, _, kh, kw = (int(v) for v in w.shape)
    oh = (h + 2 * pad_h - kh) // stride_h + 1
    ow = (wd + 2 * pad_w - kw) // stride_w + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"the kernel {kh}x{kw} of w is larger than the padded input x ({h}x{wd})")
    # The windows are built whole (hls4ml's im2col): refuse sizes no memory holds.
    cells = n * oh * ow * kh * kw * c + n * c * (h + 2 * pad_h) * (wd + 2 * pad_w)
    if cells > _MAX_CELLS:
        raise ValueError(
            f"the convolution's windows and padded input would hold {cells} values (at most {_MAX_CELLS}); "
            "use a smaller batch, input or padding"
        )
    kinds: Dict[str, Any] = dict(
        input=input, weight=weight, bias=bias, accum=accum, result=result, return_overflow=return_overflow
    )
    if tensor and _ops.in_graph(x):
        # Traced: hls4ml's im2col from torch's (whose rows are channels, then kernel rows and
        # columns), then the registered dense layer.
        import torch

        unfolded = torch.nn.functional.unfold(x.detach(), (kh, kw), padding=(pad_h, pad_w), stride=(stride_h, stride_w))
        cols_t = unfolded.reshape(n, c, kh, kw, oh * ow).permute(0, 4, 2, 3, 1).reshape(n * oh * ow, kh * kw * c)
        wmat_t = w.detach().permute(0, 2, 3, 1).reshape(f, kh * kw * c)
        out = linear(cols_t, wmat_t, b, **kinds)
        y_t, overflow = out if return_overflow else (out, None)
        y_t = y_t.reshape(n, oh, ow, f).permute(0, 3, 1, 2)
        return (y_t, overflow) if return_overflow else y_t
    xs, ws = _array(x, "x"), _array(w, "w")
    padded = np.zeros((n, c, h + 2 * pad_h, wd + 2 * pad_w), dtype=xs.dtype)
    padded[:, :, pad_h : pad_h + h, pad_w : pad_w + wd] = xs
    # hls4ml's im2col: for each output pixel, kernel rows, then columns, then channels.
    windows = np.empty((n, oh, ow, kh, kw, c), dtype=xs.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = padded[:, :, i : i + stride_h * oh : stride_h, j : j + stride_w * ow : stride_w]
            windows[:, :, :, i, j, :] = patch.transpose(0, 2, 3, 1)
    cols = windows.reshape(n * oh * ow, kh * kw * c)
    wmat = np.ascontiguousarray(ws.transpose(0, 2, 3, 1).reshape(f, kh * kw * c))
    bs = None if b is None else _array(b, "b")
    out = linear(cols, wmat, bs, **kinds)
    y, overflow = out if return_overflow else (out, None)
    y = np.ascontiguousarray(y.reshape(n, oh, ow, f).transpose(0, 3, 1, 2))
    if tensor:
        import torch

        y = torch.from_numpy(y).to(x.device)
        if overflow is not None:
            overflow = {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in overflow.items()}
    return (y, overflow) if return_overflow else y


def conv1d(
    x: Any,
    w: Any,
    b: Any = None,
    stride: int = 1,
    padding: int = 0,
    *,
    input: str,  # noqa: A002 (hls4ml's name)
    weight: str,
    bias: Optional[str] = None,
    accum: Optional[str] = None,
    result: Optional[str] = None,
    return_overflow: bool = False,
) -> Any:
    """hls4ml's 1-D convolution (``nnet::conv_1d_latency_cl``): ``x`` of shape ``(N, C, L)``, ``w``
    of ``(F, C, k)`` as ``torch.nn.Conv1d``; each output position is :func:`linear` of its window
    (kernel positions, then channels), as :func:`conv2d` with a height of 1.

    Returns:
        ``(N, F, OL)`` results (and the overflow counts with ``return_overflow``).
    """
    _check_data(x=x, w=w)
    if len(x.shape) != 3 or len(w.shape) != 3:
        raise ValueError(f"x must be (N, C, L) and w (F, C, k), got {tuple(x.shape)} and {tuple(w.shape)}")
    if isinstance(stride, (tuple, list)) or isinstance(padding, (tuple, list)):
        raise TypeError("stride and padding of a 1-D convolution are integers")
    out = conv2d(
        x[:, :, None, :],
        w[:, :, None, :],
        b,
        (1, stride),
        (0, padding),
        input=input,
        weight=weight,
        bias=bias,
        accum=accum,
        result=result,
        return_overflow=return_overflow,
    )
    y, overflow = out if return_overflow else (out, None)
    y = y[:, :, 0, :]
    return (y, overflow) if return_overflow else y


def __getattr__(name: str) -> Any:
    # The model level needs torch: imported when first asked for.
    if name in ("emulate", "hls4ml_config"):
        from . import _fixed_model

        return getattr(_fixed_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
