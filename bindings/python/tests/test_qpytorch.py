"""The QPyTorch drop-in: fixed_point_quantize, FixedPoint and quantizer."""

import inspect

import pytest
import torch
from conftest import assert_same, sample

import xbquant
from xbquant import FixedPoint, fixed_point_quantize, quantizer
from xbquant.quantizers import fixed_point_quantize_wrapper


def test_signatures_and_defaults_are_qpytorchs():
    sig = inspect.signature(fixed_point_quantize)
    positional = [p for p in sig.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert [p.name for p in positional] == ["x", "wl", "fl", "clamp", "symmetric", "rounding"]
    assert [p.default for p in positional[3:]] == [True, False, "stochastic"]
    sig = inspect.signature(FixedPoint)
    positional = [p for p in sig.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert [(p.name, p.default) for p in positional[2:]] == [("clamp", True), ("symmetric", False)]
    sig = inspect.signature(quantizer)
    positional = [p for p in sig.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert [(p.name, p.default) for p in positional] == [
        ("forward_number", None),
        ("backward_number", None),
        ("forward_rounding", "stochastic"),
        ("backward_rounding", "stochastic"),
        ("clamping_grad_zero", False),
        ("backward_hooks", []),
    ]


def test_flags_map_onto_the_overflow_modes():
    x = torch.tensor([-2.375, -2.0, 0.375, 2.5, 9.0])
    q = lambda **kw: fixed_point_quantize(x, 4, 2, rounding="nearest", **kw).tolist()  # noqa: E731
    assert q() == [-2.0, -2.0, 0.5, 1.75, 1.75]
    assert q(symmetric=True) == [-1.75, -1.75, 0.5, 1.75, 1.75]
    assert q(clamp=False) == [-2.5, -2.0, 0.5, 2.5, 9.0]
    # The hardware modes as keyword arguments (SEMANTICS.md, section 9, floor rounding).
    f = lambda **kw: fixed_point_quantize(x, 4, 2, rounding="floor", **kw).tolist()  # noqa: E731
    assert f(overflow="wrap") == [1.5, -2.0, 0.25, -1.5, 1.0]
    assert f(overflow="wrap", sat_bits=1) == [-0.5, -2.0, 0.25, 0.5, 1.0]
    assert f(overflow="wrap-sign-magnitude") == [-1.75, -2.0, 0.25, 1.25, 1.0]
    assert f(overflow="saturate-zero") == [0.0, -2.0, 0.25, 0.0, 0.0]
    assert f(overflow="AP_SAT_SYM") == [-1.75, -1.75, 0.25, 1.75, 1.75]
    unsigned = fixed_point_quantize(torch.tensor([-1.0, 0.3, 5.0]), 4, 2, rounding="nearest", signed=False)
    assert unsigned.tolist() == [0.0, 0.25, 3.75]


def test_default_rounding_is_stochastic_and_seeded_by_torch():
    x = torch.full((10000,), 0.3)
    torch.manual_seed(5)
    a = fixed_point_quantize(x, 8, 2)
    b = fixed_point_quantize(x, 8, 2)
    torch.manual_seed(5)
    a2 = fixed_point_quantize(x, 8, 2)
    assert torch.equal(a, a2)  # torch.manual_seed repeats a run
    assert not torch.equal(a, b)  # every call draws new noise
    assert set(a.unique().tolist()) == {0.25, 0.5}
    # E[q] = 0.3 exactly; standard error of the mean is 0.0011.
    assert abs(a.mean().item() - 0.3) < 0.005
    # An explicit seed repeats whatever torch's generator says.
    s1 = fixed_point_quantize(x, 8, 2, seed=123)
    torch.manual_seed(99)
    assert torch.equal(s1, fixed_point_quantize(x, 8, 2, seed=123))
    assert not torch.equal(s1, fixed_point_quantize(x, 8, 2, seed=124))


def test_stochastic_rounding_has_no_qpytorch_defects():
    # On-grid values never move, +0.0 stays +0.0, large magnitudes are unbiased.
    grid = torch.arange(-64, 64, dtype=torch.float32) / 8
    for _ in range(5):
        assert torch.equal(fixed_point_quantize(grid, 8, 3), grid)
    zero = fixed_point_quantize(torch.zeros(1000), 8, 3)
    assert not torch.signbit(zero).any()
    big = torch.full((20000,), 2.0**20 + 0.25, dtype=torch.float64)
    q = fixed_point_quantize(big, 32, 0, clamp=False)
    assert set(q.unique().tolist()) == {2.0**20, 2.0**20 + 1}
    assert abs(q.mean().item() - (2.0**20 + 0.25)) < 0.02


def test_fixed_point_number_class():
    n = FixedPoint(8, 4)
    assert (n.wl, n.fl, n.clamp, n.symmetric) == (8, 4, True, False)
    assert repr(n) == "FixedPoint (wl=8, fl=4)"
    assert n == FixedPoint(8, 4) and n != FixedPoint(8, 4, symmetric=True)
    assert FixedPoint(8, 4, clamp=False).overflow == "unbounded"
    assert FixedPoint(8, 4, overflow="wrap", sat_bits=2).overflow == "wrap:2"
    with pytest.raises(ValueError):
        FixedPoint(0, 4)
    with pytest.raises(ValueError):
        FixedPoint(8, 4, overflow="bounce")


def test_quantizer_forward_and_straight_through_backward():
    q = quantizer(FixedPoint(4, 2), forward_rounding="nearest")
    x = torch.tensor([0.3, -1.1, 5.0], requires_grad=True)
    y = q(x)
    assert y.tolist() == [0.25, -1.0, 1.75]
    upstream = torch.tensor([0.1, 0.2, 0.3])
    y.backward(upstream)
    assert torch.equal(x.grad, upstream)


def test_quantizer_clamping_grad_zero():
    def grad(backward_number, **options):
        q = quantizer(FixedPoint(4, 2), backward_number, forward_rounding="nearest",
                      backward_rounding="nearest", clamping_grad_zero=True, **options)
        x = torch.tensor([0.3, 1.8, -2.0, -2.2, float("nan")], requires_grad=True)
        q(x).backward(torch.ones(5))
        return x.grad.tolist()

    # 1.8 rounds to code 7 (in range); -2.2 rounds to code -9 (overflows); NaN never counts.
    assert grad(FixedPoint(16, 8)) == [1.0, 1.0, 1.0, 0.0, 1.0]
    # QPyTorch applies the mask only with a backward number; the option applies it always.
    assert grad(None) == [1.0] * 5
    assert grad(None, always_apply_backward=True) == [1.0, 1.0, 1.0, 0.0, 1.0]


def test_quantizer_quantizes_the_gradient_and_runs_hooks():
    calls = []

    def hook(grad):
        calls.append(grad.clone())
        return grad * 2

    def run(**options):
        q = quantizer(
            forward_number=None,
            backward_number=FixedPoint(8, 2),
            backward_rounding="nearest",
            backward_hooks=[hook],
            **options,
        )
        x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = q(x)
        assert torch.equal(y, x.detach())  # no forward quantization
        y.backward(torch.tensor([0.3, -0.2, 100.0]))
        return x.grad.tolist()

    # QPyTorch runs the hooks only with clamping_grad_zero: rounded to steps of 0.25, clamped.
    assert run() == [0.25, -0.25, 31.75] and not calls
    # With it (and no forward number, so no mask), and with the option: doubled, then rounded.
    assert run(clamping_grad_zero=True) == [0.5, -0.5, 31.75] and len(calls) == 1
    assert run(always_apply_backward=True) == [0.5, -0.5, 31.75] and len(calls) == 2


def test_quantizer_accepts_qpytorch_like_numbers_and_rejects_others():
    class QtorchFixedPoint:
        def __init__(self, wl, fl, clamp=True, symmetric=False):
            self.wl, self.fl, self.clamp, self.symmetric = wl, fl, clamp, symmetric

    q = quantizer(QtorchFixedPoint(4, 2, symmetric=True), forward_rounding="nearest")
    assert q(torch.tensor([-5.0])).tolist() == [-1.75]

    class FloatingPoint:
        exp, man = 5, 2

    assert quantizer(FloatingPoint(), forward_rounding="nearest")(torch.tensor([0.3])).item() == 0.3125

    class Posit:
        nsize, es = 8, 1

    with pytest.raises(TypeError, match="number format"):
        quantizer(Posit())
    with pytest.raises(ValueError, match="rounding"):
        quantizer(FixedPoint(8, 4), forward_rounding="sideways")
    with pytest.raises(TypeError):
        quantizer(FixedPoint(8, 4), backward_hooks=[3])


def test_quantize_general_entry_point():
    x = sample(torch.float64, n=300)
    q, mask = xbquant.quantize(
        x, 6, 2, rounding="nearest-away", overflow="saturate", return_mask=True
    )
    assert mask.dtype == torch.bool and mask.shape == x.shape
    # Codes of wl 6 are -32..31; the mask marks the rounded codes outside them, never NaN.
    t = x * 4
    k = torch.sign(t) * torch.floor(t.abs() + 0.5)
    assert torch.equal(mask, (k > 31) | (k < -32))
    assert mask.any() and not mask.all()
    assert_same(q, xbquant.quantize(x, hls="ap_fixed<6,4,AP_RND_INF,AP_SAT>"), "hls")
    with pytest.raises(ValueError, match="not both"):
        xbquant.quantize(x, 6, 2, hls="ap_fixed<6,4>")
    with pytest.raises(TypeError):
        xbquant.quantize(x)


def test_defaults_of_every_entry_point():
    """The general entry point agrees with Rust's `FixedPoint::new` and the command line
    (symmetric saturation, nearest); the drop-ins keep their originals' defaults."""
    x = torch.tensor([-2.375, 0.375, 2.5, -0.125])
    assert xbquant.quantize(x, 4, 2).tolist() == [-1.75, 0.5, 1.75, 0.0]
    assert xbquant.quantize(x, 4, 2, overflow="saturate").tolist() == [-2.0, 0.5, 1.75, 0.0]
    # XBTorch's wrapper: symmetric, nearest.
    assert fixed_point_quantize_wrapper(x, 4, 2).tolist() == [-1.75, 0.5, 1.75, 0.0]
    # QPyTorch's: clamp=True, symmetric=False, stochastic (every result is one of the two
    # neighbours, and -2.375 saturates to -2.0, the most negative code).
    torch.manual_seed(0)
    q = xbquant.fixed_point_quantize(x, 4, 2)
    assert q[0].item() == -2.0 and q[1].item() in (0.25, 0.5) and q[2].item() == 1.75
    assert FixedPoint(4, 2).overflow == "saturate"
    # An HLS type keeps the HLS defaults: AP_TRN, AP_WRAP.
    assert xbquant.quantize(x, hls="ap_fixed<4,2>").tolist() == [1.5, 0.25, -1.5, -0.25]
