"""L_neuron: the predecessor's robust PSTH loss (``4factors-rnn-analysis@d7a60a0:compute_L_neuron``).

::

    psth_m, psth_d = masked trial means of model and data rates            [T, N]
    (optional centred boxcar smoothing of max(1, round(smooth_ms / bin_ms)) bins)
    L_corr  = mean_n (1 - clamp(pearson_t(psth_m[:, n], psth_d[:, n]), -1, 1))
    L_scale = (mean(psth_m) - mean(psth_d))^2 / var(psth_d)                 (var over all T x N)
    L_var   = (mean_n var_t(psth_m) - mean_n var_t(psth_d))^2 / ((mean_n var_t(psth_d))^2 + 1e-6)
    L_neuron = L_corr + 0.1 L_scale + 0.05 L_var

Variances are unbiased (torch's default, as the predecessor). Pearson norms are clamped at 1e-6, so
a flat model PSTH gives r = 0 (loss 1) instead of NaN. Masks (``mask_mode``): ``"valid"`` (ours)
averages each bin over its valid trials only; ``"multiply"`` is the predecessor's, the mean over
*all* trials of ``rates * mask`` (masked bins count as zeros). The two agree for the all-ones masks
of the exported sessions.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from eirnn_fast.units import as_unit_index

MASK_MODES = ("valid", "multiply")


def masked_psth(rates: torch.Tensor, mask: Optional[torch.Tensor] = None, mask_mode: str = "valid") -> torch.Tensor:
    """``[T, N]`` trial mean of ``rates [K, T, N]``: over the valid trials of each bin (``"valid"``;
    bins without valid trials: 0) or over all trials of ``rates * mask`` (``"multiply"``, the
    predecessor's ``compute_L_neuron``)."""
    if mask_mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
    if mask is None:
        return rates.mean(dim=0)
    m = mask.to(rates.dtype).unsqueeze(-1)  # [K, T, 1]
    if mask_mode == "multiply":
        return (rates * m).mean(dim=0)
    return (rates * m).sum(dim=0) / m.sum(dim=0).clamp(min=1.0)


def smooth_time(psth: torch.Tensor, smooth_ms: float = 0.0, bin_ms: float = 25.0) -> torch.Tensor:
    """Centred, edge-normalised boxcar along time of a ``[T, N]`` PSTH (the metric's smoothing)."""
    width = max(1, int(round(smooth_ms / bin_ms))) if smooth_ms > 0 else 1
    if width == 1:
        return psth
    x = psth.t().unsqueeze(1)  # [N, 1, T]
    kernel = torch.ones(1, 1, width, dtype=psth.dtype, device=psth.device)
    left = width // 2  # same window as np.convolve(mode="same") for even widths
    pad = (left, width - 1 - left)
    num = F.conv1d(F.pad(x, pad), kernel)
    den = F.conv1d(F.pad(torch.ones_like(x[:1]), pad), kernel)
    return (num / den).squeeze(1).t()


def l_neuron(
    model_rates: torch.Tensor,
    target_rates: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    smooth_ms: float = 0.0,
    bin_ms: float = 25.0,
    unit_index: Optional[Sequence[int]] = None,
    scale_weight: float = 0.1,
    var_weight: float = 0.05,
    return_parts: bool = False,
    mask_mode: str = "valid",
):
    """PSTH loss (module docstring). ``model_rates`` ``[K, T, N_units]``: with ``unit_index`` (from
    :func:`eirnn_fast.units.recorded_unit_index`) the recorded neurons' units are selected, else it
    must already be ``[K, T, N]`` like ``target_rates``. With ``return_parts`` returns
    ``(loss, {"corr", "scale", "var", "psth_corr"})`` (detached parts). ``mask_mode``: see
    :func:`masked_psth`."""
    if unit_index is not None:
        # the trial mean is linear per unit: select the recorded units' columns of the [T, N_units]
        # PSTH instead of the [K, T, N_units] rates (same numbers; the gather and its scatter
        # backward on the full batch were ~8 % of an SC epoch), without a host sync
        idx = as_unit_index(unit_index, model_rates.device)
        if (
            model_rates.dim() != 3
            or model_rates.shape[:2] != target_rates.shape[:2]
            or idx.numel() != target_rates.shape[-1]
        ):
            raise ValueError(
                f"model rates {tuple(model_rates.shape)} with {idx.numel()} selected units and targets "
                f"{tuple(target_rates.shape)} differ"
            )
        pm = masked_psth(model_rates, mask, mask_mode)  # [T, N_units]
        try:  # index_select refuses negative and too-large units (plain indexing wraps negatives)
            pm = pm.index_select(1, idx)
        except (IndexError, RuntimeError) as exc:
            raise ValueError(
                f"unit_index holds a unit outside [0, {model_rates.shape[-1]}) (the rates have "
                f"{model_rates.shape[-1]} units): {exc}"
            ) from None
    else:
        if model_rates.shape != target_rates.shape:
            raise ValueError(
                f"model rates {tuple(model_rates.shape)} and targets {tuple(target_rates.shape)} differ "
                "(pass unit_index to select the recorded neurons' units)"
            )
        pm = masked_psth(model_rates, mask, mask_mode)
    target_rates = target_rates.to(model_rates.dtype)
    pm = smooth_time(pm, smooth_ms, bin_ms)  # [T, N]
    pt = smooth_time(masked_psth(target_rates, mask, mask_mode), smooth_ms, bin_ms)
    cm = pm - pm.mean(dim=0, keepdim=True)
    ct = pt - pt.mean(dim=0, keepdim=True)
    # norms clamped at 1e-6 (as the predecessor), on the squared norm so a flat PSTH has a finite gradient
    corr = (cm * ct).sum(0) / ((cm * cm).sum(0).clamp(min=1e-12).sqrt() * (ct * ct).sum(0).clamp(min=1e-12).sqrt())
    corr = corr.clamp(-1.0, 1.0)
    l_corr = (1.0 - corr).mean()
    t_var_all = pt.var().clamp(min=1e-6) if pt.numel() > 1 else pt.new_tensor(1.0)
    l_scale = (pm.mean() - pt.mean()) ** 2 / t_var_all
    if pm.shape[0] > 1:
        m_var, t_var = pm.var(dim=0).mean(), pt.var(dim=0).mean()
        l_var = (m_var - t_var) ** 2 / (t_var**2 + 1e-6)
    else:
        l_var = pm.new_zeros(())
    loss = l_corr + scale_weight * l_scale + var_weight * l_var
    if return_parts:
        return loss, {
            "corr": l_corr.detach(),
            "scale": l_scale.detach(),
            "var": l_var.detach(),
            "psth_corr": corr.detach().mean(),
        }
    return loss
