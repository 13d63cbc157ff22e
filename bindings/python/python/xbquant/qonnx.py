"""QONNX's quantization operators (`docs/qonnx-custom-ops/` of the qonnx repository, opset 1 of
``IntQuant`` / ``Quant`` and ``BipolarQuant``, opset 2 of ``Trunc``), with the exact semantics of
their specification: the scaling and zero point, the clip *before* the rounding, ``narrow`` and
``signed`` ranges, and every ``rounding_mode``, each step in the input's own dtype (float32 in a
QONNX model) as the reference implementation computes it. So models exported by Brevitas or
QKeras through QONNX can be checked here, on torch tensors or numpy arrays. Example::

    >>> import torch
    >>> from xbquant import qonnx
    >>> x = torch.tensor([0.26, -1.0, 3.9])
    >>> qonnx.quant(x, 0.5, 0.0, 3).tolist()            # 3-bit signed: codes -4..=3, half-even
    [0.5, -1.0, 1.5]
    >>> qonnx.quant(x, 0.5, 0.0, 3, narrow=True, rounding_mode="FLOOR").tolist()
    [0.0, -1.0, 1.5]
    >>> qonnx.bipolar_quant(x, 2.0).tolist()
    [2.0, -2.0, 2.0]
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Tuple

import numpy as np

from . import _data, _ops
from ._checks import check_flag

__all__ = ["quant", "bipolar_quant", "trunc", "ROUNDING_MODES"]

#: The rounding modes of ``IntQuant`` (case-insensitive): ``ROUND`` (= ``HALF_EVEN``), ``CEIL``,
#: ``FLOOR``, ``UP`` (away from zero), ``DOWN`` (toward zero), ``HALF_UP`` (ties away from zero),
#: ``HALF_DOWN`` (ties toward zero).
ROUNDING_MODES = ("ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN")


class _Ops:
    """The element-wise operations of one kind of data (torch or numpy), in its dtype."""

    def __init__(self, x: Any) -> None:
        self.tensor = _data.is_tensor(x)
        self.fix: Callable[[Any], Any]
        if self.tensor:
            import torch

            self.lib: Any = torch
            self.fix = torch.trunc
        else:
            self.lib = np
            self.fix = np.fix

    def rounding(self, mode: str) -> Callable[[Any], Any]:
        lib = self.lib
        table: dict = {
            "ROUND": lib.round,
            "HALF_EVEN": lib.round,
            "CEIL": lib.ceil,
            "FLOOR": lib.floor,
            "UP": lambda y: lib.sign(y) * lib.ceil(lib.abs(y)),
            "DOWN": self.fix,
            "HALF_UP": lambda y: lib.sign(y) * lib.floor(lib.abs(y) + 0.5),
            "HALF_DOWN": lambda y: lib.sign(y) * lib.ceil(lib.abs(y) - 0.5),
        }
        return table[mode]

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        return self.lib.where(condition, a, b)


def _data_of(x: Any) -> Tuple[Any, _Ops]:
    if _data.is_tensor(x):
        _data.check_layout(x, "x")
        if not x.is_floating_point() or str(x.dtype) not in (
            "torch.float32",
            "torch.float64",
            "torch.float16",
            "torch.bfloat16",
        ):
            raise TypeError(f"x must hold floating-point values, got {x.dtype}")
        return x.detach(), _Ops(x)
    if isinstance(x, np.ndarray):
        if x.dtype.kind != "f":
            raise TypeError(f"x must hold floating-point values, got {x.dtype}")
        return x, _Ops(x)
    raise TypeError(f"x must be a torch.Tensor or a numpy array of floats, got {type(x).__name__}")


def _parameter(value: Any, name: str, x: Any, ops: _Ops, positive: bool = False) -> Any:
    """A scale or zero point: a number, or a tensor or array with x's number of dimensions (or a
    scalar), in x's dtype (as a QONNX model's float32 initializers meet float32 data). Traced
    (torch.compile, torch.export, torch.func), a tensor's values cannot be checked: a scale that
    is not finite or not above 0 gives infinities or NaN there."""
    if isinstance(value, bool) or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{name} must be finite")
        if positive and not number > 0:
            raise ValueError(f"{name} must be above 0")
        if ops.tensor:
            return ops.lib.tensor(number, dtype=x.dtype, device=x.device)
        return np.asarray(number).astype(x.dtype)
    if not (_data.is_tensor(value) or isinstance(value, np.ndarray)):
        raise TypeError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    if _data.is_tensor(value):
        kind = (
            "b"
            if str(value.dtype) == "torch.bool"
            else "c"
            if value.is_complex()
            else "f"
            if value.is_floating_point()
            else "i"
        )
    else:
        kind = value.dtype.kind
    if kind not in "fiu":
        raise TypeError(f"{name} must hold numbers, got {value.dtype}")
    shape = tuple(value.shape)
    if len(shape) not in (0, x.ndim):
        raise ValueError(f"{name} must be a scalar or have x's {x.ndim} dimensions, got shape {shape}")
    # Same number of dimensions (or none): each of the parameter's is 1 or x's.
    if shape and any(p != 1 and p != int(d) for p, d in zip(shape, x.shape)):
        raise ValueError(f"{name} of shape {shape} does not broadcast to x's {tuple(x.shape)}")
    if ops.tensor and _data.is_tensor(value) and (_ops.in_graph(x) or _ops.in_graph(value)):
        return value.detach().to(dtype=x.dtype, device=x.device)
    array = value.detach().cpu().numpy() if _data.is_tensor(value) else value
    as_float = np.asarray(array, dtype=np.float64)
    if not np.isfinite(as_float).all():
        raise ValueError(f"{name} must be finite")
    if positive and not (as_float > 0).all():
        raise ValueError(f"{name} must be above 0")
    if ops.tensor:
        return ops.lib.as_tensor(as_float, dtype=x.dtype, device=x.device)
    return as_float.astype(x.dtype)


def _bits(value: Any, name: str) -> int:
    """A bit width: a positive integer (a float holding one is accepted, as QONNX allows)."""
    if _data.is_tensor(value) or isinstance(value, np.ndarray):
        count = value.size if isinstance(value, np.ndarray) else value.numel()
        if count != 1:
            raise ValueError(f"{name} must be one number")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive integer, got {type(value).__name__}")
    number = float(value)
    if not (math.isfinite(number) and number.is_integer() and 1 <= number <= 64):
        raise ValueError(f"{name} must be an integer from 1 to 64, got {value}")
    return int(number)


def _mode(value: Any, name: str = "rounding_mode") -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    mode = value.upper()
    if mode not in ROUNDING_MODES:
        raise ValueError(f"{name} must be one of {', '.join(ROUNDING_MODES)}, got {value!r}")
    return mode


def _range(signed: bool, narrow: bool, bits: int) -> Tuple[int, int]:
    """The integer range of QONNX's ``min_int`` and ``max_int``."""
    if signed:
        return (-(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1)
    return (0, 2**bits - 1 - int(narrow))


def _signs(y: Any, ops: _Ops) -> Any:
    """``+1`` where ``y >= 0``, else ``-1`` (NaN gives ``-1``, as the specification's comparison)."""
    ones = ops.lib.ones_like(y)
    return ops.where(y >= 0.0, ones, -ones)


def _clip(y: Any, lo: int, hi: int, ops: _Ops) -> Any:
    # Comparisons, so that NaN passes through as in the specification's `np.where`.
    y = ops.where(y > hi, ops.lib.full_like(y, hi), y)
    return ops.where(y < lo, ops.lib.full_like(y, lo), y)


def quant(
    x: Any,
    scale: Any,
    zero_point: Any,
    bitwidth: Any,
    signed: bool = True,
    narrow: bool = False,
    rounding_mode: str = "ROUND",
) -> Any:
    """QONNX's ``IntQuant`` (formerly ``Quant``): ``y = x / scale + zero_point``, clipped to the
    integer range of ``bitwidth`` bits (``signed``; ``narrow`` drops the most negative code, or
    the largest unsigned one), rounded with ``rounding_mode``, then ``(y - zero_point) * scale``;
    every step in ``x``'s dtype. As the reference implementation, a signed 1-bit quantization is
    bipolar (``+1`` where ``y >= 0``, else ``-1``). NaN stays NaN.

    Args:
        x: a float tensor or numpy array (the result is of its kind, dtype and device).
        scale, zero_point: numbers, or tensors or arrays of ``x``'s number of dimensions (per
            channel), finite; ``scale`` above 0.
        bitwidth: an integer from 1 to 64 (a float holding one is accepted).

    Raises:
        TypeError: arguments of the wrong kind.
        ValueError: out of range, or shapes that do not broadcast.
    """
    data, ops = _data_of(x)
    s = _parameter(scale, "scale", data, ops, positive=True)
    z = _parameter(zero_point, "zero_point", data, ops)
    bits = _bits(bitwidth, "bitwidth")
    signed, narrow = check_flag(signed, "signed"), check_flag(narrow, "narrow")
    mode = _mode(rounding_mode)
    y = data / s
    y = y + z
    if bits == 1 and signed:
        y = _signs(y, ops)
    else:
        lo, hi = _range(signed, narrow, bits)
        y = ops.rounding(mode)(_clip(y, lo, hi, ops))
    return (y - z) * s


def bipolar_quant(x: Any, scale: Any) -> Any:
    """QONNX's ``BipolarQuant``: ``+scale`` where ``x >= 0``, else ``-scale``, in ``x``'s dtype
    (NaN gives ``-scale``, as the specification's comparison does).

    Raises:
        TypeError: arguments of the wrong kind.
        ValueError: a scale that is not finite and above 0, or that does not broadcast.
    """
    data, ops = _data_of(x)
    s = _parameter(scale, "scale", data, ops, positive=True)
    return _signs(data, ops) * s


def trunc(
    x: Any,
    scale: Any,
    zero_point: Any,
    input_bitwidth: Any,
    output_scale: Any,
    output_bitwidth: Any,
    signed: bool = True,
    narrow: bool = False,
    rounding_mode: str = "FLOOR",
) -> Any:
    """QONNX's ``Trunc`` (opset 2): ``y = round(x / scale + zero_point)`` (ties to even), divided
    by the power of two nearest ``output_scale / scale``, clipped to the integer range of
    ``output_bitwidth`` bits (``signed``, ``narrow``), rounded with ``rounding_mode`` (``FLOOR``
    by default: the truncation), then ``(y - zero_point / that power) * output_scale``; every step
    in ``x``'s dtype. ``input_bitwidth`` is checked but, as in the specification, not used.

    Raises:
        TypeError: arguments of the wrong kind.
        ValueError: out of range, or shapes that do not broadcast.
    """
    data, ops = _data_of(x)
    s = _parameter(scale, "scale", data, ops, positive=True)
    z = _parameter(zero_point, "zero_point", data, ops)
    out_s = _parameter(output_scale, "output_scale", data, ops, positive=True)
    _bits(input_bitwidth, "input_bitwidth")
    bits = _bits(output_bitwidth, "output_bitwidth")
    signed, narrow = check_flag(signed, "signed"), check_flag(narrow, "narrow")
    mode = _mode(rounding_mode)
    lib = ops.lib
    y = lib.round(data / s + z)
    power = 2 ** lib.round(lib.log2(out_s / s))
    y = y / power
    lo, hi = _range(signed, narrow, bits)
    y = ops.rounding(mode)(_clip(y, lo, hi, ops))
    return (y - z / power) * out_s
