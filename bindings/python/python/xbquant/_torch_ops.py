"""Quantization written with torch operations, for tensors that are not on the CPU (CUDA, ...).

The maths is written twice: here, and in the Rust kernels (`crates/xbquant/src/kernel/`), which
are the definition. This follows the kernels' float64 path step by step: the same exact scaling,
roundings, overflow rules and counter-based random numbers (whose constants it reads from the
extension module), so that it gives the same bits. The test suite runs it on CPU tensors forced
through it and compares it with the kernels in every mode; it has not been run on a GPU by the
test suite.

Two cases must go through the Rust kernels on a CPU copy instead (see `needs_kernels`): devices
without float64 (Apple's MPS), and float16 / bfloat16 data with a bounded word longer than 24 bits
(torch converts float64 to those types through float32, which can round twice)."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch

from . import _xbquant
from ._xbquant import OverflowMode, RoundingMode, Scheme

_TINY = 5e-324  # the smallest positive float64 subnormal
_STEP = _xbquant.NOISE_STEP
_MIX = _xbquant.NOISE_MIX
_SHIFTS = _xbquant.NOISE_SHIFTS
_DRAW_BITS = _xbquant.NOISE_DRAW_BITS
_HIGH_BITS = _xbquant.NOISE_HIGH_BITS
_WEYL = _xbquant.NOISE_WEYL
_HASH_MUL = _xbquant.NOISE_HASH_MUL
_HASH_SHIFTS = _xbquant.NOISE_HASH_SHIFTS
_LOW32 = (1 << 32) - 1


def _signed(value: int) -> int:
    """A 64-bit pattern as the int64 that holds it."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _shift_right(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (torch's `>>` is arithmetic)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def _mix64(z: torch.Tensor) -> torch.Tensor:
    # int64 multiplication wraps modulo 2^64, as u64 wrapping_mul does.
    z = (z ^ _shift_right(z, _SHIFTS[0])) * _signed(_MIX[0])
    z = (z ^ _shift_right(z, _SHIFTS[1])) * _signed(_MIX[1])
    return z ^ _shift_right(z, _SHIFTS[2])


def _hash32(w: torch.Tensor, keys) -> torch.Tensor:
    """The 32-bit hash of the counters `w` (int64 holding 32-bit values): each product of two
    32-bit values wraps modulo 2^64 in int64 and keeps its low 32 bits, as u32 wrapping_mul."""
    x = w ^ keys[0]
    x = ((x ^ (x >> _HASH_SHIFTS[0])) * _HASH_MUL[0]) & _LOW32
    x = ((x ^ (x >> _HASH_SHIFTS[1]) ^ keys[1]) * _HASH_MUL[1]) & _LOW32
    return x ^ (x >> _HASH_SHIFTS[2])


def uniform(seed: Optional[int], count: int, device: Any) -> torch.Tensor:
    """The kernels' draws in [0, 1) for elements 0..count of the stream of `seed`: the high 32
    bits from the 32-bit hash (whose keys change every 2^32 elements), the low bits from the
    64-bit mixer."""
    if seed is None:  # the data path resolves every call's seed before it comes here
        raise ValueError("stochastic rounding without a seed")
    key = _xbquant.stream_key(seed)
    index = torch.arange(count, dtype=torch.int64, device=device)
    low_bits = _DRAW_BITS - _HIGH_BITS
    low = _shift_right(_mix64(index * _signed(_STEP) + _signed(key)), 64 - low_bits)
    # Without writes into a buffer, so that the operation's decomposition stays functional.
    parts = []
    for block, start in enumerate(range(0, count, 1 << 32)):
        part = index[start : start + (1 << 32)]
        w = ((part & _LOW32) * _WEYL) & _LOW32
        parts.append(_hash32(w, _xbquant.hash_keys(seed, block)))
    high = parts[0] if len(parts) == 1 else torch.cat(parts) if parts else torch.empty_like(index)
    return ((high << low_bits) | low).to(torch.float64) * 2.0**-_DRAW_BITS


def _is_odd(v: torch.Tensor) -> torch.Tensor:
    return v - 2.0 * torch.floor(v * 0.5) == 1.0


def _round(t: torch.Tensor, spec: Scheme) -> torch.Tensor:
    mode = spec.rounding_mode
    if mode == RoundingMode.Nearest:
        return torch.round(t)
    if mode == RoundingMode.Floor:
        return torch.floor(t)
    if mode == RoundingMode.TowardZero:
        return torch.trunc(t)
    if mode == RoundingMode.Stochastic:
        a = t.abs()
        whole = torch.floor(a)
        u = uniform(spec.seed, t.numel(), t.device).reshape(t.shape)
        up = (u < a - whole).to(torch.float64)
        return torch.copysign(whole + up, t)
    a = t.abs()
    tie = a - torch.floor(a) == 0.5
    if mode == RoundingMode.NearestUp:
        at_tie = torch.ceil(t)
    elif mode == RoundingMode.NearestDown:
        at_tie = torch.floor(t)
    elif mode == RoundingMode.NearestTowardZero:
        at_tie = torch.trunc(t)
    else:  # RoundingMode.NearestAway: the modes are the Rust side's, all handled
        at_tie = t + torch.copysign(torch.full_like(t, 0.5), t)
    return torch.where(tie, at_tie, torch.round(t))


def _wrapped(k: torch.Tensor, signed: bool, wl: int) -> torch.Tensor:
    modulus, inv_modulus, half = 2.0**wl, 2.0**-wl, 2.0 ** (wl - 1)
    if signed:
        r = k - modulus * torch.round(k * inv_modulus)
        r = torch.where(r >= half, r - modulus, r)
    else:
        r = k - modulus * torch.floor(k * inv_modulus)
    return torch.where(torch.isfinite(k), r, torch.zeros_like(r))


def _wrap_bits(k: torch.Tensor, t: torch.Tensor, spec: Scheme) -> torch.Tensor:
    wl, n = spec.wl, spec.sat_bits
    half, inv_modulus = 2.0 ** (wl - 1), 2.0**-wl
    zero = torch.zeros_like(k)
    negative = k < 0
    sign_magnitude = spec.overflow_mode == OverflowMode.WrapSignMagnitude
    if sign_magnitude and n == 0:
        w = _wrapped(k, True, wl)
        beyond = _is_odd(torch.floor(torch.floor(t) * inv_modulus))
        sign = w < 0
        low = w + torch.where(sign, zero + half, zero)
        folded = half - 1.0 - low - torch.where(beyond, zero + half, zero)
        return torch.where(beyond == sign, w, folded)
    kept, inv_kept = 2.0 ** (wl - n), 2.0 ** (n - wl)
    above = torch.floor(k * inv_kept)
    low = k - kept * above
    low = torch.where(torch.isfinite(k), low, zero)
    if sign_magnitude:
        forced = negative ^ (n > 1)
        low = torch.where(_is_odd(above) == forced, low, kept - 1.0 - low)
    return low + torch.where(negative, zero - half, zero + (half - kept))


def _overflow(k: torch.Tensor, t: torch.Tensor, spec: Scheme) -> Tuple[torch.Tensor, torch.Tensor]:
    """The code the format produces from the rounded code `k`, and the overflow mask."""
    over = (k < spec.code_min) | (k > spec.code_max)
    mode = spec.overflow_mode
    if mode == OverflowMode.Unbounded:
        return k, torch.zeros_like(over)
    if mode in (OverflowMode.Saturate, OverflowMode.SaturateSymmetric):
        return torch.clamp(k, spec.code_min, spec.code_max), over
    if mode == OverflowMode.SaturateZero:
        return torch.where(over, torch.zeros_like(k), k), over
    if mode == OverflowMode.Wrap and spec.sat_bits == 0:
        return torch.where(over, _wrapped(k, spec.signed, spec.wl), k), over
    return torch.where(over, _wrap_bits(k, t, spec), k), over


def needs_kernels(x: torch.Tensor, spec: Scheme) -> bool:
    """Whether torch operations cannot give the kernels' bits for `x` with the fixed point of
    `spec`: the caller runs the kernels on a CPU copy instead."""
    if x.device.type == "mps":
        return True
    narrow = x.dtype in (torch.float16, torch.bfloat16)
    return narrow and spec.wl > 24 and spec.overflow_mode != OverflowMode.Unbounded


def supports(x: torch.Tensor, scheme: Scheme, with_mask: bool) -> bool:
    """Whether the torch operations here give the kernels' bits for `x` and `scheme`: fixed
    point alone (unless `needs_kernels`), floating point alone and block floating point (without
    a mask) on devices with float64. The data path runs every other scheme through the kernels on
    a CPU copy."""
    if x.device.type == "mps":
        return False
    if scheme.kind == "fixed" and scheme.plain:
        return not needs_kernels(x, scheme)
    if scheme.kind == "float" and scheme.plain:
        return not with_mask
    return scheme.kind == "fixed" and scheme.scale == "shared-exponent" and not with_mask


def composes(x: torch.Tensor, scheme: Scheme) -> bool:
    """Whether `composed` gives the kernels' bits and clip mask for `x` and `scheme`: fixed
    point alone (unless `needs_kernels`) and floating point alone, their noise seeded."""
    if x.device.type == "mps" or scheme.draws or not scheme.plain:
        return False
    if scheme.kind == "fixed":
        return not needs_kernels(x, scheme)
    return scheme.kind == "float"


def composed(x: torch.Tensor, scheme: Scheme) -> Tuple[torch.Tensor, torch.Tensor]:
    """`x` quantized with torch operations and the clip mask, for a scheme `composes` takes:
    the registered operation's decomposition, which torch.compile fuses into one kernel."""
    if scheme.kind == "float":
        out = quantize_float(x, scheme, scheme.seed)
        # The kernels' mask: the finite values beyond the format's largest magnitude.
        a = x.detach().to(torch.float64).abs()
        return out, torch.isfinite(a) & (a > scheme.max)
    out, mask = quantize(x, scheme, True)
    assert mask is not None
    return out, mask


def run(x: torch.Tensor, scheme: Scheme, with_mask: bool) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """`x` quantized on its own device (a scheme `supports` takes, its noise resolved already):
    `(result, mask or None)`."""
    if scheme.kind == "float":
        return quantize_float(x, scheme, scheme.seed), None
    if scheme.scale == "shared-exponent":
        dim = -1 if scheme.axis is None else int(scheme.axis)
        return block_quantize(x.detach(), scheme, dim, scheme.runs), None
    return quantize(x, scheme, with_mask)


def quantize(x: torch.Tensor, spec: Scheme, with_mask: bool) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """`x` quantized on its own device with torch operations (`spec`, a fixed-point `Scheme`,
    has its seed resolved already), unless `needs_kernels`."""
    v = x.detach().to(torch.float64)
    scaled = v * 2.0**spec.fl
    t = torch.where((scaled == 0) & (v != 0), torch.copysign(torch.full_like(v, _TINY), v), scaled)
    k, over = _overflow(_round(t, spec), t, spec)
    q = k * 2.0**-spec.fl
    # No negative zero (not `+ 0.0`, which compilers drop as the identity).
    q = torch.where(q == 0, torch.zeros_like(q), q)
    if spec.overflow_mode == OverflowMode.Unbounded:
        q = torch.where(torch.isinf(t), v, q)
    nan = torch.isnan(v)
    q = torch.where(nan, v, q)
    mask = (over & ~nan) if with_mask else None
    return q.to(x.dtype).contiguous(), mask


_EXPONENT = 0x7FF0_0000_0000_0000


def quantize_float(x: torch.Tensor, spec: Scheme, seed: Optional[int]) -> torch.Tensor:
    """`x` rounded to the floating-point format of `spec` (a floating-point `Scheme`) with torch
    operations: the kernel's float64 steps (`crates/xbquant/src/kernel/float.rs`). `seed` is the
    call's seed for stochastic rounding (the spec's own when it has one)."""
    v = x.detach().to(torch.float64)
    m = spec.mantissa_bits
    top = 2.0 ** (spec.max_exponent + 1)
    # |v| held between the smallest normal value and the binade past the largest (NaN: any
    # value; it stays NaN below): its exponent field less m is the step's.
    held = torch.where(torch.isnan(v), spec.min_normal, v.abs().clamp(spec.min_normal, top))
    field = held.view(torch.int64) & _EXPONENT
    step = (field - (m << 52)).view(torch.float64)
    inverse = (((2046 + m) << 52) - field).view(torch.float64)
    t = v * inverse
    if spec.stochastic:
        u = uniform(seed, t.numel(), t.device).view(t.shape)
        a = t.abs()
        whole = torch.floor(a)
        r = torch.copysign(whole + (u < a - whole).to(torch.float64), t)
    else:
        r = torch.round(t)  # ties to even
    q = r * step
    beyond = torch.full_like(q, spec.overflow_value)
    q = torch.where(q.abs() > spec.max, torch.copysign(beyond, v), q)
    return q.to(x.dtype).contiguous()


def _finite_abs_max(a, dims=None, keepdim=False):
    """The largest finite magnitude of `a` (over `dims`, or all of it): one pass when every
    value is finite, a second one otherwise."""
    if dims is None:
        # The extremes, without a temporary |a|.
        lo, hi = torch.aminmax(a)
        top = torch.maximum(lo.abs(), hi.abs())
    else:
        top = a.abs().amax(dim=dims, keepdim=keepdim)
    if not bool(torch.isfinite(top).all()):
        finite = torch.where(torch.isfinite(a), a.abs(), torch.zeros_like(a))
        top = finite.amax(dim=dims, keepdim=keepdim) if dims is not None else finite.amax()
    return top


def _exponent(top):
    """The exponent of the leading bit of each of `top`'s values (0 for zero), as float64."""
    top = top.to(torch.float64)
    # frexp gives top = m * 2^e with m in [0.5, 1): the leading bit's exponent is e - 1.
    exponent = torch.frexp(top).exponent.to(torch.float64) - 1
    return torch.where(top > 0, exponent, torch.zeros_like(exponent))


def block_quantize(a: torch.Tensor, spec: Scheme, dim: int, block_size: Optional[int]) -> torch.Tensor:
    """The block rule in torch operations, for tensors on any device (arguments checked): one
    block is one fixed-point format; several are scaled by their powers of two (exactly),
    quantized as fixed point, and scaled back."""
    from . import _data, _schemes

    wl = spec.wl

    def fixed(fl: int) -> Scheme:
        return _schemes.fixed(wl, fl, "saturate-symmetric", spec.rounding, True, spec.seed, 0)

    if block_size is None and dim == -1:
        # One block: a fixed-point format of the block's fractional length, in one kernel call
        # (unless the exponent is beyond the fractional lengths a format takes).
        e = int(_exponent(_finite_abs_max(a)).item())
        try:
            one = fixed(wl - 2 - e)
        except ValueError:
            one = None
        if one is not None:
            return _data.run(a, one)[0]
    shape = a.shape
    if block_size is not None:
        a = a.reshape(*shape[:-1], shape[-1] // block_size, block_size)
        e = _exponent(_finite_abs_max(a, -1, keepdim=True))
    elif dim == -1:
        e = _exponent(_finite_abs_max(a))
    else:
        dims = [d for d in range(a.dim()) if d != dim]
        if dims:
            e = _exponent(_finite_abs_max(a, dims, keepdim=True))
        else:  # a 1-d tensor by its only axis: each value its own block
            e = _exponent(torch.where(torch.isfinite(a), a.abs(), torch.zeros_like(a)))
    # Each block scaled by its power of two, quantized with fl = wl - 2, and scaled back: exact
    # in float32 unless a block's step falls below float32's normal range, else in float64.
    smallest_step = float(e.min()) + 2 - wl if e.numel() else 0.0
    work = torch.float32 if a.dtype != torch.float64 and smallest_step >= -125 else torch.float64
    scale = torch.exp2(e).to(work)
    q = _data.run((a.to(work) / scale).contiguous(), fixed(wl - 2))[0]
    return (q * scale).reshape(shape).to(a.dtype)
