"""A PyTorch model through hls4ml's fixed-point layers (:func:`emulate`), and an hls4ml
configuration chosen from data (:func:`hls4ml_config`); re-exported by :mod:`xbquant.fixed`."""

from __future__ import annotations

import math
import re
from typing import Any, Dict, Optional

from . import fixed

_TYPE_KEYS = ("weight", "bias", "accum", "result")


def _hls(text: Any, where: str) -> Optional[str]:
    """An HLS type of a configuration: ``fixed<W,I>`` and ``ufixed<W,I>`` (hls4ml's short forms)
    as ``ap_fixed`` and ``ap_ufixed``; ``auto`` (hls4ml's inference) as None."""
    if not isinstance(text, str):
        raise TypeError(f"{where} must be an HLS type string, got {type(text).__name__}")
    text = text.strip()
    if text == "auto":
        return None
    text = re.sub(r"^(u?)fixed<", lambda m: f"ap_{m.group(1)}fixed<", text)
    return text


class _Config:
    """hls4ml's configuration dictionary: ``{"Model": {"Precision": ...}, "LayerName": {name:
    {"Precision": ...}}}``, a precision a string (every type of the layer) or a dict of
    ``weight``, ``bias``, ``accum`` and ``result``."""

    def __init__(self, config: Any) -> None:
        if not isinstance(config, dict):
            raise TypeError(f"config must be hls4ml's configuration dict, got {type(config).__name__}")
        model = config.get("Model", {})
        if not isinstance(model, dict):
            raise TypeError("config['Model'] must be a dict")
        default = model.get("Precision", "ap_fixed<16,6>")
        if isinstance(default, dict):
            default = default.get("default", "ap_fixed<16,6>")
        self.default = _hls(default, "config['Model']['Precision']")
        layers = config.get("LayerName", {})
        if not isinstance(layers, dict):
            raise TypeError("config['LayerName'] must be a dict")
        self.layers = layers

    def types(self, name: str) -> Dict[str, Optional[str]]:
        """The layer's types by key (None: hls4ml's inference for ``accum``, the default else)."""
        entry = self.layers.get(name, {})
        precision = entry.get("Precision", {}) if isinstance(entry, dict) else {}
        where = f"config['LayerName'][{name!r}]['Precision']"
        if isinstance(precision, str):
            one = _hls(precision, where)
            return {key: one for key in _TYPE_KEYS}
        if not isinstance(precision, dict):
            raise TypeError(f"{where} must be a string or a dict")
        out: Dict[str, Optional[str]] = {}
        for key in _TYPE_KEYS:
            if key in precision:
                out[key] = _hls(precision[key], f"{where}[{key!r}]")
            else:
                out[key] = None if key == "accum" else self.default
        return out


def _layers(model: Any) -> Any:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return torch.fx.symbolic_trace(model)


def emulate(model: Any, config: Any, x: Any, target: Any = None) -> Any:
    """Runs ``model`` (Linear, Conv1d, Conv2d, ReLU, flatten and reshape) bit-exactly as hls4ml's
    fixed-point layers compute it, with the types of hls4ml's configuration dictionary ``config``
    (``{"Model": {"Precision": "ap_fixed<16,6>"}, "LayerName": {"fc1": {"Precision": {"weight":
    ..., "bias": ..., "accum": ..., "result": ...}}}}``; layer names are the modules' names with
    ``.`` as ``_``, as hls4ml's PyTorch converter names them; ``fixed<W,I>`` is ``ap_fixed<W,I>``;
    an accumulator left out or ``auto`` is hls4ml's inferred one). The input is cast to the first
    argument's result type (``config["LayerName"][name]``, the model's default otherwise); each
    layer's input type is the previous layer's result type.

    Returns:
        ``(y, report)``: the outputs (float64 tensor) and a dict with, per layer, its types and
        overflow counts (``"layers"``), the float model's outputs (``"float"``), the fraction of
        rows whose largest output is the float model's (``"agreement"``) and, with ``target``
        (class labels), both accuracies (``"accuracy"``, ``"float_accuracy"``).

    Raises:
        TypeError: a model, configuration or input of the wrong kind.
        NotImplementedError: a layer hls4ml's fixed-point path here does not cover.
    """
    import torch

    graph = _layers(model)
    cfg = _Config(config)
    modules = dict(graph.named_modules())
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a float tensor")
    with torch.no_grad():
        reference = model(x)
    values: Dict[str, Any] = {}
    kinds: Dict[str, Optional[str]] = {}
    layers: Dict[str, Any] = {}
    out: Any = None
    for node in graph.graph.nodes:
        if node.op == "placeholder":
            kind = cfg.types(node.name)["result"]
            values[node.name], kinds[node.name] = _cast(x.double(), kind), kind
            continue
        if node.op == "output":
            out = values[node.args[0].name]
            break
        args: Any = [values.get(a.name) if hasattr(a, "name") else a for a in node.args]
        source = node.args[0].name if node.args and hasattr(node.args[0], "name") else None
        in_kind = kinds.get(source) if source else cfg.default
        name = str(node.target).replace(".", "_") if node.op == "call_module" else node.name
        module = modules.get(node.target) if node.op == "call_module" else None
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
            types = cfg.types(name)
            weight = module.weight.detach().double()
            bias = None if module.bias is None else module.bias.detach().double()
            used = {
                "input": in_kind,
                "weight": types["weight"],
                "bias": types["bias"],
                "accum": types["accum"],
                "result": types["result"],
            }
            kw: Dict[str, Any] = dict(used, return_overflow=True)
            if isinstance(module, torch.nn.Linear):
                y, counts = fixed.linear(args[0], weight, bias, **kw)
            else:
                if module.groups != 1 or any(d != 1 for d in module.dilation) or module.padding_mode != "zeros":
                    raise NotImplementedError(f"{name}: groups, dilation and other padding modes are not covered")
                if isinstance(module.padding, str):
                    raise NotImplementedError(f"{name}: padding={module.padding!r} is not covered; give sizes")
                conv = fixed.conv1d if isinstance(module, torch.nn.Conv1d) else fixed.conv2d
                stride: Any = module.stride[0] if isinstance(module, torch.nn.Conv1d) else module.stride
                padding: Any = module.padding[0] if isinstance(module, torch.nn.Conv1d) else module.padding
                y, counts = conv(args[0], weight, bias, stride, padding, **kw)
            layers[name] = {"types": used, "overflows": {k: _plain(v) for k, v in counts.items()}}
            values[node.name], kinds[node.name] = y, types["result"]
        elif isinstance(module, torch.nn.ReLU) or (
            node.op in ("call_function", "call_method")
            and node.target in (torch.relu, torch.nn.functional.relu, "relu")
        ):
            kind = cfg.types(name)["result"]
            values[node.name] = _cast(torch.clamp(args[0], min=0.0), kind)
            kinds[node.name] = kind
            layers[name] = {"types": {"result": kind}}
        elif isinstance(module, torch.nn.Flatten) or node.target in (torch.flatten, "flatten", "view", "reshape"):
            if module is not None:
                values[node.name] = module(args[0])
            elif node.op == "call_method":
                values[node.name] = getattr(args[0], node.target)(*args[1:], **node.kwargs)
            else:
                values[node.name] = node.target(*args, **node.kwargs)
            kinds[node.name] = in_kind
        else:
            raise NotImplementedError(f"{name}: {node.op} {node.target!r} is not covered by the fixed-point path")
    report: Dict[str, Any] = {"layers": layers, "float": reference}
    fixed_rows, float_rows = out.argmax(-1), reference.argmax(-1)
    report["agreement"] = float((fixed_rows == float_rows).double().mean())
    if target is not None:
        report["accuracy"] = float((fixed_rows == target).double().mean())
        report["float_accuracy"] = float((float_rows == target).double().mean())
    return out, report


def _frac(hls: str) -> int:
    """The fractional bits ``W - I`` of an HLS type string."""
    m = re.search(r"<\s*(\d+)\s*,\s*(-?\d+)", hls)
    if m is None:
        raise ValueError(f"not an HLS type: {hls!r}")
    return int(m.group(1)) - int(m.group(2))


def _plain(v: Any) -> Any:
    return v.tolist() if hasattr(v, "tolist") else v


def _cast(values: Any, kind: Optional[str]) -> Any:
    """`values` cast to the HLS type `kind` (as a layer's result is), element by element."""
    import torch

    if kind is None:
        return values
    flat = values.reshape(-1, 1)
    y = fixed.linear(flat, torch.ones(1, 1, dtype=torch.float64), input=kind, weight="ap_fixed<2,2>", result=kind)
    return y.reshape(values.shape)


def hls4ml_config(
    model: Any, x: Any, *, bits: int = 16, weight_bits: int = 8, input_type: Optional[str] = None
) -> Dict[str, Any]:
    """An hls4ml configuration dictionary chosen from data, for :func:`emulate` and hls4ml alike:
    each Linear or Conv layer's weights and bias in ``weight_bits`` with the integer bits their
    largest magnitude needs, its result in ``bits`` with those of the largest output ``x`` gives,
    and its accumulator the width the trained weights need (:func:`accum_bits`, one bit more for
    the bias), so it never overflows. The input is ``input_type`` (by default ``bits`` wide with
    the integer bits ``x`` needs).

    Raises:
        TypeError: a model or input of the wrong kind.
        ValueError: widths out of range.
    """
    import torch

    graph = _layers(model)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a float tensor")
    for name, value, low, high in (("bits", bits, 2, 32), ("weight_bits", weight_bits, 2, 16)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")

    def integer_bits(largest: float) -> int:
        return max(1, math.ceil(math.log2(largest)) + 1) if largest > 0 else 1

    def kind(width: int, largest: float) -> str:
        return f"ap_fixed<{width},{integer_bits(largest)},AP_RND_CONV,AP_SAT>"

    outputs: Dict[str, float] = {}
    hooks = []
    modules = dict(graph.named_modules())
    for path, module in modules.items():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
            hooks.append(
                module.register_forward_hook(
                    lambda m, i, o, path=path: outputs.__setitem__(path, float(o.detach().abs().max()))
                )
            )
    with torch.no_grad():
        graph(x)
    for h in hooks:
        h.remove()
    first = next(n.name for n in graph.graph.nodes if n.op == "placeholder")
    in_kind = input_type or f"ap_fixed<{bits},{integer_bits(float(x.abs().max()))},AP_RND_CONV,AP_SAT>"
    layers: Dict[str, Any] = {first: {"Precision": {"result": in_kind}}}
    previous = in_kind
    for node in graph.graph.nodes:
        module = modules.get(node.target) if node.op == "call_module" else None
        name = str(node.target).replace(".", "_") if node.op == "call_module" else node.name
        if isinstance(module, torch.nn.ReLU) or node.target in (torch.relu, torch.nn.functional.relu, "relu"):
            # The activation keeps the type of what it follows.
            layers[name] = {"Precision": {"result": previous}}
            continue
        if not isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
            continue
        w = module.weight.detach().double()
        w_kind = kind(weight_bits, float(w.abs().max()))
        precision = {"weight": w_kind}
        if module.bias is not None:
            precision["bias"] = kind(weight_bits, float(module.bias.detach().abs().max()))
        frac_in, frac_w = _frac(previous), _frac(w_kind)
        needed = int(fixed.accum_bits(w.reshape(w.shape[0], -1), previous, w_kind).max())
        if module.bias is not None:
            # The accumulator starts at the bias: one bit more than the wider of the products'
            # sums and the bias type's whole range in the accumulator's fractional bits.
            b_int = int(re.search(r"<\s*\d+\s*,\s*(-?\d+)", precision["bias"]).group(1))  # type: ignore[union-attr]
            needed = max(needed, b_int + frac_in + frac_w) + 1
        precision["accum"] = f"ap_fixed<{needed},{needed - frac_in - frac_w}>"
        precision["result"] = kind(bits, outputs.get(node.target, 0.0))
        layers[name] = {"Precision": precision}
        previous = precision["result"]
    return {"Model": {"Precision": f"ap_fixed<{bits},{bits // 2}>", "ReuseFactor": 1}, "LayerName": layers}
