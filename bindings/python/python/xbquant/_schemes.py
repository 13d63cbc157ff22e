"""Schemes from the arguments users pass: each checked once and cached per distinct set of
arguments (a training loop asks for the same few formats millions of times), so that a call
passes a ready `Scheme` to the data path. Errors are raised, not cached."""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from . import _data
from ._checks import (
    check_choice,
    check_flag,
    check_length,
    check_name,
    check_number,
    check_seed,
)
from ._xbquant import Scheme

_CACHE: Dict[tuple, Scheme] = {}
_MAX = 4096


def _cached(key: tuple, build: Callable[[], Scheme]) -> Scheme:
    try:
        scheme = _CACHE.get(key)
    except TypeError:  # an unhashable argument: the checks in `build` say what is wrong
        return build()
    if scheme is None:
        scheme = build()
        if len(_CACHE) >= _MAX:
            _CACHE.clear()
        _CACHE[key] = scheme
    return scheme


def of_text(scheme: Any, param: str = "scheme") -> Scheme:
    """A `Scheme`, or one from its text form; errors name the parameter `param`."""
    if isinstance(scheme, Scheme):
        return scheme
    if not isinstance(scheme, str):
        raise TypeError(f"{param} must be a Scheme or its text form, got {type(scheme).__name__} {scheme!r}")
    try:
        return _cached(("text", scheme), lambda: Scheme(scheme))
    except ValueError as e:
        raise ValueError(f"{param}: {e}") from None


def fixed(wl: Any, fl: Any, overflow: Any, rounding: Any, signed: Any, seed: Any, sat_bits: Any) -> Scheme:
    """Fixed point, checked once per distinct format; raises ValueError or TypeError."""
    # A call made before with the same arguments finds its scheme here. Only checked arguments
    # fill the cache, so a key that compares equal to a cached one stands for the same format;
    # the lengths and the seed must be plain ints, since 8.0 == 8 and True == 1 hash alike but
    # are checked differently.
    cacheable = (
        type(wl) is int
        and type(fl) is int
        and type(signed) is bool
        and type(sat_bits) is int
        and (seed is None or type(seed) is int)
    )
    if cacheable:
        try:
            scheme = _CACHE.get(("fixed", wl, fl, overflow, rounding, signed, seed, sat_bits))
        except TypeError:  # an unhashable argument: the checks below say what is wrong
            scheme, cacheable = None, False
        if scheme is not None:
            return scheme
    wl = check_length(wl, "wl")
    fl = check_length(fl, "fl")
    overflow = check_name(overflow, "overflow")
    rounding = check_name(rounding, "rounding")
    signed = check_flag(signed, "signed")
    seed = check_seed(seed)
    bits = check_length(sat_bits, "sat_bits", 0, 64)
    scheme = Scheme._fixed(wl, fl, signed, overflow, bits, rounding, seed)
    if cacheable:
        if len(_CACHE) >= _MAX:
            _CACHE.clear()
        _CACHE[("fixed", wl, fl, overflow, rounding, signed, seed, bits)] = scheme
    return scheme


def hls(name: Any, param: str = "hls") -> Scheme:
    """The fixed point of an HLS type name; errors name the parameter `param` that gave it."""
    try:
        return _cached(("hls", name), lambda: Scheme._from_hls(check_name(name, param)))
    except ValueError as e:
        raise ValueError(f"{param}: {e}") from None


def floating(fmt: Any, rounding: Any, overflow: Any, seed: Any) -> Scheme:
    """A floating-point format (a name or a tuple `(exponent bits, mantissa bits)`); errors name
    it `format`, the public functions' parameter."""
    if isinstance(fmt, tuple):
        if len(fmt) != 2:
            raise ValueError(f"a format tuple is (exponent_bits, mantissa_bits), got {fmt!r}")
        exp = check_length(fmt[0], "format's exponent bits", 0, 64)
        man = check_length(fmt[1], "format's mantissa bits", 0, 64)
        fmt = f"e{exp}m{man}"

    def build() -> Scheme:
        name = check_name(fmt, "format")
        mode = check_name(rounding, "rounding")
        over = None if overflow is None else check_name(overflow, "overflow")
        return Scheme._floating(name, mode, over, check_seed(seed))

    return _cached(("float", fmt, rounding, overflow, seed), build)


def block(wl: Any, rounding: Any, seed: Any) -> Scheme:
    """Block floating point of `wl` bits, one block for the whole tensor."""

    def build() -> Scheme:
        bits = check_length(wl, "wl", 2, 64)
        return Scheme._block(bits, check_name(rounding, "rounding"), check_seed(seed))

    return _cached(("block", wl, rounding, seed), build)


def levels(values: Any, rounding: Any, seed: Any) -> Scheme:
    """A table of levels (a sequence, array or tensor of finite numbers)."""
    if _data.is_tensor(values):
        values = values.detach().cpu().reshape(-1).tolist()
    elif isinstance(values, np.ndarray):
        values = values.reshape(-1).tolist()
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"levels must be a sequence of numbers, got {type(values).__name__}")
    key = tuple(check_number(v, "levels") for v in values)
    if not key:
        raise ValueError("levels must hold one level or more, got none")
    mode = check_name(rounding, "rounding")
    return _cached(("levels", key, mode, seed), lambda: Scheme._levels(list(key), mode, check_seed(seed)))


def grid(step: Any, offset: Any, count: Any, rounding: Any, seed: Any) -> Scheme:
    step = check_number(step, "step", positive=True)
    offset = check_number(offset, "offset")
    if count is not None:
        count = check_length(count, "levels", 1, 2**52)
    mode = check_name(rounding, "rounding")
    return Scheme._grid(step, offset, count, mode, check_seed(seed))


def axis_of(x: Any, axis: Any) -> Optional[int]:
    """`axis` as a non-negative index of an axis of `x` (negative counts from the end)."""
    if axis is None:
        return None
    _data.dtype_of(x)  # the data first: a TypeError naming x
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an integer or None, got {axis!r}")
    ndim = len(x.shape)
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is not an axis of a {ndim}-d input")
    return axis % ndim


def per_slice(values: Any, count: int, name: str, cast: Callable[[Any], Any]) -> List[Any]:
    """One value per slice, from a number (the same for all), a sequence, an array or a tensor;
    `cast(value)` checks each."""
    if _data.is_tensor(values):
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


def _integer(v: Any) -> int:
    return check_length(v, "fl", -(2**31), 2**31 - 1)


FL_METHODS = {"auto": "max", "max": "max", "sqnr": "sqnr"}


def per_slice_fls(x: Any, base: Scheme, fl: Any, axis: Optional[int]) -> Scheme:
    """Fixed point with a fractional length per slice along `axis` (or for the whole input):
    `fl` a method name (chosen from the data), a number, or one value per slice."""
    scheme = base._with_axis(axis)
    if isinstance(fl, str):
        method = FL_METHODS.get(fl)
        if method is None:
            raise ValueError(f'fl must be an integer, one per slice, or one of "auto", "max" and "sqnr"; got {fl!r}')
        return scheme._with_pow2(method)
    count = 1 if axis is None else x.shape[axis]
    return scheme._with_fls(per_slice(fl, count, "fl", _integer))


def ranges(x: Any, given: Any, axis: Optional[int], what: str = "range") -> tuple:
    """The kind and values of a range (or scale): "absmax", "percentile:P", a number, or one
    per slice."""
    count = 1 if axis is None else x.shape[axis]
    if isinstance(given, str):
        if given == "absmax":
            return "absmax", []
        if given.startswith("percentile:"):
            text = given[len("percentile:") :]
            try:
                p = float(text)
            except ValueError:
                p = math.nan
            if not 0.0 <= p <= 100.0:
                raise ValueError(f"{what}: a percentile must be a number from 0 to 100, got {text!r}")
            return "percentile", [p]
        raise ValueError(f'{what} must be "absmax", "percentile:P", a number or one per slice, got {given!r}')
    if given is None:
        raise TypeError(f'{what} must be "absmax", "percentile:P", a number or one per slice, got None')

    def check(v: Any) -> float:
        return check_number(v, what, nonnegative=True)

    if isinstance(given, (numbers.Number, bool, np.generic)):
        values = [check(given)]
        kind = "fixed"
    else:
        values = per_slice(given, count, what, check)
        kind = "per-slice"
    _data.check_held(values, what, x)
    return kind, values


NOISES = ("gaussian", "uniform")


def converter(x: Any, bits: Any, given: Any, axis: Any, rounding: Any, noise_std: Any, noise: Any, seed: Any) -> Scheme:
    """The ADC/DAC model: `bits` bits of `bits - 1` fractional bits, saturating symmetrically,
    over a range per slice, with optional noise."""
    bits = check_length(bits, "bits", 2, 64)
    axis = axis_of(x, axis)
    kind, values = ranges(x, given, axis)
    noise_std = check_number(noise_std, "noise_std", nonnegative=True)
    noise = check_choice(noise, "noise", NOISES)
    width = noise_std if noise == "gaussian" else noise_std * math.sqrt(3.0)
    noise_kind = "none" if noise_std == 0.0 else noise
    seed = check_seed(seed)
    base = fixed(bits, bits - 1, "saturate-symmetric", rounding, True, None, 0)
    scheme = base._with_axis(axis)._with_range(kind, values)
    scheme = scheme._with_noise(noise_kind, width, None)
    # The seed fixes whatever noise the converter draws (none: it is not used).
    return scheme._with_seed(seed) if seed is not None and (scheme.stochastic or noise_kind != "none") else scheme


def scaled(x: Any, base: Scheme, scale: Any, axis: Any) -> Scheme:
    """Scaled fixed point: `s * Q(x / s)` per slice, `Q` the format and rounding of `base`."""
    axis = axis_of(x, axis)
    kind, values = ranges(x, scale, axis, "scale")
    return base._with_axis(axis)._with_range(kind, values)


def check_fixed_rounding(rounding: Any, name: str) -> None:
    """Checks a rounding name now (a ValueError naming `name`), rather than at the first call."""
    check_name(rounding, name)
    try:
        fixed(8, 0, "saturate-symmetric", rounding, True, None, 0)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
