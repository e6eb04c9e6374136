"""The one backend seat: which implementation runs each op, per device, shape and build.

Every op, model and simulator asks :func:`choose` (never ``_ext`` or its own rules) and passes the
user's ``backend=`` through unchanged. The answer is a path name:

* ``"fused"``: the registered operator ``torch.ops.eirnn_fast.*`` (compiled kernel);
* ``"reference"``: the pure-PyTorch twin in :mod:`eirnn_fast.reference` (or the model's eager code);
* an op-specific alternative: ``"meta"`` (shape-only ``state_noise_`` on the meta device),
  ``"sparse_csr"`` (the FlyVis simulator's forward-only ``torch.sparse`` SpMM) and ``"index_add"``.

``backend``: ``"auto"`` (fused where a kernel exists for the call, else the documented fallback),
``"fused"`` (raise where no kernel exists) or ``"reference"``. The decisions are plain Python on
static facts (device type, shapes, the build), so ``torch.compile`` specialises on them without a
graph break.
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch

from eirnn_fast import _ext

BACKENDS = _ext.BACKENDS

#: Largest N the CUDA scan kernel takes (W and the state tile live in shared memory or L1/L2).
CUDA_MAX_UNITS = 256
#: Widest hidden layer of the fused edge-MLP kernel (per-edge activations live on the stack).
MLP_MAX_HIDDEN = 256

#: Ops whose fused kernel exists on CPU only (their reference runs elsewhere).
_CPU_ONLY = {"ei_rnn_rates", "state_noise_", "edge_mlp_message_passing", "eirnn_counter_noise"}


def check(backend: str) -> None:
    _ext.check_backend(backend)


def choose(
    op: str,
    backend: str,
    device: torch.device,
    *,
    n_units: Optional[int] = None,
    hidden: Optional[int] = None,
    empty: bool = False,
    contiguous: bool = True,
    unsupported: Optional[str] = None,
    stacklevel: int = 3,
) -> str:
    """The path that runs ``op`` for this call.

    Args:
        op: ``"ei_rnn_scan"``, ``"ei_rnn_rates"``, ``"state_noise_"``, ``"edge_message_passing"``,
            ``"edge_mlp_message_passing"``, ``"sinkhorn"``, ``"eirnn_counter_noise"`` (the model's
            in-place counter-based draws), ``"flyvis_aggregate"`` (the simulator's aggregation).
        n_units: the scan's N (CUDA kernel limit). hidden: the edge MLP's H.
        empty: nothing to compute (F = 0 or H = 0): the reference handles it.
        contiguous: ``state_noise_`` adds in place in element order (the fused draws need it).
        unsupported: a reason the fused kernel cannot express this configuration (e.g. the GNN's
            variant B without ReLU); ``"fused"`` raises ``ValueError`` with it.
    """
    check(backend)
    device = torch.device(device)
    if op == "state_noise_" and device.type == "meta":
        if backend == "fused":
            raise RuntimeError("state_noise_: backend='fused' has no meta kernel; use backend='auto'")
        return "meta"
    if op == "flyvis_aggregate":
        if backend == "reference":
            return "index_add"
        if _ext.fused_available(torch.device("cpu")):
            return "fused"
        if backend == "fused":
            raise RuntimeError("backend='fused' but eirnn_fast.ops.edge_message_passing is not available")
        return "sparse_csr"
    if unsupported is not None:
        if backend == "fused":
            raise ValueError(unsupported)
        return "reference"
    if backend == "reference":
        return "reference"
    if op == "eirnn_counter_noise":  # the model's noise: counter draws wherever the CPU kernels run,
        # except under torch.compile: their seed is drawn on the host (a graph break); torch.randn traces
        if torch.compiler.is_compiling():
            return "reference"
        return "fused" if device.type == "cpu" and _ext.compiled() else "reference"
    if op in ("state_noise_",) and backend == "fused" and device.type != "cpu":
        raise RuntimeError("state_noise_: the fused draws are CPU only; use backend='auto' on CUDA")
    fused = _ext.use_fused(backend, device, op)
    if op == "ei_rnn_rates" and backend == "fused" and device.type != "cpu":
        raise RuntimeError("ei_rnn_rates: the fused kernel is CPU only; use backend='auto' on CUDA")
    if not fused:
        return "reference"
    if op == "ei_rnn_scan" and device.type == "cuda" and n_units is not None and n_units > CUDA_MAX_UNITS:
        if backend == "fused":
            raise ValueError(f"ei_rnn_scan: the CUDA kernel takes N <= {CUDA_MAX_UNITS} units, got N={n_units}")
        warnings.warn(
            f"ei_rnn_scan: N={n_units} > {CUDA_MAX_UNITS} is beyond the CUDA kernel; running the reference",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
        return "reference"
    if op == "edge_mlp_message_passing" and (device.type != "cpu" or (hidden is not None and hidden > MLP_MAX_HIDDEN)):
        why = (
            "only a CPU kernel exists for the edge-MLP variant"
            if device.type != "cpu"
            else f"H={hidden} > MLP_MAX_HIDDEN={MLP_MAX_HIDDEN}"
        )
        if backend == "fused":
            raise RuntimeError(f"edge_mlp_message_passing: backend='fused' requested but {why}")
        return "reference"  # documented fallback: the reference on the same device
    if op in _CPU_ONLY and device.type != "cpu":
        return "reference"
    if empty or not contiguous:
        return "reference"
    return "fused"


def for_model_op(backend: str) -> str:
    """The ``backend=`` a model passes to an op it calls when it has only one backend setting for
    several ops: ``"fused"`` on the model means the scan; the other ops fall back where needed."""
    return "reference" if backend == "reference" else "auto"
