# Signatures of the private extension module (src/lib.rs). tests/test_stubs.py checks that they
# match the compiled functions' text signatures.
from typing import Optional, Tuple

import numpy as np

__version__: str

def quantize(
    src: np.ndarray,
    dst: Optional[np.ndarray],
    mask: Optional[np.ndarray],
    dtype: str,
    word_length: int,
    frac_length: int,
    signed: bool,
    overflow: str,
    rounding: str,
    seed: Optional[int],
) -> None: ...
def describe(
    word_length: int,
    frac_length: int,
    signed: bool,
    overflow: str,
    rounding: str,
    seed: Optional[int],
) -> Tuple[str, str, int, float, float, Optional[int]]: ...
def format_range(
    word_length: int, frac_length: int, symmetric: bool, signed: bool
) -> Tuple[float, float]: ...
def parse_hls(name: str) -> Tuple[int, int, bool, str, str]: ...
