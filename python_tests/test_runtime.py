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


def test_atomic_writes_leave_the_old_file_or_the_new_one(tmp_path, monkeypatch):
    """A write that fails midway (a killed process) leaves the previous file and no temporary."""
    import json

    import pytest

    from eirnn_fast import atomic

    p = tmp_path / "result.json"
    atomic.atomic_write_json(p, {"a": 1})
    assert json.loads(p.read_text()) == {"a": 1}

    def boom(src, dst):
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 1} and sorted(x.name for x in tmp_path.iterdir()) == ["result.json"]
    monkeypatch.undo()
    atomic.atomic_torch_save(tmp_path / "ck.pt", {"x": 1})
    import torch

    assert torch.load(tmp_path / "ck.pt")["x"] == 1


@pytest.mark.parametrize(
    "env, workers, cores, expected",
    [
        (None, 1, 2, 2),  # unset: the cores shared out
        (None, 2, 2, 1),
        (None, 3, 2, 1),  # never 0
        ("1", 1, 2, 1),  # the user's OMP_NUM_THREADS wins (a shared machine)
        ("3", 2, 2, 3),
        ("0", 1, 4, 4),  # not a positive integer: ignored
        ("abc", 2, 4, 2),
    ],
)
def test_threads_per_worker(monkeypatch, env, workers, cores, expected):
    from eirnn_fast.runtime import threads_per_worker

    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    assert threads_per_worker(workers, cores) == expected
