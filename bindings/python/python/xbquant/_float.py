"""Low-precision floating point: the checked format of a call (`_xbquant.FloatSpec`, cached per
distinct format), and the data paths (numpy arrays and CPU tensors through the Rust kernels,
tensors on other devices through torch operations)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _core, _xbquant

FloatSpec = _xbquant.FloatSpec

_SPECS: dict = {}


def float_spec(format: Any, rounding: Any, overflow: Any, seed: Any) -> FloatSpec:
    """The spec of a call, checked once per distinct format; raises ValueError or TypeError."""
    if isinstance(format, tuple):
        if len(format) != 2:
            raise ValueError(f"a format tuple is (exponent_bits, mantissa_bits), got {format!r}")
        exp = _core.check_length(format[0], "format's exponent bits", 0, 64)
        man = _core.check_length(format[1], "format's mantissa bits", 0, 64)
        format = f"e{exp}m{man}"
    key = (format, rounding, overflow, seed)
    try:
        spec = _SPECS.get(key)
    except TypeError:
        spec, key = None, None
    if spec is not None:
        return spec
    format = _core.check_name(format, "format")
    rounding = _core.check_name(rounding, "rounding")
    if overflow is not None:
        overflow = _core.check_name(overflow, "overflow")
    seed = _core.check_seed(seed)
    spec = FloatSpec(format, rounding, overflow, seed)
    if key is not None:
        if len(_SPECS) >= 4096:
            _SPECS.clear()
        _SPECS[key] = spec
    return spec


def _array(x: np.ndarray, spec: FloatSpec) -> np.ndarray:
    if not x.dtype.isnative:
        return _core.in_native_order(lambda v: _array(v, spec), x)
    dtype = _core._NUMPY_DTYPES.get(x.dtype)
    if dtype is None and x.dtype.name == "bfloat16":  # ml_dtypes' bfloat16
        dtype = "bfloat16"
    if dtype is None:
        raise _core._float_dtype_error(f"numpy {x.dtype}")
    src = np.ascontiguousarray(x)
    out = np.empty_like(src, order="C")
    view = _core._numpy_view
    _xbquant.quantize_float(spec, view(src, dtype), view(out, dtype), dtype, _core.call_seed(spec, x))
    return out


def quantize_float_data(x: Any, spec: FloatSpec):
    """`x` (a tensor on any device or a numpy array) rounded to the format: a new result of the
    same type, dtype, shape and device."""
    torch = _core._torch()
    if torch is not None and isinstance(x, torch.Tensor):
        dtype = _core.tensor_dtype_name(x)
        seed = _core.call_seed(spec, x)
        if seed is None:
            seed = spec.seed
        data = x.detach().resolve_neg()  # (a negative-bit view: its values, not its buffer)
        if not data.is_cpu and data.device.type != "mps":
            from . import _torch_ops

            return _torch_ops.quantize_float(data, spec, seed)
        device = data.device
        src = data.cpu()
        if src.is_contiguous():
            # Into a new tensor: one pass over the data.
            out, out_np = _core.new_cpu_tensor(src.shape, dtype)
            _xbquant.quantize_float(spec, _core._tensor_numpy(src, dtype), out_np, dtype, seed)
        else:
            # The contiguous copy is ours: rounded where it lies.
            out = src.contiguous()
            _xbquant.quantize_float(spec, _core._tensor_numpy(out, dtype), None, dtype, seed)
        return out.to(device)
    if isinstance(x, np.ndarray):
        return _array(x, spec)
    if isinstance(x, np.generic) and x.dtype.kind == "f":
        return _array(np.asarray(x), spec)[()]
    raise TypeError(
        f"x must be a torch.Tensor or a numpy array of floats, got {type(x).__name__}"
    )
