"""Regularisers: L2 on the effective weights and a mean-rate (activity) target, each in two forms.

The same weight means very different strengths in the two forms, so a weight is only meaningful
together with its form (``FitConfig.reg_form`` / ``FitConfig.activity_form``):

* L_reg, ours (``"sum"``, :func:`l_reg_sum`): sum of squares of W_rec and W_in. On 08_13's 30 units
  (900 + 420 entries) that is ~420-900x the mean form at the same weight, ~1,100-6,400x at 80 units.
* L_reg, the predecessor's (``"mean"``, :func:`l_reg_mean`): mean of squares of each matrix
  (4factors-rnn-analysis 6fa65af ``src/losses.py::compute_L_reg``).
* L_activity, ours (``"relative"``, :func:`l_activity_relative`): ((mean - target) / target)^2 over
  all units and valid bins, target = the training data's mean rate (~1/63 of the absolute form at
  the same weight and 7.9 sp/s).
* L_activity, the predecessor's (``"predecessor"``, :func:`l_activity_predecessor`): lambda
  (mean - 10)^2 on the recorded units plus 0.001 x a max-rate hinge at 100 sp/s (6fa65af
  ``compute_activity_regularization``).
"""

from __future__ import annotations

from typing import Optional

import torch

REG_FORMS = ("sum", "mean")
ACTIVITY_FORMS = ("relative", "predecessor")


def _squares(model, w_rec: bool, w_in: bool, reduce) -> torch.Tensor:
    total = None
    for use, w in ((w_rec, lambda: model.W_rec), (w_in, lambda: model.W_in)):
        if use:
            term = reduce(w().pow(2))
            total = term if total is None else total + term
    if total is None:
        return next(model.parameters()).new_zeros(())
    return total


def l_reg_sum(model, w_rec: bool = True, w_in: bool = True) -> torch.Tensor:
    """Ours: ``sum(W_rec^2) + sum(W_in^2)`` of the effective recurrent weights ``model.W_rec``
    (Dale signs, zero diagonal, low rank applied) and of ``model.W_in``. Grows with the network size
    (N^2 + N D entries); the trainer multiplies it by ``reg_weight``."""
    return _squares(model, w_rec, w_in, torch.sum)


def l_reg_mean(model, w_rec: bool = True, w_in: bool = True) -> torch.Tensor:
    """The predecessor's ``compute_L_reg`` without its factor (6fa65af ``src/losses.py`` l. 690-720):
    ``mean(W_rec^2) + mean(W_in^2)``, the means over all entries of each matrix (the zero diagonal of
    ``W_rec`` included). Size-independent; the trainer multiplies it by ``reg_weight`` (its
    ``lambda_l2``, 1e-4 there)."""
    return _squares(model, w_rec, w_in, torch.mean)


#: ``reg_form`` -> its function (the one place the trainer looks the form up)
REG_FUNCTIONS = {"sum": l_reg_sum, "mean": l_reg_mean}


def l_reg(model, w_rec: bool = True, w_in: bool = True) -> torch.Tensor:
    """Alias of :func:`l_reg_sum` (ours; kept for callers of the earlier name)."""
    return l_reg_sum(model, w_rec, w_in)


def l_activity_relative(
    model_rates: torch.Tensor, target_rate: float, mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Ours: ``((mean rate - target_rate) / target_rate)^2``: the mean over valid bins, trials and
    *all* units (hidden ones included) of ``model_rates [K, T, N]`` pulled to ``target_rate`` (sp/s;
    the trainer uses the training data's mean rate). Relative, so its scale does not depend on units;
    at the same weight it is ``1 / target_rate^2`` of the absolute form (1/63 at 7.9 sp/s)."""
    if mask is None:
        mean = model_rates.mean()
    else:
        m = mask.to(model_rates.dtype).unsqueeze(-1)
        mean = (model_rates * m).sum() / (m.sum() * model_rates.shape[-1]).clamp(min=1.0)
    denom = max(abs(float(target_rate)), 1e-6)
    return ((mean - float(target_rate)) / denom) ** 2


def l_activity_predecessor(
    recorded_rates: torch.Tensor,
    lambda_mean: float,
    target_mean: float = 10.0,
    target_max: float = 100.0,
    lambda_max: float = 0.001,
) -> torch.Tensor:
    """The predecessor's ``compute_activity_regularization`` (6fa65af ``src/losses.py`` l. 477-510),
    weights included, on the recorded units' rates ``[K, T, N_recorded]`` (its experiment_phase2.py
    passes ``model_rates[:, :, :n_recorded]``), no mask::

        lambda_mean * (mean(rates) - target_mean)^2
          + lambda_max * mean_n relu(max_{k,t} rates[k, t, n] - target_max)^2
    """
    mean_rate = recorded_rates.mean()
    l_mean = lambda_mean * (mean_rate - target_mean) ** 2
    max_rates = recorded_rates.amax(dim=(0, 1))  # [N] max per neuron over trials and time
    l_max = lambda_max * torch.relu(max_rates - target_max).pow(2).mean()
    return l_mean + l_max


def l_activity(model_rates: torch.Tensor, target_rate: float, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Alias of :func:`l_activity_relative` (ours; kept for callers of the earlier name)."""
    return l_activity_relative(model_rates, target_rate, mask)
