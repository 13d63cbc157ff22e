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

from typing import Any, Optional

import numpy as np

from . import _data, _xbquant
from ._checks import check_flag

__all__ = ["linear", "accum_type", "accum_bits"]

_COUNTS = ("weights", "biases", "products", "accumulations", "results")


def _type(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be an HLS type string such as 'ap_fixed<16,6>', got {type(value).__name__}")
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
    """
    x_type = _type(input, "input")
    w_type = None if weight is None else _type(weight, "weight")
    tensor = _data.is_tensor(w)
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
        bits = _xbquant.fixed_accum_bits_used(xs.reshape(-1, xs.shape[-1]).astype(np.float64), ws, x_type, w_type)
    out = np.asarray(bits, dtype=np.int64)
    if tensor:
        import torch

        return torch.from_numpy(out)
    return out


def _array(value: Any, name: str) -> Any:
    if _data.is_tensor(value):
        _data.check_layout(value, name)
        return value.detach().cpu().resolve_neg().contiguous().numpy()
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value)
    raise TypeError(f"{name} must be a torch.Tensor or a numpy array of floats, got {type(value).__name__}")


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
        input, weight: HLS type strings (``"ap_fixed<16,6>"``, ``"ap_ufixed<8,3,AP_RND,AP_SAT>"``).
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

    Raises:
        TypeError: data that is not float32 or float64, of two dtypes, or not a tensor or array;
            a type that is not a string.
        ValueError: shapes that do not match, NaN or infinite values, or a type this cannot
            compute (wider than 64 bits).
    """
    x_type, w_type = _type(input, "input"), _type(weight, "weight")
    b_type = w_type if bias is None else _type(bias, "bias")
    check_flag(return_overflow, "return_overflow")
    tensor = _data.is_tensor(x)
    xs, ws = _array(x, "x"), _array(w, "w")
    bs = None if b is None else _array(b, "b")
    if tensor != _data.is_tensor(w) or (b is not None and tensor != _data.is_tensor(b)):
        raise TypeError("x, w and b must all be tensors or all numpy arrays")
    dtype = str(xs.dtype)
    for name, a in (("x", xs), ("w", ws), ("b", bs)):
        if a is None:
            continue
        if str(a.dtype) not in ("float32", "float64"):
            raise TypeError(f"{name} must hold float32 or float64 values, got {a.dtype}")
        if str(a.dtype) != dtype:
            raise TypeError(f"x, w and b must have one dtype, got {dtype} and {a.dtype} ({name})")
    if ws.ndim != 2:
        raise ValueError(f"w must be (out, in), got shape {ws.shape}")
    if xs.ndim < 1 or xs.shape[-1] != ws.shape[1]:
        raise ValueError(f"x must be (..., {ws.shape[1]}) for w of shape {ws.shape}, got {xs.shape}")
    if bs is not None and bs.shape != (ws.shape[0],):
        raise ValueError(f"b must be ({ws.shape[0]},) for w of shape {ws.shape}, got {bs.shape}")
    a_type = (
        accum_type(x_type, w_type, max(ws.shape[1], 1), None if b is None else b_type)
        if accum is None
        else _type(accum, "accum")
    )
    r_type = a_type if result is None else _type(result, "result")
    lead = xs.shape[:-1]
    flat = xs.reshape(-1, xs.shape[-1])
    out = np.empty((flat.shape[0], ws.shape[0]), dtype=xs.dtype)
    counts = _xbquant.fixed_dense(flat, ws, bs, (x_type, w_type, b_type, a_type, r_type), out, dtype, return_overflow)
    y: Any = out.reshape(*lead, ws.shape[0])
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
