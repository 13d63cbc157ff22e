"""Trains the same quantized 64-64-10 MLP on the UCI digits with `xbquant.nn` and with Brevitas'
equivalent layers (same formats, same initial weights, same data and batches, same optimizer),
and prints the test accuracies of both: the check that `xbquant.nn`'s quantizers train as
Brevitas' do.

    pip install brevitas        # not needed by the tests
    python scripts/compare-brevitas.py [--seeds 5] [--epochs 40] [--json OUT]

The pairs compared (weights per output channel or per tensor, activations per tensor):

- ``absmax``: 4-bit weights, a step per output channel from each row's largest magnitude
  (Brevitas ``Int8WeightPerChannelFloat``), 8-bit activations with a learned step (Brevitas
  ``Int8ActPerTensorFloat`` / ``Uint8ActPerTensorFloat``; xbquant ``scale="learned"``).
- ``pow2``: 4-bit weights with a power-of-two step from the largest magnitude per tensor
  (Brevitas ``Int8WeightPerTensorFixedPoint``), 8-bit activations with a learned power-of-two
  step (Brevitas ``Int8ActPerTensorFixedPoint`` / ``Uint8ActPerTensorFixedPoint``; xbquant
  ``scale="learned-pow2"``).
- ``learned``: 3-bit weights with a learned step per output channel (Brevitas
  ``Int8WeightPerChannelFloat`` with ``scaling_impl_type="parameter_from_stats"``; xbquant
  ``scale="learned"``), activations as in ``absmax``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import pathlib
import statistics

import torch

from xbquant.nn import Quant, QuantAct, QuantLinear

DIGITS = pathlib.Path(__file__).resolve().parent.parent / "crates" / "xbquant-cli" / "data" / "digits.csv.gz"


def load_digits():
    rows = [line.split(",") for line in gzip.open(DIGITS, "rt").read().split()]
    x = torch.tensor([[float(v) for v in r[:64]] for r in rows]) / 16.0
    y = torch.tensor([int(r[64]) for r in rows])
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
    train, test = order[:1437], order[1437:]
    return x[train], y[train], x[test], y[test]


def xbquant_model(config: str) -> torch.nn.Module:
    bits = 3 if config == "learned" else 4
    if config == "pow2":
        act, weight = "learned-pow2", "pow2"
    else:
        act, weight = "learned", ("absmax" if config == "absmax" else "learned")
    channels = None if config == "pow2" else True
    return torch.nn.Sequential(
        QuantAct(8, scale=act, narrow=False),
        QuantLinear(64, 64, weight=Quant(bits, channels=64 if channels else None, scale=weight)),
        torch.nn.ReLU(),
        QuantAct(8, scale=act, signed=False),
        QuantLinear(64, 10, weight=Quant(bits, channels=10 if channels else None, scale=weight)),
    )


def brevitas_model(config: str) -> torch.nn.Module:
    import brevitas.nn as qnn
    from brevitas import quant

    bits = 3 if config == "learned" else 4
    if config == "pow2":
        act, uact, weight = quant.Int8ActPerTensorFixedPoint, quant.Uint8ActPerTensorFixedPoint, quant.Int8WeightPerTensorFixedPoint
        extra = {}
    else:
        act, uact, weight = quant.Int8ActPerTensorFloat, quant.Uint8ActPerTensorFloat, quant.Int8WeightPerChannelFloat
        extra = {"weight_scaling_impl_type": "parameter_from_stats"} if config == "learned" else {}
    return torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=act, return_quant_tensor=False),
        qnn.QuantLinear(64, 64, bias=True, weight_quant=weight, weight_bit_width=bits, **extra),
        torch.nn.ReLU(),
        qnn.QuantIdentity(act_quant=uact, return_quant_tensor=False),
        qnn.QuantLinear(64, 10, bias=True, weight_quant=weight, weight_bit_width=bits, **extra),
    )


def train(model: torch.nn.Module, float_init: torch.nn.Module, data, seed: int, epochs: int) -> float:
    xtr, ytr, xte, yte = data
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    sources = [m for m in float_init.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for mine, source in zip(linears, sources):
            mine.weight.copy_(source.weight)
            mine.bias.copy_(source.bias)
    model.train()
    model(xtr[:256])  # statistics and first steps from the same batch
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(xtr), generator=g)
        for start in range(0, len(xtr), 64):
            batch = order[start : start + 64]
            loss = torch.nn.functional.cross_entropy(model(xtr[batch]), ytr[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return (model(xte).argmax(1) == yte).float().mean().item() * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    import brevitas

    data = load_digits()
    results = {"brevitas": brevitas.__version__, "torch": torch.__version__, "epochs": args.epochs, "configs": {}}
    for config in ("absmax", "pow2", "learned"):
        ours, theirs = [], []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            init = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
            torch.manual_seed(1000 + seed)
            ours.append(train(xbquant_model(config), init, data, seed, args.epochs))
            torch.manual_seed(1000 + seed)
            theirs.append(train(brevitas_model(config), init, data, seed, args.epochs))
        results["configs"][config] = {"xbquant": ours, "brevitas": theirs}
        print(
            f"{config:8s} xbquant {statistics.mean(ours):5.1f} % ({min(ours):.1f}-{max(ours):.1f})   "
            f"brevitas {statistics.mean(theirs):5.1f} % ({min(theirs):.1f}-{max(theirs):.1f})   "
            f"difference {statistics.mean(ours) - statistics.mean(theirs):+.2f} points",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
