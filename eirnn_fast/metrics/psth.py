"""PSTH metrics: trial-averaged rates, their per-neuron Pearson correlation, the data's own
split-half noise ceiling, and scale diagnostics.

Shapes: rates ``[K, T, N]`` (trials, 25-ms bins, neurons) in sp/s; ``mask`` ``[K, T]`` (1 = valid).
Every function accepts torch tensors or numpy arrays and returns plain floats / numpy arrays (no
autograd; the differentiable version is :func:`eirnn_fast.losses.l_neuron`).

Definitions (all recorded in run results):

* PSTH of neuron n at bin t: masked mean over trials, ``sum_k m_kt r_ktn / sum_k m_kt`` (NaN where no
  trial is valid at t). With the all-ones mask of the exported sessions this is the plain mean.
* Smoothing (``smooth_ms``): centred boxcar of ``w = max(1, round(smooth_ms / bin_ms))`` bins on
  each PSTH, normalised by the number of bins inside the window at the edges; ``w = 1`` = none. The
  predecessor's 8-ms Gaussian was ``int(8/25) -> 1`` bin, i.e. no smoothing, hence the default 0.
* Per-neuron correlation: Pearson r over time bins (bins where either PSTH is NaN dropped).
  **NaN policy**: a neuron whose model or data PSTH is constant over time (zero variance) or has
  fewer than 2 valid bins has r = NaN; :func:`psth_correlation` averages over the neurons with a
  finite r (``np.nanmean``, as the predecessor skipped NaNs) and is NaN if none is finite. The
  count of finite neurons is returned by :func:`psth_correlation_report`.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from eirnn_fast.units import select_units as select_tensor_units

ArrayLike = Union[np.ndarray, "torch.Tensor"]  # noqa: F821


def _np(x) -> np.ndarray:
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def select_units(model_rates, unit_index: Optional[Sequence[int]] = None):
    """``model_rates[..., unit_index]``: the model units that fit the recorded neurons (use
    :func:`eirnn_fast.units.recorded_unit_index`; never pair by position)."""
    if unit_index is None:
        return model_rates
    if hasattr(model_rates, "index_select"):
        return select_tensor_units(model_rates, unit_index)
    return np.asarray(model_rates)[..., np.asarray(unit_index, dtype=np.int64)]


def trial_average(rates, mask=None) -> np.ndarray:
    """PSTH ``[T, N]``: masked mean over trials of ``rates [K, T, N]``."""
    r = _np(rates)
    if r.ndim != 3:
        raise ValueError(f"rates must be [K, T, N], got shape {r.shape}")
    if mask is None:
        return r.mean(axis=0)
    m = _np(mask)
    if m.shape != r.shape[:2]:
        raise ValueError(f"mask must be [K, T] = {r.shape[:2]}, got {m.shape}")
    count = m.sum(axis=0)[:, None]  # [T, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (r * m[:, :, None]).sum(axis=0) / np.maximum(count, 1e-300), np.nan)


def smooth_psth(psth, smooth_ms: float = 0.0, bin_ms: float = 25.0) -> np.ndarray:
    """Centred boxcar of ``max(1, round(smooth_ms / bin_ms))`` bins along time (axis 0), edge-normalised."""
    p = _np(psth)
    width = max(1, int(round(smooth_ms / bin_ms))) if smooth_ms > 0 else 1
    if width == 1:
        return p
    kernel = np.ones(width)
    valid = np.isfinite(p)
    filled = np.where(valid, p, 0.0)
    out = np.empty_like(p)
    for n in range(p.shape[1]):
        num = np.convolve(filled[:, n], kernel, mode="same")
        den = np.convolve(valid[:, n].astype(np.float64), kernel, mode="same")
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, n] = np.where(den > 0, num / np.maximum(den, 1e-300), np.nan)
    return out


def pearson_per_neuron(a, b) -> np.ndarray:
    """``[N]`` Pearson r over time between columns of ``a`` and ``b`` ``[T, N]`` (NaN policy above)."""
    a, b = _np(a), _np(b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"PSTHs must both be [T, N] of equal shape, got {a.shape} and {b.shape}")
    out = np.full(a.shape[1], np.nan)
    for n in range(a.shape[1]):
        ok = np.isfinite(a[:, n]) & np.isfinite(b[:, n])
        if ok.sum() < 2:
            continue
        x, y = a[ok, n] - a[ok, n].mean(), b[ok, n] - b[ok, n].mean()
        den = np.sqrt((x * x).sum() * (y * y).sum())
        if den > 1e-12 * max(1.0, np.abs(a[ok, n]).max() * np.abs(b[ok, n]).max()):
            out[n] = float((x * y).sum() / den)
    return out


def per_neuron_correlation(
    model_rates, target_rates, mask=None, smooth_ms: float = 0.0, bin_ms: float = 25.0, unit_index=None
) -> np.ndarray:
    """``[N]`` Pearson r between the model's and the data's trial-averaged PSTHs, per recorded neuron."""
    model = select_units(model_rates, unit_index)
    pm = smooth_psth(trial_average(model, mask), smooth_ms, bin_ms)
    pt = smooth_psth(trial_average(target_rates, mask), smooth_ms, bin_ms)
    return pearson_per_neuron(pm, pt)


def psth_correlation(
    model_rates, target_rates, mask=None, smooth_ms: float = 0.0, bin_ms: float = 25.0, unit_index=None
) -> float:
    """Mean over recorded neurons of the Pearson r of trial-averaged PSTHs (the seeds' headline
    metric). ``model_rates`` ``[K, T, N_units]`` with ``unit_index`` (recorded -> unit) or already
    ``[K, T, N]``; ``target_rates`` ``[K, T, N]`` on the same trials. NaN policy: module docstring."""
    r = per_neuron_correlation(model_rates, target_rates, mask, smooth_ms, bin_ms, unit_index)
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")


def psth_correlation_report(
    model_rates, target_rates, mask=None, smooth_ms: float = 0.0, bin_ms: float = 25.0, unit_index=None
) -> dict:
    """:func:`psth_correlation` with its definition and per-neuron values, JSON-ready."""
    r = per_neuron_correlation(model_rates, target_rates, mask, smooth_ms, bin_ms, unit_index)
    finite = np.isfinite(r)
    return {
        "psth_corr": float(np.nanmean(r)) if finite.any() else float("nan"),
        "per_neuron": [None if not np.isfinite(v) else float(v) for v in r],
        "n_finite": int(finite.sum()),
        "definition": {
            "smooth_ms": smooth_ms,
            "bin_ms": bin_ms,
            "trials": int(_np(target_rates).shape[0]),
            "nan_policy": "neurons with zero-variance PSTH skipped (nanmean)",
        },
    }


def noise_ceiling(
    target_rates, mask=None, smooth_ms: float = 0.0, bin_ms: float = 25.0, n_splits: int = 20, seed: int = 0
) -> dict:
    """The data's own split-half reliability of the PSTH, per neuron then averaged.

    For ``n_splits`` random halves of the trials: r_half = Pearson r between the two half-PSTHs.
    Spearman-Brown gives the reliability of the full-set PSTH, ``rho = 2 r / (1 + r)``; the
    correlation a perfect model (the true mean rate) can reach against this PSTH is ``sqrt(rho)``.
    Returns ``{"split_half_r", "split_half_r_std", "spearman_brown", "ceiling", "per_neuron_ceiling",
    "n_trials", "n_splits"}``; ``ceiling`` is the mean over neurons of ``sqrt(max(rho, 0))`` (NaN
    neurons skipped). Compare it with :func:`psth_correlation` on the same trials.
    """
    r = _np(target_rates)
    k = r.shape[0]
    if k < 2:
        nan = float("nan")
        return {
            "split_half_r": nan,
            "split_half_r_std": nan,
            "spearman_brown": nan,
            "ceiling": nan,
            "per_neuron_ceiling": [None] * r.shape[2],
            "n_trials": k,
            "n_splits": 0,
        }
    m = None if mask is None else _np(mask)
    rng = np.random.default_rng(seed)
    per_split = []
    for _ in range(n_splits):
        perm = rng.permutation(k)
        a, b = perm[: k // 2], perm[k // 2 : 2 * (k // 2)]
        pa = smooth_psth(trial_average(r[a], None if m is None else m[a]), smooth_ms, bin_ms)
        pb = smooth_psth(trial_average(r[b], None if m is None else m[b]), smooth_ms, bin_ms)
        per_split.append(pearson_per_neuron(pa, pb))
    rs = np.array(per_split)  # [splits, N]
    with np.errstate(invalid="ignore"):
        r_half = np.nanmean(rs, axis=0) if np.isfinite(rs).any() else np.full(rs.shape[1], np.nan)
        rho = 2 * r_half / (1 + r_half)
        ceil = np.sqrt(np.clip(rho, 0.0, None))
    split_means = np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in rs])

    def _mean(v):
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    return {
        "split_half_r": _mean(r_half),
        "split_half_r_std": float(np.nanstd(split_means)) if np.isfinite(split_means).any() else float("nan"),
        "spearman_brown": _mean(rho),
        "ceiling": _mean(ceil),
        "per_neuron_ceiling": [None if not np.isfinite(v) else float(v) for v in ceil],
        "n_trials": int(k),
        "n_splits": int(n_splits),
        "definition": {"smooth_ms": smooth_ms, "bin_ms": bin_ms, "seed": seed},
    }


#: offset (sp/s) of the per-neuron rate error, so silent neurons give a finite log ratio
RATE_ERROR_OFFSET = 0.5


def per_neuron_mean_rates(rates, mask=None) -> np.ndarray:
    """``[N]`` mean rate of each neuron over all trials and the valid bins inside each trial
    (``sum_kt m_kt r_ktn / sum_kt m_kt``; NaN if no bin is valid)."""
    r = _np(rates)
    if r.ndim != 3:
        raise ValueError(f"rates must be [K, T, N], got shape {r.shape}")
    if mask is None:
        return r.reshape(-1, r.shape[2]).mean(axis=0) if r.shape[0] * r.shape[1] else np.full(r.shape[2], np.nan)
    m = _np(mask)
    if m.shape != r.shape[:2]:
        raise ValueError(f"mask must be [K, T] = {r.shape[:2]}, got {m.shape}")
    count = m.sum()
    if count <= 0:
        return np.full(r.shape[2], np.nan)
    return (r * m[:, :, None]).sum(axis=(0, 1)) / count


def rate_error(model_rates, target_rates, mask=None, unit_index=None, offset: float = RATE_ERROR_OFFSET) -> dict:
    """Per-neuron rate error: does each fitted neuron fire as much as its recorded one?

    ``m_n``, ``d_n``: mean rates (sp/s) of model unit and recorded neuron n over the trials and the
    valid bins inside each trial (:func:`per_neuron_mean_rates`); ``e_n = log((m_n + offset) /
    (d_n + offset))`` (natural log, ``offset`` = 0.5 sp/s keeps silent neurons finite). Returns
    ``{"median_abs_log_ratio": median_n |e_n|, "frac_off_2x": fraction of neurons with |e_n| >
    log 2, "n_off_2x", "max_abs_log_ratio", "worst_neuron", "per_neuron_log_ratio", "model_rate",
    "data_rate", "definition"}``. A median of 0.1 is a typical factor of 1.105; NaN neurons (no
    valid bin) are skipped."""
    m = per_neuron_mean_rates(select_units(model_rates, unit_index), mask)
    d = per_neuron_mean_rates(target_rates, mask)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = np.log((m + offset) / (d + offset))
    a = np.abs(e)
    ok = np.isfinite(a)
    nan = float("nan")
    return {
        "median_abs_log_ratio": float(np.median(a[ok])) if ok.any() else nan,
        "frac_off_2x": float((a[ok] > np.log(2.0)).mean()) if ok.any() else nan,
        "n_off_2x": int((a[ok] > np.log(2.0)).sum()),
        "max_abs_log_ratio": float(a[ok].max()) if ok.any() else nan,
        "worst_neuron": int(np.nanargmax(np.where(ok, a, -1.0))) if ok.any() else None,
        "per_neuron_log_ratio": [None if not np.isfinite(v) else float(v) for v in e],
        "model_rate": [None if not np.isfinite(v) else float(v) for v in m],
        "data_rate": [None if not np.isfinite(v) else float(v) for v in d],
        "definition": {
            "error": "log((model + offset) / (data + offset)) of per-neuron mean rates over trials and valid bins",
            "offset_sp_s": offset,
            "off_2x": "|error| > log 2",
            "trials": int(_np(target_rates).shape[0]),
        },
    }


def rate_statistics(model_rates, target_rates, mask=None, unit_index=None) -> dict:
    """Scale diagnostics: mean rates and their ratio (model / data), mean over neurons of the PSTH's
    temporal std and its ratio, mean within-trial temporal std (the seed's "temporal std")."""
    model = _np(select_units(model_rates, unit_index))
    target = _np(target_rates)
    pm, pt = trial_average(model, mask), trial_average(target, mask)
    mean_m, mean_t = float(np.nanmean(pm)), float(np.nanmean(pt))
    std_m, std_t = float(np.nanmean(np.nanstd(pm, axis=0))), float(np.nanmean(np.nanstd(pt, axis=0)))
    within_m, within_t = float(model.std(axis=1).mean()), float(target.std(axis=1).mean())
    return {
        "model_mean_rate": mean_m,
        "data_mean_rate": mean_t,
        "mean_rate_ratio": mean_m / mean_t if mean_t else float("nan"),
        "model_psth_temporal_std": std_m,
        "data_psth_temporal_std": std_t,
        "psth_temporal_std_ratio": std_m / std_t if std_t else float("nan"),
        "model_trial_temporal_std": within_m,
        "data_trial_temporal_std": within_t,
        "trial_temporal_std_ratio": within_m / within_t if within_t else float("nan"),
    }
