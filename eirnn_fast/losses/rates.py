"""L_rate: per-neuron firing-rate terms, so every fitted neuron fires as much as its recorded one.

L_neuron's correlation is blind to each neuron's scale and its ``L_scale`` matches only the
population mean, so a fit can reach a high PSTH r with single neurons off by 5x (08_14: median
factor 1.8, 41 % of the neurons off by more than 2x). Two forms (``rate_form``)::

    log:      m_n, d_n = mean rate of model unit / recorded neuron n over the batch's trials and the
              valid bins inside each trial (sp/s)
              L_rate = mean_n log((m_n + c) / (d_n + c))^2                     c = offset = 0.5 sp/s
    poisson:  mu = model rate * bin_s, y = recorded count = rate * bin_s (spikes per bin), per valid bin
              D_n  = mean over valid (k, t) of [y log(y / mu) - y + mu]          (Poisson deviance / 2;
                                                                                  0 log 0 = 0, mu >= 1e-6)
              L_rate = mean_n D_n / (mean_kt y_ktn + c * bin_s)

``log`` is the squared per-neuron version of the reported rate error (:func:`eirnn_fast.metrics.rate_error`,
same offset): scale-free, every neuron counts the same, and it constrains only each neuron's mean.
``poisson`` is the likelihood of the recorded counts under the model's single-trial rates, divided
by each neuron's mean count so low-rate neurons weigh as much as high-rate ones; it constrains every
bin of every trial (its minimum over a neuron's trials with equal inputs is their mean), so it is a
PSTH term as well as a rate term.
"""

from __future__ import annotations

from typing import Optional

import torch

from eirnn_fast.units import as_unit_index

RATE_FORMS = ("log", "poisson")
#: sp/s added to model and data mean rates (the rate error's offset)
RATE_OFFSET = 0.5


def _masked_neuron_mean(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """``[N]`` mean of ``x [K, T, N]`` over the valid (k, t) bins."""
    if mask is None:
        return x.mean(dim=(0, 1))
    m = mask.to(x.dtype).unsqueeze(-1)  # [K, T, 1]
    return (x * m).sum(dim=(0, 1)) / m.sum(dim=(0, 1)).clamp(min=1.0)


def l_rate(
    model_rates: torch.Tensor,  # [K, T, N] recorded neurons' units (select_units first), sp/s
    target_rates: torch.Tensor,  # [K, T, N] sp/s
    mask: Optional[torch.Tensor] = None,  # [K, T] 1 = valid
    form: str = "log",
    offset: float = RATE_OFFSET,
    bin_ms: float = 25.0,
    unit_index: Optional[torch.Tensor] = None,  # [N] unit of each recorded neuron (model_rates: all units)
) -> torch.Tensor:
    """Per-neuron rate loss (module docstring); a scalar, differentiable w.r.t. ``model_rates``.
    With ``unit_index`` (``form="log"`` only) ``model_rates`` holds every unit and the recorded
    neurons' means are selected after the mean over trials and bins (no ``[K, T, N]`` gather)."""
    if form not in RATE_FORMS:
        raise ValueError(f"rate form must be one of {RATE_FORMS}, got {form!r}")
    if unit_index is not None:
        if form != "log":
            raise ValueError("unit_index is only for form='log' (the poisson form needs every bin's recorded rates)")
        if model_rates.dim() != 3 or model_rates.shape[:2] != target_rates.shape[:2]:
            raise ValueError(f"model rates {tuple(model_rates.shape)} and targets {tuple(target_rates.shape)} differ")
        idx = as_unit_index(unit_index, model_rates.device)
        if idx.shape != (target_rates.shape[2],):
            raise ValueError(f"unit_index must be [{target_rates.shape[2]}], got shape {tuple(idx.shape)}")
        try:
            m = _masked_neuron_mean(model_rates, mask).index_select(0, idx)
        except (IndexError, RuntimeError) as exc:
            raise ValueError(f"unit_index holds a unit outside [0, {model_rates.shape[2]}): {exc}") from None
        d = _masked_neuron_mean(target_rates.to(model_rates.dtype), mask)
        return torch.log((m + offset) / (d + offset)).pow(2).mean()
    if model_rates.shape != target_rates.shape:
        raise ValueError(f"model rates {tuple(model_rates.shape)} and targets {tuple(target_rates.shape)} differ")
    target_rates = target_rates.to(model_rates.dtype)
    if form == "log":
        m = _masked_neuron_mean(model_rates, mask)
        d = _masked_neuron_mean(target_rates, mask)
        return torch.log((m + offset) / (d + offset)).pow(2).mean()
    bin_s = bin_ms / 1000.0
    mu = (model_rates * bin_s).clamp(min=1e-6)
    y = (target_rates * bin_s).clamp(min=0.0)
    ylogy = torch.where(y > 0, y * torch.log(y.clamp(min=1e-30) / mu), torch.zeros_like(y))
    dev = _masked_neuron_mean(ylogy - y + mu, mask)  # [N]
    return (dev / (_masked_neuron_mean(y, mask) + offset * bin_s)).mean()
