"""xbquant's own vocabulary: :func:`quantize` (and in place, :func:`quantize_`) with every
rounding and overflow mode of the HLS ``ap_fixed`` types and a fractional length or scale per
slice, :func:`quantize_float`, and the crossbar's periphery (:func:`quantize_grid`,
:func:`quantize_levels`, :func:`dac`, :func:`adc`, :func:`bit_slices`). Each builds a checked
`Scheme` and sends the data through the one data path (`_data.run`)."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Tuple

from . import _data, _ops, _schemes, _xbquant
from ._checks import DEFAULT_OVERFLOW, check_flag, check_length, check_name, check_seed
from ._xbquant import Scheme

__all__ = [
    "quantize",
    "quantize_",
    "choose_fl",
    "quantize_grid",
    "quantize_levels",
    "dac",
    "adc",
    "parse_hls",
    "get_range_fixed_point",
    "quantize_float",
]

_fast = _data.FAST


def parse_hls(name: str) -> dict:
    """The format and rounding of an HLS type such as ``"ap_fixed<8,3,AP_RND_CONV,AP_SAT>"``, as
    keyword arguments of :func:`quantize`.

    >>> parse_hls("ap_fixed<8,3,AP_RND_CONV,AP_WRAP>")
    {'wl': 8, 'fl': 5, 'signed': True, 'overflow': 'wrap', 'rounding': 'nearest'}
    """
    scheme = _schemes.hls(name, "name")
    overflow = scheme.overflow if scheme.sat_bits == 0 else f"{scheme.overflow}:{scheme.sat_bits}"
    return {
        "wl": scheme.wl,
        "fl": scheme.fl,
        "signed": scheme.signed,
        "overflow": overflow,
        "rounding": scheme.rounding,
    }


def fixed_scheme(
    wl: Any, fl: Any, rounding: Any, overflow: Any, sat_bits: Any, signed: Any, seed: Any, hls: Any
) -> Scheme:
    """The fixed point of `quantize`'s arguments: `wl` and `fl`, or an HLS type."""
    if hls is not None:
        if wl is not None or fl is not None:
            raise ValueError("give either wl and fl or hls, not both")
        scheme = _schemes.hls(check_name(hls, "hls"))
        seed = check_seed(seed)
        return scheme if seed is None else scheme._with_seed(seed)
    if wl is None or fl is None:
        raise TypeError("quantize needs wl and fl (or hls)")
    return _schemes.fixed(wl, fl, overflow, rounding, signed, seed, sat_bits)


def quantize(
    x: Any,
    wl: Any = None,
    fl: Any = None,
    *,
    axis: Optional[int] = None,
    scale: Any = None,
    rounding: str = "nearest",
    overflow: str = DEFAULT_OVERFLOW,
    sat_bits: int = 0,
    signed: bool = True,
    seed: Optional[int] = None,
    hls: Optional[str] = None,
    return_mask: bool = False,
    scheme: Any = None,
) -> Any:
    """Quantizes ``x`` to fixed point, with every rounding and overflow mode of the HLS
    ``ap_fixed`` types, one format for the whole tensor or a fractional length per slice.

    Args:
        x: a float32, float64, float16 or bfloat16 tensor (any device, shape and strides) or
            numpy array. The result is new, with the same type, dtype, shape and device.
        wl: word length in bits, sign included (1 to 64).
        fl: fractional length: the step is ``2**-fl``. Or ``"auto"`` (the same as ``"max"``):
            per slice (or for the whole tensor), the largest ``fl`` whose range holds the largest
            magnitude, a power-of-two scale (see :func:`choose_fl`); ``"sqnr"``: the ``fl`` of
            least squared error among that one and the four finer ones; or one integer per
            slice along ``axis`` (a sequence, array or tensor).
        axis: the axis whose indices are the slices (per output channel: 0 of a weight; per
            crossbar column). ``None``: one format for the whole tensor.
        scale: scaled fixed point, ``s * Q(x / s)`` with ``Q`` the format: ``"absmax"`` (the
            largest finite magnitude of the tensor, or of each slice along ``axis``), a number,
            or one scale per slice. ``x / s`` and ``s * Q`` are rounded to the tensor's dtype; a
            scale of 0 gives zeros. ``fl`` must then be a number (the format of ``x / s``).
        rounding: ``"nearest"`` (ties to even), ``"nearest-up"``, ``"nearest-down"``,
            ``"nearest-toward-zero"``, ``"nearest-away"``, ``"floor"``, ``"toward-zero"`` or
            ``"stochastic"``; the HLS names (``"AP_RND_CONV"``, ``"AP_TRN"``, ...) work too.
        overflow: ``"saturate-symmetric"`` (the default, as in Rust's ``FixedPoint::new`` and the
            command line: the most negative code is left out), ``"saturate"``,
            ``"saturate-zero"``, ``"wrap"``, ``"wrap-sign-magnitude"`` or ``"unbounded"`` (no
            clamping), or an HLS name.
        sat_bits: saturation bits of the wrap modes (``AP_WRAP`` / ``AP_WRAP_SM`` with N > 0).
        signed: ``False`` for an unsigned format (codes ``0 .. 2**wl - 1``).
        seed: the seed of stochastic rounding. Without one, each call draws a fresh seed from
            torch's default generator (tensors) or numpy's global one (arrays), so
            ``torch.manual_seed`` / ``numpy.random.seed`` make a run repeat.
        hls: an HLS type such as ``"ap_fixed<8,3,AP_RND,AP_SAT>"``, instead of ``wl``, ``fl``,
            ``signed``, ``rounding`` and ``overflow``.
        return_mask: also return a bool mask of the elements whose rounded code overflowed.
        scheme: any quantization scheme instead of the other arguments: a :class:`Scheme` or
            its text form, such as ``"fixed<8,7> overflow=saturate-symmetric group=axis:1
            range=percentile:99.9"`` (an 8-bit converter with a range per column) or
            ``"fixed<4,0> overflow=saturate-symmetric group=runs:32 scale=shared-exponent"``
            (block floating point in blocks of 32). The grammar is in the README.

    On a tensor that requires grad, the result carries the straight-through gradient, zero where
    the code overflowed (use ``quantize(x.detach(), ...)`` for a constant).

    Raises:
        ValueError: a bad format, an unknown mode name, or ``fl`` values that do not match the
            slices.
        TypeError: data that is not floating point.

    Example::

        >>> import numpy as np
        >>> x = np.array([-2.375, 0.375, 2.5], dtype=np.float32)
        >>> quantize(x, 4, 2)
        array([-1.75,  0.5 ,  1.75], dtype=float32)
        >>> quantize(x, 4, 2, overflow="saturate")
        array([-2.  ,  0.5 ,  1.75], dtype=float32)
        >>> quantize(x, 4, 2, rounding="floor", overflow="wrap")
        array([ 1.5 ,  0.25, -1.5 ], dtype=float32)
        >>> quantize(x, hls="ap_fixed<4,2,AP_TRN,AP_WRAP_SM>")
        array([-1.75,  0.25,  1.25], dtype=float32)
        >>> w = np.array([[0.3, -0.6], [3.3, 1.2]], dtype=np.float32)
        >>> quantize(w, 4, "auto", axis=0)  # row 0: fl = 3; row 1: fl = 1
        array([[ 0.25 , -0.625],
               [ 3.5  ,  1.   ]], dtype=float32)
        >>> quantize(w, 4, 2, scale=[1.0, 2.0], axis=0)  # steps of 1/4 and 1/2
        array([[ 0.25, -0.5 ],
               [ 3.5 ,  1.  ]], dtype=float32)
    """
    if _fast.compiling():
        traced = _ops.quantize_text(x, wl, fl, axis, scale, rounding, overflow, sat_bits, signed, seed, hls, scheme)
        if traced is not None:
            return _ops.traced(x, traced, "clamp", return_mask)
        out = _scaled_traced(x, scale, axis, return_mask, wl, fl, overflow, rounding, signed, seed, sat_bits)
        if out is not None:
            return out
    if (
        type(x) is _fast.tensor
        and type(wl) is int
        and type(fl) is int
        and axis is None
        and scale is None
        and hls is None
        and return_mask is False
        and (signed is True or signed is False)
        and type(sat_bits) is int
        and (seed is None or type(seed) is int)
        and not x.requires_grad
    ):
        # The common call, kept shortest (a training loop makes it on every step; see
        # `_data.Fast`): the type tests above keep `True` from matching a cached `1`.
        out = _fast.call((wl, fl, rounding, overflow, signed, seed, sat_bits), x)
        if out is not None:
            return out
    return_mask = check_flag(return_mask, "return_mask")
    if _ops.wrapped(x):
        traced = _ops.quantize_text(x, wl, fl, axis, scale, rounding, overflow, sat_bits, signed, seed, hls, scheme)
        if traced is not None:
            return _ops.traced(x, traced, "clamp", return_mask)
        out = _scaled_traced(x, scale, axis, return_mask, wl, fl, overflow, rounding, signed, seed, sat_bits)
        if out is not None:
            return out
    if scheme is not None:
        given = [
            n for n, v in (("wl", wl), ("fl", fl), ("hls", hls), ("axis", axis), ("scale", scale)) if v is not None
        ]
        if given:
            raise ValueError(f"give either a scheme or {', '.join(given)}, not both (a scheme holds them)")
        chosen = _schemes.of_text(scheme)
        seed = check_seed(seed)
        return _masked(x, chosen if seed is None else chosen._with_seed(seed), return_mask)
    if (
        type(wl) is int
        and type(fl) is int
        and axis is None
        and scale is None
        and hls is None
        and not return_mask
        and not getattr(x, "requires_grad", False)
    ):
        # One format and no gradient to record: no differentiable wrapper.
        scheme = _schemes.fixed(wl, fl, overflow, rounding, signed, seed, sat_bits)
        _fast.remember((wl, fl, rounding, overflow, signed, seed, sat_bits), scheme)
        return _data.run(x, scheme)[0]
    per_slice = axis is not None or (fl is not None and not isinstance(fl, numbers.Integral))
    if scale is not None:
        if hls is not None or not isinstance(fl, numbers.Integral) or isinstance(fl, bool):
            raise ValueError("scale takes wl and a numeric fl (the format of x / scale)")
        base = _schemes.fixed(wl, fl, overflow, rounding, signed, seed, sat_bits)
        scheme = _schemes.scaled(x, base, scale, axis)
    elif per_slice:
        if hls is not None:
            raise ValueError("per-slice formats take wl and fl, not hls")
        if wl is None or fl is None:
            raise TypeError("quantize needs wl and fl (or hls)")
        base = _schemes.fixed(wl, 0, overflow, rounding, signed, seed, sat_bits)
        checked = _schemes.axis_of(x, axis)
        _data.dtype_of(x)
        scheme = _schemes.per_slice_fls(x, base, fl, checked)
    else:
        scheme = fixed_scheme(wl, fl, rounding, overflow, sat_bits, signed, seed, hls)
    return _masked(x, scheme, return_mask)


def _scaled_traced(x: Any, scale: Any, axis: Any, return_mask: Any, *fixed: Any) -> Any:
    """A traced `quantize` with `scale` given as a tensor (`fixed`: the arguments of
    `_ops.fixed_text`), or None for the other calls."""
    wl, fl = fixed[0], fixed[1]
    if scale is None or type(wl) is not int or type(fl) is not int or type(return_mask) is not bool:
        return None
    return _ops.scaled(x, scale, axis, wl, _ops.fixed_text(*fixed), return_mask)


def _masked(x: Any, scheme: Scheme, return_mask: bool) -> Any:
    """`x` quantized with the straight-through gradient on tensors that require grad, and the
    clip mask when asked."""
    masks = []

    def keep(with_mask: bool) -> Tuple[Any, Any]:
        out, mask = _data.run(x, scheme, with_mask or return_mask)
        masks.append(mask)
        return out, mask

    out = _data.differentiable(x, keep)
    return (out, masks[0]) if return_mask else out


def choose_fl(
    x: Any,
    wl: int,
    axis: Optional[int] = None,
    method: str = "max",
    *,
    signed: bool = True,
    overflow: str = DEFAULT_OVERFLOW,
) -> Any:
    """The fractional length :func:`quantize` uses with ``fl="auto"`` (``method="max"``) or
    ``fl="sqnr"``: an ``int`` for the whole input (``axis=None``), else a list with one per index
    of ``axis``.

    ``"max"``: the largest ``fl`` whose range holds the slice's largest finite magnitude,
    computed exactly from its exponent (a slice of zeros gets the ``fl`` whose largest value is
    just under 1). ``"sqnr"``: of that ``fl`` and the four finer ones (which clip the largest
    values to gain resolution), the one with the least squared error under nearest rounding.

    Example::

        >>> import numpy as np
        >>> w = np.array([[0.3, -0.6], [3.3, 1.2]], dtype=np.float32)
        >>> choose_fl(w, 8)
        5
        >>> choose_fl(w, 8, axis=0)
        [7, 5]
    """
    base = _schemes.fixed(wl, 0, overflow, "nearest", signed, None, 0)
    key = _schemes.FL_METHODS.get(check_name(method, "method"))
    if key is None:
        raise ValueError(f'unknown method {method!r}: expected "max" (or "auto") or "sqnr"')
    axis = _schemes.axis_of(x, axis)
    fls = _data.calibrate(x, base._with_axis(axis)._with_pow2(key)).fls
    assert fls is not None  # a power-of-two rule, calibrated, has them
    return fls[0] if axis is None else fls


def quantize_grid(
    x: Any,
    step: float,
    offset: float = 0.0,
    levels: Optional[int] = None,
    rounding: str = "nearest",
    seed: Optional[int] = None,
) -> Any:
    """Rounds ``x`` to the grid ``offset + k * step`` (any step, not only powers of two), for
    all integers ``k`` or ``0 <= k < levels``: a DAC of step ``1 / (2**b - 1)``, conductances
    ``G_min + k * d``.

    Which of the two points around a value it takes is decided on the exact value (never by a
    rounded ``x / step``), against the grid of ``step`` as given (a double). Ties follow the
    rounding (``"nearest"``: the even ``k``); ``"stochastic"`` goes up with probability
    ``(x - lower) / step``. With ``levels``, values beyond the grid take its end points. NaN
    stays NaN. On a tensor that requires grad, the result carries the straight-through gradient,
    zero outside the grid's span.

    Example::

        >>> import numpy as np
        >>> g = np.array([64.9, 65.0, 120.0, 3.0])
        >>> quantize_grid(g, 10.0, offset=50.0, levels=6)  # 50, 60, ..., 100
        array([ 60.,  70., 100.,  50.])
    """
    if _ops.in_graph(x):
        text = _ops.grid_text(step, offset, levels, rounding, seed)
        if text is not None:
            return _ops.traced(x, text, "clamp")
    scheme = _schemes.grid(step, offset, levels, rounding, seed)
    step, offset = float(step), float(offset)
    if levels is None:
        _data.check_held([step], "step", x)
        _data.check_held([offset], "offset", x)
    else:
        last = offset + (int(levels) - 1) * step
        if not math.isfinite(last):
            raise ValueError(
                f"levels and step: the grid's last point, {offset!r} + ({levels} - 1) * {step!r}, "
                "is beyond the largest double"
            )
        _data.check_held([offset, last], "the grid's end point (offset + (levels - 1) * step)", x)
    return _data.differentiable(x, lambda with_mask: _data.run(x, scheme, with_mask))


def quantize_levels(x: Any, levels: Any, rounding: str = "nearest", seed: Optional[int] = None) -> Any:
    """Rounds ``x`` to a table of levels (measured conductance states, any finite values in any
    order): the nearest level (ties to the level of even index in the sorted table;
    ``"nearest-up"`` / ``"nearest-down"``: the upper / lower one), the lower one (``"floor"``),
    or ``"stochastic"``: the upper neighbour with probability ``(x - lower) / (upper - lower)``,
    unbiased between them. Values beyond the table take its first or last level; NaN stays NaN.

    Each element costs a binary search over the sorted table, and no memory grows with inputs x
    levels. On a tensor that requires grad, the result carries the straight-through gradient,
    zero outside the table's span.

    Example::

        >>> import numpy as np
        >>> quantize_levels(np.array([0.0, 8.0, 16.0, 31.0]), [12.0, 3.5, 40.0, 20.0])
        array([ 3.5, 12. , 20. , 40. ])
    """
    if _ops.in_graph(x):
        text = _ops.levels_text(levels, rounding, seed)
        if text is not None:
            return _ops.traced(x, text, "clamp")
    scheme = _schemes.levels(levels, rounding, seed)
    table = scheme.level_values
    _data.check_held([table[0], table[-1]], "levels", x)
    return _data.differentiable(x, lambda with_mask: _data.run(x, scheme, with_mask))


_CONVERTER_DOC = """``bits`` of resolution over a full-scale range ``r``: ``r * Q(x / r + n)``, where ``Q``
    is signed fixed point of ``bits`` bits with ``bits - 1`` fractional bits, saturating
    symmetrically (levels ``k / 2**(bits-1)``, ``|k| <= 2**(bits-1) - 1``), and ``n`` optional
    noise. XBTorch's ``SimpleFixedPoint`` ``DAC_quantize`` / ``ADC_quantize`` (instant encoding)
    are ``{name}(x, bits, rounding="stochastic")`` (its QPyTorch default) and equal it bit for bit
    with ``rounding="nearest"``: ``x / r`` and ``r * Q`` are rounded to the tensor's dtype as its
    float arithmetic does.

    Args:
        x: a float tensor (any device) or numpy array.
        bits: resolution, 2 to 64.
        range: ``"absmax"`` (the largest finite magnitude of ``x``, or of each slice along
            ``axis``), ``"percentile:P"`` (the ``P``-th percentile of the finite magnitudes,
            per slice, interpolated as ``numpy.percentile`` does: the largest outliers clip), a
            number, or one range per slice (a sequence, array or tensor).
        axis: the axis whose indices are the slices (per crossbar column), or ``None``.
        rounding: any rounding of :func:`quantize`.
        noise_std: the standard deviation of noise added to ``x / r`` before quantization, in
            units of the range (0: none).
        noise: ``"gaussian"`` or ``"uniform"`` (on ``[-h, h]`` with ``h = noise_std * sqrt(3)``).
        seed: seeds the noise and stochastic rounding (two separate streams of the counter
            generator, so a simulation repeats exactly on any number of threads); without one,
            each call draws a fresh seed from torch's or numpy's generator.

    A slice whose range is 0 gives zeros (XBTorch's formula gives NaN). On a tensor that requires
    grad, the result carries the straight-through gradient, zero where it saturated.
"""


def _converter(name: str) -> Any:
    """`dac` and `adc`: one model, two names (inputs and outputs of a crossbar)."""

    def convert(
        x: Any,
        bits: int,
        range: Any = "absmax",  # noqa: A002
        axis: Optional[int] = None,
        rounding: str = "nearest",
        noise_std: float = 0.0,
        seed: Optional[int] = None,
        *,
        noise: str = "gaussian",
    ) -> Any:
        if _ops.in_graph(x):
            text = _ops.converter_text(bits, range, axis, rounding, noise_std, noise, seed)
            if text is not None:
                return _ops.traced(x, text, "clamp")
            # A range per tensor or per slice given as a tensor: x / r through the converter of
            # range 1 (its noise in units of the range), times r.
            unit = _ops.converter_text(bits, 1.0, None, rounding, noise_std, noise, seed)
            out = _ops.scaled(x, range, axis, bits, unit) if unit is not None else None
            if out is not None:
                return out
        scheme = _schemes.converter(x, bits, range, axis, rounding, noise_std, noise, seed)
        return _data.differentiable(x, lambda with_mask: _data.run(x, scheme, with_mask))

    convert.__name__ = convert.__qualname__ = name
    return convert


dac = _converter("dac")
adc = _converter("adc")
dac.__doc__ = (
    "The DAC model: input voltages quantized to "
    + _CONVERTER_DOC.format(name="dac")
    + """
    Example::

        >>> import numpy as np
        >>> dac(np.array([0.5, -2.0, 1.2, 0.0], dtype=np.float32), 3)  # range 2: steps of 0.5
        array([ 0.5, -1.5,  1. ,  0. ], dtype=float32)
"""
)
adc.__doc__ = (
    "The ADC model: output currents quantized to "
    + _CONVERTER_DOC.format(name="adc")
    + """
    Example::

        >>> import numpy as np
        >>> y = np.array([[0.25, 2.0], [1.0, -1.0]], dtype=np.float32)
        >>> adc(y, 4, axis=1)  # per column: ranges 1 and 2, steps of 1/8 and 1/4
        array([[ 0.25 ,  1.75 ],
               [ 0.875, -1.   ]], dtype=float32)
        >>> adc(y, 4, range="percentile:50", axis=1)  # ranges 0.625 and 1.5: 1 and 2 clip
        array([[ 0.234375,  1.3125  ],
               [ 0.546875, -0.9375  ]], dtype=float32)
"""
)


def quantize_(
    x: Any,
    wl: Any = None,
    fl: Any = None,
    *,
    rounding: str = "nearest",
    overflow: str = DEFAULT_OVERFLOW,
    sat_bits: int = 0,
    signed: bool = True,
    seed: Optional[int] = None,
    hls: Optional[str] = None,
) -> Any:
    """In-place :func:`quantize`: overwrites ``x`` (a tensor or a writeable numpy array) with its
    quantized values and returns it. The arguments are those of :func:`quantize`.

    Meant for weights between training steps or after training (post-training quantization)::

        with torch.no_grad():
            for p in model.parameters():
                xbquant.quantize_(p, 8, 6)

    Like writing to ``tensor.data``, the change is invisible to autograd. A contiguous CPU tensor
    or array is quantized where it lies, with no temporary buffer.

    >>> import numpy as np
    >>> w = np.array([0.3, -5.0], dtype=np.float32)
    >>> quantize_(w, 4, 2) is w, w
    (True, array([ 0.25, -1.75], dtype=float32))
    """
    if _ops.in_graph(x):
        text = _ops.quantize_text(x, wl, fl, None, None, rounding, overflow, sat_bits, signed, seed, hls, None)
        if text is not None:
            import torch

            # Traced: the registered operation's result written over x, out of autograd's sight.
            with torch.no_grad():
                x.copy_(_ops.traced(x.detach(), text, "none"))
            return x
    scheme = fixed_scheme(wl, fl, rounding, overflow, sat_bits, signed, seed, hls)
    return _data.run(x, scheme, in_place=True)[0]


def get_range_fixed_point(num_format: Any) -> Tuple[float, float]:
    """The ``(min, max)`` that a fixed-point format can represent.

    ``num_format`` is any object with the attributes ``wl``, ``fl`` and ``symmetric``: a
    namedtuple, :class:`xbquant.FixedPoint`, QPyTorch's ``FixedPoint``... An object that also has
    ``signed = False`` is an unsigned format, with range ``(0, 2**(wl-fl) - 2**-fl)``.

    For a signed format (the values are exact: powers of two, rounded once to a Python float):

    ========= ============================== ==========================
    symmetric min                            max
    ========= ============================== ==========================
    True      ``-(2**(wl-fl-1) - 2**-fl)``   ``2**(wl-fl-1) - 2**-fl``
    False     ``-2**(wl-fl-1)``              ``2**(wl-fl-1) - 2**-fl``
    ========= ============================== ==========================

    Raises:
        TypeError: ``num_format`` lacks ``wl``, ``fl`` or ``symmetric``.
        ValueError: the format is not valid.

    Example::

        >>> from collections import namedtuple
        >>> Format = namedtuple("Format", "wl fl symmetric")
        >>> get_range_fixed_point(Format(8, 4, True))
        (-7.9375, 7.9375)
        >>> get_range_fixed_point(Format(8, 4, False))
        (-8.0, 7.9375)
    """
    missing = [name for name in ("wl", "fl", "symmetric") if not hasattr(num_format, name)]
    if missing:
        raise TypeError(
            "num_format must have the attributes wl, fl and symmetric; "
            f"{type(num_format).__name__} has no {', '.join(missing)}"
        )
    wl = check_length(num_format.wl, "num_format.wl")
    fl = check_length(num_format.fl, "num_format.fl")
    symmetric = check_flag(num_format.symmetric, "num_format.symmetric")
    signed = check_flag(getattr(num_format, "signed", True), "num_format.signed")
    return _xbquant.format_range(wl, fl, symmetric, signed)


def quantize_float(
    x: Any,
    format: Any,  # noqa: A002 - the public name
    *,
    rounding: str = "nearest",
    overflow: Optional[str] = None,
    seed: Optional[int] = None,
) -> Any:
    """Rounds ``x`` to a low-precision binary floating-point format and returns the values in
    ``x``'s own dtype. Rounded to nearest with the default overflow, the result is what torch's
    cast gives: ``quantize_float(x, "float8_e4m3fn")`` equals
    ``x.to(torch.float8_e4m3fn).to(x.dtype)`` for float32 ``x``. Not differentiable.

    Args:
        x: a float32, float64, float16 or bfloat16 tensor (any device, shape and strides) or
            numpy array. The result is new, with the same type, dtype, shape and device.
        format: ``"float16"``, ``"bfloat16"``, ``"e5m2"``, ``"e4m3fn"`` (also
            ``"float8_e5m2"``, ``"float8_e4m3fn"``), ``"eXmY"`` for an IEEE-style format with X
            exponent bits (2 to 8) and Y mantissa bits (1 to 23), ``"eXmYfn"`` for one without
            infinities, or a tuple ``(X, Y)``.
        rounding: ``"nearest"`` (ties to even) or ``"stochastic"`` (the same counter-based
            noise as fixed point: reproducible with ``seed``).
        overflow: ``None`` for the format's default (infinity for IEEE-style formats,
            saturation for formats without infinities, as torch's casts), ``"infinity"``
            (NaN for formats without infinities) or ``"saturate"``.
        seed: the seed of stochastic rounding; without one each call draws a fresh seed from
            torch's default generator (tensors) or numpy's global one (arrays).

    Raises:
        ValueError: an unknown format, rounding or overflow name.
        TypeError: data that is not floating point.

    Example::

        >>> import numpy as np
        >>> x = np.array([0.3, 500.0, -1e-3, 70000.0], dtype=np.float32)
        >>> quantize_float(x, "e4m3fn").tolist()  # saturating, as torch's cast
        [0.3125, 448.0, -0.001953125, 448.0]
        >>> quantize_float(x, "e5m2").tolist()
        [0.3125, 512.0, -0.0009765625, inf]
        >>> quantize_float(x, (5, 2), overflow="saturate")[3]
        np.float32(57344.0)
    """
    if _ops.in_graph(x) and isinstance(rounding, str):
        name = f"e{format[0]}m{format[1]}" if isinstance(format, tuple) else format
        over = "" if overflow is None else f" overflow={overflow}"
        text = f"{name}{over} rounding={_ops.rounding_text(rounding, seed)}"
        return _ops.traced(x, text, "none")
    return _data.run(x, _schemes.floating(format, rounding, overflow, seed))[0]
