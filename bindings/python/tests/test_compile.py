"""PyTorch 2: the public functions trace to one registered operation (`torch.ops.xbquant.quantize`,
a scheme's text form its argument), so `torch.compile(fullgraph=True)` gives the eager bits with no
graph break, `torch.export` saves a program a fresh process runs, and `vmap` and `torch.func.grad`
go through the operation's rules."""

import subprocess
import sys

import pytest
import torch

import xbquant
from xbquant import analog, fixed, qonnx
from xbquant.nn import Quant, QuantConv2d, QuantLinear
from xbquant.quantizers import FixedPointQuantF, fixed_point_quantize_wrapper

ADC = "fixed<6,5> overflow=saturate-symmetric group=axis:1 range=percentile:90"
# An analog tile's weights and parameters (noise on, an ADC that clips some outputs).
TILE_W = torch.randn(7, 12, generator=torch.Generator().manual_seed(9)) * 0.3
ANALOG_IO = analog.IOParameters(out_noise=0.05, out_bound=2.0, bound_management="none")
PCM = analog.PCMLikeNoise()
XBT = analog.XBTorchDevice(write_noise=2.0, read_noise=1.0, drift_coefficient=0.05, stuck_fraction=0.1)
SCHEME = xbquant.Scheme("fixed<6,3> overflow=wrap rounding=floor group=axis:0 scale=pow2")
# An hls4ml layer's weights, bias and types (a saturating accumulator that overflows here).
FIX_W = torch.randn(5, 12, generator=torch.Generator().manual_seed(11)) * 0.5
FIX_B = torch.randn(5, generator=torch.Generator().manual_seed(12))
FIX_TYPES = dict(input="ap_fixed<10,4>", weight="ap_fixed<8,2>", accum="ap_fixed<12,4,AP_RND,AP_SAT>", result="ap_fixed<10,5>")
FIX_K = torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(13)) * 0.3
# A scale per column, given as a tensor: one of them zero.
SCALES = torch.tensor([0.5, 1.0, 2.0, 0.0, 3.0, 0.25, 1.5, 1.0, 4.0, 0.75, 2.0, 1.0])


def _backend():
    """Inductor where this machine can build its C++ kernels, else AOT autograd with eager
    kernels: both trace the whole function to one graph (fullgraph) and run the registered
    operation as one node, which is what these tests check; inductor also compiles the torch
    operations around it."""
    import shutil

    return "inductor" if shutil.which("g++") or shutil.which("c++") else "aot_eager"


def compiled(f):
    return torch.compile(f, fullgraph=True, backend=_backend())


def every_op(x):
    return (
        xbquant.quantize(x, 8, 4),
        xbquant.quantize(x, 6, 2, rounding="stochastic", seed=5, overflow="wrap"),
        xbquant.quantize(x, 8, "auto", axis=0),
        xbquant.quantize(x, 5, [1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0], axis=1),
        xbquant.quantize(x, scheme=ADC),
        xbquant.quantize(x, hls="ap_fixed<7,3,AP_RND,AP_SAT_SYM>"),
        fixed_point_quantize_wrapper(x, 8, 3),
        xbquant.fixed_point_quantize(x, 8, 4, rounding="nearest"),
        xbquant.quantize_float(x, "e4m3fn"),
        xbquant.quantize_float(x, (5, 2), rounding="stochastic", seed=1),
        xbquant.adc(x, 6, axis=1, noise_std=0.02, seed=3),
        xbquant.dac(x, 4, range="percentile:75"),
        xbquant.quantize(x, 6, 4, scale="absmax", axis=0),
        xbquant.quantize(x, 6, 4, scale=2.5),
        xbquant.quantize_grid(x, 0.3, offset=-1.0, levels=9),
        xbquant.quantize_levels(x, [-2.0, -0.5, 0.0, 1.0, 4.0]),
        xbquant.block_quantize(x, 6, dim=0, rounding="nearest"),
        xbquant.block_quantize(x, 5, rounding="stochastic", block_size=4, seed=2),
        xbquant.float_quantize(x, 4, 3, rounding="nearest"),
        xbquant.quantize(x, scheme=SCHEME),
        xbquant.quantize_(x.clone(), 7, 3, rounding="nearest-away"),
        xbquant.quantize_(x.clone(), hls="ap_ufixed<6,2,AP_TRN,AP_WRAP>"),
        xbquant.quantize(x, 6, 2, scale=SCALES, axis=1),
        xbquant.quantize(x, 6, 2, scale=torch.tensor(1.7)),
        xbquant.adc(x, 5, range=SCALES, axis=1),
        xbquant.dac(x, 6, range=torch.tensor([2.5]), noise_std=0.05, seed=9),
        FixedPointQuantF.apply(x, 8, 3),
        xbquant.bit_slices(xbquant.quantize(x, 8, 0), 7, 2),
        xbquant.from_bit_slices(xbquant.bit_slices(xbquant.quantize(x, 8, 0).long(), 8, 3), 8, 3),
        analog.mvm(x, TILE_W, ANALOG_IO, tile_size=(5, 4), seed=3),
        analog.mvm(x, TILE_W, ANALOG_IO, seed=4, input_bits=4),
        *devices(x),
        *fixed_layers(x),
        qonnx.quant(x, 0.25, 1.0, 6, signed=True, narrow=True, rounding_mode="HALF_EVEN"),
        qonnx.bipolar_quant(x, 0.5),
        qonnx.trunc(xbquant.quantize(x, 8, 3), 0.125, 0.0, 8, 0.5, 6),
    )


def fixed_layers(x):
    """hls4ml's layers (each a registered operation): dense, with its counts, and convolutions."""
    y, counts = fixed.linear(x, FIX_W, FIX_B, **FIX_TYPES, return_overflow=True)
    images = x.reshape(2, 2, 8, 6)
    return (
        fixed.linear(x.double(), FIX_W.double(), None, input="ap_fixed<16,6>", weight="ap_fixed<8,3>"),
        y,
        torch.as_tensor(counts["inputs"]),
        *(counts[k] for k in ("weights", "biases", "products", "accumulations", "results")),
        fixed.conv2d(images, FIX_K, FIX_B[:3], (2, 1), 1, **FIX_TYPES),
        fixed.conv1d(x.reshape(4, 4, 12), FIX_K[:, :, 0].repeat(1, 2, 1), None, 2, 0, **FIX_TYPES),
        fixed.accum_bits(FIX_W, "ap_fixed<10,4>", "ap_fixed<8,2>"),
        fixed.accum_bits(FIX_W, "ap_fixed<10,4>", "ap_fixed<8,2>", x=x),
    )


def devices(x):
    """The device models' methods on conductances made from `x` (each a registered operation)."""
    g = x.abs() * 5 + 1
    out = []
    for dev in (PCM, XBT):
        prog = dev.apply_programming_noise_to_conductance(g, seed=1)
        nu = dev.generate_drift_coefficients(g, seed=2)
        halves, params = dev.convert_to_conductances(x)
        out += [prog, nu, dev.apply_drift_noise_to_conductance(prog, nu, 86_400.0, seed=3), *halves]
        out.append(dev.convert_back_to_weights(halves, params))
    return out


def test_compiled_full_graph_equals_eager():
    torch._dynamo.reset()
    x = torch.randn(16, 12, generator=torch.Generator().manual_seed(0)) * 3
    eager = every_op(x)
    got = compiled(every_op)(x)
    for k, (a, b) in enumerate(zip(eager, got)):
        assert torch.equal(a, b), k
    assert torch._dynamo.explain(every_op)(x).graph_break_count == 0


def gradients(f, x):
    x = x.clone().requires_grad_()
    weights = torch.arange(1.0, 1.0 + x.numel()).reshape(x.shape)
    (f(x) * weights).sum().backward()
    return x.grad


def test_compiled_backward_equals_eager():
    torch._dynamo.reset()
    x = torch.randn(8, 10, generator=torch.Generator().manual_seed(1)) * 4
    for f in (
        lambda v: xbquant.quantize(v, 6, 2),  # zero where the code overflowed
        lambda v: xbquant.quantize(v, scheme=ADC),  # zero where the ADC clipped
        lambda v: fixed_point_quantize_wrapper(v, 6, 2),  # straight through
        lambda v: xbquant.adc(v, 5, axis=1),
        lambda v: xbquant.adc(v, 5, range=SCALES[:10] * 4, axis=1),  # zero where it clipped
        lambda v: xbquant.quantize(v, 4, 1, scale=SCALES[:10], axis=1),
        lambda v: FixedPointQuantF.apply(v, 6, 2),
    ):
        want = gradients(f, x)
        got = gradients(compiled(f), x)
        assert torch.equal(got, want)


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(12, 6)
        self.quantized = QuantLinear(6, 5, weight=Quant(4, channels=5, scale="learned"), input=8)
        self.conv = QuantConv2d(1, 2, (1, 2), weight=Quant(5, channels=2, scale="learned-pow2"), output=6)
        self.tile = analog.AnalogLinear(8, 3, io=analog.IOParameters(out_noise=0.0))

    def forward(self, x):
        h = xbquant.quantize(x, 8, 4)
        h = fixed_point_quantize_wrapper(self.fc(h), 8, 5)
        h = self.quantized(xbquant.adc(h, 6, axis=1))
        h = xbquant.float_quantize(h, 5, 2, rounding="nearest")
        h = self.conv(xbquant.fixed_point_quantize(h, 8, 4, rounding="nearest").reshape(4, 1, 1, 5))
        return self.tile(h.reshape(4, 8))


def test_exported_programs_run_in_a_fresh_process(tmp_path):
    torch.manual_seed(0)
    model = Model().eval()
    x = torch.randn(4, 12)
    model(x)  # the learned steps take their first values
    program = torch.export.export(model, (x,))
    assert "xbquant.quantize" in str(program.graph_module.code)
    path = tmp_path / "model.pt2"
    torch.export.save(program, path)
    torch.save((x, model(x)), tmp_path / "io.pt")
    code = (
        "import sys, torch, xbquant\n"
        f"program = torch.export.load({str(path)!r})\n"
        f"x, want = torch.load({str(tmp_path / 'io.pt')!r})\n"
        "assert torch.equal(program.module()(x), want)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_vmap_and_grad_go_through_the_operation():
    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(2)) * 3
    # Each sample as its own call: per-tensor scales chosen per sample.
    got = torch.func.vmap(lambda v: xbquant.quantize(v, 8, "auto"))(x)
    want = torch.stack([xbquant.quantize(v, 8, "auto") for v in x])
    assert torch.equal(got, want)
    assert torch.equal(torch.func.vmap(lambda v: xbquant.quantize(v, 6, 2))(x), xbquant.quantize(x, 6, 2))
    # torch.func.grad: the straight-through gradient, zero where the code overflowed.
    wide = x * 3
    g = torch.func.grad(lambda v: xbquant.quantize(v, 6, 2).sum())(wide)
    _, overflowed = xbquant.quantize(wide, 6, 2, return_mask=True)
    assert bool(overflowed.any()) and torch.equal(g, (~overflowed).to(x.dtype))
    # ... and per sample, through vmap of grad.
    per_sample = torch.func.vmap(torch.func.grad(lambda v: xbquant.quantize(v, 6, 2).sum()))(wide)
    assert torch.equal(per_sample, g)
    # Noise under vmap is torch's choice to make: an error unless vmap is told its randomness.
    with pytest.raises(RuntimeError, match="randomness"):
        torch.func.vmap(lambda v: xbquant.quantize(v, 6, 2, rounding="stochastic"))(x)


def test_quantizer_functions_compile_forward_and_backward():
    torch._dynamo.reset()
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(4)) * 4
    for q in (
        xbquant.quantizer(xbquant.FixedPoint(4, 2), xbquant.FixedPoint(8, 4), "nearest", "nearest", True),
        xbquant.quantizer(xbquant.FloatingPoint(4, 3), xbquant.FloatingPoint(5, 2), "nearest", "nearest"),
        xbquant.quantizer(xbquant.BlockFloatingPoint(6, dim=0), None, "nearest", "nearest"),
    ):
        want = gradients(q, x), q(x)
        fast = compiled(q)
        got = gradients(fast, x), fast(x)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), repr(q)


def test_the_operation_refuses_bad_arguments_by_name():
    from xbquant import _ops

    op = _ops.register()
    x, seed = torch.ones(3), torch.zeros((), dtype=torch.int64)
    with pytest.raises(ValueError, match="scheme"):
        op(x, "bogus", seed, "clamp")
    with pytest.raises(ValueError, match="gradient"):
        op(x, "fixed<8,4>", seed, "sideways")
    with pytest.raises(TypeError, match="floating-point"):
        op(torch.ones(3, dtype=torch.int32), "fixed<8,4>", seed, "clamp")
    out, mask = op(torch.tensor([0.3, 9.0]), "fixed<8,4>", seed, "clamp")
    assert out.tolist() == [0.3125, 7.9375] and mask.tolist() == [False, True]


def test_every_tensor_op_takes_vmap_and_grad():
    """`vmap` of each public tensor function equals a loop of calls (each sample its own tensor:
    its own ranges and blocks), and `torch.func.grad` gives its eager gradient."""
    x = torch.randn(4, 6, 5, generator=torch.Generator().manual_seed(5)) * 3
    ops = {
        "quantize_grid": lambda v: xbquant.quantize_grid(v, 0.3, offset=-1.0, levels=9),
        "quantize_levels": lambda v: xbquant.quantize_levels(v, [-2.0, 0.0, 0.5, 3.0]),
        "adc": lambda v: xbquant.adc(v, 5, axis=1),
        "dac": lambda v: xbquant.dac(v, 4, range="percentile:80"),
        "quantize_float": lambda v: xbquant.quantize_float(v, "e4m3fn"),
        "float_quantize": lambda v: xbquant.float_quantize(v, 4, 2, rounding="nearest"),
        "block_quantize": lambda v: xbquant.block_quantize(v, 5, dim=0, rounding="nearest"),
        "wrapper": lambda v: fixed_point_quantize_wrapper(v, 6, 2),
        "fixed_point_quantize": lambda v: xbquant.fixed_point_quantize(v, 6, 2, rounding="nearest"),
        "quantize scheme": lambda v: xbquant.quantize(v, scheme=ADC),
        "FixedPointQuantF": lambda v: FixedPointQuantF.apply(v, 6, 2),
        "quantize_": lambda v: xbquant.quantize_(v.clone(), 6, 2),
        "tensor scale": lambda v: xbquant.quantize(v, 6, 2, scale=SCALES[:5], axis=1),
        "tensor range": lambda v: xbquant.adc(v, 6, range=SCALES[:5] * 3, axis=1),
        "analog mvm": lambda v: analog.mvm(v, TILE_W[:, :5], ANALOG_IO, seed=1),
        "pcm programming": lambda v: PCM.apply_programming_noise_to_conductance(v.abs() * 5, seed=1),
        "xbtorch drift": lambda v: XBT.apply_drift_noise_to_conductance(v.abs() * 5 + 50, v.abs() / 10, 9.0, seed=2),
        "conductances": lambda v: PCM.convert_to_conductances(v)[0][0],
        "fixed linear": lambda v: fixed.linear(v, FIX_W[:, :5], FIX_B, **FIX_TYPES),
        "fixed counts": lambda v: fixed.linear(v, FIX_W[:, :5], FIX_B, **FIX_TYPES, return_overflow=True)[1]["accumulations"],
        "fixed conv2d": lambda v: fixed.conv2d(v.reshape(1, 2, 3, 5), FIX_K[:, :2], None, 1, 1, **FIX_TYPES),
        "qonnx quant": lambda v: qonnx.quant(v, 0.5, 0.0, 4, rounding_mode="FLOOR"),
        "fixed accum_bits": lambda v: fixed.accum_bits(FIX_W[:, :5], "ap_fixed<6,3>", "ap_fixed<8,2>", x=v),
    }
    for name, f in ops.items():
        want = torch.stack([f(v) for v in x])
        assert torch.equal(torch.func.vmap(f)(x), want), name
    for name in ("quantize_grid", "adc", "wrapper", "quantize scheme", "FixedPointQuantF", "tensor range"):
        f = ops[name]
        sample = x[0]
        want = gradients(f, sample) / torch.arange(1.0, 1.0 + sample.numel()).reshape(sample.shape)
        got = torch.func.grad(lambda v: f(v).sum())(sample)
        assert torch.equal(got, want), name


def test_bit_slicing_traces_with_the_eager_shapes_and_dtypes():
    codes = torch.tensor([[3, -2, 100], [0, 5, -127]], dtype=torch.int16)
    for encoding in ("sign-magnitude", "twos-complement", "offset-binary"):
        planes = xbquant.bit_slices(codes, 8, 3, encoding)
        traced = compiled(lambda c: xbquant.bit_slices(c, 8, 3, encoding))(codes)
        assert traced.dtype == planes.dtype and torch.equal(traced, planes), encoding
        back = compiled(lambda p: xbquant.from_bit_slices(p, 8, 3, encoding))(planes)
        # Traced, the codes' dtype holds every sum int16 planes can give: int64 here.
        assert back.dtype == torch.int64 and torch.equal(back, codes.long()), encoding
        assert torch.equal(torch.func.vmap(lambda c: xbquant.bit_slices(c, 8, 3, encoding))(codes),
                           torch.stack([xbquant.bit_slices(c, 8, 3, encoding) for c in codes]))
    # int64 planes keep int64, eager and traced alike; bad arguments are refused while tracing.
    wide = xbquant.bit_slices(codes.long(), 8)
    assert torch.equal(compiled(lambda p: xbquant.from_bit_slices(p, 8))(wide), codes.long())
    with pytest.raises(Exception, match="slice_bits"):
        compiled(lambda c: xbquant.bit_slices(c, 8, 9))(codes)


def test_every_op_backward_compiled_equals_eager():
    """The gradient of every floating-point result of `every_op`, from one compiled graph."""
    torch._dynamo.reset()
    x = torch.randn(16, 12, generator=torch.Generator().manual_seed(7)) * 3

    def floats(v):
        return [o for o in every_op(v) if o.is_floating_point()]

    def grads(f):
        v = x.clone().requires_grad_()
        outs = f(v)
        # QPyTorch's functions return no gradient, as QPyTorch's do: None for them.
        return [
            torch.autograd.grad((o * torch.linspace(-1, 2, o.numel()).reshape(o.shape)).sum(), v, retain_graph=True)[0]
            if o.requires_grad
            else None
            for o in outs
        ]

    want = grads(floats)
    got = grads(compiled(floats))
    # The device models' 12 results are data, and hls4ml's layers (4) and QONNX's operators (3)
    # emulate inference: no gradient.
    assert len(want) == 49 and sum(g is not None for g in want) == 23
    for k, (a, b) in enumerate(zip(want, got)):
        assert (a is None and b is None) or torch.equal(a, b), k
