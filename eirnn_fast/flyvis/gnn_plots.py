"""Recovery plots for the FlyVis GNN (matplotlib Agg, PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np


def _scatter(ax, true, learned, title, outlier_threshold=None):
    ok = np.isfinite(true) & np.isfinite(learned)
    note = ""
    if outlier_threshold is not None:  # the points connectivity_R2 keeps (|W* - W_true| <= threshold)
        keep = ok & (np.abs(learned - true) <= outlier_threshold)
        note = (
            f"\n{int(ok.sum() - keep.sum())} of {int(ok.sum())} edges with |W* - W| > {outlier_threshold:g} not shown"
        )
        ok = keep
    ax.scatter(true[ok], learned[ok], s=3, alpha=0.5)
    if ok.sum() > 1 and np.std(true[ok]) > 0:
        a, b = np.polyfit(true[ok], learned[ok], 1)
        xs = np.linspace(true[ok].min(), true[ok].max(), 2)
        ax.plot(xs, a * xs + b, "r-", lw=1)
        r = np.corrcoef(true[ok], learned[ok])[0, 1]
        title += f"  R2={r * r:.3f}"
    ax.set_xlabel("true")
    ax.set_ylabel("learned")
    ax.set_title(title + note, fontsize=8)


def plot_recovery(out_dir, arrays: Dict[str, np.ndarray], data: Dict, outlier_threshold: float = 5.0) -> List[str]:
    """Write W / tau / V_rest scatters and the embedding map (coloured by true type) into
    ``out_dir``; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    written = []
    panels = [
        ("W", "W_star", "W (corrected W*) per edge", "recovery_W.png"),
        ("tau", "tau", "tau per neuron", "recovery_tau.png"),
        ("V_rest", "V_rest", "V_rest per neuron", "recovery_V_rest.png"),
    ]
    for key, akey, title, name in panels:
        if data.get(key) is None:
            continue
        fig, ax = plt.subplots(figsize=(4, 4))
        _scatter(
            ax,
            np.asarray(data[key], dtype=float),
            np.asarray(arrays[akey], dtype=float),
            title,
            outlier_threshold if key == "W" else None,
        )
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written.append(name)
    a = arrays["a"]
    fig, ax = plt.subplots(figsize=(4, 4))
    types = data.get("cell_type_index")
    c = np.asarray(types) if types is not None else None
    ax.scatter(a[:, 0], a[:, 1] if a.shape[1] > 1 else np.zeros(len(a)), c=c, s=4, cmap="tab20")
    ax.set_title("embedding a_i (colour: true type)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "embedding.png", dpi=100)
    plt.close(fig)
    written.append("embedding.png")
    return written
