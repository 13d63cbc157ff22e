"""`xbquant.fixed.emulate` against hls4ml itself: whole PyTorch models that hls4ml 1.3.0's own
converter turned into C++ with hls4ml configuration dictionaries, compiled and run
(`scripts/hls4ml-model-reference.py`); every output equal bit for bit."""

import gzip
import json
import pathlib

import pytest
import torch

from xbquant import fixed

DATA = pathlib.Path(__file__).parent / "data" / "hls4ml_models.json.gz"


class Named(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(10, 12)
        self.fc2 = torch.nn.Linear(12, 3, bias=False)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def _model(name):
    if name.startswith("named"):
        return Named()
    if name.startswith("conv2d"):
        return torch.nn.Sequential(
            torch.nn.Conv2d(2, 3, 3, stride=(1, 2), padding=1),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.Linear(54, 4),
        )
    if name.startswith("conv1d"):
        return torch.nn.Sequential(
            torch.nn.Conv1d(2, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(24, 4)
        )
    return torch.nn.Sequential(torch.nn.Linear(16, 24), torch.nn.ReLU(), torch.nn.Linear(24, 4))


def _cases():
    with gzip.open(DATA, "rt") as f:
        return json.load(f)["cases"]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["name"])
def test_every_output_equals_hls4mls_compiled_model(case):
    model = _model(case["name"])
    model.load_state_dict({k: torch.tensor(v) for k, v in case["state"].items()})
    x = torch.tensor(case["x"], dtype=torch.float64)
    y, report = fixed.emulate(model.eval(), case["config"], x)
    want = torch.tensor(case["y"], dtype=torch.float64)
    assert y.shape == want.shape
    differ = (y != want).nonzero().tolist()
    assert not differ, f"{len(differ)} of {want.numel()} differ, first {differ[:5]}: ours {y[tuple(differ[0])]}"
    # These accumulators overflow on this data (saturating, wrapping, in a convolution).
    overflowed = sum(
        sum(layer["overflows"]["accumulations"]) for layer in report["layers"].values() if "overflows" in layer
    )
    assert (overflowed > 0) == (case["name"] in ("mlp-saturating", "named-wrapping", "conv1d", "conv2d")), overflowed


def test_the_data_covers_what_a_direct_cast_of_the_weights_gets_wrong():
    # hls4ml writes weights as decimals with as many places as fractional bits: weights a hair
    # below a step round up onto it. The case built for it differs from a direct cast everywhere.
    case = next(c for c in _cases() if c["name"] == "mlp-near-steps")
    model = _model(case["name"])
    model.load_state_dict({k: torch.tensor(v) for k, v in case["state"].items()})
    direct = torch.tensor(case["state"]["0.weight"], dtype=torch.float64)
    written = torch.tensor([[float(f"{v:.5f}") for v in row] for row in case["state"]["0.weight"]], dtype=torch.float64)
    kinds = dict(input="ap_fixed<16,6>", weight="ap_fixed<8,3>", accum="ap_fixed<24,10>")
    assert not torch.equal(
        fixed.linear(direct, torch.eye(16, dtype=torch.float64), **kinds),
        fixed.linear(written, torch.eye(16, dtype=torch.float64), **kinds),
    )


def test_hls4ml_config_writes_the_configuration_hls4ml_took():
    # The case "mlp-xbquant-config" handed hls4ml_config's dictionary to hls4ml (merged into
    # config_from_pytorch_model's); today's hls4ml_config writes the same types.
    case = next(c for c in _cases() if c["name"] == "mlp-xbquant-config")
    torch.manual_seed(7)
    model = _model(case["name"])
    sample = torch.randn(200, 16) * 2
    ours = fixed.hls4ml_config(model, sample, bits=14, weight_bits=7)
    for name, entry in ours["LayerName"].items():
        for key, kind in entry["Precision"].items():
            assert case["config"]["LayerName"][name]["Precision"][key] == kind, (name, key)
    assert case["config"]["Model"]["Precision"]["default"] == ours["Model"]["Precision"]["default"]
