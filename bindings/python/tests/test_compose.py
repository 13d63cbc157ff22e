"""The registered operation's composition of torch operations, which inductor fuses into one
kernel on devices other than the CPU: compiled here on CPU tensors (`_ops.COMPOSE_ON_CPU`), it
gives the Rust kernels' bits and clip masks in every rounding and overflow mode of fixed point
and for floating-point formats."""

import re
import shutil

import pytest
import torch

import xbquant
from xbquant import _ops

from test_fallback import ROUNDINGS as FALLBACK_ROUNDINGS

pytestmark = pytest.mark.skipif(
    not (shutil.which("g++") or shutil.which("c++")), reason="inductor needs a C++ compiler on CPU"
)

# The roundings of the eager fallback's tests, stochastic with a seed (a composition draws none).
ROUNDINGS = [r for r in FALLBACK_ROUNDINGS if r != "stochastic"] + ["stochastic:7"]
OVERFLOWS = [
    "saturate",
    "saturate-symmetric",
    "saturate-zero",
    "wrap",
    "wrap:2",
    "wrap-sign-magnitude",
    "wrap-sign-magnitude:1",
    "unbounded",
]
# Every overflow mode signed, the first four unsigned, each rounding mode twice (each kernel
# costs inductor about a second to build).
FIXED = [f"fixed<6,2> overflow={o} rounding={r}" for o, r in zip(OVERFLOWS, ROUNDINGS)]
FIXED += [f"ufixed<5,3> overflow={o} rounding={r}" for o, r in zip(OVERFLOWS[:4], ROUNDINGS[4:] + ROUNDINGS[:4])]
FIXED += [f"fixed<7,1> overflow=wrap-sign-magnitude:2 rounding={r}" for r in ROUNDINGS[6:]]
FIXED += [
    "fixed<24,-3> overflow=wrap rounding=nearest-away",
    "fixed<3,40> overflow=saturate rounding=stochastic:1",
    "fixed<53,10> overflow=wrap-sign-magnitude rounding=floor",
    "ufixed<1,0> overflow=saturate rounding=nearest",
]
FLOATS = [
    "float16",
    "bfloat16",
    "e4m3fn",
    "e5m2",
    "e3m2 rounding=stochastic:11",
    "e4m3fn rounding=stochastic:3",
    "e8m23",
]


def data(dtype):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3000, generator=g, dtype=torch.float64) * torch.exp2(torch.randint(-12, 12, (3000,), generator=g))
    ties = torch.arange(-40, 40, dtype=torch.float64) / 8 + 1 / 16  # ties of steps of 1/4 and 1/8
    edges = torch.tensor(
        [0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e-300, -1e-40, 1e30, -65504.0, 3.4e38, 2.5, -2.5]
    )
    return torch.cat([edges.double(), ties, x]).to(dtype)


def same(a, b):
    """Equal bits, NaN for NaN (payloads aside)."""
    both_nan = a.isnan() & b.isnan()
    bits = {torch.float32: torch.int32, torch.float64: torch.int64, torch.float16: torch.int16, torch.bfloat16: torch.int16}
    return bool(((a.view(bits[a.dtype]) == b.view(bits[b.dtype])) | both_nan).all())


@pytest.fixture
def composed():
    # AOT autograd's cache is keyed on the traced graph, which does not show the switch: off, so
    # that no composed graph is reused where the operation runs its kernels, or the reverse.
    import torch._functorch.config as functorch_config

    torch._dynamo.reset()
    _ops.COMPOSE_ON_CPU = True
    with functorch_config.patch(enable_autograd_cache=False):
        yield
    _ops.COMPOSE_ON_CPU = False
    torch._dynamo.reset()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_compiled_composition_gives_the_kernels_bits_and_masks(composed, dtype):
    x = data(dtype)
    schemes = FIXED + FLOATS if dtype == torch.float32 else FIXED[::3] + FLOATS[::2]

    def every(x):
        return [xbquant.quantize(x, scheme=s, return_mask=True) for s in schemes]

    want = every(x)
    got = torch.compile(every, fullgraph=True, backend="inductor")(x)
    for scheme, (w, wm), (g, gm) in zip(schemes, want, got):
        assert same(g, w), (scheme, dtype)
        assert torch.equal(gm, wm), (scheme, dtype)


def test_one_fused_kernel_and_no_call_into_the_extension(composed):
    from torch._inductor.utils import run_and_get_code

    x = data(torch.float32)
    for scheme in ["fixed<8,3> overflow=wrap rounding=nearest-away", "e4m3fn rounding=stochastic:2"]:

        def f(x):
            return xbquant.quantize(x, scheme=scheme) * 2

        out, code = run_and_get_code(torch.compile(f, fullgraph=True, backend="inductor"), x)
        assert same(out, f(x)), scheme
        source = "\n".join(code)
        assert "xbquant" not in source, scheme
        assert len(set(re.findall(r"cpp_fused_\w+", source))) == 1, scheme


def test_schemes_without_a_composition_stay_one_node(composed):
    from torch._inductor.utils import run_and_get_code

    x = data(torch.float32).reshape(-1, 4)
    for call in [
        lambda x: xbquant.quantize(x, 8, "auto", axis=1),  # scales from the data
        lambda x: xbquant.adc(x, 6, axis=1),
        lambda x: xbquant.quantize_levels(x, [-1.0, 0.0, 2.0]),
    ]:
        out, code = run_and_get_code(torch.compile(call, fullgraph=True, backend="inductor"), x)
        assert "torch.ops.xbquant.quantize.default" in "\n".join(code)
        assert same(out, call(x))
    # A fresh seed per call is drawn in the graph (another draw than eager's): values on the grid.
    fresh = torch.compile(lambda x: xbquant.quantize(x, 6, 2, rounding="stochastic"), fullgraph=True)(x)
    finite = fresh[x.isfinite()]
    assert bool((finite * 4 == (finite * 4).round()).all() and (finite.abs() <= 7.75).all())


def test_cpu_tensors_keep_the_rust_kernels():
    torch._dynamo.reset()
    from torch._inductor.utils import run_and_get_code

    def f(x):
        return xbquant.quantize(x, 8, 3)

    x = data(torch.float32)
    out, code = run_and_get_code(torch.compile(f, fullgraph=True, backend="inductor"), x)
    assert "torch.ops.xbquant.quantize.default" in "\n".join(code)
    assert same(out, f(x))
