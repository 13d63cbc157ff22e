"""Argument checks shared by every public function: each raises a TypeError for a value of the
wrong kind and a ValueError for one of the right kind out of range, naming the parameter."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence

import numpy as np


def check_length(value: Any, name: str, lo: int = -(2**62) + 1, hi: int = 2**62 - 1) -> int:
    """An integer (a word or fractional length, a bit count, a dimension) between `lo` and `hi`:
    whole numbers of any numeric type are accepted (`8`, `numpy.int64(8)`, `8.0`); a bool, a
    string or any other type is a TypeError, a fraction, an infinity or a value out of range a
    ValueError, each naming `name`."""
    if type(value) is int:
        number = value
    elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    elif isinstance(value, numbers.Integral):
        number = int(value)
    else:
        real = float(value)
        if not math.isfinite(real) or real != int(real):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        number = int(real)
    if not lo <= number <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {number}")
    return number


def check_name(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    return value


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """One of the strings `choices`."""
    value = check_name(value, name)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_flag(value: Any, name: str) -> bool:
    """A flag: `True` or `False` (a numpy bool too); anything else, however truthy, is a
    TypeError naming `name`."""
    if type(value) is bool:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def check_number(value: Any, name: str, *, nonnegative: bool = False, positive: bool = False) -> float:
    """A finite real number (0 or more, or above 0, when asked): a bool, a string or a complex
    number is a TypeError, NaN, an infinity or a value out of range a ValueError, each naming
    `name`."""
    if type(value) is float:
        number = value
    elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    else:
        try:
            number = float(value)
        except OverflowError:
            raise ValueError(f"{name} must be finite, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not number > 0.0:
        raise ValueError(f"{name} must be above 0, got {value!r}")
    if nonnegative and not number >= 0.0:
        raise ValueError(f"{name} must be 0 or more, got {value!r}")
    return number


def check_seed(seed: Any) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"seed {seed} does not fit in 64 bits")
    return seed % 2**64


def overflow_name(overflow: str, sat_bits: Any) -> str:
    overflow = check_name(overflow, "overflow")
    bits = check_length(sat_bits, "sat_bits", 0, 64)
    return f"{overflow}:{bits}" if bits else overflow


# The overflow mode of the general entry points (Rust's `FixedPoint::new`, the command line's
# `quantize`, Python's `quantize`): the seed's symmetric saturation.
DEFAULT_OVERFLOW = "saturate-symmetric"
