"""Fused ops: one module per op family, each with a pure-PyTorch twin in ``eirnn_fast.reference``."""

from eirnn_fast.ops.message_passing import EdgeGraph, edge_message_passing, edge_mlp_message_passing
from eirnn_fast.ops.rnn import ei_rnn_rates, ei_rnn_scan, state_noise_
from eirnn_fast.ops.sinkhorn import (
    SinkhornConvergenceError,
    SinkhornConvergenceWarning,
    SinkhornInfo,
    relative_eps,
    sinkhorn,
    sinkhorn_info,
    sinkhorn_plan,
)

__all__ = [
    "ei_rnn_scan",
    "ei_rnn_rates",
    "state_noise_",
    "EdgeGraph",
    "edge_message_passing",
    "edge_mlp_message_passing",
    "sinkhorn",
    "sinkhorn_plan",
    "sinkhorn_info",
    "SinkhornInfo",
    "SinkhornConvergenceWarning",
    "SinkhornConvergenceError",
    "relative_eps",
]
