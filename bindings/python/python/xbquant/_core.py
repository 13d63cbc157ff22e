"""The one entry point every public function goes through: checks the arguments, picks the seed
of stochastic rounding, and sends the data to the Rust kernels (CPU tensors, numpy arrays) or to
the pure-torch path (tensors on other devices)."""

from __future__ import annotations

import math
import numbers
import sys
import threading
from typing import Any, Optional, Tuple

import numpy as np

from . import _xbquant

_NUMPY_DTYPES = {
    np.dtype(np.float32): "float32",
    np.dtype(np.float64): "float64",
    np.dtype(np.float16): "float16",
}


def _torch():
    """torch, if the caller has loaded it (the package works on numpy arrays without it)."""
    return sys.modules.get("torch")


# torch dtypes by name, and those of the short path (filled when torch is first seen).
_TORCH_DTYPE_NAMES: dict = {}
_TORCH_SHORT: set = set()


def _torch_dtype_names(torch) -> dict:
    if not _TORCH_DTYPE_NAMES:
        _TORCH_DTYPE_NAMES.update(
            {
                torch.float32: "float32",
                torch.float64: "float64",
                torch.float16: "float16",
                torch.bfloat16: "bfloat16",
            }
        )
        _TORCH_SHORT.update((torch.float32, torch.float64))
    return _TORCH_DTYPE_NAMES


# The checked format and rounding of a call: `_xbquant.Spec`, built in Rust once per distinct
# format (see `make_spec`) and passed to every kernel call.
Spec = _xbquant.Spec


def check_length(value: Any, name: str, lo: int = -(2**62) + 1, hi: int = 2**62 - 1) -> int:
    """An integer (a word or fractional length, a bit count, a dimension) between `lo` and `hi`:
    whole numbers of any numeric type are accepted (`8`, `numpy.int64(8)`, `8.0`); a bool, a
    string or any other type is a TypeError, a fraction, an infinity or a value out of range a
    ValueError, each naming `name`."""
    if type(value) is int:
        number = value
    elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    elif isinstance(value, numbers.Integral):
        number = int(value)
    elif not math.isfinite(value) or value != int(value):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    else:
        number = int(value)
    if not lo <= number <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {number}")
    return number


def check_name(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    return value


def check_choice(value: Any, name: str, choices) -> str:
    """One of the strings `choices`."""
    value = check_name(value, name)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_flag(value: Any, name: str) -> bool:
    """A flag: `True` or `False` (a numpy bool too); anything else, however truthy, is a
    TypeError naming `name`."""
    if type(value) is bool:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def check_number(value: Any, name: str, *, nonnegative: bool = False, positive: bool = False) -> float:
    """A finite real number (0 or more, or above 0, when asked): a bool, a string or a complex
    number is a TypeError, NaN, an infinity or a value out of range a ValueError, each naming
    `name`."""
    if type(value) is float:
        number = value
    elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    else:
        try:
            number = float(value)
        except OverflowError:
            raise ValueError(f"{name} must be finite, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not number > 0.0:
        raise ValueError(f"{name} must be above 0, got {value!r}")
    if nonnegative and not number >= 0.0:
        raise ValueError(f"{name} must be 0 or more, got {value!r}")
    return number


def check_seed(seed: Any) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"seed {seed} does not fit in 64 bits")
    return seed % 2**64


def overflow_name(overflow: str, sat_bits: Any) -> str:
    overflow = check_name(overflow, "overflow")
    bits = check_length(sat_bits, "sat_bits", 0, 64)
    return f"{overflow}:{bits}" if bits else overflow


# The overflow mode of the general entry points (Rust's `FixedPoint::new`, the command line's
# `quantize`, Python's `quantize`): the seed's symmetric saturation.
DEFAULT_OVERFLOW = "saturate-symmetric"

# Specs already built, by their arguments: a training loop asks for the same few formats millions
# of times. Errors are raised, not cached.
_SPECS: dict = {}
_MAX_SPECS = 4096


def make_spec(
    wl: Any,
    fl: Any,
    *,
    overflow: str = DEFAULT_OVERFLOW,
    rounding: str = "nearest",
    signed: bool = True,
    seed: Any = None,
    sat_bits: Any = 0,
) -> Spec:
    """The spec of a call, checked once per distinct format; raises ValueError or TypeError."""
    return spec_for(wl, fl, overflow, rounding, signed, seed, sat_bits)


def spec_for(wl, fl, overflow, rounding, signed, seed, sat_bits) -> Spec:
    """`make_spec` with positional arguments, for the entry points a training loop calls."""
    # A call made before with the same arguments finds its spec here. Only checked arguments fill
    # the cache (below), so a key that compares equal to a cached one stands for the same format;
    # the lengths and the seed must be plain ints, since 8.0 == 8 and True == 1 hash alike but
    # are checked differently.
    cacheable = (
        type(wl) is int
        and type(fl) is int
        and type(signed) is bool
        and type(sat_bits) is int
        and (seed is None or type(seed) is int)
    )
    if cacheable:
        try:
            spec = _SPECS.get((wl, fl, overflow, rounding, signed, seed, sat_bits))
        except TypeError:  # an unhashable argument: the checks below say what is wrong
            spec, cacheable = None, False
        if spec is not None:
            return spec
    wl = check_length(wl, "wl")
    fl = check_length(fl, "fl")
    overflow = check_name(overflow, "overflow")
    rounding = check_name(rounding, "rounding")
    signed = check_flag(signed, "signed")
    seed = check_seed(seed)
    bits = check_length(sat_bits, "sat_bits", 0, 64)
    spec = Spec(wl, fl, signed, overflow, bits, rounding, seed)
    if cacheable:
        if len(_SPECS) >= _MAX_SPECS:
            _SPECS.clear()
        _SPECS[(wl, fl, overflow, rounding, signed, seed, bits)] = spec
    return spec


def hls_spec(name: str, param: str = "hls") -> Spec:
    """The spec of an HLS type name; errors name the parameter `param` that gave it."""
    try:
        return Spec.from_hls(check_name(name, param))
    except ValueError as e:
        raise ValueError(f"{param}: {e}") from None


# A scalar int64 tensor per thread, refilled from torch's default generator for each seed (a
# third of the cost of `torch.randint`; per thread, so that two threads never read one draw).
_SCRATCH = threading.local()


def draw_seed(data: Any) -> int:
    """A fresh seed: from torch's default generator for tensors (63 random bits, so that
    `torch.manual_seed` makes a run repeat), from numpy's global generator for arrays (64 bits,
    `numpy.random.seed`)."""
    torch = _torch()
    if torch is not None and isinstance(data, torch.Tensor):
        scratch = getattr(_SCRATCH, "seed", None)
        if scratch is None:
            scratch = _SCRATCH.seed = torch.empty((), dtype=torch.int64)
        return scratch.random_().item()
    return int(np.random.randint(0, 2**64, dtype=np.uint64))


def call_seed(spec: Spec, data: Any) -> Optional[int]:
    """The seed of one call: a fresh one for stochastic rounding without a fixed seed, else
    `None` (the spec's own, if any, applies)."""
    if spec.stochastic and spec.seed is None:
        return draw_seed(data)
    return None


def resolve(spec: Spec, data: Any) -> Spec:
    """The spec of one call: stochastic rounding without a seed gets a fresh one."""
    seed = call_seed(spec, data)
    return spec if seed is None else spec.with_seed(seed)


def _float_dtype_error(dtype: Any, name: str = "x") -> TypeError:
    return TypeError(
        f"{name} must hold floating-point data (float32, float64, float16 or bfloat16), got {dtype}"
    )


def check_layout(x, name: str = "x"):
    """A TypeError naming `name` for a tensor the kernels cannot read: sparse, nested, MKL-DNN."""
    torch = _torch()
    if x.is_nested:
        raise TypeError(
            f"{name}: nested tensors are not supported; quantize each of x.unbind() instead"
        )
    if x.layout is not torch.strided:
        raise TypeError(
            f"{name}: {x.layout} tensors are not supported; convert with .to_dense() first"
        )


def foreign_order(x) -> bool:
    """Whether `x` is a numpy array whose bytes are not in this machine's order."""
    return type(x) is np.ndarray and not x.dtype.isnative


def in_native_order(call, x: np.ndarray):
    """`call` on a copy of `x` in this machine's byte order; arrays of that dtype in the result
    come back in the order of `x` (as the command line keeps a file's byte order)."""
    native = x.astype(x.dtype.newbyteorder("="))

    def back(r):
        if isinstance(r, np.ndarray) and r.dtype == native.dtype:
            return r.astype(x.dtype)
        return r

    out = call(native)
    return tuple(back(r) for r in out) if isinstance(out, tuple) else back(out)


_call = _xbquant.quantize


def _numpy_view(array: np.ndarray, dtype: str) -> np.ndarray:
    return array.view(np.uint16) if dtype in ("float16", "bfloat16") else array


def quantize_array(
    x: np.ndarray, spec: Spec, with_mask: bool, name: str = "x"
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """A numpy array: always a new array of the same shape and dtype."""
    if not x.dtype.isnative:
        return in_native_order(lambda v: quantize_array(v, spec, with_mask, name), x)
    dtype = _NUMPY_DTYPES.get(x.dtype)
    if dtype is None and x.dtype.name == "bfloat16":  # ml_dtypes' bfloat16
        dtype = "bfloat16"
    if dtype is None:
        raise _float_dtype_error(f"numpy {x.dtype}", name)
    seed = call_seed(spec, x)
    if not with_mask and dtype in ("float32", "float64") and x.flags.c_contiguous:
        return _xbquant.quantized(spec, x, seed), None
    src = np.ascontiguousarray(x)
    out = np.empty_like(src, order="C")
    mask = np.empty(src.shape, dtype=np.bool_) if with_mask else None
    _call(spec, _numpy_view(src, dtype), _numpy_view(out, dtype), mask, dtype, seed)
    return out, mask


def tensor_dtype_name(x, name: str = "x") -> str:
    check_layout(x, name)
    dtype = _torch_dtype_names(_torch()).get(x.dtype)
    if dtype is None:
        raise _float_dtype_error(x.dtype, name)
    return dtype


def _tensor_numpy(t, dtype: str) -> np.ndarray:
    """A zero-copy numpy view of a contiguous CPU tensor."""
    torch = _torch()
    if dtype in ("float16", "bfloat16"):
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


_NUMPY_OF = {"float32": np.float32, "float64": np.float64, "float16": np.uint16, "bfloat16": np.uint16}


def new_cpu_tensor(shape, dtype: str):
    """A new contiguous CPU tensor and its numpy view (the bits of a half type as `uint16`).
    Allocated by numpy, which asks the kernel for huge pages on large buffers: writing a new
    64 MiB tensor this way costs about half the page faults of `torch.empty`."""
    torch = _torch()
    array = np.empty(shape, dtype=_NUMPY_OF[dtype])
    tensor = torch.from_numpy(array)
    if dtype in ("float16", "bfloat16"):
        tensor = tensor.view(getattr(torch, dtype))
    return tensor, array


def quantize_tensor_cpu(
    x, spec: Spec, with_mask: bool, in_place: bool = False, dtype=None, name: str = "x"
):
    """A CPU tensor through the Rust kernels, with no copy of contiguous data. Returns a new
    tensor (or `x` itself when `in_place`) and the overflow mask."""
    torch = _torch()
    if x.is_nested or x.layout is not torch.strided:
        check_layout(x, name)
    seed = call_seed(spec, x)
    data = x.detach() if x.requires_grad else x
    # The kernels read a tensor's buffer where it lies when that holds its values in order: not
    # for a view with the negative bit (`torch._neg_view`), whose values are the buffer's negated.
    plain = data.is_contiguous() and not data.is_neg()
    if not with_mask and not in_place and x.dtype in _TORCH_SHORT and plain:
        # The common case, kept short (a training loop calls it on every step): one call
        # that returns a new array, which the tensor wraps without a copy.
        return torch.from_numpy(_xbquant.quantized(spec, data.numpy(), seed)), None
    dtype = dtype or tensor_dtype_name(x, name)
    mask = torch.empty(data.shape, dtype=torch.bool) if with_mask else None
    mask_np = mask.numpy() if mask is not None else None
    if in_place:
        if any(st == 0 and n > 1 for st, n in zip(data.stride(), data.shape)):
            raise ValueError(
                f"cannot quantize {name} in place: several of its elements are one memory "
                "location (an expanded view); quantize a clone() of it"
            )
        if plain:
            _call(spec, _tensor_numpy(data, dtype), None, mask_np, dtype, seed)
        else:
            work = data.resolve_neg().contiguous()
            _call(spec, _tensor_numpy(work, dtype), None, mask_np, dtype, seed)
            data.copy_(work)
        return x, mask
    if plain:
        out, out_np = new_cpu_tensor(data.shape, dtype)
        _call(spec, _tensor_numpy(data, dtype), out_np, mask_np, dtype, seed)
    else:
        # The contiguous copy is ours: quantize it where it lies.
        out = data.resolve_neg().contiguous()
        _call(spec, _tensor_numpy(out, dtype), None, mask_np, dtype, seed)
    return out, mask


class Short:
    """The shortest path of the calls a training loop makes on every step, on a CPU tensor that
    records no gradient: the entry point looks its arguments up in `specs` with no checks, and
    passes the array of the tensor (`Tensor.numpy()`) to the kernel, which returns a new array
    that `from_numpy` wraps. A tensor the kernel cannot take as it is (another device or dtype,
    strided, a view with a conjugate or negative bit) makes `numpy()` or the kernel raise one
    of `declined`, and the entry point takes its general path.

    `specs` holds a call's spec once the general path has checked its arguments, where they
    are plain ints, bools, strings and None (`8.0 == 8` and `True == 1` hash alike, but the
    general path checks them differently) and the format draws no fresh seed on each call. The
    keys start with the entry point's own arguments in its order; those of different entry
    points differ in length or content."""

    declined = (TypeError, ValueError, RuntimeError)

    def __init__(self):
        self.specs: dict = {}
        self.tensor: Any = None  # torch.Tensor, once torch is loaded
        self.from_numpy: Any = None

    def remember(self, key: tuple, spec: Spec):
        if spec.stochastic and spec.seed is None:
            return
        if not all(type(v) in _PLAIN for v in key):
            return
        if self.tensor is None:
            torch = _torch()
            if torch is None:
                return
            self.tensor, self.from_numpy = torch.Tensor, torch.from_numpy
        if len(self.specs) >= _MAX_SPECS:
            self.specs.clear()
        self.specs[key] = spec


_PLAIN = (int, bool, str, type(None))
SHORT = Short()


def quantize_tensor_other(x, spec: Spec, with_mask: bool):
    """A tensor on another device (CUDA, ...) through torch operations on that device; the two
    cases those cannot do exactly go through the kernels on a CPU copy. `spec` has its seed
    resolved already."""
    from . import _torch_ops

    if _torch_ops.needs_kernels(x, spec):
        out, mask = quantize_tensor_cpu(x.detach().cpu(), spec, with_mask)
        return out.to(x.device), (mask.to(x.device) if mask is not None else None)
    return _torch_ops.quantize(x, spec, with_mask)


def quantize_data(
    x: Any, spec: Spec, with_mask: bool = False, in_place: bool = False, name: str = "x"
):
    """Quantizes a tensor (any device) or a numpy array; returns `(result, mask or None)`.
    `name` names the data in errors."""
    torch = _torch()
    if torch is not None and isinstance(x, torch.Tensor):
        if x.is_cpu:
            return quantize_tensor_cpu(x, spec, with_mask, in_place, name=name)
        tensor_dtype_name(x, name)  # a TypeError for data that is not floating point
        out, mask = quantize_tensor_other(x, resolve(spec, x), with_mask)
        if in_place:
            with torch.no_grad():
                x.copy_(out)
            return x, mask
        return out, mask
    if isinstance(x, np.ndarray):
        if not in_place:
            return quantize_array(x, spec, with_mask, name)
        if not x.flags.writeable:
            raise ValueError(f"cannot quantize {name} in place: the array is read-only")
        if x.flags.c_contiguous and x.dtype in _NUMPY_DTYPES:
            dtype = _NUMPY_DTYPES[x.dtype]
            mask = np.empty(x.shape, dtype=np.bool_) if with_mask else None
            _call(spec, _numpy_view(x, dtype), None, mask, dtype, call_seed(spec, x))
            return x, mask
        out, mask = quantize_array(x, spec, with_mask, name)
        x[...] = out
        return x, mask
    if isinstance(x, np.generic) and x.dtype.kind == "f" and not in_place:
        out, mask = quantize_array(np.asarray(x), spec, with_mask, name)
        return out[()], (mask[()] if mask is not None else None)
    raise TypeError(
        f"{name} must be a torch.Tensor or a numpy array of floats, got {type(x).__name__}"
    )
