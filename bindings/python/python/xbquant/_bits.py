"""Bit slicing: integer codes split into planes of a few bits (the inputs of a bit-serial
crossbar) and put back together, for torch tensors and numpy arrays of any integer (or
integer-valued float) dtype."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _data, _ops, _xbquant
from ._checks import check_choice, check_length

ENCODINGS = ("sign-magnitude", "twos-complement", "offset-binary")


def _holds(dtype, lo: int, hi: int) -> bool:
    """Whether a numpy or torch dtype holds every integer from `lo` to `hi` exactly."""
    torch = _data.torch_module()
    if torch is not None and isinstance(dtype, torch.dtype):
        if dtype.is_floating_point:
            bits = {torch.float16: 11, torch.bfloat16: 8, torch.float32: 24}.get(dtype, 53)
            return max(-lo, hi) <= 2**bits
        info = torch.iinfo(dtype)
    else:
        if dtype.kind == "f":
            return max(-lo, hi) <= 2 ** (np.finfo(dtype).nmant + 1)
        info = np.iinfo(dtype)
    return info.min <= lo and hi <= info.max


def _codes_int64(codes, name: str):
    """The codes as a flat C-contiguous int64 numpy array (each checked: an integer that int64
    holds), their shape, and how to give results back: in the codes' dtype where it holds every
    value `(lo, hi)` a result can take, else in int64."""
    if _data.is_tensor(codes):
        import torch

        _data.check_layout(codes, name)
        data = codes.detach().cpu()
        if data.dtype == torch.bool or data.is_complex():
            raise TypeError(f"{name} must be integers, got {data.dtype}")
        if data.is_floating_point():
            data = data.double()
            if not bool(torch.all(torch.isfinite(data) & (data == torch.round(data)))):
                raise ValueError(f"{name} must be integers (float codes must have integer values)")
            if data.numel() and float(data.abs().max()) >= 2.0**63:
                raise ValueError(f"{name} must lie within 64-bit integers, got {float(data.abs().max())!r}")
        elif data.dtype == getattr(torch, "uint64", None):
            flat = data.reshape(-1).numpy().view(np.uint64)
            if flat.size and int(flat.max()) >= 2**63:
                raise ValueError(f"{name} must lie within 64-bit integers, got {int(flat.max())}")
        flat = np.ascontiguousarray(data.to(torch.int64).reshape(-1).numpy())

        def back(a, shape, lo, hi):
            dtype = codes.dtype if _holds(codes.dtype, lo, hi) else torch.int64
            return torch.from_numpy(a.reshape(shape)).to(dtype).to(codes.device)

        return flat, tuple(codes.shape), back
    if isinstance(codes, np.ndarray):
        if codes.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                whole = np.isfinite(codes) & (codes == np.round(codes))
            if not np.all(whole):
                raise ValueError(f"{name} must be integers (float codes must have integer values)")
            if codes.size and float(np.abs(codes).max()) >= 2.0**63:
                raise ValueError(f"{name} must lie within 64-bit integers, got {float(np.abs(codes).max())!r}")
        elif codes.dtype.kind == "u":
            if codes.size and int(codes.max()) >= 2**63:
                raise ValueError(f"{name} must lie within 64-bit integers, got {int(codes.max())}")
        elif codes.dtype.kind != "i":
            raise TypeError(f"{name} must be integers, got numpy {codes.dtype}")
        flat = np.ascontiguousarray(codes.astype(np.int64).reshape(-1))

        def back(a, shape, lo, hi):
            dtype = codes.dtype if _holds(codes.dtype, lo, hi) else np.dtype(np.int64)
            return a.reshape(shape).astype(dtype)

        return flat, codes.shape, back
    raise TypeError(f"{name} must be a torch.Tensor or a numpy array of integers, got {type(codes).__name__}")


def _slicing(bits, slice_bits, encoding):
    bits = check_length(bits, "bits")
    slice_bits = check_length(slice_bits, "slice_bits")
    check_choice(encoding, "encoding", ENCODINGS)
    if not 1 <= bits <= 62 or not 1 <= slice_bits <= bits:
        raise ValueError(f"bits must be 1 to 62 and slice_bits 1 to bits, got {bits} and {slice_bits}")
    return bits, slice_bits, -(-bits // slice_bits)


def _planes(codes, bits, slice_bits, encoding):
    bits, slice_bits, count = _slicing(bits, slice_bits, encoding)
    flat, shape, back = _codes_int64(codes, "codes")
    planes = np.empty((count, flat.size), dtype=np.int64)
    try:
        _xbquant.bit_slices(flat, bits, slice_bits, encoding, planes)
    except ValueError as e:
        raise ValueError(f"codes: {e}") from None
    # The digits a plane can hold.
    top = 2**slice_bits - 1
    return back(planes, (count, *shape), -top if encoding == "sign-magnitude" else 0, top)


def _codes(slices, bits, slice_bits, encoding):
    bits, slice_bits, count = _slicing(bits, slice_bits, encoding)
    flat, shape, back = _codes_int64(slices, "slices")
    if len(shape) == 0 or shape[0] != count:
        raise ValueError(
            f"expected {count} planes along the first axis for {bits} bits in slices of "
            f"{slice_bits}, got shape {tuple(shape)}"
        )
    length = flat.size // count
    try:
        codes = np.asarray(_xbquant.from_bit_slices(flat, bits, slice_bits, encoding, length), dtype=np.int64)
    except ValueError as e:
        raise ValueError(f"slices: {e}") from None
    # The codes of the word, and those the planes gave (sign-magnitude and offset-binary sums
    # of planes that are not canonical digits can lie beyond them): the planes' dtype where it
    # holds them all, else int64.
    if encoding == "sign-magnitude":
        lo, hi = -(2**bits - 1), 2**bits - 1
    else:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if codes.size:
        lo, hi = min(lo, int(codes.min())), max(hi, int(codes.max()))
    return back(codes, shape[1:], lo, hi)


def bit_slices(codes: Any, bits: int, slice_bits: int = 1, encoding: str = "sign-magnitude") -> Any:
    """Integer codes split into planes of ``slice_bits`` bits, least significant first: the
    result has one more axis in front, of ``ceil(bits / slice_bits)`` planes, and the codes'
    type and device; its dtype is the codes' where that holds every digit a plane can take, else
    int64 (int8 codes in 8-bit slices give int64 planes, never wrapped ones). Float codes must
    hold integers, as XBTorch's rounded inputs do; every code must lie within 64-bit integers
    and within the word (``ValueError`` otherwise).

    Encodings: ``"sign-magnitude"`` (planes carry ``sign(c) * digit_j(|c|)``, codes with
    ``|c| < 2**bits``: XBTorch's linear input encoding), ``"twos-complement"`` and
    ``"offset-binary"`` (unsigned digits of the ``bits``-bit word; codes
    ``-2**(bits-1) .. 2**(bits-1) - 1``). Plane ``j`` weighs ``2**(j * slice_bits)``;
    :func:`from_bit_slices` puts them back.

    Example::

        >>> import numpy as np
        >>> bit_slices(np.array([-5, 6]), 4)
        array([[-1,  0],
               [ 0,  1],
               [-1,  1],
               [ 0,  0]])
        >>> bit_slices(np.array([-5]), 4, slice_bits=2, encoding="twos-complement")
        array([[3],
               [2]])
    """
    if _traced(codes):
        _slicing(bits, slice_bits, encoding)
        return _ops.slicing_op("bit_slices")(codes.detach(), bits, slice_bits, encoding)
    return _planes(codes, bits, slice_bits, encoding)


def _traced(data: Any) -> bool:
    """Whether a tensor is traced (torch.compile, torch.export) or of torch.func's transforms:
    the call goes through the registered operation."""
    return _data.is_tensor(data) and _ops.in_graph(data)


def from_bit_slices(slices: Any, bits: int, slice_bits: int = 1, encoding: str = "sign-magnitude") -> Any:
    """The codes of planes made by :func:`bit_slices` (planes along the first axis): the sum of
    the planes times their weights, read back in the encoding. Sign-magnitude and offset-binary
    planes need not hold canonical digits (the sum is linear, as an analog accumulation is);
    two's complement planes must (a digit outside its bits is a ``ValueError``: it would wrap).
    The codes come back in the planes' dtype where that holds every code of the word and every
    sum the planes gave, else in int64. Traced (``torch.compile``, ``torch.export``, ``vmap``),
    the sums are not known in advance: int64 unless the planes' dtype holds every sum planes of
    that dtype can give.

    Example::

        >>> import numpy as np
        >>> from_bit_slices(bit_slices(np.array([-5, 6]), 4), 4)
        array([-5,  6])
    """
    if _traced(slices):
        _slicing(bits, slice_bits, encoding)
        return _ops.slicing_op("from_bit_slices")(slices.detach(), bits, slice_bits, encoding)
    return _codes(slices, bits, slice_bits, encoding)
