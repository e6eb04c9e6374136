"""Recovery plots for the FlyVis GNN (matplotlib Agg, PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np


def _scatter(ax, true, learned, title, unit="", outlier_threshold=None):
    """Learned vs true. The axes follow the bulk of the points, so a few huge learned values (a V_rest
    at 1e7) cannot empty the plot: the y range is the true range widened to the 1st-99th percentile of
    the learned values, and the points outside it are counted in the title."""
    ok = np.isfinite(true) & np.isfinite(learned)
    notes = []
    if (~ok).any():
        notes.append(f"{int((~ok).sum())} non-finite not shown")
    if outlier_threshold is not None:  # the points connectivity_R2 keeps (|W* - W_true| <= threshold)
        keep = ok & (np.abs(learned - true) <= outlier_threshold)
        notes.append(
            f"{int(ok.sum() - keep.sum())} of {int(ok.sum())} edges with |W* - W| > {outlier_threshold:g} not shown"
        )
        ok = keep
    t, y = true[ok], learned[ok]
    if ok.sum() > 1 and np.std(t) > 0 and np.std(y) > 0:
        r = np.corrcoef(t, y)[0, 1]
        title += f"  R2={r * r:.3f}"
        a, b = np.polyfit(t, y, 1)
        xs = np.linspace(t.min(), t.max(), 2)
        ax.plot(xs, a * xs + b, "r-", lw=1, label=f"fit: {a:.3g} x + {b:.3g}")
        ax.legend(fontsize=7, loc="upper left")
    if ok.any():
        lo, hi = np.percentile(y, [1, 99])
        lo, hi = min(lo, t.min()), max(hi, t.max())
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        lo, hi = lo - pad, hi + pad
        out = (y < lo) | (y > hi)
        if out.any():
            notes.append(f"{int(out.sum())} outside the y range shown")
        ax.scatter(t[~out], y[~out], s=3, alpha=0.5)
        ax.set_ylim(lo, hi)
    ax.set_xlabel(f"true{unit}")
    ax.set_ylabel(f"learned{unit}")
    ax.set_title(title + "".join("\n" + n for n in notes), fontsize=8)


def plot_recovery(out_dir, arrays: Dict[str, np.ndarray], data: Dict, outlier_threshold: float = 5.0) -> List[str]:
    """Write W / tau / V_rest scatters and the embedding map (coloured by true type) into
    ``out_dir``; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    written = []
    panels = [
        ("W", "W_star", "W (corrected W*) per edge", "", "recovery_W.png"),
        ("tau", "tau", "tau per neuron", " (s)", "recovery_tau.png"),
        ("V_rest", "V_rest", "V_rest per neuron", " (model units)", "recovery_V_rest.png"),
    ]
    for key, akey, title, unit, name in panels:
        if data.get(key) is None:
            continue
        fig, ax = plt.subplots(figsize=(4, 4))
        _scatter(
            ax,
            np.asarray(data[key], dtype=float),
            np.asarray(arrays[akey], dtype=float),
            title,
            unit,
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
    ax.set_xlabel("a_i[0]")
    ax.set_ylabel("a_i[1]" if a.shape[1] > 1 else "(embedding is 1-D)")
    ax.set_title("learned embedding a_i per neuron (colour: true cell type)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "embedding.png", dpi=100)
    plt.close(fig)
    written.append("embedding.png")
    return written
