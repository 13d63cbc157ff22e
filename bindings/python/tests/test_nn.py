"""`xbquant.nn`: the quantizer's values against xbquant's kernels bit for bit, LSQ's and the
power-of-two step's gradients against their formulas, the layers against `torch.nn`'s,
training, serialization and compilation."""

import copy
import io
import math
import pickle

import pytest
import torch

import xbquant
from xbquant.nn import Quant, QuantAct, QuantConv1d, QuantConv2d, QuantLinear


def data(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 3
    x.view(-1)[:4] = torch.tensor([0.0, -0.0, 1e-30, 7.5], dtype=torch.float64)
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_fixed_steps_are_the_kernels_scaled_fixed_point(dtype):
    x = data(6, 50, dtype=dtype)
    for bits, signed, narrow in [(4, True, True), (8, True, False), (3, False, True)]:
        overflow = "saturate-symmetric" if signed and narrow else "saturate"
        q = Quant(bits, scale=0.37, signed=signed, narrow=narrow)
        want = xbquant.quantize(x, bits, 0, scale=0.37, signed=signed, overflow=overflow)
        assert torch.equal(q(x), want)
        steps = [0.05 + 0.1 * i for i in range(6)]
        q = Quant(bits, channels=6, scale=steps, signed=signed, narrow=narrow)
        want = xbquant.quantize(x, bits, 0, scale=steps, axis=0, signed=signed, overflow=overflow)
        assert torch.equal(q(x), want)
        # A power-of-two step 2**-fl is fixed point of fractional length fl.
        q = Quant(bits, scale=2.0**-3, signed=signed, narrow=narrow)
        assert torch.equal(q(x), xbquant.quantize(x, bits, 3, signed=signed, overflow=overflow))


def test_data_chosen_steps():
    x = data(6, 50)
    # pow2: the fractional length "auto" chooses, per channel; learned-pow2 starts there.
    for rule in ("pow2", "learned-pow2"):
        q = Quant(5, channels=6, scale=rule)
        assert torch.equal(q(x), xbquant.quantize(x, 5, "auto", axis=0))
    q = Quant(5, scale="pow2")
    assert torch.equal(q(x), xbquant.quantize(x, 5, "auto"))
    # absmax: each channel's largest magnitude is the largest code.
    q = Quant(6, channels=6)
    codes = q.codes(x)
    assert torch.equal(codes, codes.round())
    assert codes.abs().amax(dim=1).tolist() == [31.0] * 6
    assert torch.equal(q(x), codes * (x.abs().amax(dim=1, keepdim=True) / 31))
    # A group of zeros, and values that are not finite, leave the steps finite.
    z = x.clone()
    z[2] = 0.0
    z[3, 5] = float("inf")
    z[4, 7] = float("nan")
    s = Quant(6, channels=6).step(z)
    assert bool(torch.isfinite(s).all()) and s[2] == 1.0
    assert s[3] == x[3][torch.arange(50) != 5].abs().max() / 31


def test_float_formats_saturate_at_their_largest_value():
    x = data(4, 64)
    q = Quant(float_format="e4m3fn", scale=0.01)
    y = (x / 0.01).clamp(-448.0, 448.0)
    assert torch.equal(q(x), xbquant.quantize_float(y, "e4m3fn") * 0.01)
    q = Quant(float_format="e5m2", channels=4)  # absmax: the largest magnitude maps to 57344
    assert q.codes(x).abs().amax(dim=1).tolist() == [57344.0] * 4


def test_lsq_gradient_is_the_papers():
    x = data(8, 30, dtype=torch.float64).requires_grad_()
    for channels in (None, 8):
        q = Quant(4, channels=channels, scale="learned").double()
        y = q(x)
        w = torch.linspace(-1.0, 2.0, y.numel(), dtype=torch.float64).reshape(y.shape)
        (y * w).sum().backward()
        s = q.scale.detach() if channels is None else q.scale.detach()[:, None]
        v = x.detach() / s
        inside = (v >= q.lo) & (v <= q.hi)
        # LSQ: d q / d s = round(x/s) - x/s within the range, -Qn or Qp outside, times
        # g = 1 / sqrt(N Qp); d q / d x = 1 within the range, 0 outside.
        per = torch.where(inside, torch.round(v) - v, v.clamp(q.lo, q.hi)) * w
        n = x.numel() if channels is None else x.shape[1]
        want = (per.sum() if channels is None else per.sum(dim=1)) / math.sqrt(n * q.hi)
        assert torch.allclose(q.scale.grad, want, rtol=1e-12, atol=1e-15)
        # (w / s) * s: within a rounding of w.
        assert torch.equal(x.grad != 0, inside & (w != 0))
        assert torch.allclose(x.grad, torch.where(inside, w, torch.zeros_like(w)), rtol=1e-15, atol=0)
        x.grad = None
    # The initial step is 2 mean|x| / sqrt(Qp).
    q = Quant(4, scale="learned", grad_scale=False).double()
    q(x)
    assert torch.allclose(q.scale.detach(), 2 * x.detach().abs().mean() / math.sqrt(7), rtol=1e-15)


def test_power_of_two_step_gradient():
    x = data(5, 40, dtype=torch.float64).requires_grad_()
    q = Quant(6, channels=5, scale="learned-pow2").double()
    q(x)
    with torch.no_grad():
        q.log2_scale.add_(0.3)  # between powers of two: the step is 2**ceil(t)
    y = q(x)
    s = torch.exp2(torch.ceil(q.log2_scale.detach()))
    assert torch.equal(q.step(x).detach(), s)
    y.sum().backward()
    v = x.detach() / s[:, None]
    inside = (v >= q.lo) & (v <= q.hi)
    ds = torch.where(inside, torch.round(v) - v, v.clamp(q.lo, q.hi)).sum(dim=1)
    assert torch.allclose(q.log2_scale.grad, ds * s * math.log(2.0), rtol=1e-12)
    assert torch.equal(y, xbquant.quantize(x.detach(), 6, (-torch.log2(s)).long().tolist(), axis=0))


def test_layers_are_torch_layers_with_quantized_weights():
    torch.manual_seed(0)
    layer = QuantLinear(7, 3)
    assert isinstance(layer, torch.nn.Linear) and list(layer.state_dict()) == ["weight", "bias"]
    x = data(4, 7)
    w = xbquant.quantize(layer.weight.detach(), 8, 0, scale=(layer.weight.detach().abs().amax(dim=1) / 127).tolist(), axis=0)
    assert torch.equal(layer(x), torch.nn.functional.linear(x, w, layer.bias))
    # A float layer's weights load into it.
    plain = torch.nn.Linear(7, 3)
    layer.load_state_dict(plain.state_dict())
    assert torch.equal(layer.weight, plain.weight)
    conv = QuantConv2d(3, 5, 3, padding=1, weight=4, input=8, output=Quant(6, scale=0.125))
    assert isinstance(conv, torch.nn.Conv2d)
    img = data(2, 3, 6, 6)
    y = conv(img)
    xq = conv.input_quant(img)
    wq = conv.weight_quant(conv.weight)
    assert torch.equal(y, conv.output_quant(torch.nn.functional.conv2d(xq, wq, conv.bias, padding=1)))
    assert set(conv.state_dict()) == {"weight", "bias", "input_quant.scale", "input_quant.initialized", "output_quant.fixed_step"}
    conv1 = QuantConv1d(2, 4, 3, weight=None, input=Quant(4, scale="pow2"))
    seq = data(3, 2, 9)
    want = torch.nn.functional.conv1d(xbquant.quantize(seq, 4, "auto"), conv1.weight, conv1.bias)
    assert torch.equal(conv1(seq), want)


def test_bad_arguments_are_named():
    for call, kind, word in [
        (lambda: Quant(1), ValueError, "bits"),
        (lambda: Quant(25), ValueError, "bits"),
        (lambda: Quant(8.5), ValueError, "bits"),
        (lambda: Quant("8"), TypeError, "bits"),
        (lambda: Quant(8, float_format="e4m3fn"), ValueError, "float_format"),
        (lambda: Quant(float_format="e9m99"), ValueError, "e9m99"),
        (lambda: Quant(8, scale="lsq"), ValueError, "scale"),
        (lambda: Quant(8, scale=0.0), ValueError, "scale"),
        (lambda: Quant(8, scale=float("nan")), ValueError, "scale"),
        (lambda: Quant(8, scale=[1.0, 2.0]), ValueError, "scale"),
        (lambda: Quant(8, scale=True), TypeError, "scale"),
        (lambda: Quant(8, channels=0), ValueError, "channels"),
        (lambda: Quant(8, rounding="up"), ValueError, "rounding"),
        (lambda: Quant(8, signed=1), TypeError, "signed"),
        (lambda: Quant(8, grad_scale="yes"), TypeError, "grad_scale"),
        (lambda: Quant(8)(torch.arange(4)), TypeError, "x"),
        (lambda: Quant(8)([1.0]), TypeError, "x"),
        (lambda: Quant(8, channels=3)(torch.zeros(4, 2)), ValueError, "channels"),
        (lambda: Quant(8, channels=3, axis=5)(torch.zeros(3, 2)), ValueError, "axis"),
        (lambda: Quant(8, scale="pow2").step(), ValueError, "x"),
        (lambda: QuantLinear(4, 2, weight=Quant(8, channels=3)), ValueError, "weight"),
        (lambda: QuantLinear(4, 2, weight="8"), TypeError, "weight"),
        (lambda: QuantLinear(4, 2, input=8.0), TypeError, "input"),
        (lambda: QuantConv2d(4, 2, 3, output=True), TypeError, "output"),
    ]:
        with pytest.raises(kind) as info:
            call()
        assert word in str(info.value), (word, str(info.value))


def digits_like(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, 12, generator=g) * 2
    labels = torch.randint(0, 4, (n,), generator=g)
    return centers[labels] + torch.randn(n, 12, generator=g), labels


@pytest.mark.parametrize("rule", ["learned", "learned-pow2"])
def test_learned_steps_train(rule):
    torch.manual_seed(1)
    x, labels = digits_like()
    model = torch.nn.Sequential(
        QuantLinear(12, 16, weight=Quant(3, channels=16, scale=rule), input=Quant(6, scale=rule)),
        torch.nn.ReLU(),
        QuantLinear(16, 4, weight=Quant(3, channels=4, scale=rule), input=Quant(6, signed=False, scale=rule)),
    )
    model(x)  # the first call sets the steps
    start = [p.detach().clone() for n, p in model.named_parameters() if "scale" in n]
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    first = None
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    moved = [not torch.equal(a, p) for a, (n, p) in zip(start, ((n, p) for n, p in model.named_parameters() if "scale" in n))]
    assert all(moved)
    accuracy = (model(x).argmax(1) == labels).float().mean().item()
    assert accuracy > 0.9


def every_module():
    torch.manual_seed(2)
    return [
        Quant(4, channels=3, scale="learned"),
        Quant(5, scale="learned-pow2"),
        Quant(float_format="e4m3fn", channels=3, axis=0, scale="absmax"),
        QuantAct(6, signed=False),
        QuantLinear(5, 3, input=8, output=Quant(8, scale=0.5)),
        QuantConv1d(3, 2, 2, weight=Quant(4, channels=2, scale="learned"), input=4),
        QuantConv2d(3, 2, 2, weight=Quant(4, channels=2, scale="learned-pow2")),
    ]


def module_input(module):
    if isinstance(module, QuantConv2d):
        return data(2, 3, 4, 4)
    if isinstance(module, QuantConv1d):
        return data(2, 3, 5)
    if isinstance(module, QuantLinear):
        return data(4, 5)
    return data(3, 10)


def test_every_module_pickles_deep_copies_and_round_trips_its_state():
    for module in every_module():
        x = module_input(module)
        want = module(x)  # the learned steps take their first values here
        for other in (pickle.loads(pickle.dumps(module)), copy.deepcopy(module)):
            assert torch.equal(other(x), want), module
        buffer = io.BytesIO()
        torch.save(module.state_dict(), buffer)
        buffer.seek(0)
        fresh = [m for m in every_module() if type(m) is type(module) and repr(m) == repr(module)][0]
        fresh.load_state_dict(torch.load(buffer))
        # Loaded steps are kept, not set again from the data.
        assert torch.equal(fresh(x * 3), module(x * 3)), module


def test_layers_compile_without_graph_breaks_forward_and_backward():
    torch._dynamo.reset()
    for module in every_module():
        x = module_input(module).requires_grad_()
        module(x)  # initialised outside the compiled calls
        compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
        want = module(x)
        got = compiled(x)
        assert torch.equal(got, want), module
        (gx,) = torch.autograd.grad(want.square().sum(), x)
        (cx,) = torch.autograd.grad(compiled(x).square().sum(), x)
        assert torch.equal(cx, gx), module
        assert torch._dynamo.explain(module)(x).graph_break_count == 0
