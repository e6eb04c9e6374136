"""Allocator tuning helper: applies on glibc, validates its arguments."""

import sys

import pytest
import torch

import eirnn_fast
from eirnn_fast import runtime


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tune_cpu_allocator_applies_and_tensors_still_work():
    assert eirnn_fast.tune_cpu_allocator() is True
    assert runtime.allocator_tuned()
    x = torch.ones(3_000_000)  # 12 MB: below the new threshold, from the heap
    assert float(x.sum()) == 3_000_000.0


@pytest.mark.parametrize("bad", [0, -5, 2**31, 1.5])
def test_tune_cpu_allocator_rejects_bad_thresholds(bad):
    with pytest.raises(ValueError, match="mmap_threshold"):
        eirnn_fast.tune_cpu_allocator(mmap_threshold=bad)
