"""Block floating point: a power-of-two scale shared by a block of values (the whole tensor, a
slice along one axis, or fixed-size blocks along the last axis), each value a fixed-point code
of the block's scale. Built on the fixed-point kernels: the values are scaled by the block's
power of two (exact in float64), quantized as fixed point, and scaled back."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _core


def _block_exponents(a, dim: int, block_size: Optional[int]):
    """The exponent of the largest finite magnitude of each block, broadcastable to `a` (a
    float64 tensor, reshaped into blocks when `block_size` is given); 0 for a block of zeros."""
    import torch

    finite = torch.where(torch.isfinite(a), a.abs(), torch.zeros_like(a))
    if block_size is not None:
        top = finite.amax(dim=-1, keepdim=True)
    elif dim == -1:
        top = finite.amax()
    else:
        dims = [d for d in range(a.dim()) if d != dim]
        top = finite.amax(dim=dims, keepdim=True) if dims else finite
    # frexp gives top = m * 2^e with m in [0.5, 1): the exponent of its leading bit is e - 1.
    exponent = torch.frexp(top).exponent.to(torch.float64) - 1
    return torch.where(top > 0, exponent, torch.zeros_like(exponent))


def block_quantize_data(x: Any, wl: int, dim: int, rounding: str, block_size: Optional[int], seed):
    import torch

    wl = _core.check_length(wl, "wl")
    if wl < 2:
        raise ValueError(f"a block floating-point word needs 2 bits or more, got wl = {wl}")
    if isinstance(x, np.ndarray):
        return block_quantize_data(torch.from_numpy(x), wl, dim, rounding, block_size, seed).numpy()
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor or a numpy array of floats, got {type(x).__name__}")
    _core.tensor_dtype_name(x)
    dim = _core.check_length(dim, "dim")
    if dim != -1 and not 0 <= dim < x.dim():
        raise ValueError(f"dim {dim} is not -1 or an axis of a {x.dim()}-d tensor")
    a = x.detach().to(torch.float64)
    shape = a.shape
    if block_size is not None:
        block_size = _core.check_length(block_size, "block_size")
        if block_size < 1:
            raise ValueError(f"block_size must be 1 or more, got {block_size}")
        if a.dim() == 0 or a.shape[-1] % block_size:
            raise ValueError(
                f"the last axis ({a.shape[-1] if a.dim() else 'none'}) is not a multiple of "
                f"block_size {block_size}"
            )
        a = a.reshape(*shape[:-1], shape[-1] // block_size, block_size)
    e = _block_exponents(a, dim, block_size)
    # Codes of wl bits, step 2^(e + 2 - wl): the block's largest magnitude keeps its leading bit.
    scaled = a * torch.exp2(-e)
    q = _core.quantize_data(
        scaled.contiguous(),
        _core.make_spec(wl, wl - 2, overflow="saturate-symmetric", rounding=rounding, seed=seed),
    )[0]
    out = (q * torch.exp2(e)).reshape(shape)
    return out.to(x.dtype).to(x.device)
