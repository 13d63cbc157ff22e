"""Everything a model holds pickles, deep-copies and round-trips: `quantizer(...)` callables,
the `Quantizer` module, `OptimLP`'s state, number formats and schemes."""

import copy
import io
import pickle

import torch

import xbquant
from xbquant import BlockFloatingPoint, FixedPoint, FloatingPoint, Scheme, quantizer
from xbquant.modules import Quantizer
from xbquant.optim import OptimLP


def double(grad):
    """A backward hook that pickles (a module-level function)."""
    return grad * 2


def forward_and_grad(q, x):
    x = x.clone().requires_grad_()
    y = q(x)
    (y * torch.arange(1.0, 1.0 + y.numel()).reshape(y.shape)).sum().backward()
    return y.detach(), x.grad


def test_quantizer_callables_pickle_and_deep_copy():
    x = torch.tensor([0.3, 5.0, -1.7, 0.02, -9.0])
    for q in [
        quantizer(FixedPoint(4, 2), FixedPoint(8, 4), "nearest", "nearest", clamping_grad_zero=True),
        quantizer(FixedPoint(6, 3), None, "nearest", "nearest", True, [double], always_apply_backward=True),
        quantizer(FloatingPoint(4, 3), FloatingPoint(5, 2), "nearest", "nearest"),
        quantizer(BlockFloatingPoint(6), BlockFloatingPoint(8), "nearest", "nearest"),
        quantizer(None, FixedPoint(8, 6), backward_rounding="nearest"),
    ]:
        want = forward_and_grad(q, x)
        for other in (pickle.loads(pickle.dumps(q)), copy.deepcopy(q)):
            got = forward_and_grad(other, x)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), repr(q)
    # Stochastic rounding still draws from torch's generator after a round trip.
    q = pickle.loads(pickle.dumps(quantizer(FixedPoint(4, 2), None)))
    torch.manual_seed(3)
    a = q(x)
    torch.manual_seed(3)
    assert torch.equal(a, q(x))


def test_modules_save_whole_and_round_trip():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 3),
        Quantizer(FixedPoint(6, 3), FixedPoint(8, 5), "nearest", "nearest"),
    )
    x = torch.randn(5, 4)
    want = model(x)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(loaded(x), want)
    assert torch.equal(copy.deepcopy(model)(x), want)
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 3), Quantizer(FixedPoint(6, 3), None, "nearest"))
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh(x), want)


def test_optimizer_state_round_trips_with_its_accumulators():
    def make():
        w = torch.nn.Parameter(torch.tensor([0.3, -0.6, 1.1]))
        q = quantizer(FixedPoint(8, 6), forward_rounding="nearest")
        sgd = torch.optim.SGD([w], lr=0.1, momentum=0.9)
        return w, OptimLP(sgd, weight_quant=q, momentum_quant=q, acc_quant=q)

    w, opt = make()
    for step in range(3):
        w.grad = torch.tensor([0.05, -0.2, 0.3]) * (step + 1)
        opt.step()
    state = opt.state_dict()
    assert len(state["weight_acc"]) == 1
    w2, opt2 = make()
    w2.data.copy_(w.data)
    opt2.load_state_dict(pickle.loads(pickle.dumps(state)))
    for o, p in ((opt, w), (opt2, w2)):
        p.grad = torch.tensor([0.1, 0.1, -0.1])
        o.step()
    assert torch.equal(w, w2)
    assert torch.equal(opt.weight_acc[w], opt2.weight_acc[w2])
    # The whole optimizer pickles too, its quantizers included.
    restored = pickle.loads(pickle.dumps(opt))
    assert restored.acc_quant is not None and restored.state_dict()["weight_acc"][0].shape == (3,)


def test_number_formats_and_schemes_pickle():
    for value in [
        FixedPoint(8, 4, overflow="wrap"),
        FloatingPoint(5, 2),
        BlockFloatingPoint(8, dim=0),
        Scheme("fixed<8,7> overflow=saturate-symmetric group=axis:1 range=percentile:99.9"),
    ]:
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value
    assert xbquant.quantize(torch.tensor([0.3]), scheme=pickle.loads(pickle.dumps(Scheme("fixed<4,2>")))).item() == 0.25
