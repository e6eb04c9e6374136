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


def ei_rnn_rates_reference(
    states: torch.Tensor,  # [B, T, N]
    x0: torch.Tensor,  # [B, N] or [N]
    rate_scale: torch.Tensor,  # 0-d
    rate_baseline: torch.Tensor,  # 0-d
) -> torch.Tensor:  # [B, T, N]
    """Output rates of the drop-in model, read from the *previous* state (one-step lag)::

    prev_t  = x0 (t = 0), states_{t-1} (t >= 1)
    rates_t = max(softplus(prev_t) * rate_scale + rate_baseline, 0)
    """
    batch, _, n = states.shape
    previous = torch.cat([x0.expand(batch, n).unsqueeze(1), states[:, :-1]], dim=1)  # x_{t-1}
    return torch.addcmul(rate_baseline, F.softplus(previous), rate_scale).clamp_(min=0.0)


def state_noise_reference(
    drive: torch.Tensor,  # [B, T, N]
    std: torch.Tensor,  # 0-d
    generator: torch.Generator | None = None,
) -> torch.Tensor:  # [B, T, N]
    """``drive + std * xi`` with ``xi ~ N(0, 1)`` from torch's generator (one batched draw)."""
    xi = torch.randn(drive.shape, dtype=drive.dtype, device=drive.device, generator=generator)
    return torch.addcmul(drive, xi, std)
