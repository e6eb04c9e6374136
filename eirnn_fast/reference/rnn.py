"""Pure-PyTorch twin of :func:`eirnn_fast.ops.ei_rnn_scan`.

This is the test oracle, the fallback when the compiled extension is missing, and the readable
definition of the recurrence::

    x_{-1} = x0
    x_t    = (1 - alpha) * x_{t-1} + alpha * (softplus(x_{t-1}) @ w_rec.T) + drive_t      t = 0..T-1

It iterates over time with ``unbind`` (never ``drive[:, t]`` on a grad-requiring tensor, which makes
autograd's backward O(T^2)), so it is also a fair eager baseline for the benchmarks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def ei_rnn_scan_reference(
    drive: torch.Tensor,  # [B, T, N]
    x0: torch.Tensor,  # [B, N] or [N]
    w_rec: torch.Tensor,  # [N, N]
    alpha: torch.Tensor,  # [N] or scalar
) -> torch.Tensor:  # [B, T, N]
    """Eager reference of the E-I rate recurrence; returns the states x_0..x_{T-1}."""
    batch, steps, n = drive.shape
    x = x0.expand(batch, n)
    one_minus_alpha = 1.0 - alpha
    w_t = w_rec.t()
    states = []
    for drive_t in drive.unbind(1):  # each [B, N]
        x = one_minus_alpha * x + alpha * (F.softplus(x) @ w_t) + drive_t
        states.append(x)
    if not states:  # T == 0
        return drive.new_empty(batch, 0, n)
    return torch.stack(states, dim=1)
