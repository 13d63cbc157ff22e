"""Makes the reference data of `bindings/python/tests/test_fixed_models.py`: whole PyTorch models
converted by hls4ml 1.3.0's own PyTorch converter with hls4ml configuration dictionaries, compiled
(`hls_model.compile()`, its C simulation built with `g++`) and run on a batch (`predict` in double),
for `xbquant.fixed.emulate` to match bit for bit. The models and configurations cover
`config_from_pytorch_model`'s defaults (`auto` types, the model's default accumulator), per-layer
types with saturating and wrapping accumulators that overflow, `LayerType` entries, unsigned
activations, hls4ml's short spellings, weights off their type's grid (hls4ml writes them as
decimals), and 1-D and 2-D convolutions.

Needs torch and hls4ml (`pip install hls4ml==1.3.0`, with its dependencies) and `g++`; with
xbquant importable too, it adds a model configured by `xbquant.fixed.hls4ml_config`:

    python scripts/hls4ml-model-reference.py bindings/python/tests/data/hls4ml_models.json.gz
"""

from __future__ import annotations

import gzip
import json
import pathlib
import sys
import tempfile

import hls4ml
import numpy as np
import torch


class Named(torch.nn.Module):
    """Layers with names, and a ReLU as a function call."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(10, 12)
        self.fc2 = torch.nn.Linear(12, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(16, 24), torch.nn.ReLU(), torch.nn.Linear(24, 4))


def conv1d() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv1d(2, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(24, 4)
    )


def conv2d() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, stride=(1, 2), padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(54, 4),
    )


def on_grid(model: torch.nn.Module, frac: int) -> torch.nn.Module:
    """The weights rounded to multiples of 2^-frac (as a model trained for the types has them)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.round(p * 2**frac) / 2**frac)
    return model


def cases():
    """(name, model, input shape, scale of the inputs, changes to the configuration)."""
    torch.manual_seed(100)
    yield "mlp-defaults", mlp(), (16,), 3.0, {}
    yield (
        "mlp-saturating",
        on_grid(mlp(), 6),
        (16,),
        4.0,
        {
            "LayerName": {
                "input_1": {"Precision": {"result": "ap_fixed<12,4,AP_RND,AP_SAT>"}},
                "_0": {
                    "Precision": {
                        "weight": "fixed<8,2>",
                        "bias": "fixed<8,3>",
                        "accum": "ap_fixed<14,3,AP_RND,AP_SAT>",
                        "result": "ap_fixed<12,4,AP_RND_CONV,AP_SAT>",
                    }
                },
                "_1": {"Precision": {"result": "ap_ufixed<10,3,AP_RND,AP_SAT>"}},
                "_2": {"Precision": {"weight": "fixed<8,2>", "bias": "fixed<8,2>", "accum": "auto", "result": "auto"}},
            }
        },
    )
    yield (
        "named-wrapping",
        Named(),
        (10,),
        6.0,
        {
            "Model": {"Precision": {"default": "fixed<14,5>"}},
            "LayerType": {"Dense": {"Precision": {"weight": "fixed<7,1,AP_RND>", "accum": "fixed<11,3>"}}},
            "LayerName": {
                "x": {"Precision": {"result": "fixed<10,4,AP_RND_CONV,AP_SAT>"}},
                "relu": {"Precision": "ufixed<9,3>"},
                "fc2": {"Precision": {"result": "fixed<16,6,AP_RND,AP_SAT>"}},
            },
        },
    )
    yield (
        "mlp-auto-maximum",
        on_grid(mlp(), 8),
        (16,),
        2.0,
        {
            "Model": {"Precision": {"default": "ap_fixed<12,4>", "maximum": "ap_fixed<20,8>"}},
            "LayerName": {
                "_0": {"Precision": {"weight": "ap_fixed<10,2>", "bias": "ap_fixed<10,2>", "accum": "auto"}},
                "_2": {"Precision": {"weight": "ap_fixed<10,2>", "bias": "ap_fixed<10,2>", "accum": "auto"}},
            },
        },
    )
    # Weights a hair below a step of their type: hls4ml writes them as 5-place decimals, which
    # round up onto the step, where a direct cast truncates them a step lower.
    model = on_grid(mlp(), 5)
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(torch.where(torch.rand(p.shape) < 0.5, 3e-6, 0.0))
    yield (
        "mlp-near-steps",
        model,
        (16,),
        3.0,
        {
            "LayerName": {
                layer: {"Precision": {"weight": "fixed<8,3>", "bias": "fixed<8,3>", "accum": "fixed<24,10>"}}
                for layer in ("_0", "_2")
            }
        },
    )
    # A configuration written by xbquant.fixed.hls4ml_config (when xbquant is importable): hls4ml
    # takes it as it is.
    try:
        from xbquant import fixed
    except ImportError:
        fixed = None
    if fixed is not None:
        torch.manual_seed(7)
        model = mlp()
        sample = torch.randn(200, 16) * 2
        yield "mlp-xbquant-config", model, (16,), 2.0, fixed.hls4ml_config(model, sample, bits=14, weight_bits=7)
    torch.manual_seed(11)
    yield (
        "conv1d",
        on_grid(conv1d(), 6),
        (2, 8),
        2.0,
        {
            "LayerName": {
                "_0": {"Precision": {"weight": "fixed<8,2>", "bias": "fixed<8,2>", "accum": "ap_fixed<10,2,AP_TRN,AP_SAT>"}},
                "_3": {"Precision": {"weight": "fixed<8,2>", "bias": "fixed<8,2>", "accum": "ap_fixed<18,7>"}},
            }
        },
    )


def more_cases():
    """Cases added after the first data set (their own seeds, so the others keep theirs)."""
    torch.manual_seed(12)
    yield (
        "conv2d",
        on_grid(conv2d(), 6),
        (2, 6, 6),
        2.0,
        {
            "LayerName": {
                "_0": {"Precision": {"weight": "fixed<8,2>", "bias": "fixed<8,2>", "accum": "ap_fixed<10,2,AP_RND,AP_SAT>"}},
                "_1": {"Precision": {"result": "ufixed<10,3,AP_RND_CONV,AP_SAT>"}},
                "_3": {"Precision": {"weight": "fixed<8,2>", "bias": "fixed<8,2>"}},
            }
        },
    )


def merge(config: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            merge(config[key], value)
        else:
            config[key] = value
    return config


def main() -> None:
    out_path = pathlib.Path(sys.argv[1])
    results = []
    for k, (name, model, shape, scale, changes) in enumerate([*cases(), *more_cases()]):
        model.eval()
        config = hls4ml.utils.config_from_pytorch_model(model, shape, granularity="name", default_precision="ap_fixed<16,6>")
        merge(config, changes)
        with tempfile.TemporaryDirectory() as tmp:
            hls_model = hls4ml.converters.convert_from_pytorch_model(
                model, hls_config=config, output_dir=tmp, backend="Vivado", io_type="io_parallel"
            )
            hls_model.compile()
            rng = np.random.default_rng(k)
            x = (rng.standard_normal((40, *shape)) * scale).astype(np.float32).astype(np.float64)
            # PyTorch's layout: hls4ml's "full" channels-last conversion transposes inside.
            y = hls_model.predict(np.ascontiguousarray(x))
        saved = {key: value for key, value in config.items() if key in ("Model", "LayerName", "LayerType")}
        results.append(
            {
                "name": name,
                "config": saved,
                "shape": list(shape),
                "state": {key: value.tolist() for key, value in model.state_dict().items()},
                "x": x.tolist(),
                "y": np.asarray(y, dtype=np.float64).reshape(len(x), -1).tolist(),
            }
        )
        print(name, np.asarray(y).shape)
    with gzip.open(out_path, "wt") as f:
        json.dump({"hls4ml": hls4ml.__version__, "cases": results}, f)


if __name__ == "__main__":
    main()
