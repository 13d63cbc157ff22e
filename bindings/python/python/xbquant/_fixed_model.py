"""A PyTorch model through hls4ml's fixed-point layers (:func:`emulate`), and an hls4ml
configuration chosen from data (:func:`hls4ml_config`); re-exported by :mod:`xbquant.fixed`."""

from __future__ import annotations

import math
import re
from typing import Any, Dict, Optional, Tuple

from . import fixed

_TYPE_KEYS = ("weight", "bias", "accum", "result")


def _hls(text: Any, where: str) -> Optional[str]:
    """An HLS type of a configuration, in hls4ml's spellings: ``fixed<W,I>`` and ``ufixed<W,I>``
    as ``ap_fixed`` and ``ap_ufixed``, ``int<W>``, ``uint<W>``, ``ap_int<W>`` and ``ap_uint<W>`` as
    fixed-point types with no fractional bits; ``auto`` (hls4ml's inference) as None."""
    if not isinstance(text, str):
        raise TypeError(f"{where} must be an HLS type string, got {type(text).__name__}")
    text = text.strip()
    if text.lower() == "auto":
        return None
    integer = re.fullmatch(r"(?:ap_)?(u?)int<\s*(\d+)\s*>", text)
    if integer:
        text = f"ap_{integer.group(1)}fixed<{integer.group(2)},{integer.group(2)}>"
    else:
        text = re.sub(r"^(u?)fixed<", lambda m: f"ap_{m.group(1)}fixed<", text)
    fixed._type(text, where)  # a type this computes, or an error naming where it stands
    return text


# hls4ml's class names of the layers here (its `LayerType` keys).
_CLASSES = {"Linear": "Dense", "Conv1d": "Conv1D", "Conv2d": "Conv2D"}


class _Config:
    """hls4ml's configuration dictionary: ``{"Model": {"Precision": ...}, "LayerName": {name:
    {"Precision": ...}}, "LayerType": {class: {"Precision": ...}}}``, each precision a string (every
    type of the layer, or of the model) or a dict by type (``weight``, ``bias``, ``accum``,
    ``result``, ``default``), looked up as hls4ml's ``get_precision`` does: the layer's name, its
    class, then the model."""

    def __init__(self, config: Any) -> None:
        if not isinstance(config, dict):
            raise TypeError(f"config must be hls4ml's configuration dict, got {type(config).__name__}")
        model = config.get("Model", {})
        if not isinstance(model, dict):
            raise TypeError("config['Model'] must be a dict")
        self.model = self._table(model.get("Precision", "ap_fixed<16,6>"), "config['Model']['Precision']")
        self.model.setdefault("default", "ap_fixed<16,6>")
        default = _hls(self.model["default"], "config['Model']['Precision']['default']")
        if default is None:
            raise ValueError("the model's default precision cannot be 'auto'")
        self.default = default
        maximum = self.model.get("maximum")
        self.maximum = None if maximum is None else _hls(maximum, "config['Model']['Precision']['maximum']")
        self.by_name = self._section(config, "LayerName")
        self.by_type = self._section(config, "LayerType")

    @staticmethod
    def _table(precision: Any, where: str) -> Dict[str, Any]:
        if isinstance(precision, str):
            return {"default": precision}
        if not isinstance(precision, dict):
            raise TypeError(f"{where} must be a string or a dict")
        return dict(precision)

    def _section(self, config: Dict[str, Any], key: str) -> Dict[str, Dict[str, Any]]:
        section = config.get(key, {})
        if not isinstance(section, dict):
            raise TypeError(f"config[{key!r}] must be a dict")
        tables = {}
        for name, entry in section.items():
            if not isinstance(entry, dict):
                raise TypeError(f"config[{key!r}][{name!r}] must be a dict")
            if "Precision" in entry:
                tables[str(name).lower()] = self._table(entry["Precision"], f"config[{key!r}][{name!r}]['Precision']")
        return tables

    def lookup(self, name: str, cls: str, var: str) -> Optional[str]:
        """The type of `var` of the layer `name` of hls4ml class `cls` (None: ``auto``)."""
        for section, tables, entry in (("LayerName", self.by_name, name), ("LayerType", self.by_type, cls)):
            table = tables.get(entry.lower(), {})
            for key in (var, "default"):
                if key in table:
                    return _hls(table[key], f"config[{section!r}][{entry!r}]['Precision'][{key!r}]")
        if var in self.model:
            return _hls(self.model[var], f"config['Model']['Precision'][{var!r}]")
        return self.default

    def dense(self, name: str, cls: str, in_kind: str, n: int) -> Dict[str, str]:
        """The types of a dense or convolution layer, ``auto`` resolved as hls4ml's precision
        inference does: weights and bias the model's default, the accumulator and the result the
        type that holds the sum of ``n`` products and a bias."""
        types = {var: self.lookup(name, cls, var) for var in _TYPE_KEYS}
        weight = types["weight"] or self.default
        bias = types["bias"] or self.default
        inferred = None
        if types["accum"] is None or types["result"] is None:
            inferred = fixed.accum_type(in_kind, weight, n, bias)
            if self.maximum is not None:
                w, i = _width(inferred)
                mw, mi = _width(self.maximum)
                signed = inferred.startswith("ap_fixed")
                inferred = f"ap_{'' if signed else 'u'}fixed<{min(w, mw)},{min(i, mi)}>"
        return {
            "weight": weight,
            "bias": bias,
            "accum": types["accum"] or str(inferred),
            "result": types["result"] or str(inferred),
        }

    def result(self, name: str, cls: str) -> str:
        """The result type of a layer hls4ml infers no type for (``auto``: the model's default)."""
        return self.lookup(name, cls, "result") or self.default


def _width(hls: str) -> Tuple[int, int]:
    """``(W, I)`` of an HLS type string."""
    m = re.search(r"<\s*(\d+)\s*,\s*(-?\d+)", hls)
    if m is None:
        raise ValueError(f"not an HLS type: {hls!r}")
    return int(m.group(1)), int(m.group(2))


def _as_written(values: Any, kind: str) -> Any:
    """`values` as hls4ml writes them into the generated C++: decimals with as many places as
    the type has fractional bits (``{:.Ff}``), which the compiler reads back; values on the
    type's grid come back exactly."""
    import torch

    w, i = _width(kind)
    places = max(0, w - i)
    flat = [float(f"{v:.{places}f}") for v in values.reshape(-1).tolist()]
    return torch.tensor(flat, dtype=torch.float64).reshape(values.shape)


def _weighted(module: Any) -> bool:
    """Whether `module` is a layer of weights this covers (Linear, Conv1d, Conv2d)."""
    import torch

    return isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d))


def _is_relu(node: Any, module: Any) -> bool:
    """Whether the graph's `node` (calling `module`, if any) is a ReLU: the module, the function
    or the method."""
    import torch

    return isinstance(module, torch.nn.ReLU) or (
        node.op in ("call_function", "call_method") and node.target in (torch.relu, torch.nn.functional.relu, "relu")
    )


def _layers(model: Any) -> Any:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return torch.fx.symbolic_trace(model)


def emulate(model: Any, config: Any, x: Any, target: Any = None) -> Any:
    """Runs ``model`` (Linear, Conv1d, Conv2d, ReLU, Dropout, flatten and reshape) bit-exactly as hls4ml's
    fixed-point layers compute it, with the types of hls4ml's configuration dictionary ``config``
    (``{"Model": {"Precision": "ap_fixed<16,6>"}, "LayerName": {"fc1": {"Precision": {"weight":
    ..., "bias": ..., "accum": ..., "result": ...}}}}``, as ``hls4ml.utils.config_from_pytorch_model``
    makes it), read as hls4ml reads it:

    - layer names are the names of torch.fx's graph, as hls4ml's PyTorch converter names its
      layers (``fc1``, ``block_fc`` for ``block.fc``, ``_0`` for a ``Sequential``'s first layer, the
      input ``x`` or ``input_1``);
    - a type is looked up by the layer's name, its hls4ml class (``LayerType``: ``Dense``,
      ``Conv1D``, ``Conv2D``, ``Activation``, ``Input``), then the model (``Precision`` a string or
      a dict with ``default``); ``fixed<W,I>`` and ``int<W>`` are hls4ml's short forms;
    - ``auto`` is hls4ml's inference: a dense or convolution layer's weights and bias take the
      model's default, its accumulator and result the type that holds every sum (with the
      bias, as hls4ml always counts one; capped by the model's ``maximum``); other layers the
      model's default. An accumulator the configuration leaves out is the model's default, as
      in hls4ml;
    - the weights and biases are the decimals hls4ml writes into its C++ (as many places as the
      type has fractional bits), so weights off the type's grid round as hls4ml's do.

    The input is cast to the input layer's result type; each layer's input type is the previous
    layer's result type.

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
    # The float model in its own dtype (a float64 batch through a float32 model, say).
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), x.dtype)
    with torch.no_grad():
        reference = model(x.to(dtype))
    values: Dict[str, Any] = {}
    kinds: Dict[str, str] = {}
    layers: Dict[str, Any] = {}
    out: Any = None
    for node in graph.graph.nodes:
        name = node.name
        if node.op == "placeholder":
            kind = cfg.result(name, "Input")
            values[name], kinds[name] = _cast(x.detach().double(), kind), kind
            layers[name] = {"types": {"result": kind}}
            continue
        if node.op == "output":
            out = values[node.args[0].name]
            break
        args: Any = [values.get(a.name) if hasattr(a, "name") else a for a in node.args]
        source = node.args[0].name if node.args and hasattr(node.args[0], "name") else None
        in_kind = kinds.get(source, cfg.default) if source else cfg.default
        module: Any = modules.get(node.target) if node.op == "call_module" else None
        if _weighted(module):
            cls = _CLASSES[type(module).__name__] if type(module).__name__ in _CLASSES else "Dense"
            n = int(module.weight[0].numel())
            types = cfg.dense(name, cls, in_kind, n)
            weight = _as_written(module.weight.detach(), types["weight"])
            bias = None if module.bias is None else _as_written(module.bias.detach(), types["bias"])
            used = {"input": in_kind, **types}
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
            values[name], kinds[name] = y, types["result"]
        elif _is_relu(node, module):
            kind = cfg.result(name, "Activation")
            values[name] = _cast(torch.clamp(args[0], min=0.0), kind)
            kinds[name] = kind
            layers[name] = {"types": {"result": kind}}
        elif isinstance(module, torch.nn.Dropout):
            # hls4ml's converter skips dropout (the identity at inference).
            values[name], kinds[name] = args[0], in_kind
        elif isinstance(module, torch.nn.Flatten) or node.target in (torch.flatten, "flatten", "view", "reshape"):
            if module is not None:
                values[name] = module(args[0])
            elif node.op == "call_method":
                values[name] = getattr(args[0], node.target)(*args[1:], **node.kwargs)
            else:
                values[name] = node.target(*args, **node.kwargs)
            kinds[name] = in_kind
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
    width, integer = _width(hls)
    return width - integer


def _plain(v: Any) -> Any:
    return v.tolist() if hasattr(v, "tolist") else v


def _cast(values: Any, kind: str) -> Any:
    """`values` cast to the HLS type `kind` (as a layer's result is), element by element."""
    from . import quantize

    return quantize(values, hls=kind)


def hls4ml_config(
    model: Any, x: Any, *, bits: int = 16, weight_bits: int = 8, input_type: Optional[str] = None
) -> Dict[str, Any]:
    """An hls4ml configuration dictionary chosen from data, for :func:`emulate` and hls4ml alike:
    each Linear or Conv layer's weights and bias in ``weight_bits`` with the integer bits their
    largest magnitude needs, its result in ``bits`` with those of the largest output ``x`` gives,
    and its accumulator the width the trained weights need (:func:`accum_bits`, one bit more for
    the bias), so it never overflows. The input is ``input_type`` (by default ``bits`` wide with
    the integer bits ``x`` needs).

    To hand it to hls4ml, merge it into the configuration hls4ml makes for the model::

        config = hls4ml.utils.config_from_pytorch_model(model, input_shape, granularity="name")
        for name, entry in xbquant.fixed.hls4ml_config(model, x)["LayerName"].items():
            config["LayerName"][name]["Precision"].update(entry["Precision"])

    Raises:
        TypeError: a model or input of the wrong kind.
        ValueError: widths out of range.
    """
    import torch

    graph = _layers(model)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a float tensor")
    if x.numel() == 0:
        raise ValueError("x must hold data to choose the types from, got an empty tensor")
    if input_type is not None:
        input_type = fixed._type(input_type, "input_type")
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
    for path, layer in modules.items():
        if _weighted(layer):
            hooks.append(
                layer.register_forward_hook(
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
        module: Any = modules.get(node.target) if node.op == "call_module" else None
        name = node.name
        if _is_relu(node, module):
            # The activation keeps the type of what it follows.
            layers[name] = {"Precision": {"result": previous}}
            continue
        if not _weighted(module):
            continue
        w = module.weight.detach().double()
        w_kind = kind(weight_bits, float(w.abs().max()))
        precision = {"weight": w_kind}
        if module.bias is not None:
            precision["bias"] = kind(weight_bits, float(module.bias.detach().abs().max()))
        frac_in, frac_w = _frac(previous), _frac(w_kind)
        written = _as_written(w, w_kind)  # the weights as hls4ml writes them
        needed = int(fixed.accum_bits(written.reshape(w.shape[0], -1), previous, w_kind).max())
        if module.bias is not None:
            # The accumulator starts at the bias: one bit more than the wider of the products'
            # sums and the bias type's whole range in the accumulator's fractional bits.
            needed = max(needed, _width(precision["bias"])[1] + frac_in + frac_w) + 1
        precision["accum"] = f"ap_fixed<{needed},{needed - frac_in - frac_w}>"
        precision["result"] = kind(bits, outputs.get(node.target, 0.0))
        layers[name] = {"Precision": precision}
        previous = precision["result"]
    return {"Model": {"Precision": {"default": f"ap_fixed<{bits},{bits // 2}>"}, "ReuseFactor": 1}, "LayerName": layers}
