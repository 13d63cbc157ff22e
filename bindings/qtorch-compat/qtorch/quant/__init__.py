"""QPyTorch's quantization functions and module, backed by xbquant."""

from xbquant import block_quantize, fixed_point_quantize, float_quantize, quantizer
from xbquant.modules import Quantizer

__all__ = ["fixed_point_quantize", "block_quantize", "float_quantize", "quantizer", "Quantizer"]
