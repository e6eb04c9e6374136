"""Regularisers: L2 on the effective weights and a mean-rate (activity) target."""

from __future__ import annotations

from typing import Optional

import torch


def l_reg(model, w_rec: bool = True, w_in: bool = True) -> torch.Tensor:
    """Sum of squares of the effective recurrent weights ``model.W_rec`` (Dale signs, zero diagonal,
    low rank applied) and of ``model.W_in`` (the predecessor's ``compute_L_reg``); the trainer
    multiplies it by ``reg_weight``."""
    total = None
    if w_rec:
        total = model.W_rec.pow(2).sum()
    if w_in:
        term = model.W_in.pow(2).sum()
        total = term if total is None else total + term
    if total is None:
        return next(model.parameters()).new_zeros(())
    return total


def l_activity(model_rates: torch.Tensor, target_rate: float, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``((mean rate - target_rate) / target_rate)^2``: the mean over valid bins, trials and *all*
    units (hidden ones included) of ``model_rates [K, T, N]`` pulled to ``target_rate`` (sp/s; the
    trainer uses the training data's mean rate). Relative, so its scale does not depend on units."""
    if mask is None:
        mean = model_rates.mean()
    else:
        m = mask.to(model_rates.dtype).unsqueeze(-1)
        mean = (model_rates * m).sum() / (m.sum() * model_rates.shape[-1]).clamp(min=1.0)
    denom = max(abs(float(target_rate)), 1e-6)
    return ((mean - float(target_rate)) / denom) ** 2
