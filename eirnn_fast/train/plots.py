"""Run plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from eirnn_fast.metrics import pearson_per_neuron, per_neuron_mean_rates, trial_average


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(history, path) -> Path:
    plt = _plt()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key in sorted({k for h in history for k in h if k.startswith("train_l_")} | {"val_l_neuron"}):
        axes[0].plot(epochs, [h.get(key, np.nan) for h in history], label=key)
    axes[0].set_xlabel("epoch"), axes[0].set_ylabel("loss"), axes[0].legend(fontsize=8)
    axes[1].plot(epochs, [np.nan if h["val_psth_corr"] is None else h["val_psth_corr"] for h in history])
    axes[1].set_xlabel("epoch"), axes[1].set_ylabel("validation PSTH r")
    axes[2].semilogy(epochs, [h["lr"] for h in history], label="lr")
    if any(h.get("lambda_trial") for h in history):
        ax2 = axes[2].twinx()
        ax2.plot(epochs, [h["lambda_trial"] for h in history], color="C1", label="lambda_trial")
        ax2.set_ylabel("lambda_trial")
    axes[2].set_xlabel("epoch"), axes[2].set_ylabel("learning rate")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def plot_psths(model_rates, target_rates, session, path, title: str = "", mask=None) -> Path:
    """One panel per recorded neuron: trial-averaged model vs data rates (sp/s) against time (ms from
    the session's alignment event, fixation onset in the exporter's ``time_axis``); each panel's title
    gives the neuron's type, its PSTH r and its mean-rate ratio model/data (over the trials and the
    valid bins, as :func:`eirnn_fast.metrics.rate_error`)."""
    plt = _plt()
    pm, pt = trial_average(model_rates, mask), trial_average(target_rates, mask)
    r = pearson_per_neuron(pm, pt)
    mean_m, mean_d = per_neuron_mean_rates(model_rates, mask), per_neuron_mean_rates(target_rates, mask)
    n = pt.shape[1]
    cols = min(6, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.7 * cols, 2.2 * rows), squeeze=False, sharex=True)
    t = session.time_ms
    for j in range(rows * cols):
        ax = axes[j // cols][j % cols]
        if j >= n:
            ax.axis("off")
            continue
        ax.plot(t, pt[:, j], color="k", lw=0.8, label="data")
        ax.plot(t, pm[:, j], color="C3", lw=1.0, label="model")
        kind = "E" if session.neuron_type[j] == 1 else "I"
        ratio = mean_m[j] / mean_d[j] if mean_d[j] > 0 else float("inf")
        ax.set_title(
            f"#{j} {kind}  r={r[j]:.2f}  rate x{ratio:.2f}\n({mean_m[j]:.1f} vs {mean_d[j]:.1f} sp/s)", fontsize=7
        )
        ax.tick_params(labelsize=6)
        if j % cols == 0:
            ax.set_ylabel("rate (sp/s)", fontsize=7)
        if j // cols == rows - 1 or j + cols >= n:
            ax.set_xlabel("time from fixation onset (ms)", fontsize=7)
            ax.xaxis.set_tick_params(labelbottom=True)
    axes[0][0].legend(fontsize=6)
    fig.suptitle(title + ("\n" if title else "") + "rate x: mean-rate ratio model/data", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
