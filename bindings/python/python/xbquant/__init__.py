"""Exact, fast fixed-point quantization for PyTorch and numpy, computed by Rust kernels.

- :mod:`xbquant.quantizers`: XBTorch's API (``FixedPointQuantF``,
  ``fixed_point_quantize_wrapper``, ``get_range_fixed_point``), with the same names and defaults.
- QPyTorch's API: :func:`fixed_point_quantize`, :class:`FixedPoint`, :func:`float_quantize`,
  :class:`FloatingPoint`, :func:`block_quantize`, :class:`BlockFloatingPoint`, :func:`quantizer`.
- :func:`quantize` (and in place, :func:`quantize_`): every rounding and overflow mode of the
  HLS ``ap_fixed`` types.
- :func:`quantize_float`: low-precision floating point (float16, bfloat16, e5m2, e4m3fn, any
  eXmY), equal to torch's casts when rounded to nearest.
"""

from ._api import (
    BlockFloatingPoint,
    FixedPoint,
    FloatingPoint,
    block_quantize,
    fixed_point_quantize,
    float_quantize,
    get_range_fixed_point,
    parse_hls,
    quantize,
    quantize_,
    quantize_float,
    quantizer,
)
from ._xbquant import __version__

__all__ = [
    "BlockFloatingPoint",
    "FixedPoint",
    "FloatingPoint",
    "block_quantize",
    "fixed_point_quantize",
    "float_quantize",
    "get_range_fixed_point",
    "parse_hls",
    "quantize",
    "quantize_",
    "quantize_float",
    "quantizer",
    "__version__",
]
