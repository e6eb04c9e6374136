"""Helpers shared by the test modules (importable: pyproject puts python_tests/ on sys.path)."""

import pytest
import torch

import eirnn_fast

requires_compiled = pytest.mark.skipif(not eirnn_fast.backend_info()["compiled"], reason="eirnn_fast._C is not built")
requires_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and eirnn_fast.backend_info()["cuda_kernels"]),
    reason="needs a CUDA device and the CUDA kernels",
)


def devices():
    """CPU always; CUDA when a device and the CUDA kernels are present."""
    out = ["cpu"]
    if torch.cuda.is_available() and eirnn_fast.backend_info()["cuda_kernels"]:
        out.append("cuda")
    return out
