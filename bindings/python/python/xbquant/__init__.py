"""Exact, fast fixed-point quantization for PyTorch and numpy, computed by Rust kernels.

- :mod:`xbquant.quantizers`: XBTorch's API (``FixedPointQuantF``,
  ``fixed_point_quantize_wrapper``, ``get_range_fixed_point``), with the same names and defaults.
- QPyTorch's API: :func:`fixed_point_quantize`, :class:`FixedPoint`, :func:`float_quantize`,
  :class:`FloatingPoint`, :func:`block_quantize`, :class:`BlockFloatingPoint`, :func:`quantizer`.
- :func:`quantize` (and in place, :func:`quantize_`): every rounding and overflow mode of the
  HLS ``ap_fixed`` types.
- :func:`quantize_float`: low-precision floating point (float16, bfloat16, e5m2, e4m3fn, any
  eXmY), equal to torch's casts when rounded to nearest.
- :class:`Scheme`: any quantization scheme in its text form (``Scheme("fixed<8,7>
  overflow=saturate-symmetric group=axis:1 range=percentile:99.9")``), the form every function's
  arguments become; ``repr`` shows it.
- The crossbar's periphery: :func:`quantize` with a fractional length per slice (``axis``,
  ``fl="auto"``) and :func:`choose_fl`, :func:`quantize_grid` (any step), :func:`quantize_levels`
  (tables of conductance levels), :func:`dac` / :func:`adc` (abs-max or per-column ranges,
  reproducible noise), :func:`bit_slices` / :func:`from_bit_slices`.
"""

from ._bits import bit_slices, from_bit_slices
from ._native import (
    adc,
    choose_fl,
    dac,
    get_range_fixed_point,
    parse_hls,
    quantize,
    quantize_,
    quantize_float,
    quantize_grid,
    quantize_levels,
)
from ._qpytorch import (
    BlockFloatingPoint,
    FixedPoint,
    FloatingPoint,
    block_quantize,
    fixed_point_quantize,
    float_quantize,
    quantizer,
)
from ._xbquant import Scheme, __version__

__all__ = [
    "Scheme",
    "BlockFloatingPoint",
    "adc",
    "bit_slices",
    "choose_fl",
    "dac",
    "from_bit_slices",
    "quantize_grid",
    "quantize_levels",
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

# The registered PyTorch operation (torch.compile, torch.export, vmap), when torch is loaded.
if "torch" in __import__("sys").modules:
    from . import _data, _ops

    _data.FAST.know_torch(__import__("sys").modules["torch"])
    _ops.register()
