"""The crossbar's periphery on the Rust kernels: fixed point with a fractional length per slice
(chosen from the data or given), uniform grids of any step, tables of levels, ADC/DAC models with
noise, and bit slicing. Tensors on any device (other devices through a CPU copy, so the bits are
the kernels'), numpy arrays; on tensors that require grad the results carry the straight-through
gradient, zero where a range clips."""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, Optional, Sequence

import numpy as np

from . import _core, _xbquant

_STRAIGHT = None


def _straight():
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


def _is_tensor(x) -> bool:
    torch = _core._torch()
    return torch is not None and isinstance(x, torch.Tensor)


def differentiable(x, compute):
    """`compute(with_mask)` gives `(result, clip mask or None)`. On a tensor that requires grad
    (with grad enabled) the result carries the straight-through gradient, zero where the mask is
    set; otherwise it is returned as it is."""
    if _is_tensor(x) and x.requires_grad:
        import torch

        if torch.is_grad_enabled():
            out, mask = compute(True)
            return _straight().apply(x, out, mask)
    return compute(False)[0]


def _numpy_dtype(x: np.ndarray) -> str:
    dtype = _core._NUMPY_DTYPES.get(x.dtype)
    if dtype is None:
        raise _core._float_dtype_error(f"numpy {x.dtype}")
    return dtype


# The largest finite value of each dtype: a range, scale, step or level beyond it would be
# infinite in the data's arithmetic.
_LARGEST = {
    "float16": 65504.0,
    "bfloat16": 3.3895313892515355e38,
    "float32": 3.4028234663852886e38,
    "float64": math.inf,
}


def dtype_of(x) -> str:
    """The dtype name of the data of `x` (checked: floating point, a layout the kernels read)."""
    if _is_tensor(x):
        return _core.tensor_dtype_name(x)
    if isinstance(x, np.ndarray):
        return _numpy_dtype(x if x.dtype.isnative else x.astype(x.dtype.newbyteorder("=")))
    raise TypeError(f"x must be a torch.Tensor or a numpy array of floats, got {type(x).__name__}")


def check_held(values, name: str, x):
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


def apply(x, call, with_mask: bool = False):
    """Runs `call(src, out, mask, dtype)` (C-contiguous numpy buffers) on the data of `x`:
    returns `(result, mask or None)` of `x`'s type, shape, dtype and device."""
    if _core.foreign_order(x):
        return _core.in_native_order(lambda v: apply(v, call, with_mask), x)
    if _is_tensor(x):
        import torch

        dtype = _core.tensor_dtype_name(x)
        data = x.detach()
        src = data.cpu().resolve_neg().contiguous()  # (a negative-bit view: its values)
        out, out_np = _core.new_cpu_tensor(src.shape, dtype)
        mask = torch.empty(src.shape, dtype=torch.bool) if with_mask else None
        call(_core._tensor_numpy(src, dtype), out_np, None if mask is None else mask.numpy(), dtype)
        if data.device.type != "cpu":
            out = out.to(data.device)
            mask = mask.to(data.device) if mask is not None else None
        return out, mask
    if isinstance(x, np.ndarray):
        dtype = _numpy_dtype(x)
        src = np.ascontiguousarray(x)
        out = np.empty_like(src, order="C")
        mask = np.empty(src.shape, dtype=np.bool_) if with_mask else None
        call(_core._numpy_view(src, dtype), _core._numpy_view(out, dtype), mask, dtype)
        return out, mask
    raise TypeError(f"x must be a torch.Tensor or a numpy array of floats, got {type(x).__name__}")


def _cpu_numpy(x):
    """A C-contiguous CPU numpy view of the data of `x` and its dtype name."""
    if _is_tensor(x):
        dtype = _core.tensor_dtype_name(x)
        return _core._tensor_numpy(x.detach().cpu().resolve_neg().contiguous(), dtype), dtype
    if isinstance(x, np.ndarray):
        x = np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("="))
        dtype = _numpy_dtype(x)
        return _core._numpy_view(x, dtype), dtype
    raise TypeError(f"x must be a torch.Tensor or a numpy array of floats, got {type(x).__name__}")


def check_axis(x, axis) -> Optional[int]:
    """`axis` as a non-negative index of an axis of `x` (negative counts from the end)."""
    if axis is None:
        return None
    dtype_of(x)  # the data first: a TypeError naming x
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an integer or None, got {axis!r}")
    ndim = len(x.shape)
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is not an axis of a {ndim}-d input")
    return axis % ndim


def _seed_of(rounding: str, seed, data) -> Optional[int]:
    """The seed of a stochastic call: the given one, or a fresh one from torch's or numpy's
    generator (so that `torch.manual_seed` / `numpy.random.seed` make a run repeat)."""
    if seed is not None:
        return _core.check_seed(seed)
    if _core.check_name(rounding, "rounding").lower().startswith("stochastic"):
        return _core.draw_seed(data)
    return None


def _per_slice(values, count: int, name: str, cast):
    """One value per slice, from a number (the same for all), a sequence, an array or a tensor;
    `cast(value)` checks each."""
    if _is_tensor(values):
        values = values.detach().cpu().reshape(-1).tolist()
    elif isinstance(values, np.ndarray):
        values = values.reshape(-1).tolist()
    if isinstance(values, (numbers.Number, np.generic)) and not isinstance(values, (bool, np.bool_)):
        return [cast(values)] * count
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(
            f"{name} must be a number or one per slice (a sequence, array or tensor), got "
            f"{type(values).__name__} {values!r}"
        )
    values = [cast(v) for v in values]
    if len(values) != count:
        raise ValueError(f"{name} has {len(values)} values for {count} slices along the axis")
    return values


def _integer(v) -> int:
    return _core.check_length(v, "fl", -(2**31), 2**31 - 1)


FL_METHODS = {"auto": "max", "max": "max", "sqnr": "sqnr"}


def choose_fl(x, spec: _core.Spec, axis, method: str):
    """Fractional lengths per slice (a list) or for the whole input (an int)."""
    key = FL_METHODS.get(_core.check_name(method, "method"))
    if key is None:
        raise ValueError(f'unknown method {method!r}: expected "max" (or "auto") or "sqnr"')
    axis = check_axis(x, axis)
    src, dtype = _cpu_numpy(x)
    fls = _xbquant.choose_fl(spec, src, dtype, axis, key)
    return fls[0] if axis is None else fls


def quantize_slices(x, spec: _core.Spec, fl, axis, seed, with_mask: bool):
    """Fixed point with a fractional length per slice along `axis` (or for the whole input):
    `fl` a method name, a number, or one value per slice."""
    axis = check_axis(x, axis)
    count = 1 if axis is None else x.shape[axis]
    if isinstance(fl, str):
        if fl not in FL_METHODS:
            raise ValueError(
                f'fl must be an integer, one per slice, or one of "auto", "max" and "sqnr"; got {fl!r}'
            )
        fls = choose_fl(x, spec, axis, fl)
        fls = [fls] if axis is None else fls
    else:
        fls = _per_slice(fl, count, "fl", _integer)
    if spec.stochastic and spec.seed is None and seed is None:
        seed = _core.draw_seed(x)

    def call(src, out, mask, dtype):
        _xbquant.quantize_slices(spec, src, out, mask, dtype, seed, axis, fls)

    return apply(x, call, with_mask)


@functools.lru_cache(maxsize=64)
def _table(levels: tuple) -> _xbquant.LevelTable:
    return _xbquant.LevelTable(list(levels))


def level_table(levels) -> _xbquant.LevelTable:
    """The sorted table of `levels` (a sequence, array or tensor of finite numbers), cached."""
    if _is_tensor(levels):
        levels = levels.detach().cpu().reshape(-1).tolist()
    elif isinstance(levels, np.ndarray):
        levels = levels.reshape(-1).tolist()
    if isinstance(levels, (str, bytes)) or not hasattr(levels, "__iter__"):
        raise TypeError(f"levels must be a sequence of numbers, got {type(levels).__name__}")
    key = tuple(_core.check_number(v, "levels") for v in levels)
    if not key:
        raise ValueError("levels must hold one level or more, got none")
    return _table(key)


def _outside(x, lo: float, hi: float):
    """Where the data of `x` lies outside `[lo, hi]` (the clip mask of a bounded grid)."""
    data = x.detach() if _is_tensor(x) else x
    return (data < lo) | (data > hi)


def quantize_grid(x, step, offset, levels, rounding, seed):
    step = _core.check_number(step, "step", positive=True)
    offset = _core.check_number(offset, "offset")
    if levels is not None:
        levels = _core.check_length(levels, "levels", 1, 2**52)
    seed = _seed_of(rounding, seed, x)
    if levels is None:
        check_held([step], "step", x)
        check_held([offset], "offset", x)
    else:
        last = offset + (levels - 1) * step
        if not math.isfinite(last):
            raise ValueError(
                f"levels and step: the grid's last point, {offset!r} + ({levels} - 1) * {step!r}, "
                "is beyond the largest double"
            )
        check_held([offset, last], "the grid's end point (offset + (levels - 1) * step)", x)

    def compute(with_mask):
        def call(src, out, _mask, dtype):
            _xbquant.quantize_grid(step, offset, levels, rounding, seed, src, out, dtype)

        out, _ = apply(x, call)
        mask = None
        if with_mask:
            top = math.inf if levels is None else offset + (levels - 1) * step
            mask = _outside(x, offset if levels is not None else -math.inf, top)
        return out, mask

    return differentiable(x, compute)


def quantize_levels(x, levels, rounding, seed):
    table = level_table(levels)
    seed = _seed_of(rounding, seed, x)
    check_held([table.levels[0], table.levels[-1]], "levels", x)

    def compute(with_mask):
        def call(src, out, _mask, dtype):
            _xbquant.quantize_levels(table, rounding, seed, src, out, dtype)

        out, _ = apply(x, call)
        mask = None
        if with_mask:
            t = table.levels
            mask = _outside(x, t[0], t[-1])
        return out, mask

    return differentiable(x, compute)


NOISES = ("gaussian", "uniform")


def _ranges(x, range, axis, what: str = "range"):
    """The kind and values of a range (or scale): "absmax", a number, or one per slice."""
    count = 1 if axis is None else x.shape[axis]
    if isinstance(range, str):
        if range != "absmax":
            raise ValueError(f'{what} must be "absmax", a number or one per slice, got {range!r}')
        return "absmax", []
    if range is None:
        raise TypeError(f'{what} must be "absmax", a number or one per slice, got None')

    def check(v):
        return _core.check_number(v, what, nonnegative=True)

    if isinstance(range, (numbers.Number, bool, np.generic)):
        values = [check(range)]
        kind = "fixed"
    else:
        values = _per_slice(range, count, what, check)
        kind = "per-slice"
    check_held(values, what, x)
    return kind, values


def quantize_scaled(x, spec: _core.Spec, scale, axis, with_mask: bool):
    """Scaled fixed point: `s * Q(x / s)` per slice, `Q` the spec's format and rounding."""
    axis = check_axis(x, axis)
    kind, scales = _ranges(x, scale, axis, "scale")
    seed = _core.draw_seed(x) if spec.stochastic and spec.seed is None else None

    def call(src, out, mask, dtype):
        _xbquant.quantize_scaled(spec, seed, kind, scales, src, out, mask, dtype, axis)

    return apply(x, call, with_mask)


def convert(x, bits, range, axis, rounding, noise_std, noise, seed):
    """The ADC/DAC model: `r * Q(x / r + n)` per slice."""
    bits = _core.check_length(bits, "bits", 2, 64)
    axis = check_axis(x, axis)
    kind, ranges = _ranges(x, range, axis)
    noise_std = _core.check_number(noise_std, "noise_std", nonnegative=True)
    noise = _core.check_choice(noise, "noise", NOISES)
    width = noise_std if noise == "gaussian" else noise_std * math.sqrt(3.0)
    noise_kind = "none" if noise_std == 0.0 else noise
    stochastic = _core.check_name(rounding, "rounding").lower().startswith("stochastic")
    if seed is None and (stochastic or noise_kind != "none"):
        seed = _core.draw_seed(x)
    seed = None if seed is None else _core.check_seed(seed)
    round_seed = seed if stochastic else None
    noise_seed = seed if noise_kind != "none" else None

    def compute(with_mask):
        def call(src, out, mask, dtype):
            _xbquant.convert(
                bits, rounding, round_seed, kind, ranges, noise_kind, width, noise_seed,
                src, out, mask, dtype, axis,
            )

        return apply(x, call, with_mask)

    return differentiable(x, compute)


ENCODINGS = ("sign-magnitude", "twos-complement", "offset-binary")


def _holds(dtype, lo: int, hi: int) -> bool:
    """Whether a numpy or torch dtype holds every integer from `lo` to `hi` exactly."""
    torch = _core._torch()
    if torch is not None and isinstance(dtype, torch.dtype):
        if dtype.is_floating_point:
            bits = {torch.float16: 11, torch.bfloat16: 8, torch.float32: 24}.get(dtype, 53)
            return max(-lo, hi) <= 2**bits
        info = torch.iinfo(dtype)
    else:
        if dtype.kind == "f":
            return max(-lo, hi) <= 2 ** (np.finfo(dtype).nmant + 1)
        info = np.iinfo(dtype)
    return info.min <= lo and hi <= info.max


def _codes_int64(codes, name: str):
    """The codes as a flat C-contiguous int64 numpy array (each checked: an integer that int64
    holds), their shape, and how to give results back: in the codes' dtype where it holds every
    value `(lo, hi)` a result can take, else in int64."""
    if _is_tensor(codes):
        import torch

        _core.check_layout(codes, name)
        data = codes.detach().cpu()
        if data.dtype == torch.bool or data.is_complex():
            raise TypeError(f"{name} must be integers, got {data.dtype}")
        if data.is_floating_point():
            data = data.double()
            if not bool(torch.all(torch.isfinite(data) & (data == torch.round(data)))):
                raise ValueError(f"{name} must be integers (float codes must have integer values)")
            if data.numel() and float(data.abs().max()) >= 2.0**63:
                raise ValueError(f"{name} must lie within 64-bit integers, got {float(data.abs().max())!r}")
        elif data.dtype == getattr(torch, "uint64", None):
            flat = data.reshape(-1).numpy().view(np.uint64)
            if flat.size and int(flat.max()) >= 2**63:
                raise ValueError(f"{name} must lie within 64-bit integers, got {int(flat.max())}")
        flat = np.ascontiguousarray(data.to(torch.int64).reshape(-1).numpy())

        def back(a, shape, lo, hi):
            dtype = codes.dtype if _holds(codes.dtype, lo, hi) else torch.int64
            return torch.from_numpy(a.reshape(shape)).to(dtype).to(codes.device)

        return flat, tuple(codes.shape), back
    if isinstance(codes, np.ndarray):
        if codes.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                whole = np.isfinite(codes) & (codes == np.round(codes))
            if not np.all(whole):
                raise ValueError(f"{name} must be integers (float codes must have integer values)")
            if codes.size and float(np.abs(codes).max()) >= 2.0**63:
                raise ValueError(f"{name} must lie within 64-bit integers, got {float(np.abs(codes).max())!r}")
        elif codes.dtype.kind == "u":
            if codes.size and int(codes.max()) >= 2**63:
                raise ValueError(f"{name} must lie within 64-bit integers, got {int(codes.max())}")
        elif codes.dtype.kind != "i":
            raise TypeError(f"{name} must be integers, got numpy {codes.dtype}")
        flat = np.ascontiguousarray(codes.astype(np.int64).reshape(-1))

        def back(a, shape, lo, hi):
            dtype = codes.dtype if _holds(codes.dtype, lo, hi) else np.dtype(np.int64)
            return a.reshape(shape).astype(dtype)

        return flat, codes.shape, back
    raise TypeError(
        f"{name} must be a torch.Tensor or a numpy array of integers, got {type(codes).__name__}"
    )


def _slicing(bits, slice_bits, encoding):
    bits = _core.check_length(bits, "bits")
    slice_bits = _core.check_length(slice_bits, "slice_bits")
    _core.check_choice(encoding, "encoding", ENCODINGS)
    if not 1 <= bits <= 62 or not 1 <= slice_bits <= bits:
        raise ValueError(f"bits must be 1 to 62 and slice_bits 1 to bits, got {bits} and {slice_bits}")
    return bits, slice_bits, -(-bits // slice_bits)


def bit_slices(codes, bits, slice_bits, encoding):
    bits, slice_bits, count = _slicing(bits, slice_bits, encoding)
    flat, shape, back = _codes_int64(codes, "codes")
    planes = np.empty((count, flat.size), dtype=np.int64)
    try:
        _xbquant.bit_slices(flat, bits, slice_bits, encoding, planes)
    except ValueError as e:
        raise ValueError(f"codes: {e}") from None
    # The digits a plane can hold.
    top = 2**slice_bits - 1
    return back(planes, (count, *shape), -top if encoding == "sign-magnitude" else 0, top)


def from_bit_slices(slices, bits, slice_bits, encoding):
    bits, slice_bits, count = _slicing(bits, slice_bits, encoding)
    flat, shape, back = _codes_int64(slices, "slices")
    if len(shape) == 0 or shape[0] != count:
        raise ValueError(
            f"expected {count} planes along the first axis for {bits} bits in slices of "
            f"{slice_bits}, got shape {tuple(shape)}"
        )
    length = flat.size // count
    try:
        codes = np.asarray(
            _xbquant.from_bit_slices(flat, bits, slice_bits, encoding, length), dtype=np.int64
        )
    except ValueError as e:
        raise ValueError(f"slices: {e}") from None
    # The codes of the word, and those the planes gave (sign-magnitude and offset-binary sums
    # of planes that are not canonical digits can lie beyond them): the planes' dtype where it
    # holds them all, else int64.
    if encoding == "sign-magnitude":
        lo, hi = -(2**bits - 1), 2**bits - 1
    else:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if codes.size:
        lo, hi = min(lo, int(codes.min())), max(hi, int(codes.max()))
    return back(codes, shape[1:], lo, hi)
