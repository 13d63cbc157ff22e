"""QPyTorch's automatic lowering of models, backed by xbquant."""

from xbquant.auto_low import lower, sequential_lower

__all__ = ["lower", "sequential_lower"]
