# Signatures of the private extension module (src/lib.rs). tests/test_stubs.py checks that they
# match the compiled functions' and class's text signatures.
from typing import List, Optional, Tuple

import numpy as np

__version__: str
NOISE_STEP: int
NOISE_MIX: List[int]
NOISE_SHIFTS: List[int]
NOISE_DRAW_BITS: int

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

def quantize(
    spec: Spec,
    src: np.ndarray,
    dst: Optional[np.ndarray],
    mask: Optional[np.ndarray],
    dtype: str,
    seed: Optional[int],
) -> None: ...
def format_range(
    word_length: int, frac_length: int, symmetric: bool, signed: bool
) -> Tuple[float, float]: ...
def stream_key(seed: int) -> int: ...
