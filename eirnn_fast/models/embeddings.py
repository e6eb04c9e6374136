"""Input embeddings of the E-I RNN: map the task inputs ``[B, T, n_inputs]`` to ``[B, T, output_dim]``
before the input projection ``W_in`` (``W_in`` is ``[N, output_dim]``).

One class per embedding type; :func:`make_input_embedding` builds one from the predecessor's
constructor options. Submodule and buffer names are those of the predecessor's ``InputEmbedding``
(``jamespherman/4factors-rnn-analysis@6fa65af:src/model.py``), so ``input_embed.*`` state_dict
entries load unchanged.

=============  ==========================================  ===============================  ==============
type           map                                         output width                     state_dict
=============  ==========================================  ===============================  ==============
learnable      ``relu(Linear(u))``                         ``embed_dim``                    ``linear.*``
random         ``relu(u @ W)``, W fixed ~ N(0, 1/n_in)     ``embed_dim``                    ``W`` (buffer)
time_lag       ``[u_t, u_{t-l1}, u_{t-l2}, ...]``, zeros   ``n_inputs * (1 + len(lags))``   (none)
               before the start; lags default [1, 2, 3]
polynomial     ``[u, u_i u_j for i <= j]``                 ``n_inputs + n(n+1)/2``          (none)
deep           MLP, ReLU after every layer (last too)      ``embed_dim``                    ``mlp.{0,2,..}``
typed          ``relu(Linear_g(u[..., s_g:e_g]))``         ``sum(group_embed_dims)``        ``group_linears.*``
               per input group g, concatenated             (``embed_dim`` by default)
recurrent      ``relu(Linear(GRU(u)))`` (causal)           ``embed_dim``                    ``gru.*, proj.*``
attention      per time bin, each scalar feature is a      ``embed_dim``                    ``qkv_proj.*,``
               token; softmax attention over the           (``out_proj`` is                 ``out_proj.*``
               features, then ``relu(Linear)``             ``[embed_dim, n_inputs*heads]``)
=============  ==========================================  ===============================  ==============

Every embedding acts on each time bin separately except ``time_lag`` (looks back ``max(lags)``
bins) and ``recurrent`` (a causal GRU over the whole trial). ``polynomial`` is new here (the
predecessor planned it, never implemented it; it has no parameters).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Embedding types, in the predecessor's order plus ``polynomial``.
EMBED_TYPES = ("learnable", "random", "time_lag", "deep", "typed", "recurrent", "attention", "polynomial")
#: Types that are used even when ``input_embed_dim`` is None (the others need an explicit width).
ALWAYS_ON_TYPES = ("time_lag", "deep", "typed", "recurrent", "attention", "polynomial")


class _Embedding(nn.Module):
    """Common attributes: ``embed_type``, ``n_inputs`` and ``output_dim`` (the width fed to ``W_in``)."""

    embed_type: str = ""

    def __init__(self, n_inputs: int, output_dim: int):
        super().__init__()
        self.n_inputs = int(n_inputs)
        self.output_dim = int(output_dim)

    def extra_repr(self) -> str:
        return f"n_inputs={self.n_inputs}, output_dim={self.output_dim}"


class LearnableEmbedding(_Embedding):
    """``relu(u @ A^T + b)`` with a trainable ``Linear(n_inputs, embed_dim)``. Width ``embed_dim``."""

    embed_type = "learnable"

    def __init__(self, n_inputs: int, embed_dim: int):
        super().__init__(n_inputs, embed_dim)
        self.linear = nn.Linear(n_inputs, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, n_in] -> [B, T, embed_dim]
        return F.relu(self.linear(x))


class RandomEmbedding(_Embedding):
    """``relu(u @ W)`` with a fixed ``W`` ``[n_inputs, embed_dim]`` ~ N(0, 1/n_inputs) (a persistent
    buffer, saved with the model). Width ``embed_dim``."""

    embed_type = "random"

    def __init__(self, n_inputs: int, embed_dim: int):
        super().__init__(n_inputs, embed_dim)
        self.register_buffer("W", torch.randn(n_inputs, embed_dim) / math.sqrt(n_inputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, n_in] -> [B, T, embed_dim]
        return F.relu(x @ self.W)


class TimeLagEmbedding(_Embedding):
    """The input and copies delayed by each lag (bins): ``[u_t, u_{t-l_1}, ...]``, zero before the
    trial starts. Width ``n_inputs * (1 + len(time_lags))``; no parameters; ``embed_dim`` unused."""

    embed_type = "time_lag"

    def __init__(self, n_inputs: int, time_lags: Optional[Sequence[int]] = None):
        lags = [int(lag) for lag in (time_lags or [1, 2, 3])]
        if any(lag < 1 for lag in lags):
            raise ValueError(f"input_time_lags must be positive integers (bins), got {list(time_lags)}")
        super().__init__(n_inputs, n_inputs * (1 + len(lags)))
        self.time_lags = lags

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, n_in] -> [B, T, n_in * (1 + L)]
        steps = x.shape[1]
        feats = [x]
        for lag in self.time_lags:
            # shift down the time axis by `lag` bins, zero-filling the first bins
            feats.append(F.pad(x[:, : max(steps - lag, 0)], (0, 0, min(lag, steps), 0)))
        return torch.cat(feats, dim=-1)


class PolynomialEmbedding(_Embedding):
    """Degree-2 features: the input and every pairwise product ``u_i u_j`` with ``i <= j`` (row-major
    order: (0,0), (0,1), ..., (0,n-1), (1,1), ...). Width ``n + n (n + 1) / 2``; no parameters."""

    embed_type = "polynomial"

    def __init__(self, n_inputs: int):
        super().__init__(n_inputs, n_inputs + n_inputs * (n_inputs + 1) // 2)
        rows, cols = torch.triu_indices(n_inputs, n_inputs)
        self.register_buffer("_rows", rows, persistent=False)
        self.register_buffer("_cols", cols, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, n_in] -> [B, T, n + n(n+1)/2]
        return torch.cat([x, x[..., self._rows] * x[..., self._cols]], dim=-1)


class DeepEmbedding(_Embedding):
    """MLP ``n_inputs -> hidden -> ... -> embed_dim`` with ``n_layers`` Linear layers, each followed by
    a ReLU (the output too). ``hidden_dim`` defaults to ``(n_inputs + embed_dim) // 2``.
    Width ``embed_dim``."""

    embed_type = "deep"

    def __init__(self, n_inputs: int, embed_dim: int, hidden_dim: Optional[int] = None, n_layers: int = 2):
        if n_layers < 1:
            raise ValueError(f"embed_n_layers must be >= 1, got {n_layers}")
        super().__init__(n_inputs, embed_dim)
        hidden = hidden_dim or (n_inputs + embed_dim) // 2
        layers: list[nn.Module] = []
        width = n_inputs
        for _ in range(n_layers - 1):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers += [nn.Linear(width, embed_dim), nn.ReLU()]
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, n_in] -> [B, T, embed_dim]
        return self.mlp(x)


class TypedEmbedding(_Embedding):
    """Separate ``relu(Linear)`` per input group ``[start, end)``, concatenated in group order.

    Groups default to two halves ``[(0, n//2), (n//2, n)]``; widths default to an equal split of
    ``embed_dim`` with the remainder on the last group. Width ``sum(group_embed_dims)``.
    """

    embed_type = "typed"

    def __init__(
        self,
        n_inputs: int,
        embed_dim: int,
        input_groups: Optional[Sequence[Sequence[int]]] = None,
        group_embed_dims: Optional[Sequence[int]] = None,
    ):
        if input_groups is None:
            mid = n_inputs // 2
            input_groups = [(0, mid), (mid, n_inputs)]
        groups = [(int(s), int(e)) for s, e in input_groups]
        for s, e in groups:
            if not 0 <= s < e <= n_inputs:
                raise ValueError(f"input_groups entries must satisfy 0 <= start < end <= {n_inputs}, got {groups}")
        if group_embed_dims is None:
            per = embed_dim // len(groups)
            dims = [per] * len(groups)
            dims[-1] = embed_dim - sum(dims[:-1])
        else:
            dims = [int(d) for d in group_embed_dims]
            if len(dims) != len(groups):
                raise ValueError(f"group_embed_dims has {len(dims)} entries but input_groups has {len(groups)}")
        super().__init__(n_inputs, sum(dims))
        self.input_groups = groups
        self.group_embed_dims = dims
        self.group_linears = nn.ModuleList(nn.Linear(e - s, d) for (s, e), d in zip(groups, dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, n_in] -> [B, T, sum(dims)]
        return torch.cat(
            [F.relu(lin(x[..., s:e])) for (s, e), lin in zip(self.input_groups, self.group_linears)], dim=-1
        )


class RecurrentEmbedding(_Embedding):
    """Causal single-layer GRU ``n_inputs -> gru_hidden_dim`` (default ``embed_dim``, zero initial
    state per trial), then ``relu(Linear(gru_hidden_dim, embed_dim))``. Width ``embed_dim``."""

    embed_type = "recurrent"

    def __init__(self, n_inputs: int, embed_dim: int, gru_hidden_dim: Optional[int] = None):
        super().__init__(n_inputs, embed_dim)
        hidden = gru_hidden_dim or embed_dim
        self.gru = nn.GRU(n_inputs, hidden, batch_first=True, bidirectional=False)
        self.proj = nn.Linear(hidden, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, n_in] -> [B, T, embed_dim]
        out, _ = self.gru(x)  # [B, T, hidden]
        return F.relu(self.proj(out))


class AttentionEmbedding(_Embedding):
    """Softmax attention across the input *features* of each time bin, then a ReLU projection.

    Each scalar feature ``u_f`` is a token; ``qkv_proj = Linear(1, 3 * heads)`` maps it to query,
    key and value vectors of size ``heads`` (a single attention head of dimension ``heads``, despite
    the name), ``A = softmax(q k^T / sqrt(heads))`` over the ``n_inputs`` keys, and the attended
    values ``[n_inputs, heads]`` are flattened feature-major into ``out_proj = Linear(n_inputs * heads,
    embed_dim)`` followed by a ReLU. Width ``embed_dim``. Time bins do not interact.
    """

    embed_type = "attention"

    def __init__(self, n_inputs: int, embed_dim: int, attention_heads: int = 4):
        if attention_heads < 1:
            raise ValueError(f"attention_heads must be >= 1, got {attention_heads}")
        super().__init__(n_inputs, embed_dim)
        self.attention_heads = int(attention_heads)
        self.qkv_proj = nn.Linear(1, 3 * attention_heads)
        self.out_proj = nn.Linear(n_inputs * attention_heads, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, n_in] -> [B, T, embed_dim]
        batch, steps, n_in = x.shape
        q, k, v = self.qkv_proj(x.reshape(batch * steps, n_in, 1)).chunk(3, dim=-1)  # each [BT, n_in, H]
        scores = torch.bmm(q, k.transpose(1, 2)) * (self.attention_heads**-0.5)  # [BT, n_in, n_in]
        attended = torch.bmm(torch.softmax(scores, dim=-1), v)  # [BT, n_in, H]
        out = F.relu(self.out_proj(attended.reshape(batch * steps, n_in * self.attention_heads)))
        return out.reshape(batch, steps, -1)


def make_input_embedding(
    n_inputs: int,
    embed_dim: Optional[int],
    embed_type: str = "learnable",
    time_lags: Optional[Sequence[int]] = None,
    embed_hidden_dim: Optional[int] = None,
    embed_n_layers: int = 2,
    input_groups: Optional[Sequence[Sequence[int]]] = None,
    group_embed_dims: Optional[Sequence[int]] = None,
    gru_hidden_dim: Optional[int] = None,
    attention_heads: int = 4,
) -> _Embedding:
    """Build the embedding for ``embed_type`` (one of :data:`EMBED_TYPES`).

    ``embed_dim`` None means ``n_inputs`` (the predecessor's ``input_embed_dim or n_inputs``); it is
    ignored by ``time_lag`` and ``polynomial``, whose widths are fixed by the inputs.
    """
    if embed_type not in EMBED_TYPES:
        raise ValueError(f"input_embed_type must be one of {EMBED_TYPES}, got {embed_type!r}")
    dim = int(embed_dim or n_inputs)
    if dim < 1:
        raise ValueError(f"input_embed_dim must be >= 1, got {embed_dim}")
    if embed_type == "learnable":
        return LearnableEmbedding(n_inputs, dim)
    if embed_type == "random":
        return RandomEmbedding(n_inputs, dim)
    if embed_type == "time_lag":
        return TimeLagEmbedding(n_inputs, time_lags)
    if embed_type == "polynomial":
        return PolynomialEmbedding(n_inputs)
    if embed_type == "deep":
        return DeepEmbedding(n_inputs, dim, embed_hidden_dim, embed_n_layers)
    if embed_type == "typed":
        return TypedEmbedding(n_inputs, dim, input_groups, group_embed_dims)
    if embed_type == "recurrent":
        return RecurrentEmbedding(n_inputs, dim, gru_hidden_dim)
    return AttentionEmbedding(n_inputs, dim, attention_heads)
