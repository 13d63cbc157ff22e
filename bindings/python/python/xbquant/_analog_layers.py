"""Analog layers: ``torch.nn.Linear`` and ``Conv2d`` whose products run on analog tiles
(:func:`xbquant.analog.mvm`), programmed onto PCM devices and read at any time after, with
aihwkit's global drift compensation; and ``convert_to_analog``, which replaces a model's layers."""

from __future__ import annotations

import copy
from typing import Any, Optional

import torch
import torch.nn.functional as F

from ._checks import check_choice, check_length, check_number, check_seed
from ._devices import _DeviceModel
from ._native import quantize_grid, quantize_levels
from .analog import IOParameters, _tile_size, mvm

__all__ = ["AnalogLinear", "AnalogConv2d", "convert_to_analog"]

COMPENSATIONS = ("global", "none")


class _Analog:
    """The analog part of a layer: its tile parameters, its weight noise in training, and its
    programmed devices."""

    weight: torch.Tensor

    def _analog(self, io: Any, tile_size: Any, noise_model: Any, weight_noise: Any) -> None:
        if io is not None and not isinstance(io, IOParameters):
            raise TypeError(f"io must be an xbquant.analog.IOParameters, got {type(io).__name__}")
        if noise_model is not None and not isinstance(noise_model, _DeviceModel):
            raise TypeError(
                f"noise_model must be an xbquant.analog.PCMLikeNoise or XBTorchDevice, got {type(noise_model).__name__}"
            )
        self.io = IOParameters() if io is None else io
        self.tile_size = _tile_size(tile_size)
        self.noise_model = noise_model
        self.weight_noise = check_number(weight_noise, "weight_noise", nonnegative=True)
        self.programmed: Optional[dict] = None
        self.alpha = 1.0

    @torch.no_grad()
    def clip_weights(self, bound: Optional[float] = None, sigma: Optional[float] = None) -> None:
        """Clips the weights in place after an optimizer step (aihwkit's weight clipping): to
        ``[-bound, bound]`` (``FIXED_VALUE``), or to ``sigma`` standard deviations of the weights
        (``LAYER_GAUSSIAN``). Give one of the two."""
        if (bound is None) == (sigma is None):
            raise ValueError("give bound or sigma, one of the two")
        if bound is not None:
            limit = check_number(bound, "bound", positive=True)
        else:
            limit = check_number(sigma, "sigma", positive=True) * float(self.weight.detach().std())
        self.weight.clamp_(-limit, limit)

    def _matrix(self) -> torch.Tensor:
        return self.weight.reshape(self.weight.shape[0], -1)

    def _weights(self) -> torch.Tensor:
        """The weights of the product: read from the devices once programmed; in training, the
        weights with additive Gaussian noise of ``weight_noise`` times their largest magnitude
        (aihwkit's ``ADD_NORMAL`` weight modifier)."""
        if self.programmed is not None:
            return self.programmed["read"]
        w = self._matrix()
        if self.weight_noise > 0.0 and getattr(self, "training", False):
            noise = torch.randn_like(w) * (self.weight_noise * w.detach().abs().max())
            w = w + noise
        return w

    def _readout(self, w: torch.Tensor, seed: int) -> float:
        """aihwkit's global drift readout: the mean magnitude of the tile's outputs for the
        one-hot inputs."""
        eye = torch.eye(w.shape[1], dtype=w.dtype)
        return max(float(mvm(eye, w, self.io, tile_size=self.tile_size, seed=seed).abs().mean()), 1e-4)

    @torch.no_grad()
    def program(self, seed: Optional[int] = None, levels: Any = None) -> None:
        """Programs the weights onto device pairs (``noise_model``): each weight's pair of
        conductances with programming noise, and the devices' drift coefficients, drawn once
        and kept. ``levels``: devices of finitely many conductance states, either a number of
        them evenly spaced from ``g_min`` to ``g_max`` (:func:`xbquant.quantize_grid`) or a
        table of the states themselves (:func:`xbquant.quantize_levels`); the targets are
        rounded to the nearest state before programming. The layer then computes with the
        programmed weights; :meth:`drift` reads them at a time after programming."""
        table = None
        if isinstance(levels, (list, tuple)):
            table = [check_number(v, "levels", nonnegative=True) for v in levels]
            if not table:
                raise ValueError("levels: give at least one conductance state")
            levels = None
        elif levels is not None:
            levels = check_length(levels, "levels", 2, 2**31)
        if self.noise_model is None:
            raise ValueError("program needs a noise_model (an xbquant.analog.PCMLikeNoise or XBTorchDevice)")
        seed = check_seed(seed)
        seed = int(torch.randint(0, 2**62, ()).item()) if seed is None else seed
        model = self.noise_model
        w = self._matrix().detach().cpu()
        (plus, minus), params = model.convert_to_conductances(w)
        if levels is not None:
            step = (model.g_max - model.g_min) / (levels - 1)
            plus, minus = (quantize_grid(g, step, offset=model.g_min, levels=levels) for g in (plus, minus))
        elif table is not None:
            plus, minus = (quantize_levels(g, table) for g in (plus, minus))
        programmed = {
            "plus": model.apply_programming_noise_to_conductance(plus, seed=seed),
            "minus": model.apply_programming_noise_to_conductance(minus, seed=seed + 1),
            "nu_plus": model.generate_drift_coefficients(plus, seed=seed + 2),
            "nu_minus": model.generate_drift_coefficients(minus, seed=seed + 3),
            "params": params,
            "seed": seed,
        }
        read = model.convert_back_to_weights([programmed["plus"], programmed["minus"]], params)
        programmed["read"] = read.to(self.weight.device)
        programmed["baseline"] = self._readout(read, seed + 4)
        self.programmed = programmed
        self.alpha = 1.0

    @torch.no_grad()
    def drift(self, t_inference: float, seed: Optional[int] = None, compensation: str = "global") -> None:
        """Reads the programmed devices ``t_inference`` seconds after programming (drift and
        read noise from the programmed state, which stays as it is), and, with
        ``compensation="global"`` (aihwkit's ``GlobalDriftCompensation``), scales the outputs by
        the ratio of the readout at programming to the readout now."""
        if self.programmed is None:
            raise ValueError("drift reads programmed devices: call program() first")
        t = check_number(t_inference, "t_inference", nonnegative=True)
        check_choice(compensation, "compensation", COMPENSATIONS)
        seed = check_seed(seed)
        seed = int(torch.randint(0, 2**62, ()).item()) if seed is None else seed
        p, model = self.programmed, self.noise_model
        assert model is not None
        plus = model.apply_drift_noise_to_conductance(p["plus"], p["nu_plus"], t, seed=seed)
        minus = model.apply_drift_noise_to_conductance(p["minus"], p["nu_minus"], t, seed=seed + 1)
        read = model.convert_back_to_weights([plus, minus], p["params"])
        p["read"] = read.to(self.weight.device)
        self.alpha = p["baseline"] / self._readout(read, p["seed"] + 4) if compensation == "global" else 1.0

    def _scaled(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.alpha if self.alpha != 1.0 else y


class AnalogLinear(_Analog, torch.nn.Linear):
    """``torch.nn.Linear`` whose product runs on analog tiles (:func:`xbquant.analog.mvm`) with
    ``io`` (``IOParameters()`` by default) on tiles of ``tile_size``; the bias is added
    digitally. In training the gradient is the ideal product's (straight through the
    converters), with ``weight_noise`` (relative to the largest weight) injected in the forward
    pass. With a ``noise_model``, :meth:`program` and :meth:`drift` simulate the deployed
    devices.

    Example::

        >>> import torch
        >>> from xbquant.analog import AnalogLinear, IOParameters, PCMLikeNoise
        >>> layer = AnalogLinear(8, 4, io=IOParameters(out_noise=0.0), noise_model=PCMLikeNoise())
        >>> layer.program(seed=0)
        >>> layer.drift(3600.0, seed=1)
        >>> layer(torch.randn(2, 8)).shape
        torch.Size([2, 4])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        io: Optional[IOParameters] = None,
        tile_size: Any = (512, 512),
        noise_model: Optional[_DeviceModel] = None,
        weight_noise: float = 0.0,
    ) -> None:
        super().__init__(in_features, out_features, bias, device, dtype)
        self._analog(io, tile_size, noise_model, weight_noise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._scaled(mvm(x, self._weights().to(x.dtype), self.io, tile_size=self.tile_size))
        return y if self.bias is None else y + self.bias


class AnalogConv2d(_Analog, torch.nn.Conv2d):
    """``torch.nn.Conv2d`` on analog tiles: each output pixel's patch (``unfold``) is an input
    vector of the tile product, as aihwkit's convolutions map them; ``io``, ``tile_size``,
    ``noise_model`` and ``weight_noise`` as in :class:`AnalogLinear`. Groups of 1 and zero
    padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: Any = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        io: Optional[IOParameters] = None,
        tile_size: Any = (512, 512),
        noise_model: Optional[_DeviceModel] = None,
        weight_noise: float = 0.0,
    ) -> None:
        if groups != 1:
            raise ValueError(f"groups must be 1 on analog tiles, got {groups}")
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros' on analog tiles, got {padding_mode!r}")
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype
        )
        if isinstance(self.padding, str):
            raise ValueError("padding must be numbers on analog tiles, not a string")
        self._analog(io, tile_size, noise_model, weight_noise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batched = x.dim() == 4
        x4 = x if batched else x.unsqueeze(0)
        n, _, h, w = x4.shape
        ph, pw = (int(v) for v in self.padding)  # numbers: checked when built
        cols = F.unfold(x4, self.kernel_size, self.dilation, (ph, pw), self.stride)
        y = self._scaled(mvm(cols.transpose(1, 2), self._weights().to(x.dtype), self.io, tile_size=self.tile_size))
        kh, kw = self.kernel_size
        sh, sw = self.stride
        dh, dw = self.dilation
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        y = y.transpose(1, 2).reshape(n, self.out_channels, oh, ow)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y if batched else y.squeeze(0)


def convert_to_analog(
    module: torch.nn.Module,
    io: Optional[IOParameters] = None,
    *,
    tile_size: Any = (512, 512),
    noise_model: Optional[_DeviceModel] = None,
    weight_noise: float = 0.0,
    inplace: bool = False,
) -> torch.nn.Module:
    """A copy of ``module`` (or ``module`` itself, ``inplace=True``) whose ``torch.nn.Linear``
    and ``Conv2d`` layers (groups of 1, zero padding) are :class:`AnalogLinear` and
    :class:`AnalogConv2d` with the same weights and biases, as aihwkit's ``convert_to_analog``."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    root = module if inplace else copy.deepcopy(module)
    options = {"io": io, "tile_size": tile_size, "noise_model": noise_model, "weight_noise": weight_noise}

    def analog(layer: torch.nn.Module) -> Optional[torch.nn.Module]:
        new: Optional[torch.nn.Module] = None
        if type(layer) is torch.nn.Linear:
            new = AnalogLinear(layer.in_features, layer.out_features, layer.bias is not None, **options)
        elif type(layer) is torch.nn.Conv2d and layer.groups == 1 and layer.padding_mode == "zeros":
            if isinstance(layer.padding, str):
                return None
            new = AnalogConv2d(
                layer.in_channels,
                layer.out_channels,
                layer.kernel_size,
                layer.stride,
                layer.padding,
                layer.dilation,
                1,
                layer.bias is not None,
                **options,
            )
        if new is not None:
            new.load_state_dict(layer.state_dict())
            weight = layer.state_dict()["weight"]
            new.to(device=weight.device, dtype=weight.dtype)
        return new

    converted = analog(root)
    if converted is not None:
        return converted
    for _, child in list(root.named_modules()):
        for attr, sub in list(child.named_children()):
            replacement = analog(sub)
            if replacement is not None:
                setattr(child, attr, replacement)
    return root
