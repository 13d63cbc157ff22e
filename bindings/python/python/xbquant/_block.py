"""Block floating point: a power-of-two scale shared by a block of values (the whole tensor, a
slice along one axis, or fixed-size blocks along the last axis), each value a fixed-point code
of the block's scale. CPU tensors and numpy arrays go through the core's `BlockFormat`
(crates/xbquant/src/block.rs) in one call. Tensors on other devices go through the same rule
composed in torch on that device: one block is one fixed-point format; several are scaled by
their powers of two (exactly), quantized as fixed point, and scaled back (its tests run it on
CPU tensors against the core, bit for bit)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _core, _xbquant


def _finite_abs_max(a, dims=None, keepdim=False):
    """The largest finite magnitude of `a` (over `dims`, or all of it): one pass when every
    value is finite, a second one otherwise."""
    import torch

    if dims is None:
        # The extremes, without a temporary |a|.
        lo, hi = torch.aminmax(a)
        top = torch.maximum(lo.abs(), hi.abs())
    else:
        top = a.abs().amax(dim=dims, keepdim=keepdim)
    if not bool(torch.isfinite(top).all()):
        finite = torch.where(torch.isfinite(a), a.abs(), torch.zeros_like(a))
        top = finite.amax(dim=dims, keepdim=keepdim) if dims is not None else finite.amax()
    return top


def _exponent(top):
    """The exponent of the leading bit of each of `top`'s values (0 for zero), as float64."""
    import torch

    top = top.to(torch.float64)
    # frexp gives top = m * 2^e with m in [0.5, 1): the leading bit's exponent is e - 1.
    exponent = torch.frexp(top).exponent.to(torch.float64) - 1
    return torch.where(top > 0, exponent, torch.zeros_like(exponent))


def block_quantize_data(x: Any, wl: int, dim: int, rounding: str, block_size: Optional[int], seed):
    import torch

    wl = _core.check_length(wl, "wl", 2, 64)
    if isinstance(x, np.ndarray):
        if not x.dtype.isnative:
            return _core.in_native_order(
                lambda v: block_quantize_data(v, wl, dim, rounding, block_size, seed), x
            )
        if x.dtype not in _core._NUMPY_DTYPES:
            raise _core._float_dtype_error(f"numpy {x.dtype}")
        return block_quantize_data(torch.from_numpy(x), wl, dim, rounding, block_size, seed).numpy()
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor or a numpy array of floats, got {type(x).__name__}")
    _core.tensor_dtype_name(x)
    dim = _core.check_length(dim, "dim")
    if dim != -1 and not 0 <= dim < x.dim():
        raise ValueError(f"dim {dim} is not -1 or an axis of a {x.dim()}-d tensor")
    if block_size is not None:
        block_size = _core.check_length(block_size, "block_size")
        if block_size < 1:
            raise ValueError(f"block_size must be 1 or more, got {block_size}")
        if x.dim() == 0 or x.shape[-1] % block_size:
            raise ValueError(
                f"the last axis ({x.shape[-1] if x.dim() else 'none'}) is not a multiple of "
                f"block_size {block_size}"
            )
    spec = _core.make_spec(wl, wl - 2, overflow="saturate-symmetric", rounding=rounding, seed=seed)
    if x.is_cpu:
        return _block_kernels(x, spec, dim, block_size)
    return block_quantize_torch(x.detach(), spec, dim, block_size)


def _block_kernels(x, spec, dim: int, block_size: Optional[int]):
    """A CPU tensor through the core's block kernel, in one call."""
    import torch

    dtype = _core.tensor_dtype_name(x)
    data = x.detach().resolve_neg().contiguous()  # (a negative-bit view: its values)
    out, out_np = _core.new_cpu_tensor(data.shape, dtype)
    axis = None if dim == -1 else dim
    _xbquant.quantize_block(
        spec,
        _core._tensor_numpy(data, dtype),
        out_np,
        dtype,
        _core.call_seed(spec, x),
        axis,
        block_size,
    )
    return out


def block_quantize_torch(a, spec, dim: int, block_size: Optional[int]):
    """The block rule in torch operations, for tensors on any device (arguments checked)."""
    import torch

    wl = spec.wl

    def fixed(fl):
        return _core.make_spec(
            wl, fl, overflow="saturate-symmetric", rounding=spec.rounding, seed=spec.seed
        )

    if block_size is None and dim == -1:
        # One block: a fixed-point format of the block's fractional length, in one kernel call
        # (unless the exponent is beyond the fractional lengths a format takes).
        e = int(_exponent(_finite_abs_max(a)).item())
        try:
            one = fixed(wl - 2 - e)
        except ValueError:
            one = None
        if one is not None:
            return _core.quantize_data(a, one)[0]
    shape = a.shape
    if block_size is not None:
        a = a.reshape(*shape[:-1], shape[-1] // block_size, block_size)
        e = _exponent(_finite_abs_max(a, -1, keepdim=True))
    elif dim == -1:
        e = _exponent(_finite_abs_max(a))
    else:
        dims = [d for d in range(a.dim()) if d != dim]
        if dims:
            e = _exponent(_finite_abs_max(a, dims, keepdim=True))
        else:  # a 1-d tensor by its only axis: each value its own block
            e = _exponent(torch.where(torch.isfinite(a), a.abs(), torch.zeros_like(a)))
    # Each block scaled by its power of two, quantized with fl = wl - 2, and scaled back: exact
    # in float32 unless a block's step falls below float32's normal range, else in float64.
    smallest_step = float(e.min()) + 2 - wl if e.numel() else 0.0
    work = torch.float32 if a.dtype != torch.float64 and smallest_step >= -125 else torch.float64
    scale = torch.exp2(e).to(work)
    q = _core.quantize_data((a.to(work) / scale).contiguous(), spec)[0]
    return (q * scale).reshape(shape).to(a.dtype)
