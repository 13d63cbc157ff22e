# Signatures of the private extension module (src/lib.rs). tests/test_stubs.py checks that they
# match the compiled functions' and class's text signatures.
from typing import List, Optional, Sequence, Tuple

import numpy as np

__version__: str
NOISE_STEP: int
NOISE_MIX: List[int]
NOISE_SHIFTS: List[int]
NOISE_DRAW_BITS: int
NOISE_HIGH_BITS: int
NOISE_WEYL: int
NOISE_HASH_MUL: List[int]
NOISE_HASH_SHIFTS: List[int]

class Spec:
    def __new__(
        cls,
        wl: int,
        fl: int,
        signed: bool,
        overflow: str,
        sat_bits: int,
        rounding: str,
        seed: Optional[int],
    ) -> "Spec": ...
    @staticmethod
    def from_hls(name: str) -> "Spec": ...
    def with_seed(self, seed: int) -> "Spec": ...
    def to_hls(self) -> str: ...
    @property
    def wl(self) -> int: ...
    @property
    def fl(self) -> int: ...
    @property
    def signed(self) -> bool: ...
    @property
    def overflow(self) -> str: ...
    @property
    def sat_bits(self) -> int: ...
    @property
    def rounding(self) -> str: ...
    @property
    def stochastic(self) -> bool: ...
    @property
    def seed(self) -> Optional[int]: ...
    @property
    def code_min(self) -> float: ...
    @property
    def code_max(self) -> float: ...
    @property
    def range(self) -> Tuple[float, float]: ...

class FloatSpec:
    def __new__(
        cls,
        format: str,
        rounding: str,
        overflow: Optional[str],
        seed: Optional[int],
    ) -> "FloatSpec": ...
    @property
    def name(self) -> str: ...
    @property
    def exponent_bits(self) -> int: ...
    @property
    def mantissa_bits(self) -> int: ...
    @property
    def finite(self) -> bool: ...
    @property
    def saturate(self) -> bool: ...
    @property
    def max(self) -> float: ...
    @property
    def max_exponent(self) -> int: ...
    @property
    def overflow_value(self) -> float: ...
    @property
    def min_normal(self) -> float: ...
    @property
    def min_positive(self) -> float: ...
    @property
    def stochastic(self) -> bool: ...
    @property
    def seed(self) -> Optional[int]: ...

def quantize_float(
    spec: FloatSpec,
    src: np.ndarray,
    dst: Optional[np.ndarray],
    dtype: str,
    seed: Optional[int],
) -> None: ...
def quantize_block(
    spec: Spec,
    src: np.ndarray,
    dst: np.ndarray,
    dtype: str,
    seed: Optional[int],
    axis: Optional[int],
    block_size: Optional[int],
) -> None: ...
def quantize(
    spec: Spec,
    src: np.ndarray,
    dst: Optional[np.ndarray],
    mask: Optional[np.ndarray],
    dtype: str,
    seed: Optional[int],
) -> None: ...
def quantized(spec: Spec, src: np.ndarray, seed: Optional[int]) -> np.ndarray: ...
def format_range(
    word_length: int, frac_length: int, symmetric: bool, signed: bool
) -> Tuple[float, float]: ...
def stream_key(seed: int) -> int: ...
def hash_keys(seed: int, block: int) -> List[int]: ...

class LevelTable:
    def __new__(cls, levels: Sequence[float]) -> "LevelTable": ...
    @property
    def levels(self) -> List[float]: ...

def quantize_slices(
    spec: Spec,
    src: np.ndarray,
    dst: np.ndarray,
    mask: Optional[np.ndarray],
    dtype: str,
    seed: Optional[int],
    axis: Optional[int],
    fls: Sequence[int],
) -> None: ...
def choose_fl(
    spec: Spec, src: np.ndarray, dtype: str, axis: Optional[int], method: str
) -> List[int]: ...
def convert(
    bits: int,
    rounding: str,
    seed: Optional[int],
    range: str,
    ranges: Sequence[float],
    noise: str,
    width: float,
    noise_seed: Optional[int],
    src: np.ndarray,
    dst: np.ndarray,
    mask: Optional[np.ndarray],
    dtype: str,
    axis: Optional[int],
) -> None: ...
def quantize_scaled(
    spec: Spec,
    seed: Optional[int],
    range: str,
    ranges: Sequence[float],
    src: np.ndarray,
    dst: np.ndarray,
    mask: Optional[np.ndarray],
    dtype: str,
    axis: Optional[int],
) -> None: ...
def quantize_grid(
    step: float,
    offset: float,
    levels: Optional[int],
    rounding: str,
    seed: Optional[int],
    src: np.ndarray,
    dst: np.ndarray,
    dtype: str,
) -> None: ...
def quantize_levels(
    table: LevelTable,
    rounding: str,
    seed: Optional[int],
    src: np.ndarray,
    dst: np.ndarray,
    dtype: str,
) -> None: ...
def bit_slices(
    codes: np.ndarray, bits: int, slice_bits: int, encoding: str, out: np.ndarray
) -> None: ...
def from_bit_slices(
    planes: np.ndarray, bits: int, slice_bits: int, encoding: str, length: int
) -> List[int]: ...
