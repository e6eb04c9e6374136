"""pytest configuration for bench/: helpers live in benchutils.py."""
import pytest
import torch

from benchutils import THREADS


@pytest.fixture(autouse=True, scope="session")
def _pin_threads():
    """EIRNN_BENCH_THREADS=n: torch intra-op threads for every benchmark (restored afterwards)."""
    before = torch.get_num_threads()
    if THREADS > 0:
        torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)
