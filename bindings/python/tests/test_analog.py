"""`xbquant.analog`: aihwkit's IOParameters and the tile's product, against aihwkit's outputs (the
data the Rust crate's tests read), with any batch shape, dtype and layout, seeds and gradients."""

import gzip
import json
import pathlib
import types

import numpy as np
import pytest
import torch

from xbquant.analog import IOParameters, mvm

DATA = pathlib.Path(__file__).resolve().parents[3] / "crates" / "xbquant-analog" / "tests" / "data" / "aihwkit_mvm.json.gz"


def test_defaults_are_aihwkits():
    io = IOParameters()
    assert (io.inp_bound, io.inp_res, io.inp_noise, io.out_bound, io.out_res, io.out_noise) == (
        1.0, 1 / 126, 0.0, 12.0, 1 / 510, 0.06,
    )
    assert (io.noise_management, io.bound_management, io.max_bm_factor, io.max_bm_res, io.nm_thres) == (
        "abs_max", "iterative", 1000, 0.25, 0.0,
    )
    assert (io.is_perfect, io.inp_sto_round, io.out_sto_round, io.out_scale, io.w_noise) == (False, False, False, 1.0, 0.0)


def records():
    with gzip.open(DATA, "rt") as f:
        return json.load(f)["records"]


def hexes(values, dtype=torch.float64):
    return torch.tensor([float.fromhex(v) for v in values], dtype=dtype)


@pytest.mark.skipif(not DATA.exists(), reason="the reference data lives in the repository")
def test_outputs_through_an_adc_equal_aihwkits_bit_for_bit():
    checked = 0
    for rec in records():
        case = rec["io"]
        if case["out_res"] == 0.0 or case["out_bound"] == 0.0:
            continue
        io = IOParameters(out_noise=0.0, **case)
        x = hexes(rec["x"]).reshape(rec["rows"], rec["in"])
        w = hexes(rec["w"]).reshape(rec["out"], rec["in"])
        tile = tuple(rec["tile"]) if rec["tile"] else (0, 0)
        y = mvm(x, w, io, tile_size=tile)
        want = hexes(rec["y"]["float64"]).reshape(y.shape)
        assert torch.equal(y, want), case
        checked += 1
    assert checked > 40


def test_batch_shapes_layouts_dtypes_and_arrays():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 20, generator=g)
    w = torch.randn(6, 20, generator=g) * 0.3
    io = IOParameters(out_noise=0.0)
    y = mvm(x, w, io)
    assert y.shape == (2, 3, 6) and y.dtype == torch.float32
    assert torch.equal(y.reshape(6, 6), mvm(x.reshape(6, 20), w, io))
    # Strided and negative-bit views give the values of their contiguous copies.
    xt = torch.randn(20, 6, generator=g).T
    assert torch.equal(mvm(xt, w, io), mvm(xt.contiguous(), w, io))
    assert torch.equal(mvm(torch._neg_view(x), w, io), mvm(-x, w, io))
    # numpy arrays in, numpy arrays out; float64.
    y64 = mvm(x.double().numpy(), w.double().numpy(), io)
    assert isinstance(y64, np.ndarray) and y64.dtype == np.float64 and y64.shape == (2, 3, 6)
    # Close to the exact product: within a step of the 9-bit ADC, 24/510 of each row's scale
    # (its largest magnitude), plus the 7-bit DAC's rounding.
    exact = x.double() @ w.double().T
    step = 24 / 510 * x.double().abs().amax(dim=-1, keepdim=True)
    assert bool(((torch.from_numpy(y64) - exact).abs() <= 1.5 * step).all())


def test_the_fast_path_gives_the_general_paths_bits_and_errors():
    # CPU tensors with a seed and the default tile take the fast path; an explicit tile of the
    # same size, numpy arrays and views take the general one: the same bits.
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 7, 64, generator=g)
    w = torch.randn(33, 64, generator=g) * 0.2
    for dtype in (torch.float32, torch.float64):
        xs, ws = x.to(dtype), w.to(dtype)
        fast = mvm(xs, ws, seed=9)
        general = mvm(xs, ws, seed=9, tile_size=[512, 512])
        assert fast.dtype == dtype and fast.shape == (5, 7, 33)
        assert torch.equal(fast, general)
        assert torch.equal(fast, torch.from_numpy(mvm(xs.numpy(), ws.numpy(), seed=9)))
        assert torch.equal(mvm(xs.transpose(0, 1), ws, seed=9), mvm(xs.transpose(0, 1).contiguous(), ws, seed=9))
        # A row alone gives the bits it has in the batch (noise off: the draws are indexed by row).
        quiet = IOParameters(out_noise=0.0)
        batch = mvm(xs.reshape(-1, 64), ws, quiet, seed=1)
        assert torch.equal(mvm(xs.reshape(-1, 64)[3:4], ws, quiet, seed=1), batch[3:4])
    # What the fast path declines, the general path refuses with its own messages.
    with pytest.raises(TypeError, match="one dtype"):
        mvm(x, w.double(), seed=1)
    with pytest.raises(TypeError, match="float32 or float64"):
        mvm(x.half(), w.half(), seed=1)
    with pytest.raises(ValueError, match="must be"):
        mvm(x, w[:, :10], seed=1)
    with pytest.raises(ValueError, match="must be"):
        mvm(x, w[0], seed=1)
    with pytest.raises(ValueError, match="64 bits"):
        mvm(x, w, seed=2**64)
    with pytest.raises(TypeError, match="seed"):
        mvm(x, w, seed=1.0)
    # Tensors that record a gradient take the registered operation.
    xg = x.clone().requires_grad_()
    y = mvm(xg, w, seed=9)
    assert y.requires_grad and torch.equal(y.detach(), mvm(x, w, seed=9))


def test_seeds_repeat_and_torch_manual_seed_repeats_a_run():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 40, generator=g)
    w = torch.randn(8, 40, generator=g) * 0.2
    io = IOParameters(inp_noise=0.02, out_noise=0.06, inp_sto_round=True)
    assert torch.equal(mvm(x, w, io, seed=3), mvm(x, w, io, seed=3))
    assert not torch.equal(mvm(x, w, io, seed=3), mvm(x, w, io, seed=4))
    torch.manual_seed(5)
    a = mvm(x, w, io)
    torch.manual_seed(5)
    assert torch.equal(a, mvm(x, w, io))


def test_tiles_and_bound_management_per_vector():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 700, generator=g, dtype=torch.float64)
    w = torch.randn(30, 700, generator=g, dtype=torch.float64) * 0.05
    io = IOParameters(out_noise=0.0)
    tiled = mvm(x, w, io, tile_size=(256, 16))
    whole = mvm(x, w, io, tile_size=(0, 0))
    assert tiled.shape == whole.shape and not torch.equal(tiled, whole)  # three ADCs, not one
    assert float((tiled - x @ w.T).abs().max()) < 0.2
    per_vector = IOParameters(out_noise=0.0, out_bound=1.0, bound_management="iterative_per_vector")
    batch = IOParameters(out_noise=0.0, out_bound=1.0)
    y = mvm(x, w, per_vector)
    for r in range(5):
        assert torch.equal(y[r : r + 1], mvm(x[r : r + 1], w, batch))


def test_gradients_are_the_ideal_products():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 12, generator=g, requires_grad=True)
    w = torch.randn(3, 12, generator=g, requires_grad=True)
    y = mvm(x, w, IOParameters(), seed=0)
    weights = torch.randn(4, 3, generator=g)
    (y * weights).sum().backward()
    assert torch.allclose(x.grad, weights @ w.detach())
    assert torch.allclose(w.grad, weights.T @ x.detach())


def test_from_aihwkit_reads_fields_and_refuses_what_it_does_not_model():
    enum = types.SimpleNamespace
    io = types.SimpleNamespace(**{f: getattr(IOParameters(), f) for f in IOParameters.__dataclass_fields__})
    io.noise_management = enum(name="MAX")
    io.bound_management = enum(name="NONE")
    io.w_noise_type = enum(name="NONE")
    io.out_noise = 0.1
    ours = IOParameters.from_aihwkit(io)
    assert (ours.noise_management, ours.bound_management, ours.out_noise) == ("max", "none", 0.1)
    io.ir_drop = 1.0
    with pytest.raises(ValueError, match="ir_drop"):
        IOParameters.from_aihwkit(io)
    with pytest.raises(TypeError, match="aihwkit"):
        IOParameters.from_aihwkit(object())


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"inp_bound": -1.0}, ValueError, "inp_bound"),
        ({"out_res": float("nan")}, ValueError, "out_res"),
        ({"out_noise": -0.1}, ValueError, "out_noise"),
        ({"out_bound": 0.0}, ValueError, "out_bound"),
        ({"noise_management": "bogus"}, ValueError, "noise_management"),
        ({"bound_management": 1}, TypeError, "bound_management"),
        ({"is_perfect": 1}, TypeError, "is_perfect"),
        ({"max_bm_factor": 0}, ValueError, "max_bm_factor"),
        ({"w_noise": 0.1}, ValueError, "w_noise_type"),
        ({"nm_thres": "1"}, TypeError, "nm_thres"),
    ],
)
def test_bad_parameters_are_named(kwargs, error, word):
    with pytest.raises(error, match=word):
        IOParameters(**kwargs)


@pytest.mark.parametrize(
    "call, error, word",
    [
        (lambda: mvm(torch.ones(2, 3), torch.ones(4, 5)), ValueError, "x"),
        (lambda: mvm(torch.ones(2, 3), torch.ones(3)), ValueError, "w"),
        (lambda: mvm(torch.ones(2, 3), torch.ones(4, 3, dtype=torch.float64)), TypeError, "dtype"),
        (lambda: mvm(torch.ones(2, 3, dtype=torch.float16), torch.ones(4, 3, dtype=torch.float16)), TypeError, "x"),
        (lambda: mvm(torch.ones(2, 3), np.ones((4, 3), dtype=np.float32)), TypeError, "w"),
        (lambda: mvm([1.0, 2.0], torch.ones(4, 2)), TypeError, "x"),
        (lambda: mvm(torch.ones(2, 3), torch.ones(4, 3), io={"out_noise": 0}), TypeError, "io"),
        (lambda: mvm(torch.ones(2, 3), torch.ones(4, 3), tile_size=512), TypeError, "tile_size"),
        (lambda: mvm(torch.ones(2, 3), torch.ones(4, 3), tile_size=(-1, 2)), ValueError, "tile_size"),
        (lambda: mvm(torch.ones(2, 3), torch.ones(4, 3), seed=1.5), TypeError, "seed"),
        (lambda: mvm(torch.ones(2, 3).to_sparse(), torch.ones(4, 3)), TypeError, "x"),
    ],
)
def test_bad_calls_are_named(call, error, word):
    with pytest.raises(error, match=word):
        call()


def test_huge_and_non_finite_values_pass_through_without_errors():
    x = torch.tensor([[3e38, -3e38, 1.0], [float("nan"), 0.0, 1.0], [float("inf"), 1.0, 0.0]])
    w = torch.ones(2, 3)
    y = mvm(x, w, IOParameters(out_noise=0.0))
    assert y.shape == (3, 2)
    assert torch.isnan(y[1]).all()  # NaN stays NaN, as in aihwkit


@pytest.mark.skipif(not DATA.exists(), reason="the reference data lives in the repository")
def test_pcm_chain_agrees_with_aihwkits_statistics():
    from xbquant.analog import PCMLikeNoise

    with gzip.open(DATA, "rt") as f:
        pcm_data = json.load(f)["pcm"]
    draws = pcm_data["draws"]
    pcm = PCMLikeNoise()
    for k, target in enumerate(pcm_data["targets"][2:4]):  # 2.5 and 10 uS
        g = torch.full((draws,), target["g"], dtype=torch.float64)
        g_prog = pcm.apply_programming_noise_to_conductance(g, seed=k)
        nu = pcm.generate_drift_coefficients(g, seed=k)
        samples = {"programmed": g_prog, "nu": nu}
        for t, stats in target["read"].items():
            samples[t] = pcm.apply_drift_noise_to_conductance(g_prog, nu, float(t), seed=k)
        for name, sample in samples.items():
            stats = target[name] if name in ("programmed", "nu") else target["read"][name]
            mean, std = (float.fromhex(v) for v in stats)
            error = (2 * std * std / draws) ** 0.5
            assert abs(float(sample.mean()) - mean) <= 4.5 * error + 1e-12, (target["g"], name)
            assert abs(float(sample.std()) - std) <= 0.05 * std + 1e-12, (target["g"], name)


def test_pcm_keeps_shapes_types_and_seeds():
    from xbquant.analog import PCMLikeNoise

    pcm = PCMLikeNoise(g_max=20.0, prog_noise_scale=0.5)
    assert pcm.prog_coeff_g_max_reference == 25.0  # aihwkit's own coefficients: fitted at 25 uS
    assert PCMLikeNoise(prog_coeff=(0.1, 1.0)).prog_coeff_g_max_reference == 25.0  # that model's g_max
    g = torch.rand(3, 4, dtype=torch.float32) * 20
    a = pcm.apply_programming_noise_to_conductance(g, seed=1)
    assert a.shape == (3, 4) and a.dtype == torch.float32
    assert torch.equal(a, pcm.apply_programming_noise_to_conductance(g, seed=1))
    assert not torch.equal(a, pcm.apply_programming_noise_to_conductance(g, seed=2))
    nu = pcm.generate_drift_coefficients(g.numpy(), seed=1)
    assert isinstance(nu, np.ndarray) and nu.shape == (3, 4) and (nu >= 0).all()
    later = pcm.apply_drift_noise_to_conductance(a, torch.from_numpy(nu), 3600.0, seed=3)
    assert later.shape == (3, 4) and bool((later >= 0).all())


@pytest.mark.parametrize(
    "call, error, word",
    [
        (lambda p: p.__class__(g_max=-1.0), ValueError, "g_max"),
        (lambda p: p.__class__(g_min=30.0), ValueError, "g_max"),
        (lambda p: p.__class__(t_0=0.0), ValueError, "t_0"),
        (lambda p: p.__class__(prog_coeff="abc"), TypeError, "prog_coeff"),
        (lambda p: p.__class__(prog_coeff=()), ValueError, "prog_coeff"),
        (lambda p: p.__class__(drift_scale=float("nan")), ValueError, "drift_scale"),
        (lambda p: p.__class__(read_noise_scale="1"), TypeError, "read_noise_scale"),
        (lambda p: p.apply_programming_noise_to_conductance([1.0]), TypeError, "g"),
        (lambda p: p.apply_programming_noise_to_conductance(torch.ones(2, dtype=torch.float16)), TypeError, "g"),
        (lambda p: p.apply_programming_noise_to_conductance(torch.ones(2), seed="1"), TypeError, "seed"),
        (lambda p: p.apply_drift_noise_to_conductance(torch.ones(2), torch.ones(3), 1.0), ValueError, "drift_noise_param"),
        (lambda p: p.apply_drift_noise_to_conductance(torch.ones(2), torch.ones(2), -1.0), ValueError, "t_inference"),
        (lambda p: p.apply_drift_noise_to_conductance(torch.ones(2), torch.ones(2), float("inf")), ValueError, "t_inference"),
    ],
)
def test_pcm_bad_arguments_are_named(call, error, word):
    from xbquant.analog import PCMLikeNoise

    with pytest.raises(error, match=word):
        call(PCMLikeNoise())


PERIPHERY = pathlib.Path(__file__).resolve().parents[3] / "crates" / "xbquant" / "tests" / "data" / "xbtorch_periphery.npz"


@pytest.mark.skipif(not PERIPHERY.exists(), reason="the reference data lives in the repository")
def test_bit_sliced_inputs_are_xbtorchs_linear_encoding():
    """Through a perfect tile and the identity, the shifted sum of the planes' outputs is the sum
    of XBTorch's own bit planes (made by its `DAC_quantize` with the "linear" encoding)."""
    data = np.load(PERIPHERY)
    for bits in (2, 3, 4, 5, 8):
        v = torch.from_numpy(data[f"v{bits}"]).double()
        planes = torch.from_numpy(data[f"linear{bits}"]).double()
        want = sum(2**b * planes[b] for b in range(bits)) / (2**bits - 1)
        eye = torch.eye(v.shape[-1], dtype=torch.float64)
        got = mvm(v, eye, IOParameters(is_perfect=True), input_bits=bits)
        assert torch.allclose(got, want, rtol=0, atol=1e-12), bits


def test_bit_sliced_products_take_an_adc_per_plane():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(6, 32, generator=g, dtype=torch.float64)
    w = torch.randn(5, 32, generator=g, dtype=torch.float64) * 0.2
    exact = x @ w.T
    coarse = IOParameters(out_noise=0.0, out_res=1 / 30)
    sliced = mvm(x, w, coarse, input_bits=6)
    at_once = mvm(x, w, coarse)
    # Both near the product; the planes' ADCs round six times: another result.
    assert float((sliced - exact).abs().max()) < 1.0 and not torch.equal(sliced, at_once)
    # Without noise the seed changes nothing; with it, each plane draws its own.
    assert torch.equal(sliced, mvm(x, w, coarse, input_bits=6, seed=1))
    noisy = IOParameters(out_noise=0.05)
    assert not torch.equal(mvm(x, w, noisy, input_bits=6, seed=1), mvm(x, w, noisy, input_bits=6, seed=2))
    xg = x.clone().requires_grad_()
    mvm(xg, w, coarse, input_bits=6).sum().backward()
    assert torch.allclose(xg.grad, w.sum(0).expand_as(x))
    with pytest.raises(ValueError, match="input_bits"):
        mvm(x, w, input_bits=0)
    with pytest.raises(TypeError, match="input_bits"):
        mvm(x, w, input_bits="8")


def test_gradients_stop_where_the_converters_clip():
    g = torch.Generator().manual_seed(4)
    x = (torch.randn(5, 12, generator=g, dtype=torch.float64) * 2).requires_grad_()
    w = torch.randn(3, 12, generator=g, dtype=torch.float64).requires_grad_()
    # A DAC of bound 1 without noise management: inputs beyond it get no gradient.
    io = IOParameters(out_noise=0.0, inp_res=0.0, out_bound=1e6, noise_management="none", bound_management="none")
    mvm(x, w, io, seed=0).sum().backward()
    inside = x.detach().abs() <= 1.0
    want = torch.ones(5, 3, dtype=torch.float64) @ w.detach()
    assert torch.allclose(x.grad, torch.where(inside, want, torch.zeros_like(want)))
    assert bool((x.grad[~inside] == 0).all()) and int((~inside).sum()) > 10
    # An ADC that clips every output: no gradient at all.
    x.grad, w.grad = None, None
    shut = IOParameters(out_noise=0.0, out_res=0.0, out_bound=1e-9, bound_management="none")
    mvm(x, w, shut, seed=0).sum().backward()
    assert bool((x.grad == 0).all() and (w.grad == 0).all())


def test_no_inputs_per_output_is_no_error():
    # Empty rows of inputs (numpy cannot reshape them to (-1, 0)): zero outputs, and gradients of
    # the inputs' shapes.
    assert torch.equal(mvm(torch.empty(3, 0), torch.empty(2, 0)), torch.zeros(3, 2))
    assert mvm(np.empty((4, 3, 0)), np.empty((2, 0))).shape == (4, 3, 2)
    x, w = torch.empty(3, 0, requires_grad=True), torch.empty(2, 0, requires_grad=True)
    mvm(x, w).sum().backward()
    assert x.grad.shape == (3, 0) and w.grad.shape == (2, 0)
