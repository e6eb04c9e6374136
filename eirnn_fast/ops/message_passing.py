"""Sparse edge message passing (DESIGN 3.3): graph container and validation around the registered ops ``torch.ops.eirnn_fast.edge_*``.

* :class:`EdgeGraph` validates an edge list once and holds it in the two CSR layouts the kernels
  walk (rows = destinations for the forward, rows = sources for the backward) plus the
  permutations back to the original edge order.
* :func:`edge_message_passing`: ``out[i, f] = sum_{e: dst[e] = i} w[e] * x[src[e], f]``.
* :func:`edge_mlp_message_passing`: messages from a small per-edge MLP of both endpoints
  (FlyVis model "B"), first layer factorised per node.

Determinism: every output element (``out`` rows, ``d_x`` rows, ``d_w`` entries, MLP parameter
gradients) is summed in an order fixed by the graph alone, without atomics, so results are bitwise
identical from run to run and for any number of CPU threads.
"""

from __future__ import annotations

import os
import warnings
from typing import Optional, Sequence, Union

import torch

from eirnn_fast import _ext
from eirnn_fast.ops import _backend, _library
from eirnn_fast.reference.message_passing import (
    edge_message_passing_reference,
    edge_mlp_messages_reference,
)

#: Columns (frames) per fused call; wider ``node_values`` are processed in blocks of this many.
MAX_FEATURES = 128
#: Widest hidden layer of the fused edge-MLP kernel (per-edge activations live on the stack).
MLP_MAX_HIDDEN = _backend.MLP_MAX_HIDDEN

_INDEX_DTYPES = (torch.int32, torch.int64)
_INT32_MAX = 2**31 - 1


def _tensor(name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _count(name: str, value) -> int:
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _check_range(name: str, idx: torch.Tensor, bound: int, bound_name: str) -> None:
    if idx.numel() == 0:
        return
    bad = (idx < 0) | (idx >= bound)
    if bool(bad.any()):
        pos = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{name} contains index {int(idx[pos])} at edge {pos}, outside [0, {bound_name}={bound}) "
            f"({int(bad.sum())} out-of-range entries)"
        )


def _node_count_memory(num_src: int, num_dst: int, device: torch.device) -> None:
    """Refuse node counts whose CSR row pointers cannot fit in memory, naming the count, before
    allocating (an 8-byte row pointer and count per node, a few transient copies while building)."""
    need = 32 * (num_src + num_dst + 2)
    if device.type != "cpu":
        return  # the device allocator raises its own out-of-memory error, re-raised below
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return
    if need > total:
        name, value = ("num_dst", num_dst) if num_dst >= num_src else ("num_src", num_src)
        raise ValueError(
            f"EdgeGraph: {name}={value} nodes need ~{need / 2**30:.1f} GiB of CSR row pointers, more than this "
            f"machine's {total / 2**30:.1f} GiB; node counts must match the graph (nodes without edges are "
            "allowed, but every node costs memory)"
        )


class _TensorCsr:
    """The CSR arrays held in Python when the compiled module is absent (only the reference runs then,
    which reads the edge list, never these). Same read-only interface as ``_C.CsrGraph``."""

    _NAMES = ("rowptr", "col", "perm", "rowptr_t", "col_t", "perm_t")

    def __init__(self, arrays, num_src, num_dst):
        self._arrays = {k: v.clone() for k, v in zip(self._NAMES, arrays)}
        self.num_src, self.num_dst = num_src, num_dst
        self.num_edges = arrays[1].numel()

    def __getattr__(self, name):
        arrays = self.__dict__.get("_arrays", {})
        if name in arrays:
            return arrays[name].clone()
        raise AttributeError(name)

    def to(self, device):
        return _TensorCsr([self._arrays[k].to(device) for k in self._NAMES], self.num_src, self.num_dst)


def _seal(arrays, num_src: int, num_dst: int):
    """Validated private copies of the six CSR arrays (``_C.CsrGraph`` when compiled)."""
    if _ext.compiled():
        return _ext._C.CsrGraph(*arrays, num_src, num_dst)
    return _TensorCsr(arrays, num_src, num_dst)


class EdgeGraph:
    """A directed edge list ``src[e] -> dst[e]``, validated once and held as two CSRs.

    Args:
        src: ``[E]`` int32 or int64 source node of each edge (``0 <= src < num_src``).
        dst: ``[E]`` int32 or int64 destination node of each edge (``0 <= dst < num_dst``).
        num_src, num_dst: node counts (nodes without edges are fine; ``E = 0`` is fine).
        on_duplicate: what to do when a ``(src, dst)`` pair occurs more than once: ``"warn"``
            (default; one ``UserWarning``), ``"ignore"`` or ``"raise"`` (``ValueError``).
            Duplicates are valid (their messages add up, every edge keeps its own weight and
            gradient); their count is always in :attr:`num_duplicate_pairs`.

    Attributes (read-only; all on :attr:`device`, index dtype :attr:`index_dtype`):
        src, dst: the edge list as given (original edge order).
        rowptr ``[num_dst + 1]``, col ``[E]`` (= src), perm ``[E]``: CSR by destination; slot
            ``k`` of row ``i`` is the edge ``perm[k]``. Rows are sorted by ``(src, edge id)``.
        rowptr_t ``[num_src + 1]``, col_t ``[E]`` (= dst), perm_t ``[E]``: CSR by source.
        num_src, num_dst, num_edges, num_duplicate_pairs (``E`` minus the number of distinct pairs).

    The graph is immutable: every tensor attribute returns a **copy** (editing it changes nothing),
    and the kernels read private copies that were checked once at construction (O(E): rowptr
    monotone from 0 to E, indices in range, perm a permutation, both layouts the same edges) and
    that no Python code can reach, so no call can make a kernel read out of bounds. Take the copy
    once outside hot loops. The index dtype is int32 when both inputs are int32 and every count
    fits, else int64. Building costs two stable sorts of ``E`` keys; build once, reuse for every
    call. Picklable (rebuilt from the edge list) and ``copy.deepcopy``-able.
    """

    def __init__(self, src: torch.Tensor, dst: torch.Tensor, num_src: int, num_dst: int, *, on_duplicate: str = "warn"):
        src = _tensor("src", src)
        dst = _tensor("dst", dst)
        num_src = _count("num_src", num_src)
        num_dst = _count("num_dst", num_dst)
        if on_duplicate not in ("warn", "ignore", "raise"):
            raise ValueError(f"on_duplicate must be 'warn', 'ignore' or 'raise', got {on_duplicate!r}")
        for name, t in (("src", src), ("dst", dst)):
            if t.dtype not in _INDEX_DTYPES:
                raise TypeError(f"{name} must be an int32 or int64 tensor, got {t.dtype}")
            if t.dim() != 1:
                raise ValueError(f"{name} must be 1-D [E], got shape {tuple(t.shape)}")
            if t.device.type == "meta":
                raise ValueError(
                    f"{name} is on the meta device: an EdgeGraph checks and sorts its indices, so it needs real data"
                )
        if src.shape != dst.shape:
            raise ValueError(f"src and dst must have the same length, got {src.numel()} and {dst.numel()}")
        if src.device != dst.device:
            raise ValueError(f"src is on {src.device} but dst is on {dst.device}")
        _check_range("src", src, num_src, "num_src")
        _check_range("dst", dst, num_dst, "num_dst")
        _node_count_memory(num_src, num_dst, src.device)

        E = src.numel()
        small = max(E, num_src, num_dst) <= _INT32_MAX
        itype = torch.int32 if (src.dtype == dst.dtype == torch.int32 and small) else torch.int64
        s64, d64 = src.long(), dst.long()

        def csr(rows, cols, n_rows, n_cols):
            perm = torch.argsort(rows * max(n_cols, 1) + cols, stable=True)
            counts = (
                torch.bincount(rows, minlength=n_rows)
                if E
                else torch.zeros(n_rows, dtype=torch.long, device=rows.device)
            )
            rowptr = torch.zeros(n_rows + 1, dtype=torch.long, device=rows.device)
            rowptr[1:] = torch.cumsum(counts, 0)
            return rowptr.to(itype), cols[perm].to(itype), perm.to(itype), (rows * max(n_cols, 1) + cols)[perm]

        try:
            rowptr, col, perm, keys = csr(d64, s64, num_dst, num_src)
            rowptr_t, col_t, perm_t, _ = csr(s64, d64, num_src, num_dst)
        except RuntimeError as exc:  # allocation failures (torch.OutOfMemoryError is a RuntimeError)
            if "alloc" not in str(exc).lower() and "out of memory" not in str(exc).lower():
                raise
            raise ValueError(
                f"EdgeGraph: could not allocate the CSR arrays for num_src={num_src}, num_dst={num_dst}, "
                f"E={E} on {src.device} ({exc})"
            ) from None
        self._csr = _seal((rowptr, col, perm, rowptr_t, col_t, perm_t), num_src, num_dst)
        # what the registered ops receive: private copies of the validated arrays (one clone each)
        self._arrays = tuple(getattr(self._csr, k) for k in _TensorCsr._NAMES)
        self._src = src.to(itype, copy=True)
        self._dst = dst.to(itype, copy=True)
        self._num_src, self._num_dst = num_src, num_dst
        self._num_duplicate_pairs = int((keys[1:] == keys[:-1]).sum()) if E > 1 else 0
        if self._num_duplicate_pairs:
            msg = (
                f"EdgeGraph: {self._num_duplicate_pairs} duplicate (src, dst) pairs; their messages "
                "add up and each keeps its own weight"
            )
            if on_duplicate == "raise":
                raise ValueError(msg)
            if on_duplicate == "warn":
                warnings.warn(msg, UserWarning, stacklevel=2)

    # ---- read-only views (copies) ------------------------------------------------------------
    src = property(lambda self: self._src.clone(), doc="[E] source of each edge (a copy)")
    dst = property(lambda self: self._dst.clone(), doc="[E] destination of each edge (a copy)")
    rowptr = property(lambda self: self._csr.rowptr, doc="[num_dst + 1] CSR-by-destination row pointers (a copy)")
    col = property(lambda self: self._csr.col, doc="[E] source of each CSR-by-destination slot (a copy)")
    perm = property(lambda self: self._csr.perm, doc="[E] edge id of each CSR-by-destination slot (a copy)")
    rowptr_t = property(lambda self: self._csr.rowptr_t, doc="[num_src + 1] CSR-by-source row pointers (a copy)")
    col_t = property(lambda self: self._csr.col_t, doc="[E] destination of each CSR-by-source slot (a copy)")
    perm_t = property(lambda self: self._csr.perm_t, doc="[E] edge id of each CSR-by-source slot (a copy)")
    num_src = property(lambda self: self._num_src)
    num_dst = property(lambda self: self._num_dst)
    num_duplicate_pairs = property(lambda self: self._num_duplicate_pairs)

    # ---- convenience -------------------------------------------------------------------------
    @property
    def num_edges(self) -> int:
        return self._src.numel()

    @property
    def device(self) -> torch.device:
        return self._src.device

    @property
    def index_dtype(self) -> torch.dtype:
        return self._src.dtype

    def in_degree(self) -> torch.Tensor:  # [num_dst]
        rowptr = self._csr.rowptr
        return (rowptr[1:] - rowptr[:-1]).long()

    def out_degree(self) -> torch.Tensor:  # [num_src]
        rowptr = self._csr.rowptr_t
        return (rowptr[1:] - rowptr[:-1]).long()

    def to(self, device: Union[str, torch.device]) -> "EdgeGraph":
        """A copy of the graph on ``device`` (no re-validation; ``self`` if already there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        out = object.__new__(EdgeGraph)
        out._csr = self._csr.to(device)
        out._arrays = tuple(t.to(device) for t in self._arrays)
        out._src, out._dst = self._src.to(device), self._dst.to(device)
        out._num_src, out._num_dst = self._num_src, self._num_dst
        out._num_duplicate_pairs = self._num_duplicate_pairs
        return out

    def __reduce__(self):  # pickle / deepcopy: rebuild (and re-check) from the edge list
        return (_rebuild_graph, (self._src, self._dst, self._num_src, self._num_dst))

    def __repr__(self) -> str:
        return (
            f"EdgeGraph(num_src={self.num_src}, num_dst={self.num_dst}, num_edges={self.num_edges}, "
            f"index_dtype={self.index_dtype}, device={self.device}, "
            f"num_duplicate_pairs={self.num_duplicate_pairs})"
        )


def _rebuild_graph(src, dst, num_src, num_dst) -> EdgeGraph:
    return EdgeGraph(src, dst, num_src, num_dst, on_duplicate="ignore")


def _check_graph(graph) -> EdgeGraph:
    if not isinstance(graph, EdgeGraph):
        raise TypeError(f"graph must be an eirnn_fast.ops.EdgeGraph, got {type(graph).__name__}")
    return graph


def _check_edge_weight(
    graph: EdgeGraph, edge_weight, dtype: torch.dtype, device: torch.device, ref_name: str
) -> torch.Tensor:
    edge_weight = _tensor("edge_weight", edge_weight)
    if edge_weight.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"edge_weight must be float32 or float64, got {edge_weight.dtype}")
    if edge_weight.dtype != dtype:
        raise TypeError(f"edge_weight has dtype {edge_weight.dtype} but {ref_name} has {dtype}")
    if edge_weight.shape != (graph.num_edges,):
        raise ValueError(
            f"edge_weight must be [E] = [{graph.num_edges}] (original edge order), got shape {tuple(edge_weight.shape)}"
        )
    if edge_weight.device != device or graph.device != device:
        raise ValueError(
            f"edge_weight ({edge_weight.device}), {ref_name} ({device}) and the graph "
            f"({graph.device}) must be on one device; use graph.to(device)"
        )
    return edge_weight


# ---- plain op ------------------------------------------------------------------------------------
def edge_message_passing(
    graph: EdgeGraph,
    edge_weight: torch.Tensor,  # [E], original edge order
    node_values: torch.Tensor,  # [num_src, F] (or [num_src])
    *,
    backend: str = "auto",
) -> torch.Tensor:  # [num_dst, F] (or [num_dst])
    r"""Weighted sum of source values over the in-edges of every destination node.

    .. math:: \mathrm{out}[i, f] = \sum_{e:\ \mathrm{dst}[e] = i} w_e \, x[\mathrm{src}[e], f]

    i.e. ``out = A_w @ x`` with the sparse ``[num_dst, num_src]`` matrix ``A_w`` whose entries are
    the edge weights (duplicate pairs add up). Columns are independent (e.g. frames of a batch).

    Args:
        graph: the :class:`EdgeGraph` (on the device of the tensors).
        edge_weight: ``[E]`` float32/float64 weights in the original edge order.
        node_values: ``[num_src, F]`` (or ``[num_src]``, returning ``[num_dst]``), same dtype.
        backend: ``"auto"`` (fused kernel when compiled for the device, else reference),
            ``"fused"`` (raise if unavailable) or ``"reference"`` (gather + ``index_add_``).

    Exact gradients w.r.t. ``edge_weight`` (``d_w[e] = <g[dst e], x[src e]>``, SDDMM) and
    ``node_values`` (``A_w^T g``, transposed SpMM over the CSR by source), without atomics and
    bitwise reproducible. Nodes without in-edges get 0. Double backward is not supported
    (fused path). ``F > MAX_FEATURES`` is processed in column blocks.
    """
    graph = _check_graph(graph)
    node_values = _tensor("node_values", node_values)
    if node_values.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"node_values must be float32 or float64, got {node_values.dtype}")
    squeeze = node_values.dim() == 1
    if squeeze:
        node_values = node_values.unsqueeze(1)
    if node_values.dim() != 2 or node_values.shape[0] != graph.num_src:
        raise ValueError(
            f"node_values must be [num_src, F] or [num_src] with num_src={graph.num_src}, "
            f"got shape {tuple(node_values.shape) if not squeeze else (node_values.shape[0],)}"
        )
    edge_weight = _check_edge_weight(graph, edge_weight, node_values.dtype, node_values.device, "node_values")
    F = node_values.shape[1]
    if _backend.choose("edge_message_passing", backend, node_values.device, empty=F == 0) != "fused":
        out = edge_message_passing_reference(graph._src, graph._dst, graph.num_dst, edge_weight, node_values)
    elif F <= MAX_FEATURES:
        out = _library.op("edge_spmm_fwd")(*graph._arrays, edge_weight.contiguous(), node_values.contiguous())
    else:
        spmm = _library.op("edge_spmm_fwd")
        w = edge_weight.contiguous()
        out = torch.cat(
            [spmm(*graph._arrays, w, blk.contiguous()) for blk in node_values.split(MAX_FEATURES, dim=1)], dim=1
        )
    return out.squeeze(1) if squeeze else out


# ---- edge-MLP variant (FlyVis model "B") -------------------------------------------------------------
def edge_mlp_message_passing(
    graph: EdgeGraph,
    edge_weight: torch.Tensor,  # [E], original edge order
    a_dst: torch.Tensor,  # [F, num_dst, H] or [num_dst, H]
    b_src: torch.Tensor,  # [F, num_src, H] or [num_src, H]
    hidden_weights: Sequence[torch.Tensor],  # L x [H, H] (nn.Linear.weight layout)
    hidden_biases: Sequence[torch.Tensor],  # L x [H]
    out_weight: torch.Tensor,  # [H] or [1, H]
    out_bias: Optional[torch.Tensor] = None,  # [1], [] or None
    *,
    backend: str = "auto",
) -> torch.Tensor:  # [num_dst, F]
    r"""Messages from a per-edge MLP of both endpoints, squared, weighted and summed per destination.

    For every edge ``e = (j -> i)`` and frame ``f`` (FlyVis model "B",
    ``msg_i = sum_{j->i} W_e g(v_i, v_j, a_i, a_j)^2``)::

        h_0 = relu(a_dst[f, i] + b_src[f, j])
        h_l = relu(hidden_weights[l-1] @ h_{l-1} + hidden_biases[l-1])      l = 1..L
        s   = out_weight . h_L + out_bias
        out[i, f] = sum_e edge_weight[e] * s^2

    The first Linear layer of ``g`` is factorised per node by the caller: with its weight split
    into the columns that see destination features ``U_dst`` and source features ``U_src``,
    ``a_dst = x_dst @ U_dst.T + bias`` and ``b_src = x_src @ U_src.T`` (plain torch ops, so their
    gradients flow through autograd). The rest runs per edge in registers/cache: no ``[E, H]``
    activation is stored; the backward recomputes each edge (one pass over the CSR by destination
    for ``edge_weight``, ``a_dst`` and the MLP weights, one over the CSR by source for ``b_src``),
    deterministic for any thread count (parameter gradients reduced per fixed chunk of rows).

    The squared output follows the FlyVis ``g_phi_positive`` option (always squared here).
    Only a CPU kernel exists: on CUDA ``backend="auto"`` runs the reference (per-edge torch MLP +
    ``index_add_``) and ``backend="fused"`` raises. ``H <= MLP_MAX_HIDDEN``.
    """
    graph = _check_graph(graph)
    a_dst = _tensor("a_dst", a_dst)
    b_src = _tensor("b_src", b_src)
    out_weight = _tensor("out_weight", out_weight)
    if a_dst.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"a_dst must be float32 or float64, got {a_dst.dtype}")
    if a_dst.dim() == 2:
        a_dst = a_dst.unsqueeze(0)
    if b_src.dim() == 2:
        b_src = b_src.unsqueeze(0)
    if a_dst.dim() != 3 or a_dst.shape[1] != graph.num_dst:
        raise ValueError(
            f"a_dst must be [F, num_dst, H] or [num_dst, H] with num_dst={graph.num_dst}, "
            f"got shape {tuple(a_dst.shape)}"
        )
    F, _, H = a_dst.shape
    if b_src.dim() != 3 or b_src.shape != (F, graph.num_src, H):
        raise ValueError(f"b_src must be [F, num_src, H] = [{F}, {graph.num_src}, {H}], got shape {tuple(b_src.shape)}")
    hidden_weights, hidden_biases = list(hidden_weights), list(hidden_biases)
    if len(hidden_weights) != len(hidden_biases):
        raise ValueError(
            f"hidden_weights and hidden_biases must have the same length, got "
            f"{len(hidden_weights)} and {len(hidden_biases)}"
        )
    named = [("b_src", b_src), ("out_weight", out_weight)]
    for l, (w_l, b_l) in enumerate(zip(hidden_weights, hidden_biases)):
        w_l, b_l = _tensor(f"hidden_weights[{l}]", w_l), _tensor(f"hidden_biases[{l}]", b_l)
        if w_l.shape != (H, H):
            raise ValueError(f"hidden_weights[{l}] must be [H, H] = [{H}, {H}], got shape {tuple(w_l.shape)}")
        if b_l.shape != (H,):
            raise ValueError(f"hidden_biases[{l}] must be [H] = [{H}], got shape {tuple(b_l.shape)}")
        named += [(f"hidden_weights[{l}]", w_l), (f"hidden_biases[{l}]", b_l)]
    if out_weight.numel() != H or out_weight.dim() not in (1, 2):
        raise ValueError(f"out_weight must be [H] or [1, H] with H={H}, got shape {tuple(out_weight.shape)}")
    if out_bias is not None:
        out_bias = _tensor("out_bias", out_bias)
        if out_bias.numel() != 1:
            raise ValueError(f"out_bias must hold one value, got shape {tuple(out_bias.shape)}")
        named.append(("out_bias", out_bias))
    for name, t in named:
        if t.dtype != a_dst.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but a_dst has {a_dst.dtype}")
        if t.device != a_dst.device:
            raise ValueError(f"{name} is on {t.device} but a_dst is on {a_dst.device}")
    edge_weight = _check_edge_weight(graph, edge_weight, a_dst.dtype, a_dst.device, "a_dst")

    path = _backend.choose("edge_mlp_message_passing", backend, a_dst.device, hidden=H, empty=F == 0 or H == 0)
    if path != "fused":
        return edge_mlp_messages_reference(
            graph._src, graph._dst, edge_weight, a_dst, b_src, hidden_weights, hidden_biases, out_weight, out_bias
        )
    L = len(hidden_weights)
    hw = torch.stack(hidden_weights) if L else a_dst.new_zeros(0, H, H)
    hb = torch.stack(hidden_biases) if L else a_dst.new_zeros(0, H)
    ob = out_bias.reshape(1) if out_bias is not None else a_dst.new_zeros(1)
    return _library.op("edge_mlp_fwd")(
        *graph._arrays, edge_weight.contiguous(), a_dst, b_src, hw, hb, out_weight.reshape(H), ob
    )
