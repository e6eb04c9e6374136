"""Pure-PyTorch references of every fused op (oracle, fallback, documentation)."""

from eirnn_fast.reference.message_passing import (
    edge_message_passing_reference,
    edge_mlp_messages_reference,
)
from eirnn_fast.reference.rnn import ei_rnn_rates_reference, ei_rnn_scan_reference, state_noise_reference
from eirnn_fast.reference.sinkhorn import cost_matrix_reference, sinkhorn_reference

__all__ = [
    "ei_rnn_scan_reference",
    "ei_rnn_rates_reference",
    "state_noise_reference",
    "edge_message_passing_reference",
    "edge_mlp_messages_reference",
    "sinkhorn_reference",
    "cost_matrix_reference",
]
