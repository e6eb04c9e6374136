"""PRIVATE stand-in for ``eirnn_fast.losses.trial_matching_loss`` (built on the batched Sinkhorn op
in another branch). Used only when that function is absent, so the trainer and its tests can run
L_trial; the merge replaces it. Plain torch, the predecessor's faithful semantics
(``4factors-rnn-analysis@6fa65af:compute_L_trial``)::

    pop_k(t)  = mean over recorded neurons of rates[k, t, :]                  [K, T]
    z         = (pop - mean_k pop) / std_k pop, per time bin, model and data each with their own stats
    D_ij      = ||z_model_i - z_data_j||_2   (torch.cdist, unsquared)
    log-domain Sinkhorn, eps = 0.1 absolute, 20 iterations, unit row/column sums, unrolled autograd
    L_trial   = sum(P * D) / n
"""
from __future__ import annotations

from typing import Optional

import torch


def _zscore(pop: torch.Tensor) -> torch.Tensor:
    return (pop - pop.mean(dim=0, keepdim=True)) / (pop.std(dim=0, keepdim=True) + 1e-8)


def trial_matching_loss_fallback(model_rates: torch.Tensor, target_rates: torch.Tensor, *, eps: float = 0.1,
                                 n_iter: int = 20, mask: Optional[torch.Tensor] = None, **unused) -> torch.Tensor:
    """Faithful L_trial (module docstring). ``model_rates`` ``[n, T, N]`` (recorded units already
    selected), ``target_rates`` ``[m, T, N]``. Other keywords of the real function are accepted and
    ignored (the faithful feature/z-score/cost are fixed here)."""
    if mask is not None:
        m = mask.to(model_rates.dtype).unsqueeze(-1)
        model_rates = model_rates * m
        target_rates = target_rates * m
    zm = _zscore(model_rates.mean(dim=2))  # [n, T]
    zd = _zscore(target_rates.to(model_rates.dtype).mean(dim=2))  # [m, T]
    cost = torch.cdist(zm.unsqueeze(0), zd.unsqueeze(0), p=2).squeeze(0)  # [n, m]
    log_k = -cost / eps
    log_u = torch.zeros(cost.shape[0], dtype=cost.dtype, device=cost.device)
    log_v = torch.zeros(cost.shape[1], dtype=cost.dtype, device=cost.device)
    for _ in range(n_iter):
        log_u = -torch.logsumexp(log_k + log_v.unsqueeze(0), dim=1)
        log_v = -torch.logsumexp(log_k + log_u.unsqueeze(1), dim=0)
    plan = torch.exp(log_k + log_u.unsqueeze(1) + log_v.unsqueeze(0))
    return (plan * cost).sum() / cost.shape[0]
