"""pytest configuration for bench/: helpers live in benchutils.py."""

import pytest
import torch
from benchutils import ALLOCATOR, THREADS


@pytest.fixture(autouse=True, scope="session")
def _pin_threads():
    """EIRNN_BENCH_THREADS=n: torch intra-op threads for every benchmark (restored afterwards)."""
    before = torch.get_num_threads()
    if ALLOCATOR:  # as `eirnn-fast` does for every command (eirnn_fast/runtime.py)
        import eirnn_fast

        eirnn_fast.tune_cpu_allocator()
    if THREADS > 0:
        torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)
