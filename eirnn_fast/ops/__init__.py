"""Fused ops: one module per op family, each with a pure-PyTorch twin in ``eirnn_fast.reference``."""
from eirnn_fast.ops.message_passing import EdgeGraph, edge_message_passing, edge_mlp_message_passing
from eirnn_fast.ops.rnn import ei_rnn_scan

__all__ = ["ei_rnn_scan", "EdgeGraph", "edge_message_passing", "edge_mlp_message_passing"]
