"""QPyTorch's vocabulary, as drop-ins with its signatures and defaults: `fixed_point_quantize`,
`float_quantize`, `block_quantize`, the number formats `FixedPoint`, `FloatingPoint` and
`BlockFloatingPoint`, and `quantizer`. Each builds a checked `Scheme` and sends the data through
the one data path."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

from . import _data, _ops, _schemes
from ._checks import check_flag, check_length, check_name, overflow_name
from ._xbquant import Scheme

__all__ = [
    "fixed_point_quantize",
    "float_quantize",
    "block_quantize",
    "FixedPoint",
    "FloatingPoint",
    "BlockFloatingPoint",
    "quantizer",
    "QuantizeFunction",
]

_fast = _data.FAST


def _qpytorch_overflow(clamp: Any, symmetric: Any) -> str:
    if not check_flag(clamp, "clamp"):
        check_flag(symmetric, "symmetric")
        return "unbounded"
    return "saturate-symmetric" if check_flag(symmetric, "symmetric") else "saturate"


def fixed_point_quantize(
    x: Any,
    wl: Any,
    fl: Any,
    clamp: Any = True,
    symmetric: Any = False,
    rounding: Any = "stochastic",
    *,
    overflow: Optional[str] = None,
    sat_bits: int = 0,
    signed: bool = True,
    seed: Optional[int] = None,
) -> Any:
    """QPyTorch's ``qtorch.quant.fixed_point_quantize``: same signature, same defaults
    (note: stochastic rounding by default), exact results.

    ``clamp=False`` ignores the word length (only the step applies); ``symmetric=True`` drops the
    most negative code. The keyword-only arguments go beyond QPyTorch: ``overflow`` (which then
    replaces ``clamp`` and ``symmetric``), ``sat_bits``, ``signed`` and ``seed``, as in
    :func:`quantize`. Like QPyTorch's, the result carries no gradient; use :func:`quantizer` or
    :mod:`xbquant.quantizers` for autograd.

    Unlike QPyTorch it accepts float64, float16 and bfloat16, non-contiguous data and numpy
    arrays; rounds ties to even on every device; and its stochastic rounding is unbiased at every
    magnitude and never moves values that are already on the grid.
    """
    if _fast.compiling() and overflow is None:
        text = _ops.fixed_text(wl, fl, _qpytorch_overflow(clamp, symmetric), rounding, signed, seed, sat_bits)
        return _ops.traced(x, text, "none")
    if (
        (seed is not None or rounding != "stochastic")  # the default draws a fresh seed
        and type(x) is _fast.tensor
        and type(wl) is int
        and type(fl) is int
        and (clamp is True or clamp is False)
        and (symmetric is True or symmetric is False)
        and (signed is True or signed is False)
        and type(sat_bits) is int
        and (seed is None or type(seed) is int)
        and not x.requires_grad
    ):
        # The call of every training step, kept shortest (see `_data.Fast`).
        out = _fast.call((wl, fl, clamp, symmetric, rounding, overflow, sat_bits, signed, seed), x)
        if out is not None:
            return out
    if overflow is None and _ops.wrapped(x):
        text = _ops.fixed_text(wl, fl, _qpytorch_overflow(clamp, symmetric), rounding, signed, seed, sat_bits)
        return _ops.traced(x, text, "none")
    given = overflow
    if overflow is None:
        overflow = _qpytorch_overflow(clamp, symmetric)
    else:
        check_flag(clamp, "clamp")
        check_flag(symmetric, "symmetric")
    scheme = _schemes.fixed(wl, fl, overflow, rounding, signed, seed, sat_bits)
    _fast.remember((wl, fl, clamp, symmetric, rounding, given, sat_bits, signed, seed), scheme)
    return _data.run(x, scheme)[0]


class FixedPoint:
    """QPyTorch's fixed-point number format: ``FixedPoint(wl, fl, clamp=True, symmetric=False)``.

    Also usable with :func:`xbquant.quantizers.get_range_fixed_point`. The keyword-only
    ``overflow``, ``sat_bits`` and ``signed`` choose the hardware modes of :func:`quantize`
    (``overflow`` replaces ``clamp`` and ``symmetric`` when given).

    >>> FixedPoint(8, 4)
    FixedPoint (wl=8, fl=4)
    """

    def __init__(
        self,
        wl: Any,
        fl: Any,
        clamp: Any = True,
        symmetric: Any = False,
        *,
        overflow: Optional[str] = None,
        sat_bits: int = 0,
        signed: bool = True,
    ):
        self.wl = check_length(wl, "wl")
        self.fl = check_length(fl, "fl")
        self.clamp = check_flag(clamp, "clamp")
        self.symmetric = check_flag(symmetric, "symmetric")
        self.signed = check_flag(signed, "signed")
        self.overflow = overflow_name(
            overflow if overflow is not None else _qpytorch_overflow(clamp, symmetric), sat_bits
        )
        # Check now, so that a bad format fails where it is written.
        self.scheme("nearest")

    def scheme(self, rounding: str, seed: Optional[int] = None) -> Scheme:
        """The checked format with a rounding (internal)."""
        return _schemes.fixed(self.wl, self.fl, self.overflow, rounding, self.signed, seed, 0)

    def __repr__(self) -> str:
        return f"FixedPoint (wl={self.wl:d}, fl={self.fl:d})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FixedPoint):
            return NotImplemented
        return (self.wl, self.fl, self.signed, self.overflow, self.symmetric) == (
            other.wl,
            other.fl,
            other.signed,
            other.overflow,
            other.symmetric,
        )

    def __hash__(self) -> int:
        return hash((self.wl, self.fl, self.signed, self.overflow, self.symmetric))


class FloatingPoint:
    """QPyTorch's floating-point number format: ``FloatingPoint(exp, man)``, ``exp`` exponent
    bits (2 to 8) with bias ``2**(exp-1) - 1`` and ``man`` stored mantissa bits (1 to 23), with
    subnormals and no values reserved for infinities or NaN (the largest exponent field holds
    numbers); values beyond the largest saturate to it. For :func:`float_quantize` and
    :func:`quantizer`.

    >>> FloatingPoint(5, 2)
    FloatingPoint (exponent=5, mantissa=2)
    """

    def __init__(self, exp: Any, man: Any):
        self.exp = check_length(exp, "exp", 1, 64)
        self.man = check_length(man, "man", 0, 64)
        # Check now, so that a bad format fails where it is written.
        self.scheme("nearest")

    def scheme(self, rounding: str, seed: Optional[int] = None) -> Scheme:
        """The checked format with a rounding (internal)."""
        return _schemes.floating(f"e{self.exp}m{self.man}nx", rounding, None, seed)

    def __repr__(self) -> str:
        return f"FloatingPoint (exponent={self.exp:d}, mantissa={self.man:d})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FloatingPoint):
            return NotImplemented
        return (self.exp, self.man) == (other.exp, other.man)

    def __hash__(self) -> int:
        return hash(("float", self.exp, self.man))


def float_quantize(x: Any, exp: Any, man: Any, rounding: Any = "stochastic", *, seed: Optional[int] = None) -> Any:
    """QPyTorch's ``qtorch.quant.float_quantize``: same signature, same defaults (stochastic
    rounding), the format of :class:`FloatingPoint` (no infinities or NaN reserved, subnormals,
    saturation), exact results.

    Where QPyTorch's kernel is wrong, this is right: it rounds ties to even, as QPyTorch
    documents (QPyTorch rounds them away from zero); below the normal range it rounds once
    (QPyTorch rounds ``x + 2**emin`` in float32 first, a second rounding, and turns ``-0`` into
    ``+0`` there); NaN stays NaN (QPyTorch returns a number); ``man=23`` leaves values as they are
    (QPyTorch flips signs, its issue #48). Stochastic rounding draws 52-bit noise from the
    ``(seed, index)`` generator of fixed point, so it is unbiased and reproducible with ``seed``.
    Accepts every float dtype, any strides and numpy arrays. No gradient: use :func:`quantizer`.

    Example::

        >>> import torch
        >>> float_quantize(torch.tensor([0.3, 5.4, 100.0]), 2, 2, "nearest")
        tensor([0.2500, 5.0000, 7.0000])
    """
    if _ops.in_graph(x) and isinstance(exp, int) and isinstance(man, int) and isinstance(rounding, str):
        text = f"e{exp}m{man}nx rounding={_ops.rounding_text(rounding, seed)}"
        return _ops.traced(x, text, "none")
    exp, man = check_length(exp, "exp", 1, 64), check_length(man, "man", 0, 64)
    return _data.run(x, _schemes.floating(f"e{exp}m{man}nx", rounding, None, seed))[0]


def block_scheme(x: Any, wl: Any, dim: Any, rounding: Any, block_size: Any, seed: Any) -> Scheme:
    """Block floating point of `wl` bits: one block for the whole tensor (`dim=-1`), per index
    of `dim`, or per `block_size` consecutive values along the last axis."""
    scheme = _schemes.block(wl, rounding, seed)
    _data.dtype_of(x)
    dim = check_length(dim, "dim")
    if dim != -1 and not 0 <= dim < len(x.shape):
        raise ValueError(f"dim {dim} is not -1 or an axis of a {len(x.shape)}-d tensor")
    if block_size is not None:
        block_size = check_length(block_size, "block_size")
        if block_size < 1:
            raise ValueError(f"block_size must be 1 or more, got {block_size}")
        if len(x.shape) == 0 or x.shape[-1] % block_size:
            raise ValueError(
                f"the last axis ({x.shape[-1] if len(x.shape) else 'none'}) is not a multiple of "
                f"block_size {block_size}"
            )
        return scheme._with_runs(block_size)
    return scheme if dim == -1 else scheme._with_axis(dim)


def block_quantize(
    x: Any,
    wl: Any,
    dim: Any = -1,
    rounding: Any = "stochastic",
    *,
    block_size: Optional[int] = None,
    seed: Optional[int] = None,
) -> Any:
    """QPyTorch's ``qtorch.quant.block_quantize``: block floating point with word length
    ``wl``. A block shares the exponent ``e`` of its largest finite magnitude, and each value
    becomes a ``wl``-bit signed code of step ``2**(e + 2 - wl)`` (the largest magnitude keeps
    its leading bit), saturating symmetrically. Blocks: the whole tensor for ``dim=-1``
    (QPyTorch's default), one block per index of axis ``dim`` otherwise (QPyTorch's meaning).
    Beyond QPyTorch, ``block_size=k`` makes blocks of ``k`` consecutive values along the last
    axis (as in the OCP Microscaling formats).

    Exact where QPyTorch is not: ties go to even (QPyTorch rounds them away from zero after
    adding ``6 * 2**e`` in float32, which can round a second time). NaN stays NaN and
    infinities saturate; a block's exponent comes from its finite values. Stochastic rounding
    uses the ``(seed, index)`` noise of fixed point. Accepts every float dtype, any device and
    numpy arrays. No gradient: use :func:`quantizer` with :class:`BlockFloatingPoint`.

    Example::

        >>> import torch
        >>> x = torch.tensor([[0.3, 5.0], [0.1, 0.2]])
        >>> block_quantize(x, 4, dim=0, rounding="nearest").tolist()  # steps 0.5, 2^-5
        [[0.0, 5.0], [0.09375, 0.1875]]
    """
    if _ops.in_graph(x) and isinstance(wl, int) and isinstance(dim, int) and isinstance(rounding, str):
        group = f" group=runs:{block_size}" if block_size is not None else "" if dim == -1 else f" group=axis:{dim}"
        text = f"fixed<{wl},0> overflow=saturate-symmetric rounding={_ops.rounding_text(rounding, seed)}"
        return _ops.traced(x, f"{text}{group} scale=shared-exponent", "none")
    return _data.run(x, block_scheme(x, wl, dim, rounding, block_size, seed))[0]


class BlockFloatingPoint:
    """QPyTorch's block floating-point number format: ``BlockFloatingPoint(wl, dim=-1)``, for
    :func:`block_quantize` and :func:`quantizer`.

    >>> BlockFloatingPoint(8, dim=0)
    BlockFloatingPoint (wl=8, dim=0)
    """

    def __init__(self, wl: Any, dim: Any = -1):
        self.wl = check_length(wl, "wl", 2, 64)
        self.dim = check_length(dim, "dim", -1, 2**31)

    def __repr__(self) -> str:
        return f"BlockFloatingPoint (wl={self.wl:d}, dim={self.dim:d})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BlockFloatingPoint):
            return NotImplemented
        return (self.wl, self.dim) == (other.wl, other.dim)

    def __hash__(self) -> int:
        return hash(("block", self.wl, self.dim))


Number = Union[FixedPoint, FloatingPoint, BlockFloatingPoint]


def _as_number(number: Any, role: str) -> Optional[Number]:
    """A number format given to `quantizer`: ours, or any object with QPyTorch's attributes
    (fixed point: ``wl``, ``fl``, and optionally ``clamp`` and ``symmetric``; floating point:
    ``exp`` and ``man``)."""
    if number is None or isinstance(number, (FixedPoint, FloatingPoint, BlockFloatingPoint)):
        return number
    if hasattr(number, "wl") and hasattr(number, "fl"):
        return FixedPoint(
            number.wl,
            number.fl,
            getattr(number, "clamp", True),
            getattr(number, "symmetric", False),
        )
    if hasattr(number, "exp") and hasattr(number, "man"):
        return FloatingPoint(number.exp, number.man)
    if hasattr(number, "wl") and hasattr(number, "dim"):
        return BlockFloatingPoint(number.wl, number.dim)
    raise TypeError(
        f"{role} must be a number format (xbquant.FixedPoint, FloatingPoint or "
        f"BlockFloatingPoint, or an object with QPyTorch's attributes: wl and fl, exp and man, "
        f"or wl and dim), got {type(number).__name__}"
    )


def _quantize_number(x: Any, number: Number, rounding: str, with_mask: bool = False) -> Any:
    """`x` quantized to a number format of `quantizer`, with the overflow mask when asked."""
    if isinstance(number, BlockFloatingPoint):
        return _data.run(x, block_scheme(x, number.wl, number.dim, rounding, None, None))[0], None
    if isinstance(number, FloatingPoint):
        return _data.run(x, number.scheme(rounding))[0], None
    return _data.run(x, number.scheme(rounding), with_mask=with_mask)


def quantizer(
    forward_number: Any = None,
    backward_number: Any = None,
    forward_rounding: Any = "stochastic",
    backward_rounding: Any = "stochastic",
    clamping_grad_zero: Any = False,
    backward_hooks: Sequence[Callable] = [],
    *,
    always_apply_backward: bool = False,
) -> "QuantizeFunction":
    """QPyTorch's ``qtorch.quant.quantizer``: returns a callable (a :class:`QuantizeFunction`) that quantizes a tensor to
    ``forward_number`` in the forward pass and its gradient to ``backward_number`` in the
    backward pass (either may be ``None``: no quantization in that direction). Numbers are
    :class:`FixedPoint`, :class:`FloatingPoint`, :class:`BlockFloatingPoint` or QPyTorch's.

    The backward pass is QPyTorch's, exactly: without ``backward_number`` the gradient passes
    untouched; with it, the gradient is quantized, and with ``clamping_grad_zero=True`` the
    ``backward_hooks`` are first applied to it, in order, and the quantized gradient is then
    zeroed where the forward code overflowed the (fixed-point) format. QPyTorch runs the hooks
    only in that last case and applies the mask only with a ``backward_number``;
    ``always_apply_backward=True`` runs the hooks and the mask whenever they are given (hooks,
    mask, then quantization).

    Example::

        >>> import torch
        >>> q = quantizer(FixedPoint(4, 2), FixedPoint(8, 4), forward_rounding="nearest",
        ...               backward_rounding="nearest", clamping_grad_zero=True)
        >>> x = torch.tensor([0.3, 5.0], requires_grad=True)
        >>> y = q(x); y.sum().backward()
        >>> y.detach(), x.grad
        (tensor([0.2500, 1.7500]), tensor([1., 0.]))
    """
    forward = _as_number(forward_number, "forward_number")
    backward = _as_number(backward_number, "backward_number")
    clamping_grad_zero = check_flag(clamping_grad_zero, "clamping_grad_zero")
    always_apply_backward = check_flag(always_apply_backward, "always_apply_backward")
    if clamping_grad_zero and isinstance(forward, (FloatingPoint, BlockFloatingPoint)):
        raise ValueError("clamping_grad_zero needs a fixed-point forward_number (as QPyTorch's)")
    # Check the rounding names now rather than at the first call.
    for rounding, name in ((forward_rounding, "forward_rounding"), (backward_rounding, "backward_rounding")):
        check_name(rounding, name)
        _schemes.check_fixed_rounding(rounding, name)
    if not hasattr(backward_hooks, "__iter__") or isinstance(backward_hooks, (str, bytes)):
        raise TypeError(f"backward_hooks must be a sequence of callables, got {type(backward_hooks).__name__}")
    hooks = list(backward_hooks)
    for hook in hooks:
        if not callable(hook):
            raise TypeError(f"backward_hooks must be callables, got {type(hook).__name__}")
    if _data.torch_module() is not None:
        # Made now, not while a compiled function is traced (which cannot define classes).
        _rounding()
        _rounding(traced=True)
    return QuantizeFunction(
        forward, backward, forward_rounding, backward_rounding, clamping_grad_zero, hooks, always_apply_backward
    )


class QuantizeFunction:
    """The function :func:`quantizer` returns: quantizes a tensor in the forward pass and its
    gradient in the backward pass. A plain object of plain values (number formats, rounding
    names, flags, hooks), so it pickles and deep-copies (the hooks must too: module-level
    functions do, lambdas do not), and a model that holds one can be saved whole or sent to
    worker processes."""

    def __init__(
        self,
        forward: Optional[Number],
        backward: Optional[Number],
        forward_rounding: str,
        backward_rounding: str,
        clamping_grad_zero: bool,
        hooks: Sequence[Callable],
        always_apply_backward: bool,
    ):
        self.forward = forward
        self.backward = backward
        self.forward_rounding = forward_rounding
        self.backward_rounding = backward_rounding
        self.clamping_grad_zero = clamping_grad_zero
        self.hooks = list(hooks)
        self.always_apply_backward = always_apply_backward

    def __call__(self, x: Any) -> Any:
        if _fast.compiling():
            return _rounding(traced=True).apply(x, self)
        return _rounding().apply(x, self)

    def __repr__(self) -> str:
        return (
            f"quantizer(forward_number={self.forward!r}, backward_number={self.backward!r}, "
            f"forward_rounding={self.forward_rounding!r}, backward_rounding={self.backward_rounding!r}, "
            f"clamping_grad_zero={self.clamping_grad_zero!r})"
        )

    def backward_pass(self, grad: Any, mask: Any, traced: bool = False) -> Any:
        """The gradient of the backward pass (QPyTorch's rules, or with `always_apply_backward`
        hooks, mask, then quantization); `traced`: through the registered operation."""
        if self.always_apply_backward:
            for hook in self.hooks:
                grad = hook(grad)
            if mask is not None:
                grad = grad.masked_fill(mask, 0)
            if self.backward is not None:
                grad = _apply_number(grad, self.backward, self.backward_rounding, traced)
            return grad
        # QPyTorch's rules.
        if self.backward is None:
            return grad
        if self.clamping_grad_zero:
            for hook in self.hooks:
                grad = hook(grad)
        grad = _apply_number(grad, self.backward, self.backward_rounding, traced)
        return grad.masked_fill(mask, 0) if mask is not None else grad


def number_text(number: Number, rounding: str) -> str:
    """The text form of a number format with a rounding: the scheme the registered operation
    runs for it when traced."""
    if isinstance(number, FixedPoint):
        kind = "fixed" if number.signed else "ufixed"
        return f"{kind}<{number.wl},{number.fl}> overflow={number.overflow} rounding={rounding}"
    if isinstance(number, FloatingPoint):
        return f"e{number.exp}m{number.man}nx rounding={rounding}"
    group = "" if number.dim == -1 else f" group=axis:{number.dim}"
    return f"fixed<{number.wl},0> overflow=saturate-symmetric rounding={rounding}{group} scale=shared-exponent"


def _apply_number(x: Any, number: Number, rounding: str, traced: bool) -> Any:
    """`x` quantized to a number format, through the registered operation when `traced`."""
    if traced:
        return _ops.traced(x, number_text(number, rounding), "none")
    return _quantize_number(x, number, rounding)[0]


_ROUNDING: dict = {}


def _rounding(traced: bool = False) -> Any:
    """The autograd function of every `QuantizeFunction` (made when torch is first used: the
    package imports without torch); `traced`: the one that calls the registered operation, for
    `torch.compile`."""
    if traced not in _ROUNDING:
        import torch

        class Rounding(torch.autograd.Function):
            @staticmethod
            def forward(ctx: Any, x: Any, config: QuantizeFunction) -> Any:
                ctx.config = config
                if config.forward is None:
                    return x.clone()
                if traced:
                    text = number_text(config.forward, config.forward_rounding)
                    out, mask = _ops.traced(x, text, "none", return_mask=True)
                else:
                    out, mask = _quantize_number(x, config.forward, config.forward_rounding, config.clamping_grad_zero)
                if config.clamping_grad_zero:
                    ctx.save_for_backward(mask)
                return out

            @staticmethod
            def backward(ctx: Any, grad_output: Any) -> Any:
                config = ctx.config
                masked = config.clamping_grad_zero and config.forward is not None
                mask = ctx.saved_tensors[0] if masked else None
                return config.backward_pass(grad_output, mask, traced), None

        _ROUNDING[traced] = Rounding
    return _ROUNDING[traced]
