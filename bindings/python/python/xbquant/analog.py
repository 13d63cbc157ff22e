"""Analog crossbar tiles: the matrix-vector product between the DAC and the ADC, with the
converters, noise and range management of IBM's aihwkit, computed by xbquant's Rust crate
``xbquant-analog``.

:class:`IOParameters` has aihwkit's field names and defaults (``IOParameters.from_aihwkit``
reads an aihwkit object), and :func:`mvm` computes what aihwkit 1.2.0's torch tile
(``AnalogMVM.matmul``) computes, step by step, in float32 or float64: noise management (the
input vector scaled by its largest magnitude, ``abs_max``; ``max``, ``constant``, ``none``), the
DAC (scaled, quantized to ``inp_res`` of ``[-inp_bound, inp_bound]`` ties to even, clipped,
``inp_noise``), the product, the ADC (``out_noise``, quantized to ``out_res``, clipped at
``out_bound``), iterative bound management (the inputs halved again while any output clips, for
the whole batch as aihwkit's torch tile, or per input vector as its C++ simulator:
``bound_management="iterative_per_vector"``), then the outputs scaled back and by ``out_scale``.
With the noise off, float64 outputs through an ADC equal aihwkit's bit for bit (the repository's
``crates/xbquant-analog/tests/aihwkit.rs``). A weight larger than ``tile_size`` is split into
tiles as aihwkit's ``TileModuleArray`` splits it (700 inputs in tiles of 256: 234 + 233 + 233),
each with its own management and ADC, and the outputs of the input splits are added digitally.

Every random draw is a function of the seed and the draw's position, so results repeat with a
seed whatever the threads. Example::

    >>> import torch
    >>> from xbquant.analog import IOParameters, mvm
    >>> x = torch.tensor([[0.5, -0.25, 1.0]], dtype=torch.float64)
    >>> w = torch.tensor([[1.0, 2.0, 0.5], [-1.0, 0.5, 0.25]], dtype=torch.float64)
    >>> y = mvm(x, w, IOParameters(out_noise=0.0))
    >>> (y - x @ w.T).abs().max().item() < 0.03       # a 7-bit DAC and a 9-bit ADC
    True
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Tuple

import numpy as np

from . import _data, _ops, _xbquant
from ._checks import check_choice, check_flag, check_length, check_number, check_seed
from ._devices import PCMLikeNoise, XBTorchDevice

# The layers (`AnalogLinear`, `AnalogConv2d`, `convert_to_analog`) come from `_analog_layers`
# when first asked for (they need torch; see `__getattr__` below).
__all__ = [
    "IOParameters",
    "PCMLikeNoise",
    "XBTorchDevice",
    "mvm",
    "NOISE_MANAGEMENT",
    "BOUND_MANAGEMENT",
    "W_NOISE_TYPES",
]

#: The noise-management types (aihwkit's ``NoiseManagementType`` the torch tile supports).
NOISE_MANAGEMENT = ("none", "abs_max", "max", "constant")
#: The bound-management types: aihwkit's ``NONE`` and ``ITERATIVE`` (decided for the batch), and
#: the C++ simulator's decision per input vector.
BOUND_MANAGEMENT = ("none", "iterative", "iterative_per_vector")
#: The weight-noise types.
W_NOISE_TYPES = ("none", "additive_constant")

_FLAGS = ("is_perfect", "inp_sto_round", "out_sto_round")
_CHOICES = {"noise_management": NOISE_MANAGEMENT, "bound_management": BOUND_MANAGEMENT, "w_noise_type": W_NOISE_TYPES}


@dataclasses.dataclass(frozen=True)
class IOParameters:
    """The parameters of a tile's forward pass, with aihwkit's names and defaults: a 7-bit DAC
    (``inp_res = 1/126`` of ``[-1, 1]``), a 9-bit ADC (``out_res = 1/510`` of ``[-12, 12]``),
    output noise 0.06, ``abs_max`` noise management and iterative bound management.

    A resolution above 1 is a number of states; a resolution of 0 turns that converter's
    quantization off; a bound of 0 turns its clipping off (a converter that quantizes needs a
    bound: its step is a fraction of the range). Checked when built: a ``TypeError`` or
    ``ValueError`` names the field.
    """

    is_perfect: bool = False
    inp_bound: float = 1.0
    inp_res: float = 1 / (2**7 - 2)
    inp_noise: float = 0.0
    inp_sto_round: bool = False
    out_bound: float = 12.0
    out_res: float = 1 / (2**9 - 2)
    out_noise: float = 0.06
    out_sto_round: bool = False
    out_scale: float = 1.0
    noise_management: str = "abs_max"
    nm_thres: float = 0.0
    bound_management: str = "iterative"
    max_bm_factor: float = 1000
    max_bm_res: float = 0.25
    w_noise: float = 0.0
    w_noise_type: str = "none"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _FLAGS:
                check_flag(value, f.name)
            elif f.name in _CHOICES:
                check_choice(value, f.name, _CHOICES[f.name])
            else:
                object.__setattr__(self, f.name, check_number(value, f.name))
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        # The fields as the extension reads them, built once (a frozen dataclass), and read by
        # it once (checked there).
        object.__setattr__(self, "_native", _xbquant.AnalogParameters(fields))
        object.__setattr__(self, "_as_dict", fields)

    def __reduce__(self) -> Any:
        # The fields alone: the extension's copy is made again when the copy is built.
        return (type(self), tuple(getattr(self, f.name) for f in dataclasses.fields(self)))

    def _text(self) -> str:
        """The parameters as the text the registered operation takes (read back by `_of_text`)."""
        return ";".join(f"{k}={v!r}" for k, v in self._fields().items())

    def _fields(self) -> dict:
        fields: dict = self.__dict__["_as_dict"]
        return fields

    @classmethod
    def from_aihwkit(cls, io: Any) -> "IOParameters":
        """The parameters of an aihwkit ``IOParameters`` object (read by field name), refusing the
        fields it sets that the torch tile does not model (IR drop, asymmetries, nonlinearity,
        other product types, ...)."""
        values = {}
        for f in dataclasses.fields(cls):
            if not hasattr(io, f.name):
                raise TypeError(f"io has no field {f.name}: not an aihwkit IOParameters")
            value = getattr(io, f.name)
            if f.name in _CHOICES:
                value = getattr(value, "name", value)
                value = str(value).lower()
            values[f.name] = value
        unsupported = []
        for name in (
            "inp_asymmetry",
            "out_asymmetry",
            "ir_drop",
            "out_nonlinearity",
            "slope_calibration",
            "v_offset_std",
            "r_series",
            "w_read_asymmetry_dtod",
            "out_noise_std",
        ):
            if getattr(io, name, 0.0):
                unsupported.append(name)
        mv_type = getattr(io, "mv_type", None)
        if mv_type is not None and getattr(mv_type, "name", "ONE_PASS") not in ("ONE_PASS", "IDEAL"):
            unsupported.append("mv_type")
        if unsupported:
            raise ValueError(f"io sets fields this tile does not model: {', '.join(unsupported)}")
        if mv_type is not None and getattr(mv_type, "name", "") == "IDEAL":
            values["is_perfect"] = True
        return cls(**values)


_PARSED: dict = {}


def _of_text(text: str) -> IOParameters:
    """The parameters of `IOParameters._text` (cached: a graph passes the same text each call)."""
    io = _PARSED.get(text)
    if io is None:
        import ast

        pairs = (item.split("=", 1) for item in text.split(";"))
        io = _PARSED[text] = IOParameters(**{k: ast.literal_eval(v) for k, v in pairs})
    return io


_OP: Any = None


def _rows(a: Any) -> int:
    """The number of vectors in `a` (all axes but the last): what `reshape(-1, n)` cannot find
    when `a` is empty."""
    return math.prod(a.shape[:-1])


def _register_op(torch: Any) -> Any:
    """`torch.ops.xbquant.analog_mvm(x, w, io, tile, seed, input_bits)`: the tile's product as a
    registered operation (a fake implementation, the clip-aware gradient, a vmap rule by
    samples), so that torch.compile, torch.export and vmap see one node. `io` is the text of
    `IOParameters`, `seed` an int64 scalar tensor, `input_bits` 0 for inputs applied at once."""
    global _OP
    if _OP is not None:
        return _OP

    @torch.library.custom_op(
        "xbquant::analog_mvm",
        mutates_args=(),
        schema="(Tensor x, Tensor w, str io, int[] tile, Tensor seed, int input_bits) -> Tensor",
    )
    def op(x: Any, w: Any, io: str, tile: Any, seed: Any, input_bits: int) -> Any:
        """The tile's product of `x` (rows, in) and `w` (out, in)."""
        bits = input_bits if input_bits > 0 else None
        return _run(x, w, _of_text(io), (tile[0], tile[1]), int(seed.item()) % 2**64, bits)

    @op.register_fake
    def _(x: Any, w: Any, io: str, tile: Any, seed: Any, input_bits: int) -> Any:
        return x.new_empty((*x.shape[:-1], w.shape[0]))

    # The backward pass's own operation (its gradients come from the Rust crate, which a traced
    # graph cannot call on its tensors directly).
    @torch.library.custom_op(
        "xbquant::analog_mvm_backward",
        mutates_args=(),
        schema="(Tensor x, Tensor w, Tensor grad, str io, int[] tile, Tensor seed) -> (Tensor, Tensor)",
    )
    def gradients(x: Any, w: Any, grad: Any, io: str, tile: Any, seed: Any) -> Any:
        """The gradients of `analog_mvm` for `grad`, zero where a converter clipped."""
        return _gradients(x, w, grad, _of_text(io), (tile[0], tile[1]), int(seed.item()) % 2**64)

    @gradients.register_fake
    def _(x: Any, w: Any, grad: Any, io: str, tile: Any, seed: Any) -> Any:
        return torch.empty_like(x), torch.empty_like(w)

    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        x, w, io, tile, seed, input_bits = inputs
        ctx.save_for_backward(x, w, seed)
        ctx.io, ctx.tile, ctx.input_bits = io, tile, input_bits

    def backward(ctx: Any, grad: Any) -> Any:
        x, w, seed = ctx.saved_tensors
        if ctx.input_bits > 0:
            # Bit-sliced inputs: the ideal product's gradient, as the eager call.
            gx = grad @ w
            gw = grad.reshape(_rows(grad), grad.shape[-1]).T @ x.reshape(_rows(x), x.shape[-1])
        else:
            gx, gw = gradients(x, w, grad, ctx.io, ctx.tile, seed)
        return gx, gw, None, None, None, None

    op.register_autograd(backward, setup_context=setup_context)

    def vmap_rule(info: Any, in_dims: Any, x: Any, w: Any, io: str, tile: Any, seed: Any, bits: int) -> Any:
        # Each sample as its own call, as a loop of calls would be.
        size = info.batch_size
        xs, ws = _ops.vmap_samples(x, in_dims[0], size), _ops.vmap_samples(w, in_dims[1], size)
        return torch.stack([op(a, b, io, tile, seed, bits) for a, b in zip(xs, ws)]), 0

    op.register_vmap(vmap_rule)
    _OP = op
    return op


_DEFAULT_IO = IOParameters()


def _traced(x: Any, w: Any, io: IOParameters, tile: Tuple[int, int], seed: Optional[int], bits: Optional[int]) -> Any:
    """The registered operation: the path of a traced call and of torch.func's tensors. Without
    a seed, one is drawn from torch's generator, in the graph."""
    import torch

    op = _register_op(torch)
    return op(x, w, io._text(), list(tile), _ops.seed_tensor(torch, seed), 0 if bits is None else bits)


def _tile_size(tile_size: Any) -> Tuple[int, int]:
    if isinstance(tile_size, (list, tuple)) and len(tile_size) == 2:
        return (check_length(tile_size[0], "tile_size", 0, 2**40), check_length(tile_size[1], "tile_size", 0, 2**40))
    raise TypeError(f"tile_size must be a pair (inputs, outputs), got {type(tile_size).__name__} {tile_size!r}")


def _gradients(x: Any, w: Any, grad: Any, io: IOParameters, tile: Tuple[int, int], seed: int) -> Any:
    """The gradients of the product for `grad`, computed by the Rust crate: straight through
    the converters, zero where one clipped, in the forward pass of the same seed."""
    import torch

    device, dtype = x.device, x.dtype
    xs = x.detach().cpu().resolve_neg().contiguous().reshape(_rows(x), x.shape[-1]).numpy()
    ws = w.detach().cpu().resolve_neg().contiguous().numpy()
    gs = grad.detach().cpu().resolve_neg().contiguous().reshape(_rows(grad), w.shape[0]).to(dtype).numpy()
    gx, gw = np.empty_like(xs), np.empty_like(ws)
    _xbquant.analog_gradients(xs, ws, gs, gx, gw, io._fields(), tile, seed, str(xs.dtype))
    return torch.from_numpy(gx).reshape(x.shape).to(device), torch.from_numpy(gw).to(device)


def _run(x: Any, w: Any, io: IOParameters, tile: Tuple[int, int], seed: int, bits: Optional[int] = None) -> Any:
    """The product of tensors or arrays already checked (same dtype, last axes matching)."""
    tensor = _data.is_tensor(x)
    if tensor:
        device = x.device
        xs = x.detach().cpu().resolve_neg().contiguous().numpy()
        ws = w.detach().cpu().resolve_neg().contiguous().numpy()
    else:
        xs, ws = np.ascontiguousarray(x), np.ascontiguousarray(w)
    lead = xs.shape[:-1]
    flat = xs.reshape(_rows(xs), xs.shape[-1])
    out = np.empty((flat.shape[0], ws.shape[0]), dtype=flat.dtype)
    _xbquant.analog_mvm(flat, ws, out, io.__dict__["_native"], tile, seed, str(flat.dtype), bits)
    out = out.reshape(*lead, ws.shape[0])
    if tensor:
        import torch

        if _data.FAST.tensor is None:
            _data.FAST.know_torch(torch)  # the next call of CPU tensors may take the fast path
        return torch.from_numpy(out).to(device)
    return out


#: The default tile: aihwkit's ``MappingParameter`` (512 inputs, 512 outputs).
_DEFAULT_TILE = (512, 512)
_NUMPY_NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}


def _fast(x: Any, w: Any, io: "IOParameters", seed: int) -> Any:
    """The product of two CPU tensors that record no gradient, contiguous, of one float dtype,
    with the default tile, or None where the call must take its general path (which checks
    everything and says what is wrong): `Tensor.numpy()` refuses tensors on other devices,
    tensors that require grad, torch.func's tensors and views with a negative or conjugate
    bit, and the kernel refuses arrays it cannot read as they are."""
    try:
        xs, ws = x.numpy(), w.numpy()
    except _data.Fast.declined:
        return None
    name = _NUMPY_NAMES.get(xs.dtype)
    # Strided arrays the kernel refuses (declined below).
    if name is None or ws.dtype != xs.dtype or ws.ndim != 2 or xs.ndim < 1 or xs.shape[-1] != ws.shape[1]:
        return None
    out = np.empty(xs.shape[:-1] + (ws.shape[0],), dtype=xs.dtype)
    try:
        _xbquant.analog_mvm(
            xs.reshape(_rows(xs), xs.shape[-1]),
            ws,
            out.reshape(_rows(out), ws.shape[0]),
            io.__dict__["_native"],
            _DEFAULT_TILE,
            seed,
            name,
            None,
        )
    except _data.Fast.declined:
        return None
    return _data.FAST.from_numpy(out)


def mvm(
    x: Any,
    w: Any,
    io: Optional[IOParameters] = None,
    *,
    tile_size: Any = _DEFAULT_TILE,
    seed: Optional[int] = None,
    input_bits: Optional[int] = None,
) -> Any:
    """The analog product ``y = x w^T`` of input vectors ``x`` (shape ``(..., in)``) through the
    weight ``w`` (``(out, in)``, as ``torch.nn.Linear``) on analog tiles of at most
    ``tile_size = (inputs, outputs)`` (aihwkit's default 512 x 512; 0: no limit), with the
    converters and noise of ``io`` (``IOParameters()`` by default).

    Args:
        x, w: float32 or float64 tensors (any device and strides; computed on the CPU) or numpy
            arrays, of one dtype.
        seed: the seed of every random draw (input, output and weight noise, stochastic
            rounding). Without one, a fresh seed from torch's default generator (tensors) or
            numpy's (arrays), so ``torch.manual_seed`` repeats a run.

        input_bits: XBTorch's linear (bit-sliced) input encoding with this many bits: the
            inputs as sign-magnitude codes of their largest magnitude, one bit plane per
            cycle, an ADC conversion per plane, the planes' outputs shifted and added. ``None``:
            the inputs applied at once through the DAC of ``io``.

    On tensors that require grad the result carries the gradient straight through the
    converters, zero where one clipped (as aihwkit's clamps), and the ideal product's
    elsewhere: ``out_scale * in_mask * ((out_mask * grad) @ w)`` for ``x`` and ``out_scale *
    (out_mask * grad)^T x`` for ``w``, tile by tile (``xbquant_analog::mvm_gradients``).

    Raises:
        TypeError: data that is not float32 or float64, of two dtypes, or not a tensor or array.
        ValueError: shapes that do not match, or bad parameters.
    """
    if io is None:
        io = _DEFAULT_IO
    fast = _data.FAST
    if (
        type(x) is fast.tensor
        and type(w) is fast.tensor
        and type(io) is IOParameters
        and type(seed) is int
        and 0 <= seed < 2**64
        and input_bits is None
        and tile_size is _DEFAULT_TILE
        and not fast.compiling()
    ):
        y = _fast(x, w, io, seed)
        if y is not None:
            return y
    if not isinstance(io, IOParameters):
        raise TypeError(f"io must be an xbquant.analog.IOParameters, got {type(io).__name__}")
    tile = _tile_size(tile_size)
    seed = check_seed(seed)
    for name, value in (("x", x), ("w", w)):
        if not (_data.is_tensor(value) or isinstance(value, np.ndarray)):
            raise TypeError(f"{name} must be a torch.Tensor or a numpy array of floats, got {type(value).__name__}")
        if _data.is_tensor(value):
            _data.check_layout(value, name)
    if _data.is_tensor(x) != _data.is_tensor(w):
        raise TypeError("x and w must both be tensors or both numpy arrays")
    dtypes = (str(x.dtype).replace("torch.", ""), str(w.dtype).replace("torch.", ""))
    for name, dtype in zip(("x", "w"), dtypes):
        if dtype not in ("float32", "float64"):
            raise TypeError(f"{name} must hold float32 or float64 data, got {dtype}")
    if dtypes[0] != dtypes[1]:
        raise TypeError(f"x and w must have one dtype, got {dtypes[0]} and {dtypes[1]}")
    if w.ndim != 2:
        raise ValueError(f"w must be (out, in), got shape {tuple(w.shape)}")
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"x must be (..., {w.shape[1]}) for w of shape {tuple(w.shape)}, got {tuple(x.shape)}")
    bits = None if input_bits is None else check_length(input_bits, "input_bits", 1, 32)
    if _data.is_tensor(x):
        torch = _data.torch_module()
        if _ops.in_graph(x) or ((x.requires_grad or w.requires_grad) and torch.is_grad_enabled()):
            # Traced, a tensor of torch.func's transforms, or a gradient to record: the
            # registered operation, whose autograd gives the clip-aware gradient.
            return _traced(x, w, io, tile, seed, bits)
    if seed is None:
        seed = _data.draw_seed(x)
    return _run(x, w, io, tile, seed, bits)


def __getattr__(name: str) -> Any:
    # The layers need torch: imported when first asked for.
    if name in ("AnalogLinear", "AnalogConv2d", "convert_to_analog"):
        from . import _analog_layers

        return getattr(_analog_layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
