"""The FlyVis connectome GNN ("flyvis_A" / "flyvis_B" of saalfeldlab/flyvis-gnn, old name PDE_N9_A/B).

For every neuron i with voltage v_i, learnable embedding a_i and stimulus I_i::

    msg_i  = sum_{e = (j -> i)} W_e * g_phi(x_e)^2        (squared when ``g_phi_positive``)
    dv_i/dt ~ f_theta([v_i, a_i, msg_i, I_i])

with ``x_e = [v_j, a_j]`` (variant "A", source quantities only) or ``[v_i, v_j, a_i, a_j]``
(variant "B"). ``g_phi`` is ``lin_edge`` in the seeds, ``f_theta`` is ``lin_phi``/``lin_update``.
W is one learnable scalar per edge (original edge order), shared by every frame; ``a`` is one
learnable ``embedding_dim`` vector per neuron, initialised to ones (types are never given).

Frames are batched as columns: voltages/stimulus ``[N, B]`` -> prediction ``[N, B]``.

Backends:
  * ``"auto"``/``"fused"``: variant A evaluates ``g_phi`` once per *node* and aggregates with
    :func:`eirnn_fast.ops.edge_message_passing` (exactly equal to the per-edge model, E/N fewer MLP
    evaluations); variant B factorises the first layer per node and runs the rest per edge in
    :func:`eirnn_fast.ops.edge_mlp_message_passing` (ReLU and squared output only; otherwise the
    reference path is used).
  * ``"reference"``: the PyG-style per-edge path (gather endpoints, MLP on E rows, ``index_add_``).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from eirnn_fast.ops import EdgeGraph, _backend, edge_message_passing, edge_mlp_message_passing

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU}
W_INIT_MODES = ("zeros", "randn", "randn_scaled")


@dataclass
class GNNGraph:
    """The minimal graph interface the GNN needs (a connectome object with these fields works too).

    n_neurons: node count; src, dst: ``[E]`` int edge list (``src -> dst``, original edge order);
    cell_type_index: ``[N]`` int true type per neuron (used by metrics only, never by the model);
    cell_type: optional type names.
    """

    n_neurons: int
    src: np.ndarray
    dst: np.ndarray
    cell_type_index: Optional[np.ndarray] = None
    cell_type: Optional[Sequence[str]] = None

    @property
    def n_edges(self) -> int:
        return int(len(self.src))


def _as_long(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.long)
    return torch.as_tensor(np.asarray(x), dtype=torch.long)


def graph_cell_types(graph) -> Optional[np.ndarray]:
    """Per-neuron integer type of a graph-like object (``cell_type_index`` or ``node_type``)."""
    for name in ("cell_type_index", "node_type", "type_index"):
        val = getattr(graph, name, None)
        if val is not None:
            return np.asarray(val.cpu() if isinstance(val, torch.Tensor) else val).astype(np.int64)
    return None


class MLP(nn.Module):
    """``Linear(in, h)``, ``n_layers - 2`` x ``Linear(h, h)``, ``Linear(h, out)``, activation between.

    Initialisation follows the reference: first layer PyTorch default; hidden and output layers
    ``normal(std=0.1)`` with zero bias.
    """

    def __init__(self, in_dim: int, hidden_dim: int, n_layers: int, out_dim: int = 1, activation: str = "relu"):
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"n_layers must be >= 2 (input and output layer), got {n_layers}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        dims = [in_dim] + [hidden_dim] * (n_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        for layer in self.layers[1:]:
            nn.init.normal_(layer.weight, std=0.1)
            nn.init.zeros_(layer.bias)
        self.act = _ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., in] -> [..., out]
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)


class FlyVisGNN(nn.Module):
    """GNN that learns W (per edge), embeddings, g_phi and f_theta from voltages and dv/dt.

    Args:
        graph: object with ``n_neurons``, ``src``, ``dst`` (see :class:`GNNGraph`).
        variant: ``"A"`` (g_phi on [v_j, a_j]) or ``"B"`` (g_phi on [v_i, v_j, a_i, a_j]).
        hidden_dim, n_layers: g_phi (``lin_edge``) size; ``hidden_dim_update``/``n_layers_update``
            for f_theta (default: the same).
        embedding_dim: size of the per-neuron embedding a_i (init ones).
        activation: MLP nonlinearity ("relu", "tanh", ...).
        g_phi_positive: square the g_phi output (``lin_edge_positive``; default True).
        w_init: ``"zeros"``, ``"randn"`` (N(0,1)) or ``"randn_scaled"`` (N(0,1) * w_init_scale / sqrt(E)).
        backend: ``"auto"``, ``"fused"`` or ``"reference"`` (see module docstring).
        seed: seeds the parameter initialisation (None: use the global RNG).
        dtype: parameter dtype (float32 default; float64 for tests).
    """

    def __init__(
        self,
        graph,
        variant: str = "A",
        hidden_dim: int = 80,
        n_layers: int = 3,
        embedding_dim: int = 2,
        activation: str = "relu",
        *,
        hidden_dim_update: Optional[int] = None,
        n_layers_update: Optional[int] = None,
        g_phi_positive: bool = True,
        w_init: str = "zeros",
        w_init_scale: float = 1.0,
        backend: str = "auto",
        seed: Optional[int] = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if variant not in ("A", "B"):
            raise ValueError(f"variant must be 'A' or 'B', got {variant!r}")
        if w_init not in W_INIT_MODES:
            raise ValueError(f"w_init must be one of {W_INIT_MODES}, got {w_init!r}")
        if backend not in ("auto", "fused", "reference"):
            raise ValueError(f"backend must be 'auto', 'fused' or 'reference', got {backend!r}")
        self.variant, self.backend = variant, backend
        self.embedding_dim, self.g_phi_positive = int(embedding_dim), bool(g_phi_positive)
        self.n_neurons = int(graph.n_neurons)
        src, dst = _as_long(graph.src), _as_long(graph.dst)
        self.n_edges = int(src.numel())
        self.register_buffer("src", src, persistent=False)
        self.register_buffer("dst", dst, persistent=False)
        self.graph = EdgeGraph(src, dst, self.n_neurons, self.n_neurons, on_duplicate="ignore")

        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext():
            if seed is not None:
                torch.manual_seed(seed)
            edge_in = (1 + embedding_dim) if variant == "A" else (2 + 2 * embedding_dim)
            self.g_phi = MLP(edge_in, hidden_dim, n_layers, 1, activation)
            self.f_theta = MLP(
                3 + embedding_dim, hidden_dim_update or hidden_dim, n_layers_update or n_layers, 1, activation
            )
        self.a = nn.Parameter(torch.ones(self.n_neurons, embedding_dim))
        if w_init == "zeros":
            w = torch.zeros(self.n_edges)
        else:
            w = torch.randn(self.n_edges, generator=gen)
            if w_init == "randn_scaled":
                w = w * (w_init_scale / math.sqrt(max(self.n_edges, 1)))
        self.W = nn.Parameter(w)
        self.to(dtype)

    # -- helpers ----------------------------------------------------------------------------
    def _apply(self, fn, *args, **kwargs):  # keep the EdgeGraph on the parameters' device
        out = super()._apply(fn, *args, **kwargs)
        dev = self.W.device
        if self.graph.device != dev:
            self.graph = self.graph.to(dev)
        return out

    def _use_fused(self) -> bool:
        """Whether the messages run the fused op; the seat ``eirnn_fast.ops._backend`` decides (told
        what variant B's kernel cannot express); otherwise the per-edge reference below."""
        unsupported, hidden = None, None
        if self.variant == "B":
            hidden = self.g_phi.layers[0].out_features
            if self.g_phi.activation != "relu" or not self.g_phi_positive:
                unsupported = "the fused variant-B kernel needs activation='relu' and g_phi_positive=True"
        op = "edge_message_passing" if self.variant == "A" else "edge_mlp_message_passing"
        return _backend.choose(op, self.backend, self.W.device, hidden=hidden, unsupported=unsupported) == "fused"

    def _square(self, s: torch.Tensor) -> torch.Tensor:
        return s * s if self.g_phi_positive else s

    def g_phi_node(self, v: torch.Tensor, a: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Variant-A edge function per node: ``g_phi([v, a])`` (squared when positive).

        v ``[N, K]`` (any K columns), a ``[N, emb]`` (default: the model's embedding) -> ``[N, K]``.
        """
        if self.variant != "A":
            raise ValueError("g_phi_node is defined for variant 'A' (g_phi on source quantities only)")
        a = self.a if a is None else a
        feats = torch.cat([v.unsqueeze(-1), a.unsqueeze(1).expand(-1, v.shape[1], -1)], dim=-1)
        return self._square(self.g_phi(feats).squeeze(-1))

    def g_phi_self(self, v: torch.Tensor, a: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Edge function of a neuron on itself (for regularisers/metrics): A: g([v_i, a_i]);
        B: g([v_i, v_i, a_i, a_i]). ``[N, K] -> [N, K]``."""
        if self.variant == "A":
            return self.g_phi_node(v, a)
        a = self.a if a is None else a
        ae = a.unsqueeze(1).expand(-1, v.shape[1], -1)
        feats = torch.cat([v.unsqueeze(-1), v.unsqueeze(-1), ae, ae], dim=-1)
        return self._square(self.g_phi(feats).squeeze(-1))

    def g_phi_edge(self, v_i: torch.Tensor, v_j: torch.Tensor, a_i: torch.Tensor, a_j: torch.Tensor) -> torch.Tensor:
        """Variant-B edge function on explicit pairs: ``g_phi([v_i, v_j, a_i, a_j])`` (squared when
        positive). v_i, v_j ``[N, K]``, a_i, a_j ``[N, emb]`` -> ``[N, K]``."""
        if self.variant != "B":
            raise ValueError("g_phi_edge is defined for variant 'B' (g_phi on target and source quantities)")
        K = v_i.shape[1]
        feats = torch.cat(
            [
                v_i.unsqueeze(-1),
                v_j.unsqueeze(-1),
                a_i.unsqueeze(1).expand(-1, K, -1),
                a_j.unsqueeze(1).expand(-1, K, -1),
            ],
            dim=-1,
        )
        return self._square(self.g_phi(feats).squeeze(-1))

    def f_theta_node(
        self, v: torch.Tensor, msg: torch.Tensor, I: torch.Tensor, a: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """``f_theta([v_i, a_i, msg_i, I_i])`` for ``[N, K]`` inputs -> ``[N, K]``."""
        a = self.a if a is None else a
        ae = a.unsqueeze(1).expand(-1, v.shape[1], -1)
        feats = torch.cat([v.unsqueeze(-1), ae, msg.unsqueeze(-1), I.unsqueeze(-1)], dim=-1)
        return self.f_theta(feats).squeeze(-1)

    # -- messages ---------------------------------------------------------------------------
    def messages(self, v: torch.Tensor) -> torch.Tensor:  # [N, B] -> [N, B]
        """``msg_i = sum_{j->i} W_e g_phi(...)^2`` per frame (column)."""
        if self._use_fused():
            if self.variant == "A":
                h = self.g_phi_node(v)  # [N, B], one MLP evaluation per node
                return edge_message_passing(self.graph, self.W, h, backend=self.backend)
            return self._messages_b_fused(v)
        return self._messages_reference(v)

    def _messages_reference(self, v: torch.Tensor) -> torch.Tensor:
        src, dst = self.src, self.dst
        B = v.shape[1]
        vj = v.index_select(0, src)  # [E, B]
        aj = self.a.index_select(0, src).unsqueeze(1).expand(-1, B, -1)  # [E, B, emb]
        if self.variant == "A":
            feats = torch.cat([vj.unsqueeze(-1), aj], dim=-1)
        else:
            vi = v.index_select(0, dst)
            ai = self.a.index_select(0, dst).unsqueeze(1).expand(-1, B, -1)
            feats = torch.cat([vi.unsqueeze(-1), vj.unsqueeze(-1), ai, aj], dim=-1)
        h = self._square(self.g_phi(feats).squeeze(-1))  # [E, B]
        out = v.new_zeros(self.n_neurons, B)
        return out.index_add(0, dst, self.W.unsqueeze(1) * h)

    def _messages_b_fused(self, v: torch.Tensor) -> torch.Tensor:
        emb = self.embedding_dim
        first, hidden, last = self.g_phi.layers[0], self.g_phi.layers[1:-1], self.g_phi.layers[-1]
        Wf = first.weight  # [H, 2 + 2 emb], input [v_i, v_j, a_i, a_j]
        U_dst = torch.cat([Wf[:, 0:1], Wf[:, 2 : 2 + emb]], dim=1)
        U_src = torch.cat([Wf[:, 1:2], Wf[:, 2 + emb :]], dim=1)
        B = v.shape[1]
        x_node = torch.cat([v.t().unsqueeze(-1), self.a.unsqueeze(0).expand(B, -1, -1)], dim=-1)  # [B, N, 1+emb]
        a_dst = x_node @ U_dst.t() + first.bias  # [B, N, H]
        b_src = x_node @ U_src.t()  # [B, N, H]
        return edge_mlp_message_passing(
            self.graph,
            self.W,
            a_dst,
            b_src,
            [l.weight for l in hidden],
            [l.bias for l in hidden],
            last.weight,
            last.bias,
            backend=self.backend,
        )

    # -- dynamics ---------------------------------------------------------------------------
    def forward(self, v: torch.Tensor, I: torch.Tensor, return_msg: bool = False):
        """Predicted dv/dt. v, I ``[N, B]`` (frames as columns; ``[N]`` also accepted)."""
        squeeze = v.dim() == 1
        if squeeze:
            v, I = v.unsqueeze(1), I.unsqueeze(1)
        if v.shape[0] != self.n_neurons or I.shape != v.shape:
            raise ValueError(f"v and I must both be [N={self.n_neurons}, B], got {tuple(v.shape)} and {tuple(I.shape)}")
        msg = self.messages(v)
        pred = self.f_theta_node(v, msg, I)
        if squeeze:
            pred, msg = pred.squeeze(1), msg.squeeze(1)
        return (pred, msg) if return_msg else pred

    @torch.no_grad()
    def rollout(self, v0: torch.Tensor, I: torch.Tensor, dt: float, clamp: float = 100.0) -> torch.Tensor:
        """Autoregressive explicit-Euler rollout without noise: ``v <- clamp(v + dt f(v, I_t))``.

        v0 ``[N]``, I ``[T, N]`` -> voltages ``[T, N]`` with row 0 = v0 (row t uses I[t-1]).
        """
        T = I.shape[0]
        out = v0.new_empty(T, v0.shape[0])
        v = v0.clone()
        out[0] = v
        for t in range(1, T):
            v = (v + dt * self.forward(v, I[t - 1])).clamp(-clamp, clamp)
            out[t] = v
        return out
