"""QPyTorch's low-precision optimizer wrapper, backed by xbquant."""

from xbquant.optim import OptimLP

__all__ = ["OptimLP"]
