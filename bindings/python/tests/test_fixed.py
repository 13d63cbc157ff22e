"""`xbquant.fixed`: hls4ml's dense layer from PyTorch, against hls4ml's C++ outputs (the data the
Rust crate's tests read), with its defaults, shapes, dtypes and overflow counts."""

import gzip
import json
import pathlib

import numpy as np
import pytest
import torch
from xbquant import fixed

DATA = pathlib.Path(__file__).resolve().parents[3] / "crates" / "xbquant-fixed" / "tests" / "data"


def signed_code(bits: int, hls: str) -> int:
    width = int(hls[hls.index("<") + 1 :].split(",")[0])
    if hls.startswith("ap_fixed") and bits >= 2 ** (width - 1):
        return bits - 2**width
    return bits


def frac_of(hls: str) -> int:
    w, i = (int(v) for v in hls[hls.index("<") + 1 : -1].split(",")[:2])
    return w - i


def test_results_equal_hls4mls():
    cases = json.loads(gzip.open(DATA / "hls4ml_dense.json.gz", "rt").read())["cases"]
    checked = 0
    for case in cases:
        inp, wt, bs, acc, res = case["types"]
        if int(res[res.index("<") + 1 :].split(",")[0]) > 53:
            continue  # float64 holds 53 bits; the Rust tests compare the codes
        n, out, rows = case["n"], case["out"], case["rows"]
        x = torch.tensor(case["x"], dtype=torch.float64).reshape(rows, n)
        w = torch.tensor(case["w"], dtype=torch.float64).reshape(out, n)
        b = torch.tensor(case["b"], dtype=torch.float64)
        y = fixed.linear(x, w, b, input=inp, weight=wt, bias=bs, accum=acc, result=res)
        want = [signed_code(v, res) * 2.0 ** -frac_of(res) for v in case["result_bits"]]
        assert y.flatten().tolist() == want, case["types"]
        checked += y.numel()
    assert checked >= 390


def test_defaults_shapes_kinds_and_overflow_counts():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 10, generator=g) * 4
    w = torch.randn(5, 10, generator=g)
    b = torch.randn(5, generator=g)
    kw = {"input": "ap_fixed<12,4,AP_RND_CONV,AP_SAT>", "weight": "ap_fixed<8,2,AP_RND_CONV,AP_SAT>"}
    y, overflow = fixed.linear(x, w, b, return_overflow=True, **kw)
    assert y.shape == (2, 3, 5) and y.dtype == torch.float32
    # hls4ml's accumulator by default: it never overflows; the result is the accumulator.
    assert int(overflow["products"].sum()) == 0 and int(overflow["accumulations"].sum()) == 0
    assert overflow["results"].tolist() == [0] * 5 and overflow["products"].dtype == torch.int64
    # The exact products of the quantized values, summed: the default result is exact.
    xq = fixed.linear(x, torch.eye(10), input=kw["input"], weight="ap_fixed<4,2>", result=kw["input"])
    wq = fixed.linear(w, torch.eye(10), input=kw["weight"], weight="ap_fixed<4,2>", result=kw["weight"])
    bq = fixed.linear(b[None], torch.eye(5), input=kw["weight"], weight="ap_fixed<4,2>", result=kw["weight"])[0]
    exact = xq.double() @ wq.double().T + bq.double()
    assert torch.equal(fixed.linear(x.double(), w.double(), b.double(), **kw), exact)
    # numpy in, numpy out; one row; no bias; float64.
    y_np, o_np = fixed.linear(x.numpy().astype(np.float64), w.numpy().astype(np.float64), return_overflow=True, **kw)
    assert isinstance(y_np, np.ndarray) and y_np.dtype == np.float64 and y_np.shape == (2, 3, 5)
    assert isinstance(o_np["accumulations"], np.ndarray) and o_np["inputs"] >= 0
    assert fixed.linear(x[0, 0], w, **kw).shape == (5,)
    # A narrow saturating accumulator: the overflows are counted per channel.
    _, narrow = fixed.linear(x, w, b, accum="ap_fixed<8,2,AP_TRN,AP_SAT>", return_overflow=True, **kw)
    assert int(narrow["accumulations"].sum() + narrow["products"].sum()) > 0
    assert narrow["accumulations"].shape == (5,)
    # Values off the grid and out of range are cast as the types cast a double.
    assert narrow["inputs"] == int((x.abs() >= 8).sum())


def test_accum_type_is_hls4mls_rule():
    assert fixed.accum_type("ap_fixed<16,6>", "ap_fixed<8,3>", 64) == "ap_fixed<30,15,AP_TRN,AP_WRAP,0>"
    assert (
        fixed.accum_type("ap_fixed<16,6>", "ap_fixed<8,3>", 64, "ap_fixed<8,3>") == "ap_fixed<31,16,AP_TRN,AP_WRAP,0>"
    )
    assert fixed.accum_type("ap_ufixed<8,3>", "ap_ufixed<4,1>", 1) == "ap_ufixed<12,4,AP_TRN,AP_WRAP,0>"
    with pytest.raises(ValueError, match="64 bits"):
        fixed.accum_type("ap_fixed<40,6>", "ap_fixed<30,3>", 4)


def test_accum_bits_bounds_every_input_and_measures_the_data():
    w = torch.tensor([[3.0, -2.0], [1.0, 1.0]])
    # ap_fixed<4,4>: codes -8..=7; channel 0 spans -38..=37 (7 bits), channel 1 -16..=14 (5).
    assert fixed.accum_bits(w, "ap_fixed<4,4>").tolist() == [7, 5]
    assert fixed.accum_bits(w.numpy(), "ap_fixed<4,4>").tolist() == [7, 5]
    # Real weights cast to their type first: 0.3 in ap_fixed<4,1> is code 2 (floor of 2.4).
    assert fixed.accum_bits(torch.tensor([[0.3, -0.3]]), "ap_fixed<4,4>", "ap_fixed<4,1>").tolist() == [7]
    g = torch.Generator().manual_seed(3)
    wr = torch.randint(-20, 21, (8, 30), generator=g).double()
    x = torch.randn(100, 30, generator=g, dtype=torch.float64) * 40
    bound = fixed.accum_bits(wr, "ap_fixed<8,8>")
    used = fixed.accum_bits(wr, "ap_fixed<8,8>", x=x)
    assert bool((used <= bound).all()) and used.dtype == torch.int64
    with pytest.raises(ValueError, match="integer codes"):
        fixed.accum_bits(torch.tensor([[0.5]]), "ap_fixed<4,4>")


def test_convolutions_equal_hls4mls():
    """hls4ml's conv_2d_latency_cl with the buffer its own generator makes
    (scripts/hls4ml-conv-reference.py): every result's bits, strides and paddings, saturating
    and wrapping accumulators."""
    path = pathlib.Path(__file__).parent / "data" / "hls4ml_conv2d.json.gz"
    cases = json.loads(gzip.open(path, "rt").read())["cases"]
    checked = 0
    for case in cases:
        inp, wt, bs, acc, res = case["types"]
        x = torch.tensor(case["x"], dtype=torch.float64)
        w = torch.tensor(case["w"], dtype=torch.float64)
        b = torch.tensor(case["b"], dtype=torch.float64)
        y = fixed.conv2d(x, w, b, case["stride"], case["padding"], input=inp, weight=wt, bias=bs, accum=acc, result=res)
        want = [signed_code(v, res) * 2.0 ** -frac_of(res) for v in case["result_bits"]]
        assert y.flatten().tolist() == want, case["types"]
        checked += y.numel()
    assert checked == 886
    # A 1-D convolution is the 2-D one of height 1; shapes and kinds as torch's.
    g = torch.Generator().manual_seed(4)
    x1, w1 = torch.randn(2, 3, 9, generator=g), torch.randn(4, 3, 3, generator=g)
    kw = {"input": "ap_fixed<12,4>", "weight": "ap_fixed<8,2>"}
    y1 = fixed.conv1d(x1, w1, None, 2, 1, **kw)
    assert y1.shape == torch.nn.functional.conv1d(x1, w1, None, 2, 1).shape
    assert torch.equal(y1, fixed.conv2d(x1[:, :, None], w1[:, :, None], None, (1, 2), (0, 1), **kw)[:, :, 0])
    y2, counts = fixed.conv2d(x1[:, :, None].numpy(), w1[:, :, None].numpy(), None, 1, 0, return_overflow=True, **kw)
    assert isinstance(y2, np.ndarray) and counts["accumulations"].shape == (4,)


def test_a_model_runs_through_hls4mls_layers_with_its_configuration():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 24), torch.nn.ReLU(), torch.nn.Linear(24, 4))
    with torch.no_grad():  # weights on the grid of 8-bit types (hls4ml writes them exactly)
        for p in model.parameters():
            p.copy_(torch.round(p * 128) / 128)
    x = torch.randn(120, 16)
    config = fixed.hls4ml_config(model, x)
    assert set(config["LayerName"]) == {"input_1", "_0", "_1", "_2"}
    y, report = fixed.emulate(model, config, x, target=model(x).argmax(-1))
    # The configuration's accumulators are the widths the weights need: nothing overflows.
    for name in ("_0", "_2"):
        assert sum(report["layers"][name]["overflows"]["accumulations"]) == 0
    assert report["agreement"] > 0.9 and report["float_accuracy"] == 1.0
    # Layer by layer with the functions themselves: the same bits.
    p = {k: v["Precision"] for k, v in config["LayerName"].items()}
    one = torch.ones(1, 1, dtype=torch.float64)

    def cast(v, kind):
        return fixed.linear(v.reshape(-1, 1), one, input=kind, weight="ap_fixed<2,2>", result=kind).reshape(v.shape)

    h = cast(x.double(), p["input_1"]["result"])
    layers = [model[0], model[2]]
    types = [p["_0"], p["_2"]]
    inputs = [p["input_1"]["result"], p["_1"]["result"]]
    for i, (layer, t, kind) in enumerate(zip(layers, types, inputs)):
        h = fixed.linear(h, layer.weight.detach().double(), layer.bias.detach().double(), input=kind, **t)
        if i == 0:
            h = cast(torch.clamp(h, min=0.0), p["_1"]["result"])
    assert torch.equal(h, y)
    # A narrow saturating accumulator: its overflows, per channel.
    narrow = {
        "Model": {"Precision": "fixed<16,6>"},
        "LayerName": {"_0": {"Precision": {"accum": "fixed<6,1,AP_TRN,AP_SAT>"}}},
    }
    _, bad = fixed.emulate(model, narrow, x)
    counts = bad["layers"]["_0"]["overflows"]
    assert len(counts["accumulations"]) == 24 and sum(counts["accumulations"]) + sum(counts["products"]) > 0
    # Convolutions, flatten; and what the path does not cover.
    conv = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(48, 2)
    )
    xc = torch.randn(5, 2, 4, 4)
    yc, rc = fixed.emulate(conv, fixed.hls4ml_config(conv, xc), xc)
    assert yc.shape == (5, 2) and "_0" in rc["layers"]
    # Dropout is the identity at inference (hls4ml's converter skips it).
    dropped = torch.nn.Sequential(model[0], torch.nn.Dropout(0.5), model[1], model[2]).eval()
    assert torch.equal(
        fixed.emulate(dropped, {"LayerName": {"_0": config["LayerName"]["_0"]}}, x)[0],
        fixed.emulate(model, {"LayerName": {"_0": config["LayerName"]["_0"]}}, x)[0],
    )
    with pytest.raises(NotImplementedError, match="not covered"):
        fixed.emulate(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh()), {}, torch.randn(2, 4))
    with pytest.raises(TypeError, match="config"):
        fixed.emulate(model, "ap_fixed<16,6>", x)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda m, x: fixed.hls4ml_config(m, x, bits=1), ValueError),
        (lambda m, x: fixed.hls4ml_config(m, x, bits=True), ValueError),
        (lambda m, x: fixed.hls4ml_config(m, x, weight_bits=2.5), ValueError),
        (lambda m, x: fixed.hls4ml_config(m, x.int()), TypeError),
        (lambda m, x: fixed.hls4ml_config("model", x), TypeError),
        (lambda m, x: fixed.emulate(m, {"LayerName": []}, x), TypeError),
        (lambda m, x: fixed.emulate(m, {"Model": {"Precision": 16}}, x), TypeError),
        (lambda m, x: fixed.emulate(m, {"LayerName": {"_0": {"Precision": 3}}}, x), TypeError),
        (lambda m, x: fixed.emulate(m, {"LayerName": {"_0": {"Precision": "ap_fixed<0,0>"}}}, x), ValueError),
        (lambda m, x: fixed.emulate(m, {}, x.numpy()), TypeError),
        (lambda m, x: fixed.emulate(m, {}, x[:, :3]), RuntimeError),
    ],
)
def test_the_model_level_refuses_bad_arguments(call, error):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    with pytest.raises(error):
        call(model, torch.randn(5, 4))


def test_the_bias_never_overflows_the_chosen_accumulator():
    # A bias far larger than what the products can sum to: the accumulator holds it.
    layer = torch.nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.fill_(0.01)
        layer.bias.copy_(torch.tensor([100.0, -90.0]))
    model = torch.nn.Sequential(layer)
    x = torch.rand(50, 3)
    _, report = fixed.emulate(model, fixed.hls4ml_config(model, x), x)
    assert report["agreement"] == 1.0
    assert sum(report["layers"]["_0"]["overflows"]["accumulations"]) == 0


class _Layers(torch.nn.Module):
    """hls4ml's convolution and dense layer, as a model calls them."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)
        self.fc = torch.nn.Linear(48, 4)

    def forward(self, x):
        kinds = dict(input="ap_fixed<12,5>", weight="ap_fixed<8,2>", accum="ap_fixed<14,6,AP_RND,AP_SAT>")
        h = fixed.conv2d(x, self.conv.weight, self.conv.bias, 1, 1, result="ap_ufixed<12,5,AP_RND,AP_SAT>", **kinds)
        kinds["accum"] = "ap_fixed<10,2,AP_RND,AP_SAT>"
        y, counts = fixed.linear(h.flatten(1), self.fc.weight, self.fc.bias, return_overflow=True, **kinds)
        return y, counts["accumulations"]


def test_the_layers_export_and_compile_as_one_registered_operation_each(tmp_path):
    import subprocess
    import sys

    torch.manual_seed(3)
    model = _Layers().eval()
    with torch.no_grad():
        model.fc.weight.mul_(8)
    x = torch.randn(2, 2, 4, 4) * 3
    want = model(x)
    assert int(want[1].sum()) > 0  # the saturating accumulator overflows here
    program = torch.export.export(model, (x,))
    assert str(program.graph_module.code).count("xbquant.fixed_dense") == 2
    path = tmp_path / "layers.pt2"
    torch.export.save(program, path)
    torch.save((x, want), tmp_path / "io.pt")
    code = (
        "import torch, xbquant.fixed\n"
        f"program = torch.export.load({str(path)!r})\n"
        f"x, want = torch.load({str(tmp_path / 'io.pt')!r})\n"
        "got = program.module()(x)\n"
        "assert all(torch.equal(a, b) for a, b in zip(got, want))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    got = torch.compile(model, fullgraph=True, backend="aot_eager")(x)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    # Traced, the input count is a 0-d tensor; eager, an int.
    _, counts = torch.compile(
        lambda v: fixed.linear(
            v, model.fc.weight, None, input="ap_fixed<4,2>", weight="ap_fixed<8,2>", return_overflow=True
        ),
        fullgraph=True,
        backend="aot_eager",
    )(x.reshape(1, 64)[:, :48] * 10)
    _, eager = fixed.linear(
        x.reshape(1, 64)[:, :48] * 10,
        model.fc.weight,
        None,
        input="ap_fixed<4,2>",
        weight="ap_fixed<8,2>",
        return_overflow=True,
    )
    assert int(counts["inputs"]) == eager["inputs"] > 0


def test_the_model_level_reads_the_configuration_as_hls4ml_does():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.031249, 1.0, 0.0], [0.5, -0.25, 0.0]]))
    x = torch.tensor([[1.0, 0.0, 0.0], [2.0, 1.0, 3.0]])
    # hls4ml writes the weights as decimals with as many places as fractional bits: 0.031249 is
    # written 0.03125, which truncates to itself (a direct cast gives 0).
    config = {"Model": {"Precision": "ap_fixed<16,6>"}, "LayerName": {"_0": {"Precision": {"weight": "fixed<8,3>"}}}}
    y, report = fixed.emulate(model, config, x)
    assert y[0, 0] == 0.03125
    # No accumulator given: the model's default, as in hls4ml; the result 'auto'... not given
    # either: the model's default too.
    assert report["layers"]["_0"]["types"]["accum"] == "ap_fixed<16,6>"
    # 'auto': the accumulator and result that hold every sum of 3 products and a bias.
    auto = {
        "Model": {"Precision": {"default": "ap_fixed<16,6>"}},
        "LayerName": {"_0": {"Precision": {"accum": "auto", "result": "auto"}}},
    }
    _, r = fixed.emulate(model, auto, x)
    want = fixed.accum_type("ap_fixed<16,6>", "ap_fixed<16,6>", 3, "ap_fixed<16,6>")
    assert r["layers"]["_0"]["types"]["accum"] == r["layers"]["_0"]["types"]["result"] == want
    # ... capped by the model's maximum.
    capped = {
        "Model": {"Precision": {"default": "ap_fixed<16,6>", "maximum": "ap_fixed<24,10>"}},
        "LayerName": auto["LayerName"],
    }
    _, r = fixed.emulate(model, capped, x)
    assert r["layers"]["_0"]["types"]["accum"] == "ap_fixed<24,10>"
    # By class (LayerType), by the layer's own default, and hls4ml's integer spellings.
    by_type = {
        "LayerType": {"Dense": {"Precision": {"weight": "ap_fixed<4,1>", "accum": "int<12>", "result": "ap_int<12>"}}}
    }
    _, r = fixed.emulate(model, by_type, x)
    assert r["layers"]["_0"]["types"]["weight"] == "ap_fixed<4,1>"
    assert r["layers"]["_0"]["types"]["accum"] == "ap_fixed<12,12>"
    _, r = fixed.emulate(model, {"LayerName": {"_0": {"Precision": "ap_fixed<10,4>"}}}, x)
    assert set(r["layers"]["_0"]["types"].values()) == {"ap_fixed<10,4>", "ap_fixed<16,6>"}
    with pytest.raises(ValueError, match="auto"):
        fixed.emulate(model, {"Model": {"Precision": "auto"}}, x)


def test_types_may_be_xbquant_schemes():
    import xbquant

    x, w = torch.randn(4, 6) * 3, torch.randn(2, 6)
    wrap = xbquant.Scheme("fixed<8,4> overflow=wrap rounding=floor")
    assert torch.equal(
        fixed.linear(x, w, input=wrap, weight=xbquant.Scheme("fixed<8,6>")),
        fixed.linear(x, w, input="ap_fixed<8,4,AP_TRN,AP_WRAP>", weight="ap_fixed<8,2,AP_RND_CONV,AP_SAT_SYM>"),
    )
    assert fixed.accum_type(wrap, "ap_fixed<8,2>", 4) == fixed.accum_type("ap_fixed<8,4>", "ap_fixed<8,2>", 4)
    with pytest.raises(ValueError, match="input: e4m3fn has no HLS type"):
        fixed.linear(x, w, input=xbquant.Scheme("e4m3fn"), weight="ap_fixed<8,2>")
    with pytest.raises(ValueError, match="weight: .* has no HLS type"):
        fixed.linear(x, w, input=wrap, weight=xbquant.Scheme("fixed<8,4> group=axis:0 scale=pow2"))


def test_edge_shapes_and_sizes():
    kw = dict(input="ap_fixed<8,3>", weight="ap_fixed<8,3>")
    # No inputs per output: the accumulator is the bias alone (zero here).
    y = fixed.linear(torch.zeros(3, 0), torch.ones(2, 0), **kw)
    assert y.shape == (3, 2) and not y.any()
    assert fixed.linear(torch.zeros(0, 5, 4), torch.ones(2, 4), **kw).shape == (0, 5, 2)
    # A padding that would need terabytes of windows is a clear error, not an allocation.
    with pytest.raises(ValueError, match="windows and padded input would hold"):
        fixed.conv2d(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 1, 1), padding=10**6, **kw)
    with pytest.raises(ValueError, match="windows"):
        fixed.conv1d(torch.zeros(1, 1, 2), torch.ones(1, 1, 1), padding=2**40, **kw)
    with pytest.raises(ValueError, match="empty"):
        fixed.hls4ml_config(torch.nn.Sequential(torch.nn.Linear(3, 2)), torch.zeros(0, 3))
    # Widths of layers with no inputs: one bit (the zero accumulator), with and without data.
    assert fixed.accum_bits(torch.empty(2, 0), "ap_fixed<8,3>", "ap_fixed<8,3>").tolist() == [1, 1]
    assert fixed.accum_bits(torch.empty(2, 0), "ap_fixed<8,3>", "ap_fixed<8,3>", x=torch.empty(5, 0)).tolist() == [1, 1]
