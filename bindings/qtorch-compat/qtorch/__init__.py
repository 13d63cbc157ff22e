"""QPyTorch's number formats, backed by xbquant (this is not QPyTorch: see ``XBQUANT``)."""

import xbquant

# Marks this package as xbquant's stand-in for QPyTorch.
XBQUANT = True


class Number:
    """The base class of the number formats, as in QPyTorch."""


class FixedPoint(xbquant.FixedPoint, Number):
    __doc__ = xbquant.FixedPoint.__doc__


class FloatingPoint(xbquant.FloatingPoint, Number):
    __doc__ = xbquant.FloatingPoint.__doc__


class BlockFloatingPoint(xbquant.BlockFloatingPoint, Number):
    __doc__ = xbquant.BlockFloatingPoint.__doc__


__all__ = ["Number", "FixedPoint", "FloatingPoint", "BlockFloatingPoint"]
