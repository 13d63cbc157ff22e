"""`xbquant.analog`'s layers: `torch.nn`'s products on analog tiles, programmed onto PCM devices
and read over time with global drift compensation, conversion of a model, training, pickling."""

import copy
import pickle

import pytest
import torch

from xbquant.analog import AnalogConv2d, AnalogLinear, IOParameters, PCMLikeNoise, convert_to_analog

PERFECT = IOParameters(is_perfect=True)


def test_perfect_tiles_are_torch_layers():
    torch.manual_seed(0)
    linear = AnalogLinear(20, 7, io=PERFECT, tile_size=(8, 3))
    x = torch.randn(5, 20)
    assert torch.allclose(linear(x), torch.nn.functional.linear(x, linear.weight, linear.bias), atol=1e-5)
    for stride, padding, dilation in [(1, 0, 1), (2, 1, 1), (1, 2, 2)]:
        conv = AnalogConv2d(3, 4, 3, stride=stride, padding=padding, dilation=dilation, io=PERFECT)
        img = torch.randn(2, 3, 9, 8)
        want = torch.nn.functional.conv2d(img, conv.weight, conv.bias, stride, padding, dilation)
        assert torch.allclose(conv(img), want, atol=1e-5)
        assert torch.allclose(conv(img[0]), want[0], atol=1e-5)  # unbatched


def test_convert_to_analog_replaces_linear_and_conv_layers():
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3)
    )
    analog = convert_to_analog(model, PERFECT)
    assert isinstance(analog[0], AnalogConv2d) and isinstance(analog[3], AnalogLinear)
    assert type(model[0]) is torch.nn.Conv2d  # the original is left as it was
    x = torch.randn(2, 1, 6, 6)
    assert torch.allclose(analog(x), model(x), atol=1e-5)
    same = convert_to_analog(model, PERFECT, inplace=True)
    assert same is model and isinstance(model[3], AnalogLinear)
    single = convert_to_analog(torch.nn.Linear(3, 2))
    assert isinstance(single, AnalogLinear)


def test_programmed_devices_drift_and_global_compensation_restores_the_scale():
    torch.manual_seed(2)
    layer = AnalogLinear(64, 32, io=IOParameters(out_noise=0.0), noise_model=PCMLikeNoise())
    x = torch.randn(256, 64)
    ideal = torch.nn.functional.linear(x, layer.weight, layer.bias).detach()
    layer.program(seed=3)
    programmed = layer.programmed["read"].clone()
    # The same seed programs the same devices.
    again = copy.deepcopy(layer)
    again.program(seed=3)
    assert torch.equal(again.programmed["read"], programmed)

    def error(t, compensation):
        layer.drift(t, seed=4, compensation=compensation)
        with torch.no_grad():
            return float((layer(x) - ideal).abs().mean()), layer.alpha

    (e_hour, a_hour), (e_year, a_year) = error(3600.0, "none"), error(3.15e7, "none")
    assert a_hour == a_year == 1.0 and e_year > e_hour  # drift grows with time
    (c_year, alpha) = error(3.15e7, "global")
    assert alpha > 1.2 and c_year < e_year  # drift lowers every conductance; compensation scales back
    # Reading never changes the programmed state.
    assert torch.equal(layer.programmed["plus"], again.programmed["plus"])


def test_training_with_weight_noise_learns_and_pickles():
    torch.manual_seed(5)
    x = torch.randn(256, 10)
    labels = (x[:, :3].sum(1) > 0).long()
    model = convert_to_analog(
        torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)),
        IOParameters(),
        weight_noise=0.02,
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    first = None
    for _ in range(80):
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    model.eval()
    torch.manual_seed(6)
    want = model(x)
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        torch.manual_seed(6)
        assert torch.equal(other(x), want)


@pytest.mark.parametrize(
    "call, error, word",
    [
        (lambda: AnalogLinear(4, 2).program(), ValueError, "noise_model"),
        (lambda: AnalogLinear(4, 2, noise_model=PCMLikeNoise()).drift(1.0), ValueError, "program"),
        (lambda: AnalogLinear(4, 2, io={"out_noise": 0.0}), TypeError, "io"),
        (lambda: AnalogLinear(4, 2, noise_model="pcm"), TypeError, "noise_model"),
        (lambda: AnalogLinear(4, 2, weight_noise=-0.1), ValueError, "weight_noise"),
        (lambda: AnalogLinear(4, 2, tile_size=(0, -2)), ValueError, "tile_size"),
        (lambda: AnalogConv2d(4, 2, 3, groups=2), ValueError, "groups"),
        (lambda: AnalogConv2d(4, 2, 3, padding_mode="reflect"), ValueError, "padding_mode"),
        (lambda: AnalogConv2d(4, 2, 3, padding="same"), ValueError, "padding"),
        (lambda: convert_to_analog("model"), TypeError, "module"),
    ],
)
def test_bad_arguments_are_named(call, error, word):
    with pytest.raises(error, match=word):
        call()


def test_drift_arguments_are_checked():
    layer = AnalogLinear(4, 2, noise_model=PCMLikeNoise())
    layer.program(seed=0)
    for kwargs, error, word in [
        ({"t_inference": -1.0}, ValueError, "t_inference"),
        ({"t_inference": float("nan")}, ValueError, "t_inference"),
        ({"t_inference": 1.0, "compensation": "local"}, ValueError, "compensation"),
        ({"t_inference": 1.0, "seed": "1"}, TypeError, "seed"),
    ]:
        with pytest.raises(error, match=word):
            layer.drift(**kwargs)


def test_xbtorch_devices_program_a_layer():
    from xbquant.analog import XBTorchDevice

    torch.manual_seed(7)
    device = XBTorchDevice(write_noise=1.0, read_noise=0.5, drift_coefficient=0.02, drift_variation=0.005)
    layer = AnalogLinear(32, 8, io=IOParameters(out_noise=0.0), noise_model=device)
    x = torch.randn(64, 32)
    ideal = torch.nn.functional.linear(x, layer.weight, layer.bias).detach()
    layer.program(seed=1)
    layer.drift(1.0, seed=2, compensation="none")
    with torch.no_grad():
        close = float((layer(x) - ideal).abs().mean())
    layer.drift(1e6, seed=2, compensation="none")
    with torch.no_grad():
        drifted = float((layer(x) - ideal).abs().mean())
    assert close < drifted
    g = device.apply_programming_noise_to_conductance(torch.full((50_000,), 75.0, dtype=torch.float64), seed=3)
    assert abs(float(g.std()) - 1.0) < 0.02 and float(g.min()) >= 50 and float(g.max()) <= 100
    with pytest.raises(ValueError, match="stuck_fraction"):
        XBTorchDevice(stuck_fraction=1.5)
    with pytest.raises(ValueError, match="g_max"):
        XBTorchDevice(g_max=10.0)
    with pytest.raises(TypeError, match="read_noise"):
        XBTorchDevice(read_noise="0.1")


def test_programming_onto_devices_of_few_levels():
    from xbquant.analog import XBTorchDevice

    torch.manual_seed(8)
    layer = AnalogLinear(16, 4, io=PERFECT, noise_model=XBTorchDevice())
    layer.program(seed=0, levels=5)
    plus = layer.programmed["plus"]
    # Without noise the devices hold the five states 50, 62.5, 75, 87.5, 100.
    assert set(plus.unique().tolist()) <= {50.0, 62.5, 75.0, 87.5, 100.0}
    assert len(set(plus.unique().tolist())) > 2
    with pytest.raises(ValueError, match="levels"):
        layer.program(seed=0, levels=1)


def test_weights_clip_after_a_step():
    torch.manual_seed(10)
    layer = AnalogLinear(10, 4)
    layer.clip_weights(bound=0.1)
    assert float(layer.weight.detach().abs().max()) == float(torch.tensor(0.1))  # float32 nearest 0.1
    std = float(layer.weight.detach().std())
    layer.clip_weights(sigma=0.5)
    assert float(layer.weight.detach().abs().max()) <= 0.5 * std + 1e-7
    for kwargs, error in [({}, ValueError), ({"bound": 1.0, "sigma": 1.0}, ValueError), ({"bound": -1.0}, ValueError),
                          ({"sigma": "2"}, TypeError)]:
        with pytest.raises(error, match="bound|sigma"):
            layer.clip_weights(**kwargs)


def test_programming_onto_a_table_of_conductance_states():
    from xbquant.analog import XBTorchDevice

    torch.manual_seed(11)
    layer = AnalogLinear(16, 4, io=PERFECT, noise_model=XBTorchDevice())
    states = [50.0, 55.0, 70.0, 100.0]
    layer.program(seed=0, levels=states)
    assert set(layer.programmed["plus"].unique().tolist()) <= set(states)
    for bad, error in [([], ValueError), (["a"], TypeError), ([-1.0], ValueError)]:
        with pytest.raises(error, match="levels"):
            layer.program(seed=0, levels=bad)
