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

import torch

from . import _xbquant

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


def uniform(seed: int, count: int, device) -> torch.Tensor:
    """The kernels' draws in [0, 1) for elements 0..count of the stream of `seed`: the high 32
    bits from the 32-bit hash (whose keys change every 2^32 elements), the low bits from the
    64-bit mixer."""
    key = _xbquant.stream_key(seed)
    index = torch.arange(count, dtype=torch.int64, device=device)
    low_bits = _DRAW_BITS - _HIGH_BITS
    low = _shift_right(_mix64(index * _signed(_STEP) + _signed(key)), 64 - low_bits)
    high = torch.empty_like(index)
    for block, start in enumerate(range(0, count, 1 << 32)):
        part = index[start : start + (1 << 32)]
        w = ((part & _LOW32) * _WEYL) & _LOW32
        high[start : start + (1 << 32)] = _hash32(w, _xbquant.hash_keys(seed, block))
    return ((high << low_bits) | low).to(torch.float64) * 2.0**-_DRAW_BITS


def _is_odd(v: torch.Tensor) -> torch.Tensor:
    return v - 2.0 * torch.floor(v * 0.5) == 1.0


def _round(t: torch.Tensor, spec) -> torch.Tensor:
    mode = spec.rounding
    if mode == "nearest":
        return torch.round(t)
    if mode == "floor":
        return torch.floor(t)
    if mode == "toward-zero":
        return torch.trunc(t)
    if mode == "stochastic":
        a = t.abs()
        whole = torch.floor(a)
        u = uniform(spec.seed, t.numel(), t.device).reshape(t.shape)
        up = (u < a - whole).to(torch.float64)
        return torch.copysign(whole + up, t)
    a = t.abs()
    tie = a - torch.floor(a) == 0.5
    if mode == "nearest-up":
        at_tie = torch.ceil(t)
    elif mode == "nearest-down":
        at_tie = torch.floor(t)
    elif mode == "nearest-toward-zero":
        at_tie = torch.trunc(t)
    elif mode == "nearest-away":
        at_tie = t + torch.copysign(torch.full_like(t, 0.5), t)
    else:  # pragma: no cover - the names come from the Rust side
        raise ValueError(f"unknown rounding {mode!r}")
    return torch.where(tie, at_tie, torch.round(t))


def _wrapped(k: torch.Tensor, signed: bool, wl: int) -> torch.Tensor:
    modulus, inv_modulus, half = 2.0**wl, 2.0**-wl, 2.0 ** (wl - 1)
    if signed:
        r = k - modulus * torch.round(k * inv_modulus)
        r = torch.where(r >= half, r - modulus, r)
    else:
        r = k - modulus * torch.floor(k * inv_modulus)
    return torch.where(torch.isfinite(k), r, torch.zeros_like(r))


def _wrap_bits(k: torch.Tensor, t: torch.Tensor, spec) -> torch.Tensor:
    wl, n = spec.wl, spec.sat_bits
    half, inv_modulus = 2.0 ** (wl - 1), 2.0**-wl
    zero = torch.zeros_like(k)
    negative = k < 0
    if spec.overflow == "wrap-sign-magnitude" and n == 0:
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
    if spec.overflow == "wrap-sign-magnitude":
        forced = negative ^ (n > 1)
        low = torch.where(_is_odd(above) == forced, low, kept - 1.0 - low)
    return low + torch.where(negative, zero - half, zero + (half - kept))


def _overflow(k: torch.Tensor, t: torch.Tensor, spec):
    """The code the format produces from the rounded code `k`, and the overflow mask."""
    over = (k < spec.code_min) | (k > spec.code_max)
    mode = spec.overflow
    if mode == "unbounded":
        return k, torch.zeros_like(over)
    if mode in ("saturate", "saturate-symmetric"):
        return torch.clamp(k, spec.code_min, spec.code_max), over
    if mode == "saturate-zero":
        return torch.where(over, torch.zeros_like(k), k), over
    if mode == "wrap" and spec.sat_bits == 0:
        return torch.where(over, _wrapped(k, spec.signed, spec.wl), k), over
    return torch.where(over, _wrap_bits(k, t, spec), k), over


def needs_kernels(x: torch.Tensor, spec) -> bool:
    """Whether torch operations cannot give the kernels' bits for `x`: the caller runs the
    kernels on a CPU copy instead."""
    if x.device.type == "mps":
        return True
    narrow = x.dtype in (torch.float16, torch.bfloat16)
    return narrow and spec.wl > 24 and spec.overflow != "unbounded"


def quantize(x: torch.Tensor, spec, with_mask: bool):
    """`x` quantized on its own device with torch operations (`spec`, an `_xbquant.Spec`, has
    its seed resolved already), unless `needs_kernels`."""
    v = x.detach().to(torch.float64)
    scaled = v * 2.0**spec.fl
    t = torch.where(
        (scaled == 0) & (v != 0), torch.copysign(torch.full_like(v, _TINY), v), scaled
    )
    k, over = _overflow(_round(t, spec), t, spec)
    q = k * 2.0**-spec.fl + 0.0  # + 0.0: no negative zero
    if spec.overflow == "unbounded":
        q = torch.where(torch.isinf(t), v, q)
    nan = torch.isnan(v)
    q = torch.where(nan, v, q)
    mask = (over & ~nan) if with_mask else None
    return q.to(x.dtype).contiguous(), mask


_EXPONENT = 0x7FF0_0000_0000_0000


def quantize_float(x: torch.Tensor, spec, seed) -> torch.Tensor:
    """`x` rounded to the floating-point format of `spec` (an `_xbquant.FloatSpec`) with torch
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
