"""The FlyVis GNN trainer's data: ``x`` (voltages), ``y`` (dv/dt targets), ``I`` (stimulus) ``[T, N]``
from a dict, an ``.npz`` or a folder of ``eirnn-fast flyvis generate``, and the graph they live on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from eirnn_fast.flyvis.connectome import load_connectome
from eirnn_fast.flyvis.gnn import GNNGraph
from eirnn_fast.flyvis.simulator import load_dataset
from eirnn_fast.flyvis.stimuli import columns_to_neurons


def training_data_from_generated(out_dir: Union[str, Path], stream: Optional[int] = None) -> Dict[str, Any]:
    """Training arrays from a folder written by :func:`eirnn_fast.flyvis.generate_dataset`: the train
    split of all streams back to back (``stream=k``: one stream only; the one-step loss pairs each
    frame with its own dv/dt, so stream boundaries only matter to recurrent rollouts that cross
    them), the test split of stream 0 (a continuous sequence for rollouts), the column stimulus
    expanded to the photoreceptors, the graph and the ground truth (W per edge, tau and V_rest per
    neuron)."""
    out = Path(out_dir)
    meta = json.loads((out / "metadata.json").read_text())
    con = load_connectome(int(meta["config"]["extent"]))
    train = load_dataset(out, "train", stream=stream)
    test = load_dataset(out, "test", stream=0 if stream is None else stream)
    with np.load(out / "params.npz") as p:
        truth = {k: p[k] for k in ("W", "tau", "V_rest")}
    data = {
        "x": train["x"],
        "y": train["y"],
        "I": columns_to_neurons(con, train["stimulus"]).numpy(),
        "x_test": test["x"],
        "I_test": columns_to_neurons(con, test["stimulus"]).numpy(),
        "src": con.src.numpy(),
        "dst": con.dst.numpy(),
        "n_neurons": con.n_neurons,
        "cell_type_index": con.type_index.numpy(),
        "dt": float(meta["config"]["dt"]),
        "tau_clamp": meta["config"].get("tau_clamp", "none"),
        "cell_type_names": list(con.cell_type),
        **truth,
    }
    return data


def load_training_data(source: Union[str, Path, Dict[str, Any]]) -> Dict[str, Any]:
    """Load ``x`` (voltages), ``y`` (dv/dt targets), ``I`` (stimulus), all ``[T, N]``, from a dict, an
    ``.npz``, or a folder written by ``eirnn-fast flyvis generate`` (see
    :func:`training_data_from_generated`). Optional: ``x_test, I_test`` (held-out split), graph ``src, dst, n_neurons,
    cell_type_index``, ground truth ``W [E], tau [N], V_rest [N]``, ``dt``."""
    if isinstance(source, (str, Path)) and (Path(source) / "metadata.json").exists():
        data = training_data_from_generated(source)
    elif isinstance(source, (str, Path)) and Path(source).is_dir():
        raise ValueError(
            f"{source} holds no complete dataset (no metadata.json, which `eirnn-fast flyvis generate` writes "
            "last): run the generation again"
        )
    elif isinstance(source, (str, Path)):
        with np.load(source, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    else:
        data = dict(source)
    for key in ("x", "y", "I"):
        if key not in data:
            raise ValueError(f"training data is missing {key!r} (needs x, y, I as [T, N])")
        data[key] = np.asarray(data[key])
        if data[key].ndim != 2:
            raise ValueError(f"training data {key!r} must be [T, N], got shape {data[key].shape}")
    if not (data["x"].shape == data["y"].shape == data["I"].shape):
        raise ValueError(
            f"x, y, I must have the same [T, N] shape, got {data['x'].shape}, {data['y'].shape}, {data['I'].shape}"
        )
    return data


def graph_from_data(data: Dict[str, Any]) -> GNNGraph:
    for key in ("src", "dst"):
        if key not in data:
            raise ValueError(f"training data has no {key!r}: pass graph= explicitly")
    n = int(data["n_neurons"]) if "n_neurons" in data else int(data["x"].shape[1])
    return GNNGraph(
        n_neurons=n,
        src=np.asarray(data["src"]),
        dst=np.asarray(data["dst"]),
        cell_type_index=None if data.get("cell_type_index") is None else np.asarray(data["cell_type_index"]),
    )
