"""The one data path: every public function sends its data here, with a checked `Scheme`. This
module owns the dtype table, byte orders and layouts, the allocation of results, the seed of each
call, one policy for tensors on other devices, and the one fast path of the calls a training loop
makes on every step."""

from __future__ import annotations

import math
import sys
import threading
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from . import _xbquant
from ._xbquant import Scheme

_NUMPY_DTYPES = {
    np.dtype(np.float32): "float32",
    np.dtype(np.float64): "float64",
    np.dtype(np.float16): "float16",
}
_NUMPY_OF = {"float32": np.float32, "float64": np.float64, "float16": np.uint16, "bfloat16": np.uint16}


def torch_module() -> Any:
    """torch, if the caller has loaded it (the package works on numpy arrays without it)."""
    return sys.modules.get("torch")


def is_tensor(x: Any) -> bool:
    torch = torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


# torch dtypes by name, and those of the fast path (filled when torch is first seen).
_TORCH_DTYPE_NAMES: Dict[Any, str] = {}
_TORCH_FAST: set = set()


def _torch_dtype_names(torch: Any) -> Dict[Any, str]:
    if not _TORCH_DTYPE_NAMES:
        _TORCH_DTYPE_NAMES.update(
            {
                torch.float32: "float32",
                torch.float64: "float64",
                torch.float16: "float16",
                torch.bfloat16: "bfloat16",
            }
        )
        _TORCH_FAST.update((torch.float32, torch.float64))
    return _TORCH_DTYPE_NAMES


def float_dtype_error(dtype: Any, name: str = "x") -> TypeError:
    return TypeError(f"{name} must hold floating-point data (float32, float64, float16 or bfloat16), got {dtype}")


def check_layout(x: Any, name: str = "x") -> None:
    """A TypeError naming `name` for a tensor the kernels cannot read: sparse, nested, MKL-DNN."""
    torch = torch_module()
    if x.is_nested:
        raise TypeError(f"{name}: nested tensors are not supported; quantize each of x.unbind() instead")
    if x.layout is not torch.strided:
        raise TypeError(f"{name}: {x.layout} tensors are not supported; convert with .to_dense() first")


def tensor_dtype_name(x: Any, name: str = "x") -> str:
    check_layout(x, name)
    dtype = _torch_dtype_names(torch_module()).get(x.dtype)
    if dtype is None:
        raise float_dtype_error(x.dtype, name)
    return dtype


def array_dtype_name(x: np.ndarray, name: str = "x") -> str:
    """The dtype name of a numpy array in any byte order: float32, float64, float16, or
    ml_dtypes' bfloat16."""
    native = x.dtype if x.dtype.isnative else x.dtype.newbyteorder("=")
    dtype = _NUMPY_DTYPES.get(native)
    if dtype is None and native.name == "bfloat16":  # ml_dtypes' bfloat16
        dtype = "bfloat16"
    if dtype is None:
        raise float_dtype_error(f"numpy {x.dtype}", name)
    return dtype


def dtype_of(x: Any, name: str = "x") -> str:
    """The dtype name of the data of `x` (checked: floating point, a layout the kernels read)."""
    if is_tensor(x):
        return tensor_dtype_name(x, name)
    if isinstance(x, np.ndarray):
        return array_dtype_name(x, name)
    raise TypeError(f"{name} must be a torch.Tensor or a numpy array of floats, got {type(x).__name__}")


# The largest finite value of each dtype: a range, scale, step or level beyond it would be
# infinite in the data's arithmetic.
_LARGEST = {
    "float16": 65504.0,
    "bfloat16": 3.3895313892515355e38,
    "float32": 3.4028234663852886e38,
    "float64": math.inf,
}


def check_held(values: Any, name: str, x: Any) -> None:
    """A ValueError naming `name` for a value beyond the largest of the dtype of `x`."""
    if all(abs(v) <= 65504.0 for v in values):
        return  # every dtype holds it (float16's largest)
    dtype = dtype_of(x)
    largest = _LARGEST[dtype]
    for v in values:
        if abs(v) > largest:
            raise ValueError(
                f"{name}: {v!r} cannot be held by {dtype} data, whose largest value is "
                f"{largest!r}; convert the data to a wider dtype"
            )


# A scalar int64 tensor per thread, refilled from torch's default generator for each seed (a
# third of the cost of `torch.randint`; per thread, so that two threads never read one draw).
_SCRATCH = threading.local()


def draw_seed(data: Any) -> int:
    """A fresh seed: from torch's default generator for tensors (63 random bits, so that
    `torch.manual_seed` makes a run repeat), from numpy's global generator for arrays (64 bits,
    `numpy.random.seed`)."""
    if is_tensor(data):
        scratch = getattr(_SCRATCH, "seed", None)
        if scratch is None:
            scratch = _SCRATCH.seed = torch_module().empty((), dtype=torch_module().int64)
        return int(scratch.random_().item())
    return int(np.random.randint(0, 2**64, dtype=np.uint64))


def call_seed(scheme: Scheme, data: Any) -> Optional[int]:
    """The seed of one call: a fresh one for a scheme that draws noise without a seed of its own,
    else `None`."""
    return draw_seed(data) if scheme.draws else None


def resolve(scheme: Scheme, data: Any) -> Scheme:
    """The scheme of one call: noise without a seed gets a fresh one."""
    seed = call_seed(scheme, data)
    return scheme if seed is None else scheme._with_seed(seed)


def _numpy_view(array: np.ndarray, dtype: str) -> np.ndarray:
    return array.view(np.uint16) if dtype in ("float16", "bfloat16") else array


def tensor_numpy(t: Any, dtype: str) -> np.ndarray:
    """A zero-copy numpy view of a contiguous CPU tensor (the bits of a half type as `uint16`)."""
    if dtype in ("float16", "bfloat16"):
        return t.view(torch_module().int16).numpy().view(np.uint16)
    return t.numpy()


def new_cpu_tensor(shape: Any, dtype: str) -> Tuple[Any, np.ndarray]:
    """A new contiguous CPU tensor and its numpy view (the bits of a half type as `uint16`).
    Allocated by numpy, which asks the kernel for huge pages on large buffers: writing a new
    64 MiB tensor this way costs about half the page faults of `torch.empty`."""
    torch = torch_module()
    array = np.empty(shape, dtype=_NUMPY_OF[dtype])
    tensor = torch.from_numpy(array)
    if dtype in ("float16", "bfloat16"):
        tensor = tensor.view(getattr(torch, dtype))
    return tensor, array


_call = _xbquant.quantize


def _run_array(x: np.ndarray, scheme: Scheme, with_mask: bool, in_place: bool, name: str):
    dtype = array_dtype_name(x, name)
    if in_place:
        if not x.flags.writeable:
            raise ValueError(f"cannot quantize {name} in place: the array is read-only")
        if x.flags.c_contiguous and x.dtype.isnative:
            mask = np.empty(x.shape, dtype=np.bool_) if with_mask else None
            view = _numpy_view(x, dtype)
            _call(scheme, view, view, mask, dtype, call_seed(scheme, x))
            return x, mask
        out, mask = _run_array(x, scheme, with_mask, False, name)
        x[...] = out
        return x, mask
    if not x.dtype.isnative:
        # In this machine's byte order, and back in the order of `x` (as the command line keeps
        # a file's byte order).
        out, mask = _run_array(x.astype(x.dtype.newbyteorder("=")), scheme, with_mask, False, name)
        return out.astype(x.dtype), mask
    seed = call_seed(scheme, x)
    if not with_mask and dtype in ("float32", "float64") and x.flags.c_contiguous:
        return _call(scheme, x, None, None, dtype, seed), None
    src = np.ascontiguousarray(x)
    out = np.empty_like(src, order="C")
    mask = np.empty(src.shape, dtype=np.bool_) if with_mask else None
    _call(scheme, _numpy_view(src, dtype), _numpy_view(out, dtype), mask, dtype, seed)
    return out, mask


def _run_cpu_tensor(x: Any, scheme: Scheme, with_mask: bool, in_place: bool, name: str):
    """A CPU tensor through the Rust kernels, with no copy of contiguous data."""
    torch = torch_module()
    if x.is_nested or x.layout is not torch.strided:
        check_layout(x, name)
    seed = call_seed(scheme, x)
    data = x.detach() if x.requires_grad else x
    # The kernels read a tensor's buffer where it lies when that holds its values in order: not
    # for a view with the negative bit (`torch._neg_view`), whose values are the buffer's negated.
    plain = data.is_contiguous() and not data.is_neg()
    if not with_mask and not in_place and x.dtype in _TORCH_FAST and plain:
        # The common case, kept short: one call that returns a new array, which the tensor
        # wraps without a copy.
        return torch.from_numpy(_call(scheme, data.numpy(), None, None, None, seed)), None
    dtype = tensor_dtype_name(x, name)
    mask = torch.empty(data.shape, dtype=torch.bool) if with_mask else None
    mask_np = mask.numpy() if mask is not None else None
    if in_place:
        if any(st == 0 and n > 1 for st, n in zip(data.stride(), data.shape)):
            raise ValueError(
                f"cannot quantize {name} in place: several of its elements are one memory "
                "location (an expanded view); quantize a clone() of it"
            )
        work = data if plain else data.resolve_neg().contiguous()
        view = tensor_numpy(work, dtype)
        _call(scheme, view, view, mask_np, dtype, seed)
        if not plain:
            data.copy_(work)
        return x, mask
    if plain:
        out, out_np = new_cpu_tensor(data.shape, dtype)
        _call(scheme, tensor_numpy(data, dtype), out_np, mask_np, dtype, seed)
    else:
        # The contiguous copy is ours: quantized where it lies.
        out = data.resolve_neg().contiguous()
        view = tensor_numpy(out, dtype)
        _call(scheme, view, view, mask_np, dtype, seed)
    return out, mask


def _run_other_device(x: Any, scheme: Scheme, with_mask: bool, name: str):
    """A tensor on another device: the torch operations that follow the kernels on that device
    where they exist for the scheme (see `_torch_ops.supports`), else the kernels on a CPU copy,
    so that the bits are the kernels' either way."""
    from . import _torch_ops

    tensor_dtype_name(x, name)
    scheme = resolve(scheme, x)
    if _torch_ops.supports(x, scheme, with_mask):
        return _torch_ops.run(x, scheme, with_mask)
    out, mask = _run_cpu_tensor(x.detach().cpu(), scheme, with_mask, False, name)
    return out.to(x.device), (mask.to(x.device) if mask is not None else None)


def run(x: Any, scheme: Scheme, with_mask: bool = False, in_place: bool = False, name: str = "x"):
    """Quantizes a tensor (any device) or a numpy array with `scheme`: returns `(result, clip
    mask or None)`, the result new (of the type, dtype, shape and device of `x`) or, `in_place`,
    `x` itself. `name` names the data in errors."""
    torch = torch_module()
    if torch is not None and isinstance(x, torch.Tensor):
        if x.is_cpu:
            return _run_cpu_tensor(x, scheme, with_mask, in_place, name)
        out, mask = _run_other_device(x, scheme, with_mask, name)
        if in_place:
            with torch.no_grad():
                x.copy_(out)
            return x, mask
        return out, mask
    if isinstance(x, np.ndarray):
        return _run_array(x, scheme, with_mask, in_place, name)
    if isinstance(x, np.generic) and x.dtype.kind == "f" and not in_place:
        out, mask = _run_array(np.asarray(x), scheme, with_mask, False, name)
        return out[()], (mask[()] if mask is not None else None)
    raise TypeError(f"{name} must be a torch.Tensor or a numpy array of floats, got {type(x).__name__}")


def calibrate(x: Any, scheme: Scheme, name: str = "x") -> Scheme:
    """`scheme` with the scales its rule chooses for the data of `x` given."""
    if is_tensor(x):
        dtype = tensor_dtype_name(x, name)
        src = tensor_numpy(x.detach().cpu().resolve_neg().contiguous(), dtype)
    elif isinstance(x, np.ndarray):
        dtype = array_dtype_name(x, name)
        src = _numpy_view(np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("=")), dtype)
    else:
        raise TypeError(f"{name} must be a torch.Tensor or a numpy array of floats, got {type(x).__name__}")
    return _xbquant.calibrate(scheme, src, dtype)


_STRAIGHT: Any = None


def _straight() -> Any:
    """The autograd function of the straight-through gradient (built when torch is first used)."""
    global _STRAIGHT
    if _STRAIGHT is None:
        import torch

        class Straight(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, out, mask):
                ctx.save_for_backward(mask)
                return out

            @staticmethod
            def backward(ctx, grad):
                (mask,) = ctx.saved_tensors
                return grad.masked_fill(mask, 0.0), None, None

        _STRAIGHT = Straight
    return _STRAIGHT


def differentiable(x: Any, compute: Callable[[bool], Tuple[Any, Any]]) -> Any:
    """`compute(with_mask)` gives `(result, clip mask or None)`. On a tensor that requires grad
    (with grad enabled) the result carries the straight-through gradient, zero where the mask is
    set; otherwise it is returned as it is."""
    if is_tensor(x) and x.requires_grad:
        if torch_module().is_grad_enabled():
            out, mask = compute(True)
            return _straight().apply(x, out, mask)
    return compute(False)[0]


_PLAIN = (int, bool, str, type(None))


def _never() -> bool:
    return False


_MAX_SCHEMES = 4096


class Fast:
    """The fast path of the calls a training loop makes on every step, on a CPU tensor that
    records no gradient: the entry point looks its arguments up in `schemes` with no checks,
    and passes the array of the tensor (`Tensor.numpy()`) to the kernel, which returns a new
    array that `from_numpy` wraps. A tensor the kernel cannot take as it is (another device or
    dtype, strided, a view with a conjugate or negative bit) makes `numpy()` or the kernel raise
    one of `declined`, and the entry point takes its general path.

    `schemes` holds a call's scheme once the general path has checked its arguments, where they
    are plain ints, bools, strings and None (`8.0 == 8` and `True == 1` hash alike, but the
    general path checks them differently; each entry point tests its arguments' types before it
    looks them up) and the scheme draws no fresh seed on each call. The keys start with the
    entry point's own arguments in its order; those of different entry points differ in length
    or content."""

    declined = (TypeError, ValueError, RuntimeError)

    def __init__(self) -> None:
        self.schemes: Dict[tuple, Scheme] = {}
        self.tensor: Any = None  # torch.Tensor, once torch is loaded
        self.from_numpy: Any = None
        # Whether a call is being traced (torch.compile, torch.export): `torch.compiler.
        # is_compiling` once torch is loaded, bound here so that the entry points test it with
        # one attribute lookup and one call.
        self.compiling: Callable[[], bool] = _never

    def know_torch(self, torch: Any) -> None:
        """Binds torch's functions (when torch is loaded)."""
        self.tensor, self.from_numpy = torch.Tensor, torch.from_numpy
        self.compiling = torch.compiler.is_compiling

    def call(self, key: tuple, x: Any) -> Any:
        """The result of the call `key` on `x`, or None where it must take its general path."""
        try:
            scheme = self.schemes.get(key)
        except TypeError:  # an unhashable argument: the general path says what is wrong
            return None
        if scheme is None:
            return None
        try:
            return self.from_numpy(_call(scheme, x.numpy()))
        except self.declined:
            return None

    def remember(self, key: tuple, scheme: Scheme) -> None:
        if scheme.draws:
            return
        if not all(type(v) in _PLAIN for v in key):
            return
        if self.tensor is None:
            torch = torch_module()
            if torch is None:
                return
            self.know_torch(torch)
        if len(self.schemes) >= _MAX_SCHEMES:
            self.schemes.clear()
        self.schemes[key] = scheme


FAST = Fast()
