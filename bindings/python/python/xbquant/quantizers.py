"""XBTorch's `xbtorch.quant.quantizers`, with the same names, arguments and defaults, computed by
xbquant's Rust kernels.

Replace ``from xbtorch.quant.quantizers import ...`` with ``from xbquant.quantizers import ...``.

One difference is deliberate: XBTorch documents ``rounding="nearest"`` but never passes the
argument on, so it always rounds stochastically (QPyTorch's default). Here the argument is
honoured: ``"nearest"`` rounds to the nearest code, ties to even, and ``"stochastic"`` rounds
stochastically. Every rounding name of :func:`xbquant.quantize` is accepted too.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from . import _data, _ops, _schemes
from ._checks import check_flag
from ._native import get_range_fixed_point

__all__ = ["FixedPointQuantF", "fixed_point_quantize_wrapper", "get_range_fixed_point"]


_fast = _data.FAST


def _seed_overflow(symmetric: Any) -> str:
    # The seed always clamps; `symmetric` chooses between the two saturating modes.
    return "saturate-symmetric" if check_flag(symmetric, "symmetric") else "saturate"


class FixedPointQuantF(torch.autograd.Function):
    """Fixed-point quantization with a straight-through gradient.

    The forward pass quantizes ``input`` to a signed fixed-point format of word length ``wl``
    (bits, sign included) and fractional length ``fl`` (step ``2**-fl``), saturating at the
    ends of the range: ``[-(2**(wl-fl-1) - 2**-fl), 2**(wl-fl-1) - 2**-fl]`` when ``symmetric``
    (the default), ``[-2**(wl-fl-1), 2**(wl-fl-1) - 2**-fl]`` otherwise. The backward pass is the
    straight-through estimator: the incoming gradient is returned unchanged for ``input``, and
    ``None`` for the other arguments.

    ``torch.autograd.Function.apply`` takes positional arguments only::

        q = FixedPointQuantF.apply(x, 8, 4)                       # symmetric, nearest
        q = FixedPointQuantF.apply(x, 8, 4, False, "stochastic")

    Stochastic rounding draws its seed from torch's default generator, so ``torch.manual_seed``
    makes a run repeat; each call draws new noise.
    """

    @classmethod
    def apply(cls, *args, **kwargs):
        input = args[0] if args else kwargs.get("input")  # noqa: A001
        if _ops.in_graph(input):
            # Traced, or a tensor of torch.func's transforms (which take no Function with the
            # seed's `forward(ctx, ...)`): the registered operation, straight through.
            bound = _APPLY.bind(*args, **kwargs).arguments
            symmetric = bound.get("symmetric", True)
            rounding = bound.get("rounding", "nearest")
            text = _ops.fixed_text(bound["wl"], bound["fl"], _seed_overflow(symmetric), rounding, True, None, 0)
            return _ops.traced(input, text, "straight")
        return super().apply(*args, **kwargs)

    @staticmethod
    def forward(ctx, input, wl, fl, symmetric=True, rounding="nearest"):  # noqa: A002
        if _fast.compiling():
            # torch.compile traces this Function's forward and backward passes itself.
            text = _ops.fixed_text(wl, fl, _seed_overflow(symmetric), rounding, True, None, 0)
            return _ops.traced(input, text, "none")
        scheme = _schemes.fixed(wl, fl, _seed_overflow(symmetric), rounding, True, None, 0)
        out, _ = _data.run(input, scheme, name="input")
        return out

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, None, None, None, None


def _apply_signature(input, wl, fl, symmetric=True, rounding="nearest"):  # noqa: A002
    """The arguments of `FixedPointQuantF.apply`: those of its forward pass after `ctx`."""


_APPLY = inspect.signature(_apply_signature)


def fixed_point_quantize_wrapper(input, wl, fl, symmetric=True, rounding="nearest"):  # noqa: A002
    """Quantizes ``input`` to fixed point with a straight-through gradient.

    Equivalent to ``FixedPointQuantF.apply(input, wl, fl, symmetric, rounding)``, with keyword
    arguments allowed.

    Args:
        input: a floating-point tensor (float32, float64, float16 or bfloat16; any device, shape
            and strides) or a numpy array. The result has the same dtype, shape and device.
        wl: word length in bits, sign included (1 to 64).
        fl: fractional length: the step is ``2**-fl``. May be negative or larger than ``wl``.
        symmetric: ``True`` (the default) drops the most negative code, so the range is
            symmetric about zero.
        rounding: ``"nearest"`` (the default; ties to even) or ``"stochastic"``, or any other
            rounding name of :func:`xbquant.quantize`.

    Raises:
        ValueError: a bad ``wl`` or ``fl``, or an unknown rounding name.
        TypeError: data that is not floating point.

    Example::

        >>> import torch
        >>> from xbquant.quantizers import fixed_point_quantize_wrapper
        >>> x = torch.tensor([0.3, -1.7, 9.0], requires_grad=True)
        >>> q = fixed_point_quantize_wrapper(x, wl=4, fl=2)
        >>> q
        tensor([ 0.2500, -1.7500,  1.7500], grad_fn=<FixedPointQuantFBackward>)
        >>> q.sum().backward(); x.grad
        tensor([1., 1., 1.])
    """
    if _fast.compiling():
        text = _ops.fixed_text(wl, fl, _seed_overflow(symmetric), rounding, True, None, 0)
        return _ops.traced(input, text, "straight")
    if (
        type(input) is _fast.tensor
        and type(wl) is int
        and type(fl) is int
        and (symmetric is True or symmetric is False)
        and not input.requires_grad
    ):
        # The call of every training step, kept shortest (see `_data.Fast`).
        out = _fast.call((wl, fl, symmetric, rounding), input)
        if out is not None:
            return out
    if _ops.wrapped(input):
        text = _ops.fixed_text(wl, fl, _seed_overflow(symmetric), rounding, True, None, 0)
        return _ops.traced(input, text, "straight")
    if isinstance(input, torch.Tensor) and input.requires_grad and torch.is_grad_enabled():
        return FixedPointQuantF.apply(input, wl, fl, symmetric, rounding)
    # Nothing to record for autograd: the same forward pass without the Function's overhead.
    scheme = _schemes.fixed(wl, fl, _seed_overflow(symmetric), rounding, True, None, 0)
    _fast.remember((wl, fl, symmetric, rounding), scheme)
    return _data.run(input, scheme, name="input")[0]
