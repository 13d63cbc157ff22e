"""Quantized layers for quantization-aware training: :class:`QuantLinear`, :class:`QuantConv1d`,
:class:`QuantConv2d` and the activation quantizer :class:`QuantAct`, built on :class:`Quant`.

Each is constructed like the ``torch.nn`` layer it extends (same arguments, same parameters,
``state_dict`` keys ``weight`` and ``bias`` as ``torch.nn``'s) with three more keywords,
``weight=8`` (8-bit weights, a scale per output channel), ``input=None`` and ``output=None``
(no quantization), each of which takes a number of bits or a :class:`Quant`.

A :class:`Quant` quantizes ``x`` with a step ``s`` (one per tensor, or one per channel along an
axis) and an element format ``Q``, fixed point (``bits`` bits, integer codes ``k`` between
``-Qn`` and ``Qp``) or a floating-point format (``float_format="e4m3fn"``, ``Qp`` its largest
value)::

    q = s * Q(x / s)

where ``x / s`` and ``s * Q`` are rounded to the dtype of ``x``, so that a fixed step gives
the bits of ``xbquant.quantize(x, bits, 0, scale=s)``, and a power-of-two step ``2**-fl`` those
of ``xbquant.quantize(x, bits, fl)``. ``Q`` is computed by xbquant's kernels (every rounding
mode, stochastic rounding included) through the registered operation, so that the layers
compile and export. The step is chosen by ``scale``:

- ``"absmax"``: from the data at every call, ``s = max|x| / Qp`` (per group, finite values;
  the step of a group of zeros is 1). No gradient flows into it.
- ``"pow2"``: from the data at every call, the smallest power of two with ``Qp * s >= max|x|``
  (the fractional length of ``xbquant.quantize(x, bits, "auto")``).
- ``"learned"``: a parameter ``scale`` trained with the gradient of LSQ (S. K. Esser et al.,
  "Learned Step Size Quantization", ICLR 2020): ``dq/ds = round(x/s) - x/s`` where ``x/s`` is
  within ``[-Qn, Qp]``, ``-Qn`` or ``Qp`` where it is clipped, scaled by
  ``g = 1 / sqrt(N * Qp)`` (``N`` the elements per step; ``grad_scale=False`` drops it), and
  ``dq/dx = 1`` within the range, 0 outside (the straight-through estimator). Initialised at the
  first call from its data: ``s = 2 * mean|x| / sqrt(Qp)``.
- ``"learned-pow2"``: a parameter ``log2_scale`` ``t`` with ``s = 2**ceil(t)``, a power of two
  as fixed-point hardware needs (TQT: S. R. Jain et al., "Trained Quantization Thresholds for
  Accurate and Efficient Fixed-Point Inference of Deep Neural Networks", MLSys 2020): ``ceil``
  passes its gradient straight through, so ``dq/dt = s * ln 2 * dq/ds``. Initialised at the
  first call to ``log2(max|x| / Qp)``, the ``"pow2"`` step.
- a positive number (or one per channel): a fixed step; a power of two ``2**-fl`` is fixed
  point of fractional length ``fl``.

Example::

    >>> import torch
    >>> from xbquant.nn import QuantLinear, QuantAct, Quant
    >>> layer = QuantLinear(4, 3)                 # 8-bit weights, a step per output channel
    >>> codes = layer.weight_quant.codes(layer.weight)  # Q(w / s), s: each row's max|w| / 127
    >>> bool((codes == codes.round()).all()), codes.abs().amax(dim=1).tolist()
    (True, [127.0, 127.0, 127.0])
    >>> q = Quant(4, scale=0.25)                  # fixed point with 4 bits, step 1/4
    >>> q(torch.tensor([0.3, -0.6, 9.0]))
    tensor([ 0.2500, -0.5000,  1.7500])
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Union

import torch
import torch.nn.functional as F

from . import _data, _schemes
from ._checks import check_choice, check_flag, check_length, check_name, check_number
from ._native import quantize

__all__ = ["Quant", "QuantAct", "QuantLinear", "QuantConv1d", "QuantConv2d", "SCALES"]

#: The scale rules of :class:`Quant`.
SCALES = ("absmax", "pow2", "learned", "learned-pow2")

_LN2 = math.log(2.0)


class _GradScale(torch.autograd.Function):
    """The identity, whose gradient is multiplied by `factor` (LSQ's gradient scale)."""

    @staticmethod
    def forward(s: torch.Tensor, factor: float) -> torch.Tensor:
        return s.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.factor = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        return grad * ctx.factor, None


class _CeilPow2(torch.autograd.Function):
    """`2**ceil(t)`, with `ceil` passing its gradient straight through: `d/dt = 2**ceil(t) ln 2`."""

    @staticmethod
    def forward(t: torch.Tensor) -> torch.Tensor:
        return torch.exp2(torch.ceil(t))

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: torch.Tensor) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (s,) = ctx.saved_tensors
        return grad * s * _LN2


def _check_steps(steps: List[float], dtype: torch.dtype) -> None:
    """A ValueError naming `scale` for a fixed step that the data's dtype rounds to zero or to
    infinity (which would give NaN or zeros)."""
    if not dtype.is_floating_point:
        return
    info = torch.finfo(dtype)
    smallest = info.smallest_normal * info.eps  # the smallest subnormal
    for v in steps:
        if v > info.max or v < smallest / 2:
            raise ValueError(
                f"scale: the step {v!r} is not held by {dtype} data (from {smallest!r} to "
                f"{info.max!r}); convert the data or choose another step"
            )


def _finite_abs(x: torch.Tensor) -> torch.Tensor:
    a = x.detach().abs()
    return torch.where(torch.isfinite(a), a, torch.zeros_like(a))


class Quant(torch.nn.Module):
    """Quantizes tensors with a step per tensor or per channel, fixed, chosen from the data or
    learned (see the module's documentation for the formulas).

    Args:
        bits: the word length of fixed point, sign included (2 to 24 signed, 1 to 24 unsigned;
            8 when no ``float_format`` is given).
        float_format: a floating-point element format instead (``"e4m3fn"``, ``"e5m2"``,
            ``"float16"``, ``"bfloat16"``, any ``"eXmY"``): ``x / s`` saturates at its largest value.
        channels: ``None`` for one step for the whole tensor, or the number of channels along
            ``axis``, each with its own step.
        axis: the channels' axis (0: a weight's output channels; 1: the channels of ``(N, C, ...)``
            activations). Negative axes count from the last.
        scale: ``"absmax"``, ``"pow2"``, ``"learned"``, ``"learned-pow2"``, or a positive step
            (a number, or a sequence or tensor of one per channel).
        signed: ``False`` for unsigned codes ``0 .. 2**bits - 1`` (after a ReLU).
        narrow: signed codes within ``+-(2**(bits-1) - 1)`` (the default, the symmetric range of
            ``xbquant.quantize``); ``False`` adds ``-2**(bits-1)``.
        rounding: any rounding of :func:`xbquant.quantize` (floating-point formats: ``"nearest"``
            or ``"stochastic"``).
        grad_scale: LSQ's gradient scale ``1 / sqrt(N * Qp)`` on a ``"learned"`` step.

    Raises:
        TypeError, ValueError: arguments of the wrong type or out of range, naming the argument.
    """

    def __init__(
        self,
        bits: Optional[int] = None,
        *,
        float_format: Optional[str] = None,
        channels: Optional[int] = None,
        axis: int = 0,
        scale: Any = "absmax",
        signed: bool = True,
        narrow: bool = True,
        rounding: str = "nearest",
        grad_scale: bool = True,
    ) -> None:
        super().__init__()
        signed = check_flag(signed, "signed")
        narrow = check_flag(narrow, "narrow")
        self.grad_scale = check_flag(grad_scale, "grad_scale")
        self.channels = None if channels is None else check_length(channels, "channels", 1, 2**31)
        self.axis = check_length(axis, "axis", -64, 63)
        check_name(rounding, "rounding")
        if float_format is not None:
            if rounding.split(":")[0] not in ("nearest", "stochastic"):
                raise ValueError(f"rounding {rounding!r}: floating-point formats round to nearest or stochastically")
            if bits is not None:
                raise ValueError("give bits or float_format, not both (a floating-point format has its own width)")
            if not isinstance(float_format, str):
                raise TypeError(f"float_format must be a format name, got {type(float_format).__name__}")
            try:
                element = _schemes.floating(float_format, rounding, None, None)
            except ValueError as e:
                raise ValueError(f"float_format {float_format!r}: {e}") from None
            hi = float(element.max)
            self.bits = None
        else:
            self.bits = check_length(8 if bits is None else bits, "bits", 1 if not signed else 2, 24)
            overflow = "saturate-symmetric" if signed and narrow else "saturate"
            element = _schemes.fixed(self.bits, 0, overflow, rounding, signed, None, 0)
            hi = float(element.code_max)
        self.float_format = float_format
        self.signed, self.narrow, self.rounding = signed, narrow, rounding
        #: The text form of the element format ``Q`` (a `Scheme`).
        self.text = str(element)
        #: The codes' bounds ``-Qn`` and ``Qp``.
        self.lo = float(element.code_min) if float_format is None else (-hi if signed else 0.0)
        self.hi = hi
        shape = () if self.channels is None else (self.channels,)
        if isinstance(scale, str):
            self.scale_rule = check_choice(scale, "scale", SCALES)
            fixed = None
        else:
            self.scale_rule = "fixed"
            fixed = self._fixed_steps(scale)
        if self.scale_rule == "learned":
            self.scale = torch.nn.Parameter(torch.ones(shape))
        elif self.scale_rule == "learned-pow2":
            self.log2_scale = torch.nn.Parameter(torch.zeros(shape))
        elif fixed is not None:
            self.register_buffer("fixed_step", fixed.reshape(shape) if shape else fixed.reshape(()))
            self._steps = fixed.tolist()
        if self.scale_rule in ("learned", "learned-pow2"):
            # Whether the learned step holds its first value (a buffer, so a loaded state_dict
            # says so too); mirrored in a plain attribute that compiled code tests for free.
            self.register_buffer("initialized", torch.tensor(False))
        self._ready = False

    def _fixed_steps(self, scale: Any) -> torch.Tensor:
        if isinstance(scale, torch.Tensor):
            values: List[float] = scale.detach().cpu().reshape(-1).tolist()
        elif isinstance(scale, (list, tuple)):
            values = list(scale)
        else:
            values = [scale]
        steps = [check_number(v, "scale", positive=True) for v in values]
        count = 1 if self.channels is None else self.channels
        if len(steps) != count:
            raise ValueError(f"scale: {len(steps)} steps given for {count} channel(s)")
        # float64, rounded to the data's dtype at each call (as the kernels round a given scale).
        return torch.tensor(steps, dtype=torch.float64)

    def _buffer(self, name: str) -> torch.Tensor:
        buffer = self._buffers[name]
        assert buffer is not None
        return buffer

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args)
        if hasattr(self, "initialized"):
            self._ready = bool(self.initialized)
        if self.scale_rule == "fixed":
            self._steps = self._buffer("fixed_step").reshape(-1).tolist()

    def extra_repr(self) -> str:
        groups = "per tensor" if self.channels is None else f"channels={self.channels}, axis={self.axis}"
        return f"{self.text!r}, scale={self.scale_rule!r}, {groups}"

    def _groups(self, x: torch.Tensor) -> Any:
        """The axis of `x` that holds the channels (None per tensor) and the other axes."""
        if self.channels is None:
            return None, None
        if not -x.dim() <= self.axis < x.dim():
            raise ValueError(f"axis {self.axis} is out of range for a tensor of {x.dim()} dimensions")
        axis = self.axis % x.dim()
        if x.shape[axis] != self.channels:
            raise ValueError(f"x has {x.shape[axis]} channels along axis {self.axis}, this quantizer {self.channels}")
        return axis, [d for d in range(x.dim()) if d != axis]

    def _absmax(self, x: torch.Tensor) -> torch.Tensor:
        axis, others = self._groups(x)
        a = _finite_abs(x)
        if axis is None:
            return a.amax() if a.numel() else a.new_zeros(())
        return a.amax(dim=others) if others else a

    def _shaped(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A step per group, shaped to broadcast against `x`."""
        axis, _ = self._groups(x)
        if axis is None:
            return s.reshape(())
        shape = [1] * x.dim()
        shape[axis] = -1
        return s.reshape(shape)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Sets a learned step from the data of `x` (the first call does so by itself)."""
        if self.scale_rule == "learned":
            axis, others = self._groups(x)
            a = _finite_abs(x)
            mean = a.mean() if axis is None else (a.mean(dim=others) if others else a)
            s = 2.0 * mean / math.sqrt(self.hi)
            s = torch.where(s > 0, s, self._absmax(x) / self.hi)
            self.scale.copy_(torch.where(s > 0, s, torch.ones_like(s)))
        elif self.scale_rule == "learned-pow2":
            m = self._absmax(x) / self.hi
            self.log2_scale.copy_(torch.where(m > 0, torch.log2(m), torch.zeros_like(m)))
        else:
            return
        self._buffer("initialized").fill_(True)
        self._ready = True

    def step(self, x: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The step ``s`` (one, or one per channel) for the data `x` (needed by the rules that
        choose it from the data, and by a learned step before its first call)."""
        rule = self.scale_rule
        if rule in ("absmax", "pow2"):
            if x is None:
                raise ValueError(f"scale={rule!r} chooses its step from the data: give x")
            m = self._absmax(x).to(torch.float32)
            if rule == "absmax":
                return torch.where(m > 0, m / self.hi, torch.ones_like(m))
            e = torch.ceil(torch.log2(m / self.hi))
            return torch.where(m > 0, torch.exp2(e), torch.ones_like(m))
        if rule == "fixed":
            if x is not None:
                _check_steps(self._steps, x.dtype)
            return self._buffer("fixed_step")
        if not self._ready:
            if x is None:
                raise ValueError("a learned step takes its first value from the data: give x")
            self.initialize(x)
        if rule == "learned":
            s = self.scale.abs().clamp_min(torch.finfo(torch.float32).tiny)
            if self.grad_scale and x is not None:
                per_step = x.numel() // (1 if self.channels is None else self.channels)
                s = _GradScale.apply(s, 1.0 / math.sqrt(max(per_step, 1) * self.hi))
            return s
        return _CeilPow2.apply(self.log2_scale)

    def _coded(self, x: Any) -> Any:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        _data.check_layout(x, "x")
        if not x.is_floating_point():
            raise TypeError(f"x must hold floating-point data, got {x.dtype}")
        s = self._shaped(self.step(x), x).to(x.dtype)
        # Clipped to the codes' bounds before rounding, as LSQ clips: the gradients are zero
        # beyond them, and the codes of saturating fixed point are unchanged (the bounds are
        # codes); a floating-point format's largest value bounds its codes (its overflow would
        # be infinite).
        y = (x / s).clamp(self.lo, self.hi)
        return quantize(y, scheme=self.text), s

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The codes ``Q(x / s)`` of `x`: integers (fixed point) or values of the floating-point
        format, what the hardware stores; ``forward`` multiplies them by the step."""
        return self._coded(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self._coded(x)
        return k * s


class QuantAct(Quant):
    """The activation quantizer: a :class:`Quant` whose step is learned by default, one for the
    whole tensor. Put it between layers, or give it as a layer's ``input`` or ``output``.

    Example::

        >>> import torch
        >>> from xbquant.nn import QuantAct
        >>> act = QuantAct(4, signed=False, scale=0.5)
        >>> act(torch.tensor([0.2, 1.3, -1.0, 9.0]))
        tensor([0.0000, 1.5000, 0.0000, 7.5000])
    """

    def __init__(self, bits: Optional[int] = None, *, scale: Any = "learned", **kwargs: Any) -> None:
        super().__init__(bits, scale=scale, **kwargs)


def _weight_quant(weight: Any, channels: int) -> Optional[Quant]:
    if weight is None or isinstance(weight, Quant):
        if isinstance(weight, Quant) and weight.channels not in (None, channels):
            raise ValueError(f"weight: a quantizer of {weight.channels} channels for {channels} output channels")
        return weight
    if isinstance(weight, bool) or not isinstance(weight, int):
        raise TypeError(f"weight must be a number of bits, a Quant or None, got {type(weight).__name__} {weight!r}")
    try:
        return Quant(weight, channels=channels, axis=0)
    except ValueError as e:
        raise ValueError(f"weight: {e}") from None


def _act_quant(given: Any, name: str) -> Optional[Quant]:
    if given is None or isinstance(given, Quant):
        return given
    if isinstance(given, bool) or not isinstance(given, int):
        raise TypeError(f"{name} must be a number of bits, a Quant or None, got {type(given).__name__} {given!r}")
    try:
        return QuantAct(given)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


class _Quantized:
    """The quantizers of a layer: its weight's, its input's and its output's."""

    weight_quant: Optional[Quant]
    input_quant: Optional[Quant]
    output_quant: Optional[Quant]

    def _quantizers(self, weight: Any, input: Any, output: Any, channels: int, device: Any, dtype: Any) -> None:  # noqa: A002
        quants = (_weight_quant(weight, channels), _act_quant(input, "input"), _act_quant(output, "output"))
        for name, q in zip(("weight_quant", "input_quant", "output_quant"), quants):
            if q is not None and (device is not None or dtype is not None):
                q = q.to(device=device, dtype=dtype)
            setattr(self, name, q)

    def _quantized(self, x: torch.Tensor, weight: torch.Tensor) -> Any:
        if self.input_quant is not None:
            x = self.input_quant(x)
        if self.weight_quant is not None:
            weight = self.weight_quant(weight)
        return x, weight

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.output_quant is None else self.output_quant(y)


class QuantLinear(_Quantized, torch.nn.Linear):
    """``torch.nn.Linear`` with quantized weights (8 bits, a step per output channel, by
    default), and optionally quantized inputs and outputs.

    Args:
        in_features, out_features, bias, device, dtype: as ``torch.nn.Linear``.
        weight: bits (a :class:`Quant` of ``"absmax"`` steps per output channel), a
            :class:`Quant`, or ``None`` for float weights.
        input, output: bits (a :class:`QuantAct`: one learned step), a :class:`Quant`, or
            ``None`` (the default: not quantized).

    Example::

        >>> import torch
        >>> from xbquant.nn import QuantLinear, Quant
        >>> layer = QuantLinear(16, 4, weight=Quant(4, channels=4, scale="learned-pow2"), input=8)
        >>> layer(torch.randn(2, 16)).shape
        torch.Size([2, 4])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        weight: Union[int, Quant, None] = 8,
        input: Union[int, Quant, None] = None,  # noqa: A002
        output: Union[int, Quant, None] = None,
    ) -> None:
        in_features = check_length(in_features, "in_features", 0, 2**31)
        out_features = check_length(out_features, "out_features", 0, 2**31)
        super().__init__(in_features, out_features, bias, device, dtype)
        self._quantizers(weight, input, output, out_features, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, weight = self._quantized(x, self.weight)
        return self._output(F.linear(x, weight, self.bias))


class _QuantConv(_Quantized):
    """The convolutions' constructor and forward pass (`torch.nn`'s, with the quantizers): a
    base before `torch.nn.Conv1d` or `Conv2d`, whose constructor its `super()` reaches."""

    weight: torch.Tensor
    bias: Optional[torch.Tensor]
    _conv_forward: Any

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: Any = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        weight: Union[int, Quant, None] = 8,
        input: Union[int, Quant, None] = None,  # noqa: A002
        output: Union[int, Quant, None] = None,
    ) -> None:
        in_channels = check_length(in_channels, "in_channels", 1, 2**31)
        out_channels = check_length(out_channels, "out_channels", 1, 2**31)
        super().__init__(  # type: ignore[call-arg]
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype
        )
        self._quantizers(weight, input, output, out_channels, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, weight = self._quantized(x, self.weight)
        return self._output(self._conv_forward(x, weight, self.bias))


class QuantConv1d(_QuantConv, torch.nn.Conv1d):
    """``torch.nn.Conv1d`` with quantized weights (8 bits, a step per output channel, by
    default); ``weight``, ``input`` and ``output`` as in :class:`QuantLinear`."""


class QuantConv2d(_QuantConv, torch.nn.Conv2d):
    """``torch.nn.Conv2d`` with quantized weights (8 bits, a step per output channel, by
    default); ``weight``, ``input`` and ``output`` as in :class:`QuantLinear`.

    Example::

        >>> import torch
        >>> from xbquant.nn import QuantConv2d
        >>> conv = QuantConv2d(3, 8, 3, padding=1, weight=4, input=8)
        >>> conv(torch.randn(1, 3, 5, 5)).shape
        torch.Size([1, 8, 5, 5])
    """
