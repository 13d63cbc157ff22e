"""The registered PyTorch operation of every scheme: `torch.ops.xbquant.quantize(x, scheme, seed,
gradient)`, with a fake (meta) implementation, its autograd formula and a vmap rule, so that
`torch.compile`, `torch.export` and `vmap` see one opaque node of known shape. A scheme crosses as
its text form, so one operation serves every kind.

Eager calls keep their short paths; the public functions call this operation when they are being
traced (`torch.compiler.is_compiling()`, bound in `_data.FAST.compiling`) or given the tensors of a
functorch transform (`vmap`). The operation is registered when torch is loaded before
`xbquant` is imported, else at the first call that traces; `register()` registers it explicitly
(before `torch.export.load` of a program that uses it, in a process that imported xbquant first).
"""

from __future__ import annotations

import math
import sys
from typing import Any, Optional, Tuple

from . import _data, _schemes

#: The gradient rules of the operation's backward pass.
GRADIENTS = ("clamp", "straight", "none")

_OP: Any = None


def _setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[Any, Any]) -> None:
    """Keeps what the backward pass needs: the gradient rule and the clip mask."""
    ctx.gradient = inputs[3]
    ctx.save_for_backward(output[1])


def _backward(ctx: Any, grad: Any, _grad_mask: Any) -> Tuple[Any, None, None, None]:
    """The gradient of `x` by the rule chosen: zero where the value clipped (`clamp`), passed
    straight through (`straight`), or none."""
    if ctx.gradient == "none":
        return None, None, None, None
    if ctx.gradient == "clamp":
        (mask,) = ctx.saved_tensors
        return grad.masked_fill(mask, 0.0), None, None, None
    return grad, None, None, None


def register() -> Any:
    """Registers the operation (once) and returns it: `torch.ops.xbquant.quantize`."""
    global _OP
    if _OP is not None:
        return _OP
    import torch

    @torch.library.custom_op(
        "xbquant::quantize",
        mutates_args=(),
        schema="(Tensor x, str scheme, Tensor seed, str gradient) -> (Tensor, Tensor)",
    )
    def quantize(x: Any, scheme: str, seed: Any, gradient: str) -> Tuple[Any, Any]:
        """`x` quantized with the scheme of text `scheme` (its noise drawn from `seed`, an int64
        scalar, when it draws noise without a seed of its own), and the clip mask."""
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {', '.join(map(repr, GRADIENTS))}, got {gradient!r}")
        chosen = _schemes.of_text(scheme)
        if chosen.draws:
            chosen = chosen._with_seed(int(seed.item()) % 2**64)
        out, mask = _data.run(x.detach(), chosen, with_mask=True)
        return out, mask

    @quantize.register_fake
    def _(x: torch.Tensor, scheme: str, seed: torch.Tensor, gradient: str) -> Tuple[torch.Tensor, torch.Tensor]:
        if x.device.type != "cpu" or COMPOSE_ON_CPU:
            # Traced on another device: inductor's decomposition is registered before it
            # compiles this graph (the fake implementation runs while the graph is traced).
            _register_decomposition()
        return torch.empty_like(x, memory_format=torch.contiguous_format), torch.empty_like(
            x, dtype=torch.bool, memory_format=torch.contiguous_format
        )

    quantize.register_autograd(_backward, setup_context=_setup_context)

    def vmap_rule(
        info: Any, in_dims: Tuple[Any, ...], x: torch.Tensor, scheme: str, seed: torch.Tensor, gradient: str
    ) -> Any:
        # Each sample as its own call: per-axis and per-tensor scales, and the noise's indices,
        # are those of one sample, as in a loop of calls.
        if in_dims[0] is None:
            return quantize(x, scheme, seed, gradient), (None, None)
        x = x.movedim(in_dims[0], 0)
        pairs = [quantize(sample, scheme, seed, gradient) for sample in x.unbind(0)]
        return (torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])), (0, 0)

    quantize.register_vmap(vmap_rule)
    _register_bit_slicing(torch)
    from . import _devices, analog, fixed

    analog._register_op(torch)
    _devices._register_ops(torch)
    fixed._register_op(torch)
    global _TEXT_OF
    _TEXT_OF = torch.compiler.assume_constant_result(_text_of)
    _straight_function()  # built here, not while traced (dynamo cannot trace a class definition)
    _OP = quantize
    return quantize


#: Whether inductor composes the operation from torch operations on CPU tensors too (it does on
#: other devices): how the tests compile the composition on a machine without a GPU.
COMPOSE_ON_CPU = False

_DECOMPOSED = False


def _decomposition(x: Any, scheme: str, seed: Any, gradient: str) -> Any:
    """The operation as torch operations, which inductor fuses into one kernel: for tensors on
    devices other than the CPU (whose kernels are the Rust ones) and the schemes whose
    composition gives the kernels' bits (`_torch_ops.composes`: fixed and floating point alone,
    their noise seeded). `NotImplemented` leaves the operation as it is, one opaque node."""
    if x.device.type == "cpu" and not COMPOSE_ON_CPU:
        return NotImplemented
    from . import _torch_ops

    try:
        chosen = _schemes.of_text(scheme)
    except ValueError:
        return NotImplemented  # the operation's own call says what is wrong
    if not _torch_ops.composes(x, chosen):
        return NotImplemented
    return _torch_ops.composed(x, chosen)


def _register_decomposition() -> None:
    """Adds the operation's decomposition to inductor's table (once; importing inductor costs
    about two seconds, so not at import). Inductor's table is private: where it has moved, the
    operation stays one opaque node, which runs its implementation for the device."""
    global _DECOMPOSED
    if _DECOMPOSED:
        return
    _DECOMPOSED = True
    import torch

    try:
        from torch._subclasses.fake_tensor import unset_fake_temporarily

        with unset_fake_temporarily():
            from torch._inductor import decomposition as inductor
            from torch._inductor.lowering import make_fallback

            op = torch.ops.xbquant.quantize.default
            # Where the decomposition declines, the operation stays a call of its own
            # implementation: a fallback inductor must know of, as the op has a decomposition.
            make_fallback(op, warn=False, override_decomp=True)
            inductor.decompositions[op] = _decomposition
            cached = getattr(inductor, "fast_random_decomps", None)
            if cached is not None and hasattr(cached, "cache_clear"):
                cached.cache_clear()
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - another torch's layout
        pass


def _text_of(scheme: Any) -> str:
    """The text form of a `Scheme` (a constant of the traced graph: a scheme never changes)."""
    return str(scheme)


_TEXT_OF: Any = _text_of


_BIT_SLICES: Any = None
_FROM_BIT_SLICES: Any = None


def _sum_dtype(torch: Any, dtype: Any, bits: int, slice_bits: int, count: int) -> Any:
    """The dtype of traced `from_bit_slices`: the planes' where it holds every code the word has
    and every sum planes of that dtype can give, else int64 (the eager call looks at the sums it
    got, which a traced graph cannot)."""
    from . import _bits

    top = max(abs(v) for v in _dtype_bounds(torch, dtype))
    bound = top * (2 ** (count * slice_bits) - 1) // (2**slice_bits - 1) + 2**bits
    return dtype if _bits._holds(dtype, -bound, bound) else torch.int64


def _dtype_bounds(torch: Any, dtype: Any) -> Tuple[int, int]:
    if dtype.is_floating_point:
        bits = {torch.float16: 11, torch.bfloat16: 8, torch.float32: 24}.get(dtype, 53)
        return -(2**bits), 2**bits
    info = torch.iinfo(dtype)
    return int(info.min), int(info.max)


def _register_bit_slicing(torch: Any) -> None:
    """`torch.ops.xbquant.bit_slices` and `torch.ops.xbquant.from_bit_slices`: integer results,
    no gradient; fake implementations of the eager calls' shapes and dtypes; vmap by samples."""
    global _BIT_SLICES, _FROM_BIT_SLICES
    from . import _bits

    @torch.library.custom_op(
        "xbquant::bit_slices",
        mutates_args=(),
        schema="(Tensor codes, int bits, int slice_bits, str encoding) -> Tensor",
    )
    def bit_slices(codes: Any, bits: int, slice_bits: int, encoding: str) -> Any:
        """The planes of `codes` (see `xbquant.bit_slices`)."""
        return _bits._planes(codes, bits, slice_bits, encoding).clone()

    @bit_slices.register_fake
    def _(codes: Any, bits: int, slice_bits: int, encoding: str) -> Any:
        _, _, count = _bits._slicing(bits, slice_bits, encoding)
        top = 2**slice_bits - 1
        lo = -top if encoding == "sign-magnitude" else 0
        dtype = codes.dtype if _bits._holds(codes.dtype, lo, top) else torch.int64
        return codes.new_empty((count, *codes.shape), dtype=dtype)

    @torch.library.custom_op(
        "xbquant::from_bit_slices",
        mutates_args=(),
        schema="(Tensor slices, int bits, int slice_bits, str encoding) -> Tensor",
    )
    def from_bit_slices(slices: Any, bits: int, slice_bits: int, encoding: str) -> Any:
        """The codes of `slices` (see `xbquant.from_bit_slices`), in `_sum_dtype`."""
        _, _, count = _bits._slicing(bits, slice_bits, encoding)
        codes = _bits._codes(slices, bits, slice_bits, encoding)
        return codes.to(_sum_dtype(torch, slices.dtype, bits, slice_bits, count)).clone()

    @from_bit_slices.register_fake
    def _(slices: Any, bits: int, slice_bits: int, encoding: str) -> Any:
        _, _, count = _bits._slicing(bits, slice_bits, encoding)
        if slices.dim() == 0 or slices.shape[0] != count:
            raise ValueError(f"expected {count} planes along the first axis, got shape {tuple(slices.shape)}")
        return slices.new_empty(slices.shape[1:], dtype=_sum_dtype(torch, slices.dtype, bits, slice_bits, count))

    def by_samples(op: Any, plane_axis: bool) -> Any:
        def rule(info: Any, in_dims: Tuple[Any, ...], x: Any, *args: Any) -> Any:
            if in_dims[0] is None:
                return op(x, *args), None
            # bit_slices: the batch axis after the planes' (each sample's planes in front);
            # from_bit_slices: each sample's planes along its own first axis.
            x = x.movedim(in_dims[0], 1 if not plane_axis else 0)
            samples = x.unbind(1 if not plane_axis else 0)
            return torch.stack([op(v, *args) for v in samples]), 0

        return rule

    bit_slices.register_vmap(by_samples(bit_slices, True))
    from_bit_slices.register_vmap(by_samples(from_bit_slices, False))
    _BIT_SLICES, _FROM_BIT_SLICES = bit_slices, from_bit_slices


def slicing_op(name: str) -> Any:
    """The registered bit-slicing operation `name` (registering the operations first)."""
    register()
    return _BIT_SLICES if name == "bit_slices" else _FROM_BIT_SLICES


def vmap_samples(t: Any, dim: Any, size: int) -> list:
    """The ``size`` samples of an argument ``t`` of a vmap rule, batched along ``dim``: ``t``
    itself for each when it is not batched (``dim`` None), None for each when ``t`` is None."""
    if t is None:
        return [None] * size
    return [t] * size if dim is None else list(t.movedim(dim, 0).unbind(0))


def wrapped(x: Any) -> bool:
    """Whether `x` is a tensor of a functorch transform (`vmap`, `grad`): its data has no
    storage the kernels can read, so the call goes through the registered operation."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor) and torch._C._functorch.is_functorch_wrapped_tensor(x)


def in_graph(x: Any) -> bool:
    """Whether a call on `x` goes through the registered operation: while torch.compile or
    torch.export traces, or when `x` is a tensor of torch.func's transforms."""
    return _data.FAST.compiling() or wrapped(x)


def seed_tensor(torch: Any, seed: Any) -> Any:
    """The seed of a registered operation's call, an int64 scalar tensor: `seed` (an int in
    ``[0, 2**64)``, stored in two's complement), or without one a draw of torch's generator, in
    the graph."""
    if seed is None:
        return torch.randint(0, 2**62, (), dtype=torch.int64)
    return torch.tensor(seed - 2**64 if seed >= 2**63 else seed, dtype=torch.int64)


def traced(x: Any, text: str, gradient: str, return_mask: bool = False) -> Any:
    """The registered operation on `x` with the scheme of `text`: the path of a traced call, and
    of a tensor of torch.func's transforms. A scheme that draws noise without a
    seed of its own draws one from torch's generator, in the graph."""
    import torch

    op = register()
    if gradient == "none":
        # No gradient, as the eager call returns none (QPyTorch's functions) or as the caller's
        # own autograd.Function supplies it.
        x = x.detach()
    if draws(text):
        seed = torch.randint(0, 2**62, (), dtype=torch.int64)
    else:
        seed = torch.zeros((), dtype=torch.int64)
    # `compiling()` first: the test of a functorch tensor is a builtin torch.compile cannot trace.
    if not _data.FAST.compiling() and wrapped(x):
        # torch.func's transforms take autograd.Functions with a separate setup_context (the
        # registered operation's own autograd has none): the operation inside one, with the same
        # gradient rules.
        out, mask = _functorch_function().apply(x, text, seed, gradient)
    else:
        out, mask = op(x, text, seed, gradient)
    return (out, mask) if return_mask else out


# The significand bits of each dtype: codes of up to as many bits times a scale are exact.
_SIGNIFICAND = {"float32": 24, "float64": 53, "float16": 11, "bfloat16": 8}


def scaled(x: Any, scale: Any, axis: Any, bits: Any, text: str, return_mask: bool = False) -> Any:
    """`s * Q(x / s)` traced, for a scale or range given as a tensor (one value, or one per
    index of `axis`): `x / s` in the dtype of `x`, the registered operation with the scheme of
    `text` (its range 1 where it has one, so that noise is in units of the range), times `s`,
    with the straight-through gradient of the eager call; a zero scale gives zeros (NaN stays
    NaN), as the kernels. None where this composition would not give the kernels' bits (codes of
    more bits than the dtype's significand) or the arguments are not of this case: the caller
    takes its eager path. Scales the eager path refuses (negative, not finite) give NaN here,
    as a traced graph cannot raise on values."""
    import torch

    if not isinstance(scale, torch.Tensor) or not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return None
    if axis is not None and (type(axis) is not int or not -x.dim() <= axis < x.dim()):
        return None
    dtype = _data._torch_dtype_names(torch).get(x.dtype)
    if dtype is None or type(bits) is not int or bits > _SIGNIFICAND[dtype]:
        return None
    s = scale.detach().to(device=x.device, dtype=x.dtype)
    if axis is None:
        if s.numel() != 1:
            return None
        s = s.reshape(())
    else:
        if s.dim() != 1 or s.numel() != x.shape[axis]:
            return None
        shape = [1] * x.dim()
        shape[axis] = -1
        s = s.reshape(shape)
    data = x.detach()
    zero = s == 0
    y = torch.where(zero, torch.zeros_like(data), data / torch.where(zero, torch.ones_like(s), s))
    k, mask = traced(y, text, "none", True)
    out = torch.where(zero, torch.where(data.isnan(), data, torch.zeros_like(data)), k * s)
    bad = ~torch.isfinite(s) | (s < 0)
    out = torch.where(bad, torch.full_like(out, float("nan")), out)
    if x.requires_grad and torch.is_grad_enabled():
        out = _straight_function().apply(x, out, mask)
    return (out, mask) if return_mask else out


_STRAIGHT: Any = None


def _straight_function() -> Any:
    """The straight-through gradient, zero where `mask` is set, as an autograd.Function that
    torch.compile and torch.func's transforms take (a separate setup_context)."""
    global _STRAIGHT
    if _STRAIGHT is None:
        import torch

        class Straight(torch.autograd.Function):
            generate_vmap_rule = True

            @staticmethod
            def forward(x: Any, out: Any, mask: Any) -> Any:
                return out.clone()

            @staticmethod
            def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Any) -> None:
                ctx.save_for_backward(inputs[2])

            @staticmethod
            def backward(ctx: Any, grad: Any) -> Tuple[Any, None, None]:
                (mask,) = ctx.saved_tensors
                return grad.masked_fill(mask, 0.0), None, None

        _STRAIGHT = Straight
    return _STRAIGHT


_FUNCTORCH: Any = None


def _functorch_function() -> Any:
    """The registered operation as an autograd.Function that torch.func's transforms (`grad`,
    `vmap`, `jacrev`) accept: the operation's gradients, and its vmap rule through
    `generate_vmap_rule`."""
    global _FUNCTORCH
    if _FUNCTORCH is None:
        import torch

        op = register()

        class Quantize(torch.autograd.Function):
            generate_vmap_rule = True

            @staticmethod
            def forward(x: Any, text: str, seed: Any, gradient: str) -> Any:
                return op(x, text, seed, gradient)

            @staticmethod
            def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[Any, Any]) -> None:
                _setup_context(ctx, inputs, output)
                ctx.mark_non_differentiable(output[1])

            backward = staticmethod(_backward)

        _FUNCTORCH = Quantize
    return _FUNCTORCH


def draws(text: str) -> bool:
    """Whether the scheme of `text` draws noise without a seed of its own: stochastic rounding
    without `:SEED`, or noise without `seed=` (read from the text, so that tracing needs no call
    into the extension)."""
    words = text.split()
    unseeded = any(w.lower() == "rounding=stochastic" for w in words)
    noisy = any(w.startswith("noise=") and w != "noise=none" for w in words)
    return unseeded or (noisy and not any(w.startswith("seed=") for w in words))


def fixed_text(
    wl: Any,
    fl: Any,
    overflow: Any,
    rounding: Any,
    signed: Any,
    seed: Optional[int],
    sat_bits: Any,
    extra: str = "",
) -> str:
    """The text form of fixed point from the arguments of `quantize` (checked by the operation
    when it first runs); a seed makes stochastic rounding `stochastic:SEED`."""
    kind = "fixed" if signed else "ufixed"
    over = f"{overflow}:{sat_bits}" if sat_bits else f"{overflow}"
    mode = f"{rounding}:{seed % 2**64}" if seed is not None and rounding == "stochastic" else f"{rounding}"
    return f"{kind}<{wl},{fl}> overflow={over} rounding={mode}{extra}"


def quantize_text(
    x: Any,
    wl: Any,
    fl: Any,
    axis: Any,
    scale: Any,
    rounding: Any,
    overflow: Any,
    sat_bits: Any,
    signed: Any,
    seed: Any,
    hls: Any,
    scheme: Any,
) -> Optional[str]:
    """The text form of a `quantize` call being traced, or None for the calls traced in eager
    pieces (a `Scheme` object or a seed given with a scheme or an HLS type, scaled fixed point)."""
    if scheme is not None:
        if seed is not None or wl is not None or fl is not None:
            return None
        if isinstance(scheme, _schemes.Scheme):
            return _TEXT_OF(scheme)
        return scheme if isinstance(scheme, str) else None
    if hls is not None:
        return hls if isinstance(hls, str) and seed is None and wl is None and fl is None else None
    if wl is None or fl is None:
        return None
    if scale is not None:
        span = range_text(scale)
        if span is None or type(fl) is not int or (axis is not None and type(axis) is not int):
            return None
        group = "" if axis is None else f" group=axis:{axis}"
        return fixed_text(wl, fl, overflow, rounding, signed, seed, sat_bits, f"{group}{span}")
    if axis is None and type(fl) is int:
        return fixed_text(wl, fl, overflow, rounding, signed, seed, sat_bits)
    if axis is not None and (not isinstance(axis, int) or isinstance(axis, bool)):
        return None
    group = "" if axis is None else f" group=axis:{axis}"
    if isinstance(fl, str) and fl in _schemes.FL_METHODS:
        rule = "pow2" if _schemes.FL_METHODS[fl] == "max" else "pow2-sqnr"
        return fixed_text(wl, 0, overflow, rounding, signed, seed, sat_bits, f"{group} scale={rule}")
    if axis is None:
        return None
    count = x.shape[axis]
    fls = [fl] * count if type(fl) is int else list(fl) if isinstance(fl, (list, tuple)) else None
    if fls is None or not all(type(v) is int for v in fls):
        return None
    listed = ",".join(str(v) for v in fls)
    return fixed_text(wl, 0, overflow, rounding, signed, seed, sat_bits, f"{group} scale=fl:{listed}")


def converter_text(
    bits: Any, given: Any, axis: Any, rounding: Any, noise_std: Any, noise: Any, seed: Any
) -> Optional[str]:
    """The text form of a converter call being traced, or None for the calls traced in eager
    pieces (ranges given as an array or a tensor)."""
    span = range_text(given)
    if span is None:
        return None
    group = "" if axis is None else f" group=axis:{axis}"
    width = float(noise_std) if noise == "gaussian" else float(noise_std) * math.sqrt(3.0)
    noisy = f" noise={noise}:{width!r}" if noise_std else ""
    stochastic = rounding == "stochastic"
    mode = f"stochastic:{seed % 2**64}" if stochastic and seed is not None else f"{rounding}"
    seeded = f" seed={seed % 2**64}" if noise_std and seed is not None else ""
    return f"fixed<{bits},{bits - 1}> overflow=saturate-symmetric rounding={mode}{group}{span}{noisy}{seeded}"


def range_text(given: Any) -> Optional[str]:
    """The ` range=...` option of a range or scale argument: "absmax", "percentile:P", a number,
    or a list of numbers; None for others (arrays, tensors)."""
    if given == "absmax":
        return " range=abs-max"
    if isinstance(given, str):
        return f" range={given}"
    if isinstance(given, (int, float)) and not isinstance(given, bool):
        return f" range={float(given)!r}"
    if isinstance(given, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in given):
        return " range=each:" + ",".join(repr(float(v)) for v in given)
    return None


def rounding_text(rounding: str, seed: Optional[int]) -> str:
    """A rounding's text, `stochastic:SEED` for stochastic rounding with a seed."""
    return f"stochastic:{seed % 2**64}" if seed is not None and rounding == "stochastic" else rounding


def grid_text(step: Any, offset: Any, levels: Any, rounding: Any, seed: Any) -> Optional[str]:
    """The text form of a traced `quantize_grid` call (numbers and a rounding name), or None."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (step, offset)):
        return None
    if levels is not None and (not isinstance(levels, int) or isinstance(levels, bool)):
        return None
    if not isinstance(rounding, str):
        return None
    count = "" if levels is None else f",{levels}"
    return f"grid<{float(step)!r},{float(offset)!r}{count}> rounding={rounding_text(rounding, seed)}"


def levels_text(levels: Any, rounding: Any, seed: Any) -> Optional[str]:
    """The text form of a traced `quantize_levels` call (a list or tuple of numbers), or None."""
    if not isinstance(levels, (list, tuple)) or not isinstance(rounding, str):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in levels):
        return None
    values = ",".join(repr(float(v)) for v in levels)
    return f"levels<{values}> rounding={rounding_text(rounding, seed)}"
