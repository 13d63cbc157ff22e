"""Forked processes: a child of a parent that has already run large (multi-threaded) calls must
run its own large calls, not wait forever on the parent's thread pool, whose threads do not exist
in the child. This is how DataLoader workers start on Linux."""

import os
import sys
import time
import warnings

import numpy as np
import pytest
import torch

import xbquant

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")

N = 1 << 19  # above the size from which calls are split over threads


def large_calls(x):
    """Large calls through each kind of kernel: fixed point (nearest and stochastic), per slice,
    float, grid, levels and a converter."""
    w = x.reshape(512, -1)
    return [
        xbquant.quantize(x, 8, 4),
        xbquant.quantize(x, 8, 4, rounding="stochastic", seed=3),
        xbquant.quantize(w, 8, "auto", axis=0),
        xbquant.quantize_float(x, "e4m3fn"),
        xbquant.quantize_grid(x, 0.1),
        xbquant.quantize_levels(x, [-1.0, 0.0, 0.5, 2.0]),
        xbquant.adc(w, 6, axis=1),
    ]


def wait(pid, seconds):
    """The child's exit status, or None if it is still running after `seconds` (then killed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def test_a_forked_child_runs_large_calls():
    x = np.random.default_rng(0).standard_normal(N)
    expected = large_calls(x)  # the parent's thread pool now exists
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a threaded process
        pid = os.fork()
    if pid == 0:  # the child
        try:
            got = large_calls(x)
            same = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(got, expected))
            # A grandchild: forked from a child that made a pool of its own.
            inner = os.fork()
            if inner == 0:
                os._exit(0 if np.array_equal(large_calls(x)[1], expected[1]) else 1)
            status = wait(inner, 60)
            os.write(write, b"1" if same and status == 0 else b"0")
        finally:
            os._exit(0)
    os.close(write)
    status = wait(pid, 120)
    assert status is not None, "the forked child hung"
    assert os.read(read, 1) == b"1", "the child's results differ from the parent's"
    os.close(read)


class Quantized(torch.utils.data.Dataset):
    """Each item quantizes a large tensor, as a dataset with quantized inputs would."""

    def __len__(self):
        return 6

    def __getitem__(self, i):
        x = torch.linspace(-1.0, 1.0, N) * (i + 1)
        return xbquant.quantize(x, 8, 4, rounding="stochastic", seed=i).sum()


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_dataloader_workers_quantize():
    data = Quantized()
    expected = torch.stack([data[i] for i in range(len(data))])  # large calls in the parent
    loader = torch.utils.data.DataLoader(
        data, batch_size=2, num_workers=2, timeout=120, multiprocessing_context="fork"
    )
    got = torch.cat(list(loader))
    assert torch.equal(got, expected)
