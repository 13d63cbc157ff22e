"""The invariants of QPyTorch's own test suite (its `test/` folder: backward, clamp, stochastic,
relation, auto_low), checked here on CPU against the `qtorch` companion with tests of our own.

One of its tests asserts a defect of its own past, not the kernels of QPyTorch 0.3.0:
`test_clamp.py::test_float` expects the largest value `2**(2**(exp-1)) * (1 - 2**(-man-1))` (the
IEEE largest value) and `2**(-50)` to become the smallest normal value. QPyTorch 0.3.0 reserves no
exponent for infinities (its largest value is one binade higher: `float_quantize` of `2**50` with
`exp=5, man=10` gives 131008, not 65504) and has subnormals (tiny values round to 0 or a
subnormal). We follow the 0.3.0 kernels, checked against their outputs in the core's tests;
`test_float_clamping` below asserts those values.
"""

import torch

from qtorch import BlockFloatingPoint, FixedPoint, FloatingPoint
from qtorch.quant import block_quantize, fixed_point_quantize, float_quantize, quantizer


def mean_of_draws(a, quant, n):
    total = torch.zeros_like(a, dtype=torch.float64)
    for _ in range(n):
        total += quant(a).double()
    return total / n


def test_backward_fixed_with_and_without_clamping():
    number = FixedPoint(wl=5, fl=4)
    t_max = 2 ** (5 - 4 - 1) - 2**-4
    a = torch.linspace(-1, t_max, steps=100, requires_grad=True)
    q = quantizer(number, number, "nearest", "nearest")
    q(a).sum().backward()
    assert torch.equal(a.grad, torch.full_like(a, t_max))  # the gradient 1 saturates
    a = torch.tensor([-1.0, -0.6, 0.0, 1.0], requires_grad=True)
    q = quantizer(number, number, "nearest", "nearest", clamping_grad_zero=True)
    q(a).sum().backward()
    assert a.grad.tolist() == [t_max, t_max, t_max, 0.0]  # 1.0 overflowed in the forward pass


def test_backward_clamp_zero_matches_a_hand_written_rule():
    # Symmetric 4-bit codes of step 1/8: forward rounds, clamps to +-7/8 and masks what it
    # clamped; backward rounds the gradient the same way and zeroes the masked elements.
    number = FixedPoint(wl=4, fl=3, clamp=True, symmetric=True)
    q = quantizer(number, number, "nearest", "nearest", clamping_grad_zero=True)
    x = torch.linspace(-2, 2, steps=10, requires_grad=True)
    q(x).sum().backward()
    overflowed = (torch.round(x.detach() * 8).abs() > 7)
    want = torch.where(overflowed, torch.zeros_like(x), torch.full_like(x, 7 / 8))
    assert torch.equal(x.grad, want)


def test_backward_block_and_float():
    for number in (BlockFloatingPoint(wl=5), FloatingPoint(exp=3, man=5)):
        a = torch.linspace(-0.9, 0.9, steps=100, requires_grad=True)
        quantizer(number, number, "nearest", "nearest")(a).sum().backward()
        assert torch.equal(a.grad, torch.ones_like(a))


def test_fixed_clamping():
    t_min, t_max = -1.0, 1 - 2**-4
    a = torch.linspace(-2, 2, steps=100)
    for r in ("stochastic", "nearest"):
        c = fixed_point_quantize(a, wl=5, fl=4, clamp=True, rounding=r)
        assert (c.min().item(), c.max().item()) == (t_min, t_max)
        u = fixed_point_quantize(a, wl=5, fl=4, clamp=False, rounding=r)
        assert u.max().item() > t_max and u.min().item() < t_min


def test_float_clamping():
    for exp, man in [(6, 9), (5, 10), (5, 2)]:
        top = (2 - 2.0**-man) * 2.0 ** (2 ** (exp - 1))  # QPyTorch 0.3.0: no exponent reserved
        for r in ("stochastic", "nearest"):
            q = float_quantize(torch.tensor([2.0**50, -(2.0**35), 2.0**-50]), exp=exp, man=man, rounding=r)
            assert q[0].item() == top and q[1].item() == -top
            assert q[2].item() in (0.0, 2.0 ** (2 - 2 ** (exp - 1) - man))  # 0 or the smallest subnormal


def test_stochastic_rounding_is_unbiased():
    torch.manual_seed(0)
    a = torch.linspace(-0.9, 0.9, steps=100)
    mean = mean_of_draws(a, lambda x: fixed_point_quantize(x, wl=7, fl=6), 2000)
    assert ((mean - a.double()) ** 2).mean() < 1e-6
    q = quantizer(FixedPoint(7, 6), forward_rounding="stochastic")
    assert ((mean_of_draws(a, q, 2000) - a.double()) ** 2).mean() < 1e-6
    b = torch.rand(10, 10, 10)
    for dim in (-1, 0, 1):
        mean = mean_of_draws(b, lambda x: block_quantize(x, wl=6, dim=dim), 2000)
        assert ((mean - b.double()) ** 2).mean() < 1e-4
    c = torch.rand(100)
    mean = mean_of_draws(c, lambda x: float_quantize(x, exp=6, man=5), 2000)
    assert ((mean - c.double()) ** 2).mean() < 1e-6


def test_relations_between_formats():
    # A block whose largest magnitude is below 1 is the fixed-point format fl = wl - 1 (without
    # its most negative code, which the range below never reaches).
    for wl, fl in [(3, 2), (5, 4)]:
        t_max = 1 - 2.0**-fl
        x = torch.linspace(-t_max, t_max, steps=1000)
        fixed = fixed_point_quantize(x, wl=wl, fl=fl, rounding="nearest")
        assert torch.equal(block_quantize(x, wl=wl, rounding="nearest"), fixed)
    # e5m10 rounded to nearest is the half-precision cast (for values in half's range).
    a = torch.rand(10_000)
    assert torch.equal(float_quantize(a, exp=5, man=10, rounding="nearest"), a.half().float())
