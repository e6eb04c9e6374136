"""Loading of the compiled extension ``eirnn_fast._C`` and backend selection shared by every op."""

from __future__ import annotations

import importlib
import os
import warnings
from typing import Optional

import torch

try:  # the compiled module is optional: every op has a pure-PyTorch reference
    _C = importlib.import_module("eirnn_fast._C")

    _IMPORT_ERROR: Optional[BaseException] = None
except ImportError as exc:  # pragma: no cover - exercised only on source checkouts
    _C = None
    _IMPORT_ERROR = exc

_warned = False

BACKENDS = ("auto", "fused", "reference")


def compiled() -> bool:
    return _C is not None


def cuda_kernels() -> bool:
    return _C is not None and bool(_C.has_cuda())


def _missing_reason() -> str:
    pkg = os.path.dirname(os.path.abspath(__file__))
    if os.path.exists(os.path.join(pkg, os.pardir, "CMakeLists.txt")):
        return (
            f"eirnn_fast was imported from the source tree {pkg}, which holds no compiled module; "
            "install it (`pip install --no-build-isolation .`) and run from another directory "
            "(or use `pytest`, not `python -m pytest`, from the repository root)"
        )
    return f"eirnn_fast._C could not be imported ({_IMPORT_ERROR}); reinstall with `pip install --no-build-isolation .`"


def warn_missing_once() -> None:
    """One warning per process when the compiled module is absent and an op falls back."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(_missing_reason() + ". Every op runs its pure-PyTorch reference.", RuntimeWarning, stacklevel=3)


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def fused_available(device: torch.device) -> bool:
    """Whether the compiled module has a kernel for tensors on ``device``."""
    if _C is None:
        return False
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return bool(_C.has_cuda())
    return False


def use_fused(backend: str, device: torch.device, op: str) -> bool:
    """Resolve ``backend`` for one call: True -> fused kernel, False -> reference.

    ``"fused"`` raises when no kernel exists for ``device``; ``"auto"`` falls back (with one
    warning per process if the extension is not built at all).
    """
    check_backend(backend)
    if backend == "reference":
        return False
    if fused_available(device):
        return True
    if backend == "fused":
        why = "eirnn_fast._C is not built" if _C is None else f"no {device.type} kernel was compiled"
        raise RuntimeError(f"{op}: backend='fused' requested but {why}; use backend='auto' or 'reference'")
    if _C is None:
        warn_missing_once()
    return False


def backend_info() -> dict:
    """What this installation can run (**contract**, DESIGN 2)."""
    info = {
        "compiled": _C is not None,
        "cpu_kernels": _C is not None,
        "cuda_kernels": cuda_kernels(),
        "torch": torch.__version__,
        "cuda_archs": list(_C.cuda_archs()) if _C is not None else [],
        "torch_cuda_available": torch.cuda.is_available(),
    }
    if _C is None:
        info["import_error"] = _missing_reason()
    else:
        info["openmp_threads"] = torch.get_num_threads()
    return info
