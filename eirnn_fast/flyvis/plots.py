"""Plots of FlyVis data (matplotlib, Agg backend): cell-type activity traces and hex stimulus frames."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from eirnn_fast.flyvis.connectome import Connectome, hex_to_cartesian

DEFAULT_TYPES = ("R1", "L1", "L2", "Mi1", "Tm3", "Mi9", "T4a", "T5a")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_activity(connectome: Connectome, x, path, types: Sequence[str] = DEFAULT_TYPES, dt: float = 0.02) -> str:
    """Voltage over time of the central-column neuron of each type in ``types``; x [T, N]."""
    plt = _plt()
    x = np.asarray(x)
    t = np.arange(x.shape[0]) * dt
    fig, axes = plt.subplots(len(types), 1, figsize=(8, 1.2 * len(types) + 0.5), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, types):
        idx = connectome.neurons_of(name).numpy()
        centre = idx[np.argmin(connectome.u.numpy()[idx] ** 2 + connectome.v.numpy()[idx] ** 2)]
        ax.plot(t, x[:, centre], lw=0.8)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    axes[-1].set_xlabel("time (s)")
    fig.suptitle("voltage of the central-column neuron per cell type")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_stimulus_frame(connectome: Connectome, frame, path, title: str = "stimulus frame") -> str:
    """One frame [C] of column intensities drawn as hexagons on the eye's lattice."""
    plt = _plt()
    from matplotlib.collections import RegularPolyCollection

    x, y = hex_to_cartesian(connectome.column_u.numpy(), connectome.column_v.numpy())
    fig, ax = plt.subplots(figsize=(5, 5))
    size = (fig.dpi * 4.2 / (2 * connectome.extent + 1)) ** 2
    coll = RegularPolyCollection(
        6,
        sizes=(size,),
        offsets=np.stack([x, y], 1),
        transOffset=ax.transData,
        array=np.asarray(frame, dtype=float),
        cmap="gray",
        clim=(0, 1),
    )
    ax.add_collection(coll)
    ax.set_xlim(x.min() - 1, x.max() + 1)
    ax.set_ylim(y.min() - 1, y.max() + 1)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.colorbar(coll, ax=ax, fraction=0.046, label="intensity")
    ax.set_title(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def dataset_plots(connectome: Connectome, x, stimulus, out_dir) -> Dict[str, str]:
    out = Path(out_dir)
    stimulus = np.asarray(stimulus)
    # the frame with the most spatial contrast (a middle frame is often a uniform flash or grey gap)
    pick = int(np.argmax(stimulus.reshape(len(stimulus), -1).std(axis=1))) if len(stimulus) else 0
    return {
        "activity": plot_activity(connectome, x, out / "activity.png"),
        "stimulus": plot_stimulus_frame(
            connectome,
            stimulus[pick],
            out / "stimulus_frame.png",
            title=f"stimulus frame {pick} (most spatial contrast)",
        ),
    }
