"""The `qtorch` compatibility package (bindings/qtorch-compat): QPyTorch's import path backed by
xbquant, as XBTorch and QPyTorch's own examples use it; OptimLP, lower and sequential_lower."""

import pytest
import torch

import qtorch
import xbquant
from qtorch import BlockFloatingPoint, FixedPoint, FloatingPoint, Number
from qtorch.auto_low import lower, sequential_lower
from qtorch.optim import OptimLP
from qtorch.quant import Quantizer, block_quantize, fixed_point_quantize, float_quantize, quantizer


def test_it_is_ours():
    assert qtorch.XBQUANT is True
    assert isinstance(FixedPoint(8, 4), Number) and isinstance(FixedPoint(8, 4), xbquant.FixedPoint)
    assert repr(FloatingPoint(5, 2)) == "FloatingPoint (exponent=5, mantissa=2)"
    assert repr(BlockFloatingPoint(8)) == "BlockFloatingPoint (wl=8, dim=-1)"


def test_xbtorch_style_code_runs_unchanged():
    # As in XBTorch's wage_qtorch.py and deployment/base.py.
    x = torch.tensor([0.3, -0.7, 3.0], requires_grad=True)
    assert fixed_point_quantize(x, 4, 2, rounding="nearest").tolist() == [0.25, -0.75, 1.75]
    q = quantizer(forward_number=FixedPoint(wl=4, fl=2), backward_number=FixedPoint(wl=8, fl=1),
                  forward_rounding="nearest", backward_rounding="nearest")
    y = q(x)
    y.backward(torch.tensor([0.3, 0.6, 1.0]))
    assert y.tolist() == [0.25, -0.75, 1.75]
    assert x.grad.tolist() == [0.5, 0.5, 1.0]
    assert float_quantize(torch.tensor([0.3]), 2, 2, "nearest").item() == 0.25
    assert block_quantize(torch.tensor([0.3, 5.0]), 4, rounding="nearest").tolist() == [0.0, 5.0]
    net = torch.nn.Sequential(torch.nn.Identity(), Quantizer(FixedPoint(4, 2), forward_rounding="nearest"))
    assert net(torch.tensor([0.3])).item() == 0.25


def nearest(wl, fl):
    return quantizer(FixedPoint(wl, fl), forward_rounding="nearest")


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_optim_lp_sgd_follows_qpytorch(momentum):
    torch.manual_seed(0)
    w0 = torch.randn(6)
    grads = [torch.randn(6) for _ in range(3)]
    wq, gq, mq, aq = nearest(8, 3), nearest(8, 5), nearest(8, 4), nearest(16, 10)
    w = torch.nn.Parameter(w0.clone())
    opt = OptimLP(torch.optim.SGD([w], lr=0.1, momentum=momentum), weight_quant=wq,
                  grad_scaling=2.0, grad_quant=gq, momentum_quant=mq, acc_quant=aq)
    # The same steps by hand: scaled, quantized gradient; the step on the accumulator; the
    # accumulator and the weight quantized; the momentum buffer quantized.
    acc, buf = w0.clone(), None
    for g in grads:
        w.grad = g.clone()
        opt.step()
        d = gq(g * 2.0)
        if momentum:
            buf = d.clone() if buf is None else momentum * buf + d
            d = buf
        acc = aq(acc - 0.1 * d)
        if momentum:
            buf = mq(buf)
        assert torch.equal(w.data, wq(acc))
    assert "LP Optimizer" in repr(opt)


def test_optim_lp_adam_and_errors():
    w = torch.nn.Parameter(torch.ones(3))
    opt = OptimLP(torch.optim.Adam([w], lr=0.01), momentum_quant=nearest(8, 6))
    w.grad = torch.tensor([0.1, -0.2, 0.3])
    opt.step()
    state = opt.optim.state[w]
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(state[key], nearest(8, 6)(state[key]))
    with pytest.raises(TypeError):
        OptimLP(torch.optim.RMSprop([w]))
    with pytest.raises(ValueError):
        OptimLP(torch.optim.SGD([w], lr=0.1), grad_scaling=0)


def test_lower_and_sequential_lower():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    x = torch.randn(5, 4)
    fmt = FixedPoint(6, 2)
    q = nearest(6, 2)
    with torch.no_grad():
        want = q(net[2](net[1](q(net[0](x)))))
        low = sequential_lower(net, ["linear"], fmt, forward_rounding="nearest")
        assert isinstance(net[0], torch.nn.Linear)  # the original is untouched
        assert torch.equal(low(x), want)
        lower(net, ["linear"], fmt, forward_rounding="nearest")
        assert torch.equal(net(x), want)
    with pytest.raises(ValueError, match="layer type"):
        lower(net, ["attention"])
