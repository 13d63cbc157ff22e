"""QPyTorch's ``Quantizer`` module: :func:`xbquant.quantizer` as a ``torch.nn.Module``, to put
between layers."""

from __future__ import annotations

import torch

from ._qpytorch import quantizer

__all__ = ["Quantizer"]


class Quantizer(torch.nn.Module):
    """Quantizes its input to ``forward_number`` in the forward pass and the gradient to
    ``backward_number`` in the backward pass (QPyTorch's ``qtorch.quant.Quantizer``, same
    arguments and defaults: stochastic rounding both ways).

    Example::

        >>> import torch, xbquant
        >>> from xbquant.modules import Quantizer
        >>> layer = torch.nn.Sequential(torch.nn.Identity(), Quantizer(xbquant.FixedPoint(4, 2), forward_rounding="nearest"))
        >>> layer(torch.tensor([0.3, 5.0]))
        tensor([0.2500, 1.7500])
    """

    def __init__(
        self,
        forward_number=None,
        backward_number=None,
        forward_rounding="stochastic",
        backward_rounding="stochastic",
    ):
        super().__init__()
        self.quantize = quantizer(forward_number, backward_number, forward_rounding, backward_rounding)

    def forward(self, x):
        return self.quantize(x)
