"""The general entry point, :func:`quantize`, and the QPyTorch drop-in: `fixed_point_quantize`,
`FixedPoint` and `quantizer`, with QPyTorch's signatures and defaults."""

from __future__ import annotations

import numbers
from typing import Any, Callable, Optional, Sequence, Tuple

from . import _block, _core, _float, _periphery, _xbquant

__all__ = [
    "quantize",
    "choose_fl",
    "quantize_grid",
    "quantize_levels",
    "dac",
    "adc",
    "bit_slices",
    "from_bit_slices",
    "quantize_",
    "fixed_point_quantize",
    "FixedPoint",
    "quantizer",
    "parse_hls",
    "get_range_fixed_point",
]


def parse_hls(name: str) -> dict:
    """The format and rounding of an HLS type such as ``"ap_fixed<8,3,AP_RND_CONV,AP_SAT>"``, as
    keyword arguments of :func:`quantize`.

    >>> parse_hls("ap_fixed<8,3,AP_RND_CONV,AP_WRAP>")
    {'wl': 8, 'fl': 5, 'signed': True, 'overflow': 'wrap', 'rounding': 'nearest'}
    """
    spec = _core.hls_spec(name, "name")
    overflow = spec.overflow if spec.sat_bits == 0 else f"{spec.overflow}:{spec.sat_bits}"
    return {
        "wl": spec.wl,
        "fl": spec.fl,
        "signed": spec.signed,
        "overflow": overflow,
        "rounding": spec.rounding,
    }


_short = _core.SHORT


def _spec(wl, fl, rounding, overflow, sat_bits, signed, seed, hls) -> _core.Spec:
    if hls is not None:
        if wl is not None or fl is not None:
            raise ValueError("give either wl and fl or hls, not both")
        spec = _core.hls_spec(_core.check_name(hls, "hls"))
        seed = _core.check_seed(seed)
        return spec if seed is None else spec.with_seed(seed)
    if wl is None or fl is None:
        raise TypeError("quantize needs wl and fl (or hls)")
    return _core.spec_for(wl, fl, overflow, rounding, signed, seed, sat_bits)


def quantize(
    x,
    wl=None,
    fl=None,
    *,
    axis: Optional[int] = None,
    scale: Any = None,
    rounding: str = "nearest",
    overflow: str = _core.DEFAULT_OVERFLOW,
    sat_bits: int = 0,
    signed: bool = True,
    seed: Optional[int] = None,
    hls: Optional[str] = None,
    return_mask: bool = False,
):
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
    if (
        type(x) is _short.tensor
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
        # The common call, kept shortest (a training loop makes it on every step): a CPU tensor
        # that records no gradient, in a format seen before. Its spec is looked up with no
        # checks (the type tests above keep `True` from matching a cached `1`), and the array of
        # a float32 or float64 C-contiguous tensor goes straight to the kernel; any other tensor
        # (another device or dtype, strided) makes `numpy()` or the kernel call raise, and takes
        # the general path below.
        try:
            spec = _short.specs.get((wl, fl, rounding, overflow, signed, seed, sat_bits))
        except TypeError:  # an unhashable argument: the general path says what is wrong
            spec = None
        if spec is not None:
            try:
                return _short.from_numpy(_xbquant.quantized(spec, x.numpy(), None))
            except _short.declined:
                pass
    return_mask = _core.check_flag(return_mask, "return_mask")
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
        spec = _core.spec_for(wl, fl, overflow, rounding, signed, seed, sat_bits)
        _short.remember((wl, fl, rounding, overflow, signed, seed, sat_bits), spec)
        return _core.quantize_data(x, spec)[0]
    per_slice = axis is not None or (fl is not None and not isinstance(fl, numbers.Integral))
    if scale is not None:
        if hls is not None or not isinstance(fl, numbers.Integral) or isinstance(fl, bool):
            raise ValueError("scale takes wl and a numeric fl (the format of x / scale)")
        spec = _core.spec_for(wl, fl, overflow, rounding, signed, seed, sat_bits)

        def compute(with_mask):
            return _periphery.quantize_scaled(x, spec, scale, axis, with_mask or return_mask)
    elif per_slice:
        if hls is not None:
            raise ValueError("per-slice formats take wl and fl, not hls")
        if wl is None or fl is None:
            raise TypeError("quantize needs wl and fl (or hls)")
        spec = _core.spec_for(wl, 0, overflow, rounding, signed, seed, sat_bits)

        def compute(with_mask):
            return _periphery.quantize_slices(x, spec, fl, axis, None, with_mask or return_mask)
    else:
        spec = _spec(wl, fl, rounding, overflow, sat_bits, signed, seed, hls)

        def compute(with_mask):
            return _core.quantize_data(x, spec, with_mask or return_mask)

    masks = []

    def keep(with_mask):
        out, mask = compute(with_mask)
        masks.append(mask)
        return out, mask

    out = _periphery.differentiable(x, keep)
    return (out, masks[0]) if return_mask else out


def choose_fl(
    x,
    wl: int,
    axis: Optional[int] = None,
    method: str = "max",
    *,
    signed: bool = True,
    overflow: str = _core.DEFAULT_OVERFLOW,
):
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
    spec = _core.spec_for(wl, 0, overflow, "nearest", signed, None, 0)
    return _periphery.choose_fl(x, spec, axis, method)


def quantize_grid(
    x,
    step: float,
    offset: float = 0.0,
    levels: Optional[int] = None,
    rounding: str = "nearest",
    seed: Optional[int] = None,
):
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
    return _periphery.quantize_grid(x, step, offset, levels, rounding, seed)


def quantize_levels(x, levels, rounding: str = "nearest", seed: Optional[int] = None):
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
    return _periphery.quantize_levels(x, levels, rounding, seed)


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
            ``axis``), a number, or one range per slice (a sequence, array or tensor).
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


def _converter(name: str):
    """`dac` and `adc`: one model, two names (inputs and outputs of a crossbar)."""

    def convert(
        x,
        bits: int,
        range: Any = "absmax",  # noqa: A002
        axis: Optional[int] = None,
        rounding: str = "nearest",
        noise_std: float = 0.0,
        seed: Optional[int] = None,
        *,
        noise: str = "gaussian",
    ):
        return _periphery.convert(x, bits, range, axis, rounding, noise_std, noise, seed)

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
"""
)


def bit_slices(codes, bits: int, slice_bits: int = 1, encoding: str = "sign-magnitude"):
    """Integer codes split into planes of ``slice_bits`` bits, least significant first: the
    result has one more axis in front, of ``ceil(bits / slice_bits)`` planes, and the codes'
    type and device; its dtype is the codes' where that holds every digit a plane can take, else
    int64 (int8 codes in 8-bit slices give int64 planes, never wrapped ones). Float codes must
    hold integers, as XBTorch's rounded inputs do; every code must lie within 64-bit integers
    and within the word (``ValueError`` otherwise).

    Encodings: ``"sign-magnitude"`` (planes carry ``sign(c) * digit_j(|c|)``, codes with
    ``|c| < 2**bits``: XBTorch's linear input encoding), ``"twos-complement"`` and
    ``"offset-binary"`` (unsigned digits of the ``bits``-bit word; codes
    ``-2**(bits-1) .. 2**(bits-1) - 1``). Plane ``j`` weighs ``2**(j * slice_bits)``;
    :func:`from_bit_slices` puts them back.

    Example::

        >>> import numpy as np
        >>> bit_slices(np.array([-5, 6]), 4)
        array([[-1,  0],
               [ 0,  1],
               [-1,  1],
               [ 0,  0]])
        >>> bit_slices(np.array([-5]), 4, slice_bits=2, encoding="twos-complement")
        array([[3],
               [2]])
    """
    return _periphery.bit_slices(codes, bits, slice_bits, encoding)


def from_bit_slices(slices, bits: int, slice_bits: int = 1, encoding: str = "sign-magnitude"):
    """The codes of planes made by :func:`bit_slices` (planes along the first axis): the sum of
    the planes times their weights, read back in the encoding. Sign-magnitude and offset-binary
    planes need not hold canonical digits (the sum is linear, as an analog accumulation is);
    two's complement planes must (a digit outside its bits is a ``ValueError``: it would wrap).
    The codes come back in the planes' dtype where that holds every code of the word and every
    sum the planes gave, else in int64.

    Example::

        >>> import numpy as np
        >>> from_bit_slices(bit_slices(np.array([-5, 6]), 4), 4)
        array([-5,  6])
    """
    return _periphery.from_bit_slices(slices, bits, slice_bits, encoding)


def quantize_(
    x,
    wl=None,
    fl=None,
    *,
    rounding: str = "nearest",
    overflow: str = _core.DEFAULT_OVERFLOW,
    sat_bits: int = 0,
    signed: bool = True,
    seed: Optional[int] = None,
    hls: Optional[str] = None,
):
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
    spec = _spec(wl, fl, rounding, overflow, sat_bits, signed, seed, hls)
    return _core.quantize_data(x, spec, in_place=True)[0]


def _qpytorch_overflow(clamp: Any, symmetric: Any) -> str:
    if not _core.check_flag(clamp, "clamp"):
        _core.check_flag(symmetric, "symmetric")
        return "unbounded"
    return "saturate-symmetric" if _core.check_flag(symmetric, "symmetric") else "saturate"


def fixed_point_quantize(
    x,
    wl,
    fl,
    clamp=True,
    symmetric=False,
    rounding="stochastic",
    *,
    overflow: Optional[str] = None,
    sat_bits: int = 0,
    signed: bool = True,
    seed: Optional[int] = None,
):
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
    if (
        (seed is not None or rounding != "stochastic")  # the default draws a fresh seed
        and type(x) is _short.tensor
        and type(wl) is int
        and type(fl) is int
        and (clamp is True or clamp is False)
        and (symmetric is True or symmetric is False)
        and (signed is True or signed is False)
        and type(sat_bits) is int
        and (seed is None or type(seed) is int)
        and not x.requires_grad
    ):
        # The call of every training step, kept shortest (see `_core.Short`).
        key = (wl, fl, clamp, symmetric, rounding, overflow, sat_bits, signed, seed)
        try:
            spec = _short.specs.get(key)
        except TypeError:  # an unhashable argument: the general path says what is wrong
            spec = None
        if spec is not None:
            try:
                return _short.from_numpy(_xbquant.quantized(spec, x.numpy(), None))
            except _short.declined:
                pass
    given = overflow
    if overflow is None:
        overflow = _qpytorch_overflow(clamp, symmetric)
    else:
        _core.check_flag(clamp, "clamp")
        _core.check_flag(symmetric, "symmetric")
    spec = _spec(wl, fl, rounding, overflow, sat_bits, signed, seed, hls=None)
    _short.remember((wl, fl, clamp, symmetric, rounding, given, sat_bits, signed, seed), spec)
    return _core.quantize_data(x, spec)[0]


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
        wl,
        fl,
        clamp=True,
        symmetric=False,
        *,
        overflow: Optional[str] = None,
        sat_bits: int = 0,
        signed: bool = True,
    ):
        self.wl = _core.check_length(wl, "wl")
        self.fl = _core.check_length(fl, "fl")
        self.clamp = _core.check_flag(clamp, "clamp")
        self.symmetric = _core.check_flag(symmetric, "symmetric")
        self.signed = _core.check_flag(signed, "signed")
        self.overflow = _core.overflow_name(
            overflow if overflow is not None else _qpytorch_overflow(clamp, symmetric), sat_bits
        )
        # Check now, so that a bad format fails where it is written.
        self.spec("nearest")

    def spec(self, rounding: str, seed: Optional[int] = None) -> _core.Spec:
        """The checked format with a rounding (internal)."""
        return _core.make_spec(
            self.wl, self.fl, overflow=self.overflow, rounding=rounding, signed=self.signed, seed=seed
        )

    def __repr__(self) -> str:
        return f"FixedPoint (wl={self.wl:d}, fl={self.fl:d})"

    def __eq__(self, other) -> bool:
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

    def __init__(self, exp, man):
        self.exp = _core.check_length(exp, "exp", 1, 64)
        self.man = _core.check_length(man, "man", 0, 64)
        # Check now, so that a bad format fails where it is written.
        self.float_spec("nearest")

    def float_spec(self, rounding: str, seed: Optional[int] = None):
        """The checked format with a rounding (internal)."""
        return _float.float_spec(f"e{self.exp}m{self.man}nx", rounding, None, seed)

    def __repr__(self) -> str:
        return f"FloatingPoint (exponent={self.exp:d}, mantissa={self.man:d})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, FloatingPoint):
            return NotImplemented
        return (self.exp, self.man) == (other.exp, other.man)

    def __hash__(self) -> int:
        return hash(("float", self.exp, self.man))


def float_quantize(x, exp, man, rounding="stochastic", *, seed: Optional[int] = None):
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
    exp, man = _core.check_length(exp, "exp", 1, 64), _core.check_length(man, "man", 0, 64)
    spec = _float.float_spec(f"e{exp}m{man}nx", rounding, None, seed)
    return _float.quantize_float_data(x, spec)


def _as_number(number, role: str):
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


def _quantize_number(x, number, rounding: str, with_mask: bool = False):
    """`x` quantized to a number format of `quantizer`, with the overflow mask when asked."""
    if isinstance(number, FloatingPoint):
        return _float.quantize_float_data(x, number.float_spec(rounding)), None
    if isinstance(number, BlockFloatingPoint):
        return _block.block_quantize_data(x, number.wl, number.dim, rounding, None, None), None
    return _core.quantize_data(x, number.spec(rounding), with_mask=with_mask)


def quantizer(
    forward_number=None,
    backward_number=None,
    forward_rounding="stochastic",
    backward_rounding="stochastic",
    clamping_grad_zero=False,
    backward_hooks: Sequence[Callable] = [],  # noqa: B006 - QPyTorch's signature
    *,
    always_apply_backward: bool = False,
):
    """QPyTorch's ``qtorch.quant.quantizer``: returns a function that quantizes a tensor to
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
    import torch

    forward = _as_number(forward_number, "forward_number")
    backward = _as_number(backward_number, "backward_number")
    clamping_grad_zero = _core.check_flag(clamping_grad_zero, "clamping_grad_zero")
    always_apply_backward = _core.check_flag(always_apply_backward, "always_apply_backward")
    if clamping_grad_zero and isinstance(forward, (FloatingPoint, BlockFloatingPoint)):
        raise ValueError("clamping_grad_zero needs a fixed-point forward_number (as QPyTorch's)")
    # Check the rounding names now rather than at the first call.
    for rounding, name in ((forward_rounding, "forward_rounding"), (backward_rounding, "backward_rounding")):
        _core.check_name(rounding, name)
        try:
            _core.make_spec(8, 0, rounding=rounding)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    if not hasattr(backward_hooks, "__iter__") or isinstance(backward_hooks, (str, bytes)):
        raise TypeError(f"backward_hooks must be a sequence of callables, got {type(backward_hooks).__name__}")
    hooks = list(backward_hooks)
    for hook in hooks:
        if not callable(hook):
            raise TypeError(f"backward_hooks must be callables, got {type(hook).__name__}")

    class Rounding(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            if forward is None:
                return x.clone()
            out, mask = _quantize_number(x, forward, forward_rounding, clamping_grad_zero)
            if clamping_grad_zero:
                ctx.save_for_backward(mask)
            return out

        @staticmethod
        def backward(ctx, grad_output):
            grad = grad_output
            mask = ctx.saved_tensors[0] if clamping_grad_zero and forward is not None else None
            if always_apply_backward:
                for hook in hooks:
                    grad = hook(grad)
                if mask is not None:
                    grad = grad.masked_fill(mask, 0)
                if backward is not None:
                    grad = _quantize_number(grad, backward, backward_rounding)[0]
                return grad
            # QPyTorch's rules.
            if backward is None:
                return grad
            if clamping_grad_zero:
                for hook in hooks:
                    grad = hook(grad)
            grad = _quantize_number(grad, backward, backward_rounding)[0]
            return grad.masked_fill(mask, 0) if mask is not None else grad

    def quantize_function(x):
        return Rounding.apply(x)

    return quantize_function


def get_range_fixed_point(num_format) -> Tuple[float, float]:
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
    wl = _core.check_length(num_format.wl, "num_format.wl")
    fl = _core.check_length(num_format.fl, "num_format.fl")
    symmetric = _core.check_flag(num_format.symmetric, "num_format.symmetric")
    signed = _core.check_flag(getattr(num_format, "signed", True), "num_format.signed")
    return _xbquant.format_range(wl, fl, symmetric, signed)


def quantize_float(
    x,
    format: Any,
    *,
    rounding: str = "nearest",
    overflow: Optional[str] = None,
    seed: Optional[int] = None,
):
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
    return _float.quantize_float_data(x, _float.float_spec(format, rounding, overflow, seed))


def block_quantize(
    x,
    wl,
    dim=-1,
    rounding="stochastic",
    *,
    block_size: Optional[int] = None,
    seed: Optional[int] = None,
):
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
    return _block.block_quantize_data(x, wl, dim, rounding, block_size, seed)


class BlockFloatingPoint:
    """QPyTorch's block floating-point number format: ``BlockFloatingPoint(wl, dim=-1)``, for
    :func:`block_quantize` and :func:`quantizer`.

    >>> BlockFloatingPoint(8, dim=0)
    BlockFloatingPoint (wl=8, dim=0)
    """

    def __init__(self, wl, dim=-1):
        self.wl = _core.check_length(wl, "wl", 2, 64)
        self.dim = _core.check_length(dim, "dim", -1, 2**31)

    def __repr__(self) -> str:
        return f"BlockFloatingPoint (wl={self.wl:d}, dim={self.dim:d})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, BlockFloatingPoint):
            return NotImplemented
        return (self.wl, self.dim) == (other.wl, other.dim)

    def __hash__(self) -> int:
        return hash(("block", self.wl, self.dim))
