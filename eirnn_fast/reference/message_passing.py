"""Pure-PyTorch twins of the sparse edge message passing (DESIGN 3.3): oracle, fallback, documentation.

Both are the PyG-style gather -> per-edge message -> ``index_add_`` formulation, differentiable by
plain autograd. They take the raw edge lists, so they need no :class:`~eirnn_fast.ops.EdgeGraph`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch


def edge_message_passing_reference(
    src: torch.Tensor,  # [E] int
    dst: torch.Tensor,  # [E] int
    num_dst: int,
    edge_weight: torch.Tensor,  # [E]
    node_values: torch.Tensor,  # [num_src, F]
) -> torch.Tensor:  # [num_dst, F]
    r"""``out[i, f] = sum_{e: dst[e] = i} edge_weight[e] * node_values[src[e], f]`` via ``index_add_``."""
    src = src.to(device=node_values.device, dtype=torch.long)
    dst = dst.to(device=node_values.device, dtype=torch.long)
    msg = edge_weight.unsqueeze(1) * node_values.index_select(0, src)  # [E, F]
    out = node_values.new_zeros(num_dst, node_values.shape[1])
    return out.index_add(0, dst, msg)


def edge_mlp_messages_reference(
    src: torch.Tensor,  # [E] int
    dst: torch.Tensor,  # [E] int
    edge_weight: torch.Tensor,  # [E]
    a_dst: torch.Tensor,  # [F, num_dst, H]
    b_src: torch.Tensor,  # [F, num_src, H]
    hidden_weights: Sequence[torch.Tensor],  # L x [H, H]
    hidden_biases: Sequence[torch.Tensor],  # L x [H]
    out_weight: torch.Tensor,  # [H] or [1, H]
    out_bias: Optional[torch.Tensor],  # [1], [] or None
) -> torch.Tensor:  # [num_dst, F]
    r"""Per-edge MLP messages (FlyVis model "B"), evaluated edge by edge like PyG.

    For each edge ``e = (j -> i)`` and frame ``f``::

        h_0 = relu(a_dst[f, i] + b_src[f, j])              # factorised first layer (bias in a_dst)
        h_l = relu(hidden_weights[l-1] @ h_{l-1} + hidden_biases[l-1]),   l = 1..L
        s   = out_weight . h_L + out_bias
        out[i, f] = sum_e edge_weight[e] * s^2

    Materialises ``[F * E, H]`` activations per layer: the oracle, not a fast path.
    """
    src = src.to(device=a_dst.device, dtype=torch.long)
    dst = dst.to(device=a_dst.device, dtype=torch.long)
    h = torch.relu(a_dst[:, dst] + b_src[:, src])  # [F, E, H]
    for w_l, b_l in zip(hidden_weights, hidden_biases):
        h = torch.relu(torch.nn.functional.linear(h, w_l, b_l))
    s = h @ out_weight.reshape(-1)  # [F, E]
    if out_bias is not None:
        s = s + out_bias.reshape(())
    msg = (edge_weight * s * s).t()  # [E, F]
    out = a_dst.new_zeros(a_dst.shape[1], a_dst.shape[0])
    return out.index_add(0, dst, msg)
