"""QPyTorch's automatic lowering: quantize the outputs of every layer of chosen kinds, in place
(:func:`lower`) or in a new model (:func:`sequential_lower`)."""

from __future__ import annotations

import copy
from typing import Iterable, List

from torch import nn

from .modules import Quantizer

__all__ = ["lower", "sequential_lower", "LAYER_TYPES"]


def _classes(*names: str) -> List[type]:
    """The torch.nn classes of these names that this torch version has."""
    return [getattr(nn, n) for n in names if hasattr(nn, n)]


# The layer kinds QPyTorch names, by the torch.nn classes of each (matched by exact type).
LAYER_TYPES = {
    "conv": _classes(
        "Conv1d",
        "Conv2d",
        "Conv3d",
        "ConvTranspose1d",
        "ConvTranspose2d",
        "ConvTranspose3d",
        "Unfold",
        "Fold",
    ),
    "linear": _classes("Linear", "Bilinear"),
    "pool": _classes(
        "MaxPool1d",
        "MaxPool2d",
        "MaxPool3d",
        "MaxUnpool1d",
        "MaxUnpool2d",
        "MaxUnpool3d",
        "AvgPool1d",
        "AvgPool2d",
        "AvgPool3d",
        "FractionalMaxPool2d",
        "LPPool1d",
        "LPPool2d",
        "AdaptiveMaxPool1d",
        "AdaptiveMaxPool2d",
        "AdaptiveMaxPool3d",
        "AdaptiveAvgPool1d",
        "AdaptiveAvgPool2d",
        "AdaptiveAvgPool3d",
    ),
    "pad": _classes(
        "ReflectionPad1d",
        "ReflectionPad2d",
        "ReplicationPad1d",
        "ReplicationPad2d",
        "ZeroPad2d",
        "ConstantPad1d",
        "ConstantPad2d",
        "ConstantPad3d",
    ),
    "activation": _classes(
        "ELU",
        "Hardshrink",
        "Hardtanh",
        "LeakyReLU",
        "LogSigmoid",
        "PReLU",
        "ReLU",
        "ReLU6",
        "RReLU",
        "SELU",
        "Sigmoid",
        "Softplus",
        "Softshrink",
        "Softsign",
        "Tanh",
        "Tanhshrink",
        "Threshold",
        "Softmin",
        "Softmax",
        "Softmax2d",
        "LogSoftmax",
    ),
    "normalization": _classes(
        "BatchNorm1d",
        "BatchNorm2d",
        "BatchNorm3d",
        "GroupNorm",
        "InstanceNorm1d",
        "InstanceNorm2d",
        "InstanceNorm3d",
        "LayerNorm",
        "LocalResponseNorm",
    ),
    "dropout": _classes("Dropout", "Dropout2d", "Dropout3d", "AlphaDropout"),
    "loss": _classes(
        "L1Loss",
        "MSELoss",
        "CrossEntropyLoss",
        "NLLLoss",
        "PoissonNLLLoss",
        "KLDivLoss",
        "BCELoss",
        "BCEWithLogitsLoss",
        "MarginRankingLoss",
        "HingeEmbeddingLoss",
        "MultiLabelMarginLoss",
        "SmoothL1Loss",
        "SoftMarginLoss",
        "MultiLabelSoftMarginLoss",
        "MultiMarginLoss",
        "TripletMarginLoss",
    ),
}


def _selected(layer_types: Iterable[str]) -> tuple:
    kinds = []
    for name in layer_types:
        if name not in LAYER_TYPES:
            raise ValueError(f"unknown layer type {name!r}: expected one of {sorted(LAYER_TYPES)}")
        kinds += LAYER_TYPES[name]
    return tuple(kinds)


def lower(
    model: nn.Module,
    layer_types=(),
    forward_number=None,
    backward_number=None,
    forward_rounding="stochastic",
    backward_rounding="stochastic",
) -> None:
    """Quantizes, in place, the output of every module of ``model`` whose type is one of the
    ``layer_types`` (``"conv"``, ``"linear"``, ``"pool"``, ``"pad"``, ``"activation"``,
    ``"normalization"``, ``"dropout"``, ``"loss"``), with one :class:`Quantizer` of the given
    numbers and roundings (QPyTorch's ``qtorch.auto_low.lower``: the modules' ``forward`` is
    wrapped)."""
    kinds = _selected(layer_types)
    quant = Quantizer(forward_number, backward_number, forward_rounding, backward_rounding)

    def wrap(module):
        if type(module) in kinds:
            inner = module.forward
            module.forward = lambda *args: quant(inner(*args))

    model.apply(wrap)


def sequential_lower(
    model: nn.Module,
    layer_types=(),
    forward_number=None,
    backward_number=None,
    forward_rounding="stochastic",
    backward_rounding="stochastic",
) -> nn.Module:
    """A copy of ``model`` in which every module of the ``layer_types`` (see :func:`lower`) is
    followed by one shared :class:`Quantizer`: it becomes ``nn.Sequential(module, quantizer)``
    (QPyTorch's ``qtorch.auto_low.sequential_lower``). ``model`` is left as it is.

    Example::

        >>> import torch, xbquant
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
        >>> low = sequential_lower(net, ["linear"], xbquant.FixedPoint(8, 4), forward_rounding="nearest")
        >>> type(low[0]).__name__, type(low[0][1]).__name__, type(net[0]).__name__
        ('Sequential', 'Quantizer', 'Linear')
    """
    kinds = _selected(layer_types)
    quant = Quantizer(forward_number, backward_number, forward_rounding, backward_rounding)

    def insert(module: nn.Module) -> nn.Module:
        if isinstance(module, (nn.Sequential, nn.ModuleList)):
            for i in range(len(module)):
                module[i] = insert(module[i])
            return module
        if isinstance(module, nn.ModuleDict):
            for key in list(module.keys()):
                module[key] = insert(module[key])
            return module
        children = list(module.named_children())
        if children:
            for name, child in children:
                setattr(module, name, insert(child))
            return module
        if type(module) in kinds:
            return nn.Sequential(module, quant)
        return module

    return insert(copy.deepcopy(model))
