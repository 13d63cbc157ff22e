"""The device models of the analog tiles (re-exported by :mod:`xbquant.analog`): aihwkit's PCM
model and XBTorch's devices, computed by the Rust crate `xbquant-analog`, with aihwkit's method
names so that a layer programs either."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Tuple

import numpy as np

from . import _data, _ops, _xbquant
from ._checks import check_number, check_seed


class _DeviceModel:
    """The methods shared by the device models (aihwkit's names): conductance pairs of weights,
    programming noise, drift coefficients, and the conductances read over time."""

    _MODEL = ""
    g_min: float
    g_max: float

    def _checked(self, fields: dict) -> None:
        _xbquant.device_check(self._MODEL, fields)
        object.__setattr__(self, "_as_dict", fields)

    def _apply(self, kind: str, g: Any, nu: Any, t: float, seed: Optional[int]) -> Any:
        if not (_data.is_tensor(g) or isinstance(g, np.ndarray)):
            raise TypeError(f"g must be a torch.Tensor or a numpy array of floats, got {type(g).__name__}")
        dtype = str(g.dtype).replace("torch.", "")
        if dtype not in ("float32", "float64"):
            raise TypeError(f"g must hold float32 or float64 conductances, got {dtype}")
        tensor = _data.is_tensor(g)
        if tensor:
            _data.check_layout(g, "g")
        seed = check_seed(seed)
        if nu is not None and tuple(nu.shape) != tuple(g.shape):
            raise ValueError(
                f"drift_noise_param must have the shape of g_prog, {tuple(g.shape)}, got {tuple(nu.shape)}"
            )
        if tensor and (_ops.in_graph(g) or (nu is not None and _ops.in_graph(nu))):
            # Traced, or a tensor of torch.func's transforms: the registered operation.
            import torch

            _ops.register()  # every operation, once (not while traced)
            op = _register_ops(torch)[0]
            drawn = _ops.seed_tensor(torch, seed)
            nu_t = None if nu is None else torch.as_tensor(nu, dtype=g.dtype, device=g.device)
            return op(g.detach(), nu_t, self._MODEL, self._text(), kind, t, drawn)
        if seed is None:
            seed = _data.draw_seed(g)
        return self._eager(kind, g, nu, t, seed)

    def _text(self) -> str:
        """The fields as the text the registered operations take (read back by `_device_of`)."""
        return ";".join(f"{k}={v!r}" for k, v in self.__dict__["_as_dict"].items())

    def _eager(self, kind: str, g: Any, nu: Any, t: float, seed: int) -> Any:
        dtype = str(g.dtype).replace("torch.", "")
        tensor = _data.is_tensor(g)

        def flat(a: Any, name: str) -> np.ndarray:
            if _data.is_tensor(a):
                a = a.detach().cpu().resolve_neg().contiguous().numpy()
            if not isinstance(a, np.ndarray):
                raise TypeError(f"{name} must be a torch.Tensor or a numpy array, got {type(a).__name__}")
            return np.ascontiguousarray(a, dtype=np.dtype(dtype)).reshape(-1)

        values = flat(g, "g")
        drift = None if nu is None else flat(nu, "drift_noise_param")
        out = np.empty_like(values)
        _xbquant.device_apply(self._MODEL, self.__dict__["_as_dict"], kind, values, drift, out, t, seed, dtype)
        out = out.reshape(tuple(g.shape))
        if tensor:
            import torch

            return torch.from_numpy(out).to(g.device)
        return out

    def convert_to_conductances(self, weights: Any) -> Tuple[list, dict]:
        """The weights as a pair of conductances each (aihwkit's ``SinglePairConductanceConverter``
        of ``g_min`` and ``g_max``): ``([g_plus, g_minus], {"scale_ratio": r})``, the largest
        magnitude mapped to ``g_max``, positive weights on the first device, negative on the
        second."""
        if not (_data.is_tensor(weights) or isinstance(weights, np.ndarray)):
            raise TypeError(f"weights must be a torch.Tensor or a numpy array, got {type(weights).__name__}")
        dtype = str(weights.dtype).replace("torch.", "")
        if dtype not in ("float32", "float64"):
            raise TypeError(f"weights must hold float32 or float64 values, got {dtype}")
        tensor = _data.is_tensor(weights)
        if tensor and _ops.in_graph(weights):
            # Traced: the registered operation; the ratio is then a 0-d float64 tensor.
            import torch

            _ops.register()
            plus_t, minus_t, ratio_t = _register_ops(torch)[1](weights.detach(), self._MODEL, self._text())
            return [plus_t, minus_t], {"scale_ratio": ratio_t}
        w = weights.detach().cpu().resolve_neg().contiguous().numpy() if tensor else np.ascontiguousarray(weights)
        w = w.reshape(-1)
        plus, minus = np.empty_like(w), np.empty_like(w)
        ratio = _xbquant.device_to_conductances(self._MODEL, self.__dict__["_as_dict"], w, plus, minus, dtype)
        shape = tuple(weights.shape)
        halves = [plus.reshape(shape), minus.reshape(shape)]
        if tensor:
            import torch

            halves = [torch.from_numpy(h).to(weights.device) for h in halves]
        return halves, {"scale_ratio": ratio}

    def convert_back_to_weights(self, conductances: Any, params: dict) -> Any:
        """The weights of a pair of conductances: ``((g+ - g_min) - (g- - g_min)) / scale_ratio``."""
        if len(conductances) != 2 or "scale_ratio" not in params:
            raise ValueError("conductances must be [g_plus, g_minus] and params hold scale_ratio")
        ratio = params["scale_ratio"]
        if not _data.is_tensor(ratio):  # a 0-d tensor from a traced conversion
            ratio = check_number(ratio, "scale_ratio", positive=True)
        plus, minus = conductances
        return ((plus - self.g_min) - (minus - self.g_min)) / ratio

    def apply_programming_noise_to_conductance(self, g_target: Any, seed: Optional[int] = None) -> Any:
        """The programmed conductances: ``g_target`` plus Gaussian noise of standard deviation
        ``prog_noise_scale * poly(g / g_max) * g_max / prog_coeff_g_max_reference``, clipped at 0."""
        return self._apply("programming", g_target, None, 0.0, seed)

    def generate_drift_coefficients(self, g_target: Any, seed: Optional[int] = None) -> Any:
        """The drift coefficients ``nu`` of devices programmed to ``g_target``."""
        return self._apply("drift_coefficients", g_target, None, 0.0, seed)

    def apply_drift_noise_to_conductance(
        self, g_prog: Any, drift_noise_param: Any, t_inference: float, seed: Optional[int] = None
    ) -> Any:
        """The conductances read ``t_inference`` seconds after programming: drift, then read
        noise, clipped at 0."""
        t = check_number(t_inference, "t_inference", nonnegative=True)
        return self._apply("drift", g_prog, drift_noise_param, t, seed)


@dataclasses.dataclass(frozen=True)
class PCMLikeNoise(_DeviceModel):
    """aihwkit's ``PCMLikeNoiseModel`` (fitted on measured PCM devices, Nandakumar et al., ICECS
    2019), with its names and defaults, computed by the Rust crate: programming noise (a
    polynomial in ``g / g_max`` for its standard deviation), drift coefficients ``nu`` from the
    conductance-dependent distribution, drift ``g (t / t_0)^-nu`` and 1/f read noise growing with
    time. Each method takes conductances in uS (a float32 or float64 tensor of any shape and
    device, or a numpy array) and returns new ones of the same kind; every draw comes from
    ``seed`` and the element's index (a fresh seed from torch's or numpy's generator when none
    is given). Programming happens once and is kept: reading at several times reuses the same
    programmed conductances and ``nu``.

    Example::

        >>> import torch
        >>> from xbquant.analog import PCMLikeNoise
        >>> pcm = PCMLikeNoise()
        >>> g = torch.full((10_000,), 20.0, dtype=torch.float64)
        >>> g_prog = pcm.apply_programming_noise_to_conductance(g, seed=0)
        >>> nu = pcm.generate_drift_coefficients(g, seed=0)
        >>> day = pcm.apply_drift_noise_to_conductance(g_prog, nu, 86_400.0, seed=0)
        >>> 13.0 < float(day.mean()) < 16.0         # about a quarter lower after a day
        True
    """

    _MODEL = "pcm"

    g_max: float = 25.0
    g_min: float = 0.0
    prog_coeff: Tuple[float, ...] = (0.26348, 1.9650, -1.1731)
    prog_coeff_g_max_reference: Optional[float] = None
    t_read: float = 250.0e-9
    t_0: float = 20.0
    prog_noise_scale: float = 1.0
    read_noise_scale: float = 1.0
    drift_scale: float = 1.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "prog_coeff":
                if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                    raise TypeError(f"prog_coeff must be a sequence of numbers, got {type(value).__name__}")
                object.__setattr__(self, f.name, tuple(check_number(v, "prog_coeff") for v in value))
            elif f.name == "prog_coeff_g_max_reference" and value is None:
                # aihwkit: its own coefficients were fitted at 25 uS; given ones at g_max.
                default = dataclasses.fields(self)[2].default
                object.__setattr__(self, f.name, 25.0 if self.prog_coeff == default else self.g_max)
            else:
                object.__setattr__(self, f.name, check_number(value, f.name))
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["prog_coeff"] = list(self.prog_coeff)
        self._checked(fields)


@dataclasses.dataclass(frozen=True)
class XBTorchDevice(_DeviceModel):
    """XBTorch's device model (its ``GenericAccelerator``), with its names and defaults
    (conductances between 50 and 100): Gaussian write noise (``write_noise``), a drift
    coefficient per device (``drift_coefficient`` plus Gaussian ``drift_variation``, drawn once
    and kept), power-law drift ``g (t / drift_t0)^-nu``, uniform read noise of half-width
    ``read_noise``, every conductance clipped to ``[g_min, g_max]``, and a ``stuck_fraction`` of
    devices stuck at ``g_min`` or ``g_max`` (each device independently, either with equal odds).
    The methods are :class:`PCMLikeNoise`'s, so :class:`AnalogLinear` programs either.

    Example::

        >>> import torch
        >>> from xbquant.analog import XBTorchDevice
        >>> device = XBTorchDevice(write_noise=2.0, stuck_fraction=0.5)
        >>> g = device.apply_programming_noise_to_conductance(torch.full((1000,), 75.0), seed=0)
        >>> 0.4 < float(((g == 50) | (g == 100)).float().mean()) < 0.6
        True
    """

    _MODEL = "xbtorch"

    g_min: float = 50.0
    g_max: float = 100.0
    write_noise: float = 0.0
    read_noise: float = 0.0
    drift_coefficient: float = 0.0
    drift_variation: float = 0.0
    drift_t0: float = 1.0
    stuck_fraction: float = 0.0

    def __post_init__(self) -> None:
        fields = {}
        for f in dataclasses.fields(self):
            value = check_number(getattr(self, f.name), f.name)
            object.__setattr__(self, f.name, value)
            fields[f.name] = value
        self._checked(fields)


_MODELS = {"pcm": PCMLikeNoise, "xbtorch": XBTorchDevice}
_PARSED: dict = {}
_OPS: Any = None


def _device_of(model: str, text: str) -> Any:
    """The device model of `_DeviceModel._text` (cached: a graph passes the same text each call)."""
    device = _PARSED.get((model, text))
    if device is None:
        import ast

        pairs = (item.split("=", 1) for item in text.split(";"))
        device = _PARSED[(model, text)] = _MODELS[model](**{k: ast.literal_eval(v) for k, v in pairs})
    return device


def _register_ops(torch: Any) -> Any:
    """`torch.ops.xbquant.device_apply(g, nu, model, params, kind, t, seed)` (programming noise,
    drift coefficients, drift and read noise) and `torch.ops.xbquant.device_to_conductances(w,
    model, params)`, registered with fake implementations and vmap rules by samples, so that
    torch.compile, torch.export and vmap see one node. No gradient: conductances are data."""
    global _OPS
    if _OPS is not None:
        return _OPS

    @torch.library.custom_op(
        "xbquant::device_apply",
        mutates_args=(),
        schema="(Tensor g, Tensor? nu, str model, str params, str kind, float t, Tensor seed) -> Tensor",
    )
    def apply(g: Any, nu: Any, model: str, params: str, kind: str, t: float, seed: Any) -> Any:
        """A device model's method on conductances `g` (and drift coefficients `nu`)."""
        return _device_of(model, params)._eager(kind, g, nu, t, int(seed.item()) % 2**64)

    @apply.register_fake
    def _(g: Any, nu: Any, model: str, params: str, kind: str, t: float, seed: Any) -> Any:
        return torch.empty_like(g)

    def apply_vmap(
        info: Any, in_dims: Any, g: Any, nu: Any, model: str, params: str, kind: str, t: float, seed: Any
    ) -> Any:
        # Each sample as its own call, as a loop of calls would be.
        size = info.batch_size
        gs, nus = _ops.vmap_samples(g, in_dims[0], size), _ops.vmap_samples(nu, in_dims[1], size)
        return torch.stack([apply(a, b, model, params, kind, t, seed) for a, b in zip(gs, nus)]), 0

    apply.register_vmap(apply_vmap)

    @torch.library.custom_op(
        "xbquant::device_to_conductances",
        mutates_args=(),
        schema="(Tensor w, str model, str params) -> (Tensor, Tensor, Tensor)",
    )
    def conductances(w: Any, model: str, params: str) -> Any:
        """A device model's pair of conductances of the weights `w`, and the ratio of the map."""
        (plus, minus), p = _device_of(model, params).convert_to_conductances(w)
        return plus, minus, torch.tensor(p["scale_ratio"], dtype=torch.float64)

    @conductances.register_fake
    def _(w: Any, model: str, params: str) -> Any:
        return torch.empty_like(w), torch.empty_like(w), w.new_empty((), dtype=torch.float64)

    def conductances_vmap(info: Any, in_dims: Any, w: Any, model: str, params: str) -> Any:
        # Each sample its own map (its own largest magnitude), as a loop of calls.
        if in_dims[0] is None:
            return conductances(w, model, params), (None, None, None)
        parts = [conductances(sample, model, params) for sample in w.movedim(in_dims[0], 0).unbind(0)]
        return tuple(torch.stack([p[i] for p in parts]) for i in range(3)), (0, 0, 0)

    conductances.register_vmap(conductances_vmap)

    _OPS = (apply, conductances)
    return _OPS
