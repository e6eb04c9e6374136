"""Trainer for the FlyVis GNN: config (YAML, old and new parameter names), loss, regularisers,
recurrent rollouts, checkpoints/resume, JSONL logs, and the CLI helper functions.

Loss per iteration (saalfeldlab/flyvis-gnn ``data_train_flyvis`` semantics):

* one-step (default): ``|| f(v_k, I_k) - y_k ||_2`` over all ``B * N`` neurons of the batch (an
  L2 *norm*, not a mean squared error), frames ``k`` drawn i.i.d. uniformly per iteration from a
  ``RandomState(seed + epoch)``;
* recurrent (``recurrent_training`` and ``epoch >= recurrent_training_start_epoch``): start frames
  aligned ``k -= k % time_step``, the model is rolled out ``time_step`` explicit-Euler steps on its
  own predictions (``v <- v + dt * f(v, I_{k+s}) + noise_recurrent_level * N(0, 1)``, stimulus from
  the data) and the loss is ``|| (v_pred(k+T) - x(k+T)) / (dt * T) ||_2`` against the observed voltage.

Regularisers (computed once per iteration on the first frame of the batch, all neurons; the g_phi
terms see detached inputs so they move g_phi only, not the embedding):

* ``coeff_W_L1 * ||W||_1``;
* ``coeff_W_L2 * ||W||_2`` (norm, not squared). **Matches the reference quirk: W_L2 is NOT applied
  when coeff_W_L1 > 0** (the reference sets its "L1 applied" flag before testing L2). Set
  ``W_L2_with_L1: true`` to apply both.
* ``coeff_g_phi_diff * || ReLU(g(v_i, a_i)^2 - g(v_i + 0.05 xnorm, a_i)^2) ||_2`` (monotonicity of
  g_phi in v; old name ``coeff_edge_diff``);
* ``coeff_g_phi_norm * || g(2 xnorm, a_i)^2 - 2 xnorm ||_2`` (pins g_phi's scale to ReLU's, removing
  the W <-> g_phi degeneracy; old name ``coeff_edge_norm``), ``xnorm = 1.5 * std(training voltages)``;
* ``sum_p (c1 ||p||_1 + c2 ||p||_2)`` over g_phi parameters (``coeff_g_phi_weight_L1/L2``, old
  ``coeff_edge_weight_L1/L2``) and over f_theta parameters (``coeff_f_theta_weight_L1/L2``, old
  ``coeff_phi_weight_L1/L2``).

Annealing: the six L1/L2 coefficients are multiplied by ``1 - exp(-rate * epoch)`` when ``rate > 0``
(``regul_annealing_rate``; per-term overrides ``coeff_W_L1_rate``, ``coeff_g_phi_weight_L1_rate``,
``coeff_f_theta_weight_L1_rate`` as in the older NeuralGraph code); rate 0 means no annealing.

Adam parameter groups: embedding ``a`` -> ``lr_embedding``; f_theta -> ``lr_update`` (0: ``lr``);
``W`` -> ``lr_W``; g_phi -> ``lr``. ``grad_clip_W > 0`` clips the gradient norm of W only.
Iterations per epoch: ``int(n_frames * data_augmentation_loop // batch_size * 0.2)`` as in the
reference (``iterations_per_epoch > 0`` overrides).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from eirnn_fast.atomic import atomic_torch_save, atomic_write_json
from eirnn_fast.flyvis.gnn import W_INIT_MODES, FlyVisGNN, GNNGraph
from eirnn_fast.runstore import (
    ResumeDecision,
    RunFolderConflict,
    announce,
    checkpoint_format,
    config_diff,
    load_json,
    remove_outputs,
    trim_jsonl,
)

# old (seeds / NeuralGraph) or alternative names -> field names
ALIASES = {
    "learning_rate_start": "lr",
    "learning_rate_W_start": "lr_W",
    "learning_rate_embedding_start": "lr_embedding",
    "lr_emb": "lr_embedding",  # seed 004's locked table
    "learning_rate_update_start": "lr_update",
    "coeff_edge_diff": "coeff_g_phi_diff",
    "coeff_edge_norm": "coeff_g_phi_norm",
    "coeff_edge_weight_L1": "coeff_g_phi_weight_L1",
    "coeff_edge_weight_L2": "coeff_g_phi_weight_L2",
    "coeff_edge_weight_L1_rate": "coeff_g_phi_weight_L1_rate",
    "coeff_phi_weight_L1": "coeff_f_theta_weight_L1",
    "coeff_phi_weight_L2": "coeff_f_theta_weight_L2",
    "coeff_phi_weight_L1_rate": "coeff_f_theta_weight_L1_rate",
    "coeff_update_weight_L1": "coeff_f_theta_weight_L1",
    "coeff_update_weight_L2": "coeff_f_theta_weight_L2",
    "lin_edge_positive": "g_phi_positive",
    "MLP_activation": "activation",
    "w_init_mode": "w_init",
    "delta_t": "dt",
    "signal_model_name": "variant",
    "model_name": "variant",
}
# nested MLP sections: {lin_edge: {hidden_dim: 80, n_layers: 3}} etc.
_MLP_SECTIONS = {"lin_edge": "", "g_phi": "", "lin_phi": "_update", "lin_update": "_update", "f_theta": "_update"}
# top-level sections of the reference YAMLs whose keys are validated (flattened)
_SECTIONS = ("graph_model", "training", "model", "train")
# sections stored verbatim in `extra` (data generation, plotting, exploration harness)
_FREE_SECTIONS = ("simulation", "plotting", "claude", "dataset_config")
_CHOICES = {
    "annealing": ("neuralgraph", "flyvis_gnn"),
    "epoch_loop": ("neuralgraph", "flyvis_gnn"),
    "f_theta_weight_L1_norm": ("l2", "l1"),
    "g_phi_diff_step": ("multiplicative", "additive"),
    "g_phi_reg_frame": ("last", "first"),
}
_VARIANTS = {"A": "A", "B": "B", "flyvis_A": "A", "flyvis_B": "B", "PDE_N9_A": "A", "PDE_N9_B": "B"}


@dataclass
class FlyVisTrainConfig:
    """Everything one GNN run needs. Field names follow flyvis-gnn; the seeds' old names are
    accepted as aliases (see :data:`ALIASES`)."""

    # data
    data_path: Optional[str] = None  # npz with x, y, I [T, N], src, dst, ... (see load_training_data)
    dt: float = 0.02
    # model
    variant: str = "A"
    hidden_dim: int = 80
    n_layers: int = 3
    hidden_dim_update: int = 80
    n_layers_update: int = 3
    embedding_dim: int = 2
    activation: str = "relu"
    g_phi_positive: bool = True
    w_init: str = "zeros"  # NeuralGraph's W init; flyvis-gnn's noise-0.05 config uses randn_scaled
    w_init_scale: float = 1.0
    backend: str = "auto"
    # optimisation
    n_epochs: int = 1
    # "neuralgraph": epochs 0..n_epochs, as the seeds' trainer loops (range(n_epochs + 1)): n_epochs 1 trains
    # two epochs, the second with the annealed L1 terms on; "flyvis_gnn": epochs 0..n_epochs - 1
    epoch_loop: str = "neuralgraph"
    batch_size: int = 2
    data_augmentation_loop: int = 20
    iterations_per_epoch: int = 0  # > 0 overrides the reference formula
    lr: float = 1.2e-3
    lr_W: float = 6e-4
    lr_embedding: float = 1.55e-3
    lr_update: float = 0.0  # 0 -> lr
    grad_clip_W: float = 0.0
    # regularisers
    coeff_W_L1: float = 3.5e-5
    coeff_W_L2: float = 0.0
    W_L2_with_L1: bool = True  # NeuralGraph applies W_L2 beside W_L1; False: flyvis-gnn's quirk (skipped)
    coeff_g_phi_diff: float = 750.0
    coeff_g_phi_norm: float = 0.9
    coeff_g_phi_weight_L1: float = 0.29
    coeff_g_phi_weight_L2: float = 0.0
    coeff_f_theta_weight_L1: float = 0.5
    coeff_f_theta_weight_L2: float = 0.001
    # annealing of the L1 terms (see annealed_coefficients): "neuralgraph" (the seeds' code: one rate per
    # term, coeff * (1 - exp(-rate * epoch)), rate 0 = off) or "flyvis_gnn" (regul_annealing_rate on all
    # six L1/L2 terms, rate 0 = no annealing)
    annealing: str = "neuralgraph"
    coeff_W_L1_rate: Optional[float] = 0.5
    coeff_g_phi_weight_L1_rate: Optional[float] = 0.5
    coeff_f_theta_weight_L1_rate: Optional[float] = 0.4
    regul_annealing_rate: float = 0.0
    # regulariser forms (module docstring); defaults are NeuralGraph's, the alternatives flyvis-gnn's
    f_theta_weight_L1_norm: str = "l2"  # NeuralGraph takes norm(2) under the "L1" coefficient; "l1": flyvis-gnn
    g_phi_diff_step: str = "multiplicative"  # g(1.05 v) (NeuralGraph); "additive": g(v + 0.05 xnorm) (flyvis-gnn)
    g_phi_reg_frame: str = "last"  # frame of the batch the voltage terms use: "last" (NeuralGraph) or "first"
    g_phi_reg_detach: bool = False  # True: the g_phi terms do not train the embedding (flyvis-gnn)
    # recurrent training
    recurrent_training: bool = False
    time_step: int = 1
    noise_recurrent_level: float = 0.0
    recurrent_training_start_epoch: int = 0
    # run
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    log_every: int = 10
    checkpoint_every: int = 0  # iterations between mid-epoch checkpoints (0: end of epoch only)
    eval_each_epoch: bool = True
    n_test_frames: int = 0  # 0: whole test split
    quiet: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        def bad(key, msg):
            raise ValueError(f"config key {key!r}: {msg}, got {getattr(self, key)!r}")

        for f in dataclasses.fields(self):  # YAML types: a string or a list where a flag / a name belongs
            v = getattr(self, f.name)
            if f.type == "bool" and not isinstance(v, bool):
                bad(f.name, "must be true or false")
            if f.type in ("str", "Optional[str]") and not (isinstance(v, str) or (v is None and f.type != "str")):
                bad(f.name, "must be a string")
        from eirnn_fast.flyvis.gnn import _ACTIVATIONS

        if self.activation not in _ACTIVATIONS:
            bad("activation", f"must be one of {sorted(_ACTIVATIONS)}")
        try:
            import torch

            torch.device(self.device)
        except (RuntimeError, TypeError):
            bad("device", "must be a torch device name such as 'cpu' or 'cuda'")
        self.variant = _VARIANTS.get(self.variant, self.variant)
        if self.variant not in ("A", "B"):
            bad("variant", "must be 'A' or 'B' (or flyvis_A/flyvis_B/PDE_N9_A/PDE_N9_B)")
        if self.w_init not in W_INIT_MODES:
            bad("w_init", f"must be one of {W_INIT_MODES}")
        if self.backend not in ("auto", "fused", "reference"):
            bad("backend", "must be 'auto', 'fused' or 'reference'")
        if self.dtype not in ("float32", "float64"):
            bad("dtype", "must be 'float32' or 'float64'")
        for key in (
            "hidden_dim",
            "hidden_dim_update",
            "embedding_dim",
            "batch_size",
            "n_epochs",
            "time_step",
            "data_augmentation_loop",
            "log_every",
        ):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(key, "must be a positive integer")
        for key in ("n_layers", "n_layers_update"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                bad(key, "must be an integer >= 2")
        for key in (
            "iterations_per_epoch",
            "checkpoint_every",
            "recurrent_training_start_epoch",
            "n_test_frames",
            "seed",
        ):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                bad(key, "must be a non-negative integer")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type in ("float", "Optional[float]") and v is not None:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    bad(f.name, "must be a finite number")
                if f.name != "dt" and v < 0:
                    bad(f.name, "must be >= 0")
        if self.dt <= 0:
            bad("dt", "must be > 0")
        for key, allowed in _CHOICES.items():
            if getattr(self, key) not in allowed:
                bad(key, f"must be one of {allowed}")
        if self.annealing == "neuralgraph" and self.regul_annealing_rate > 0:
            bad(
                "regul_annealing_rate",
                "is flyvis-gnn's shared rate: set annealing: flyvis_gnn, or use the per-term "
                "rates coeff_W_L1_rate, coeff_g_phi_weight_L1_rate, coeff_f_theta_weight_L1_rate",
            )
        for key in ("lr", "lr_W", "lr_embedding"):
            if getattr(self, key) <= 0:
                bad(key, "must be > 0")

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "FlyVisTrainConfig":
        """Build from a (possibly nested, reference-style) dict. Unknown keys raise ``ValueError``
        naming the key; old names are mapped through :data:`ALIASES`."""
        names = {f.name for f in dataclasses.fields(cls)}
        flat: Dict[str, Any] = {}
        extra: Dict[str, Any] = dict(d.get("extra", {}) or {})

        def put(key, value, where):
            if key in _MLP_SECTIONS and isinstance(value, dict):
                for k2, v2 in value.items():
                    if k2 not in ("hidden_dim", "n_layers"):
                        raise ValueError(
                            f"config key {where + key + '.' + k2!r}: unknown (expected hidden_dim, n_layers)"
                        )
                    put(k2 + _MLP_SECTIONS[key], v2, where + key + ".")
                return
            new = ALIASES.get(key, key)
            if new not in names or new == "extra":
                close = difflib.get_close_matches(key, sorted(names | set(ALIASES)), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"config key {where + key!r}: unknown{hint}")
            if new in flat and flat[new] != value:
                raise ValueError(f"config key {where + key!r}: conflicts with another name for {new!r}")
            flat[new] = value

        for key, value in d.items():
            if key == "extra":
                continue
            if key in _SECTIONS and isinstance(value, dict):
                for k2, v2 in value.items():
                    put(k2, v2, key + ".")
            elif key in _FREE_SECTIONS or key in ("description", "dataset", "config_file"):
                extra[key] = value
            else:
                put(key, value, "")
        # YAML gives 1e-3 as a string in some dialects; coerce numeric strings for float fields
        for f in dataclasses.fields(cls):
            if f.name in flat and f.type in ("float", "Optional[float]") and isinstance(flat[f.name], str):
                try:
                    flat[f.name] = float(flat[f.name])
                except ValueError:
                    raise ValueError(f"config key {f.name!r}: must be a number, got {flat[f.name]!r}") from None
            if (
                f.name in flat
                and f.type == "float"
                and isinstance(flat[f.name], int)
                and not isinstance(flat[f.name], bool)
            ):
                flat[f.name] = float(flat[f.name])
        cfg = cls(**flat, extra=extra)
        cfg._explicit = frozenset(flat)  # the keys the caller set (resume: the others follow the run)
        return cfg

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> "FlyVisTrainConfig":
        from eirnn_fast.yamlio import read_yaml

        d = read_yaml(path)
        if not isinstance(d, dict):
            raise ValueError(f"{path}: a config must be a mapping, got {type(d).__name__}")
        cfg = cls.from_dict(d)
        if cfg.data_path is not None and not isinstance(cfg.data_path, str):
            raise TypeError(f"config key 'data_path': must be a path string, got {cfg.data_path!r}")
        if cfg.data_path and not os.path.isabs(cfg.data_path):
            cfg.data_path = str((Path(path).parent / cfg.data_path).resolve())
        return cfg

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


# -- data --------------------------------------------------------------------------------------
def training_data_from_generated(out_dir: Union[str, Path], stream: Optional[int] = None) -> Dict[str, Any]:
    """Training arrays from a folder written by :func:`eirnn_fast.flyvis.generate_dataset`: the train
    split of all streams back to back (``stream=k``: one stream only; the one-step loss pairs each
    frame with its own dv/dt, so stream boundaries only matter to recurrent rollouts that cross
    them), the test split of stream 0 (a continuous sequence for rollouts), the column stimulus
    expanded to the photoreceptors, the graph and the ground truth (W per edge, tau and V_rest per
    neuron)."""
    from eirnn_fast.flyvis.connectome import load_connectome
    from eirnn_fast.flyvis.simulator import load_dataset
    from eirnn_fast.flyvis.stimuli import columns_to_neurons

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


def build_model(config: FlyVisTrainConfig, graph) -> FlyVisGNN:
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    return FlyVisGNN(
        graph,
        variant=config.variant,
        hidden_dim=config.hidden_dim,
        n_layers=config.n_layers,
        embedding_dim=config.embedding_dim,
        activation=config.activation,
        hidden_dim_update=config.hidden_dim_update,
        n_layers_update=config.n_layers_update,
        g_phi_positive=config.g_phi_positive,
        w_init=config.w_init,
        w_init_scale=config.w_init_scale,
        backend=config.backend,
        seed=config.seed,
        dtype=dtype,
    ).to(config.device)


def make_optimizer(model: FlyVisGNN, config: FlyVisTrainConfig) -> torch.optim.Adam:
    groups = [
        {"params": [model.a], "lr": config.lr_embedding, "name": "embedding"},
        {"params": list(model.f_theta.parameters()), "lr": config.lr_update or config.lr, "name": "f_theta"},
        {"params": [model.W], "lr": config.lr_W, "name": "W"},
        {"params": list(model.g_phi.parameters()), "lr": config.lr, "name": "g_phi"},
    ]
    return torch.optim.Adam(groups)


# -- loss --------------------------------------------------------------------------------------
def annealed_coefficients(config: FlyVisTrainConfig, epoch: int) -> Dict[str, float]:
    """Regulariser coefficients at ``epoch`` (an integer: set once per epoch, as both references do).

    ``annealing="neuralgraph"`` (default, the code the seeds ran): ``W_L1``, ``g_phi_weight_L1`` and
    ``f_theta_weight_L1`` are ``coeff * (1 - exp(-rate * epoch))`` with their own rates (0.5, 0.5 and
    seed 004's 0.4), so all three are 0 in epoch 0 and 0.39x / 0.39x / 0.33x in epoch 1; a rate of 0
    switches a term off for good; the L2 terms, W_L2, g_phi_diff and g_phi_norm are never annealed.
    ``annealing="flyvis_gnn"``: ``regul_annealing_rate`` (when > 0) anneals all six L1/L2 terms with the
    same formula; 0 means no annealing (full strength from the first iteration)."""
    e = float(epoch)

    def ng(c, rate):
        return c * (1.0 - math.exp(-(0.0 if rate is None else rate) * e))

    def fg(c):
        r = config.regul_annealing_rate
        return c * (1.0 - math.exp(-r * e)) if r > 0 else c

    if config.annealing == "neuralgraph":
        out = {
            "W_L1": ng(config.coeff_W_L1, config.coeff_W_L1_rate),
            "W_L2": config.coeff_W_L2,
            "g_phi_weight_L1": ng(config.coeff_g_phi_weight_L1, config.coeff_g_phi_weight_L1_rate),
            "g_phi_weight_L2": config.coeff_g_phi_weight_L2,
            "f_theta_weight_L1": ng(config.coeff_f_theta_weight_L1, config.coeff_f_theta_weight_L1_rate),
            "f_theta_weight_L2": config.coeff_f_theta_weight_L2,
        }
    else:
        out = {
            k: fg(getattr(config, "coeff_" + k))
            for k in ("W_L1", "W_L2", "g_phi_weight_L1", "g_phi_weight_L2", "f_theta_weight_L1", "f_theta_weight_L2")
        }
    out.update(g_phi_diff=config.coeff_g_phi_diff, g_phi_norm=config.coeff_g_phi_norm)
    return out


def regularization_terms(
    model: FlyVisGNN,
    v: torch.Tensor,
    xnorm: float,
    coeffs: Dict[str, float],
    W_L2_with_L1: bool = True,
    *,
    f_theta_L1_norm: str = "l2",
    diff_step: str = "multiplicative",
    detach_embedding: bool = False,
    generator: Optional[torch.Generator] = None,
):
    """Regularisers (module docstring) on the voltages ``v [N]`` of one frame. Returns ``(total, parts)``
    with ``parts`` a dict of the weighted terms (tensors). ``generator`` draws variant B's permutation
    of source embeddings."""
    parts: Dict[str, torch.Tensor] = {}
    if coeffs["W_L1"] > 0:
        parts["W_L1"] = coeffs["W_L1"] * model.W.norm(1)
    if coeffs["W_L2"] > 0 and (coeffs["W_L1"] <= 0 or W_L2_with_L1):
        parts["W_L2"] = coeffs["W_L2"] * model.W.norm(2)
    for name, mlp, l1 in (("g_phi", model.g_phi, 1), ("f_theta", model.f_theta, 1 if f_theta_L1_norm == "l1" else 2)):
        c1, c2 = coeffs[f"{name}_weight_L1"], coeffs[f"{name}_weight_L2"]
        if c1 + c2 > 0:
            parts[f"{name}_weight"] = sum(c1 * p.norm(l1) + c2 * p.norm(2) for p in mlp.parameters())
    if coeffs["g_phi_diff"] > 0 or coeffs["g_phi_norm"] > 0:
        a = model.a.detach() if detach_embedding else model.a
        v = v.detach().reshape(-1, 1)
        if model.variant == "A":  # inputs [v_j, a_j], each neuron as a source
            g = lambda vj: model.g_phi_node(vj, a)  # noqa: E731
            g_norm = lambda: model.g_phi_node(torch.full_like(v, 2.0 * xnorm), a)  # noqa: E731
        else:  # [v_i, v_j, a_i, a_perm]: each neuron paired with a random source embedding, only v_j varied
            perm = torch.randperm(a.shape[0], generator=generator).to(a.device)
            g = lambda vj: model.g_phi_edge(v, vj, a, a[perm])  # noqa: E731
            g_norm = lambda: model.g_phi_edge(torch.full_like(v, 2.0 * xnorm), v, a, a[perm])  # noqa: E731
        if coeffs["g_phi_diff"] > 0:
            v1 = v * 1.05 if diff_step == "multiplicative" else v + 0.05 * xnorm
            parts["g_phi_diff"] = coeffs["g_phi_diff"] * torch.relu(g(v) - g(v1)).norm(2)
        if coeffs["g_phi_norm"] > 0:  # the references set input column 0 to 2 xnorm (v_j in A, v_i in B)
            parts["g_phi_norm"] = coeffs["g_phi_norm"] * (g_norm() - 2.0 * xnorm).norm(2)
    total = sum(parts.values()) if parts else model.W.new_zeros(())
    return total, parts


def data_loss(model: FlyVisGNN, xt, yt, It, k: np.ndarray, dt: float, steps: int, noise: float) -> torch.Tensor:
    """One-step derivative loss (steps == 0) or the recurrent rollout loss over ``steps`` steps.
    xt, yt, It ``[T, N]`` tensors; k ``[B]`` start frames."""
    kk = torch.as_tensor(k, device=xt.device)
    v = xt[kk].t()  # [N, B]
    if steps == 0:
        return (model(v, It[kk].t()) - yt[kk].t()).norm(2)
    for s in range(steps):
        v = v + dt * model(v, It[kk + s].t())
        if noise > 0:
            v = v + noise * torch.randn_like(v)
    return ((v - xt[kk + steps].t()) / (dt * steps)).norm(2)


# -- training ----------------------------------------------------------------------------------
def epochs_to_run(config: FlyVisTrainConfig) -> int:
    """Number of epochs the trainer runs (``epoch_loop``): n_epochs + 1 as NeuralGraph, n_epochs as flyvis-gnn."""
    return config.n_epochs + (1 if config.epoch_loop == "neuralgraph" else 0)


def _iterations_per_epoch(config: FlyVisTrainConfig, n_frames: int) -> int:
    if config.iterations_per_epoch > 0:
        return config.iterations_per_epoch
    return max(1, int(n_frames * config.data_augmentation_loop // config.batch_size * 0.2))


# config fields that may change between an interrupted run and its resume (bookkeeping only)
_RESUME_FREE_KEYS = frozenset({"quiet", "log_every", "checkpoint_every", "n_epochs", "eval_each_epoch", "data_path"})
# what a checkpoint written before a field existed meant by it (the field's old behaviour)
_LEGACY_DEFAULTS = {
    "annealing": "flyvis_gnn",
    "epoch_loop": "flyvis_gnn",
    "f_theta_weight_L1_norm": "l1",
    "g_phi_diff_step": "additive",
    "g_phi_reg_frame": "first",
    "g_phi_reg_detach": True,
}


#: what a run folder of ``flyvis train`` holds: removed by a forced fresh start
FLYVIS_OUTPUTS = (
    "checkpoint.pt",
    "config.json",
    "history.jsonl",
    "metrics.jsonl",
    "result.json",
    "analysis.json",
    "recovery_W.png",
    "recovery_tau.png",
    "recovery_V_rest.png",
    "embedding.png",
)
CHECKPOINT_FORMAT = "eirnn_fast.flyvis/1"
#: checkpoint formats this version reads: the unversioned one written before formats existed, and /1
READABLE_FORMATS = ("eirnn_fast.flyvis/0", CHECKPOINT_FORMAT)


def _comparable(config: FlyVisTrainConfig, values: Dict[str, Any]) -> Dict[str, Any]:
    """``values`` restricted to the config's fields (``extra`` and :data:`_RESUME_FREE_KEYS` left out) as
    JSON would store them (tuples -> lists)."""
    names = {f.name for f in dataclasses.fields(config)} - _RESUME_FREE_KEYS - {"extra"}
    return json.loads(json.dumps({k: v for k, v in values.items() if k in names}, default=str))


def _legacy_defaults(config: FlyVisTrainConfig) -> Dict[str, Any]:
    """What a stored config that lacks a key meant by it: its old meaning (:data:`_LEGACY_DEFAULTS`) or,
    for a key added without changing what the code did, the field's default."""
    defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
    return _comparable(config, {**defaults, **_LEGACY_DEFAULTS})


def reconcile_resume_config(config: FlyVisTrainConfig, stored: Dict[str, Any], where: str) -> list:
    """Make ``config`` continue the run whose config is ``stored`` (a checkpoint's or config.json's dict).

    Keys the stored config lacks take their old meaning (:data:`_LEGACY_DEFAULTS`). A key the caller set
    explicitly (``config._explicit``; every key for configs built directly) that differs raises
    :class:`~eirnn_fast.runstore.RunFolderConflict` (a ``ValueError``) naming the keys; a key left at its
    default takes the run's stored value, so a run started before a default changed resumes as it
    started. Returns the adopted keys."""
    legacy = _legacy_defaults(config)
    old = {**legacy, **_comparable(config, stored)}
    diff = config_diff(old, _comparable(config, config.to_dict()))
    explicit = getattr(config, "_explicit", None)
    adopted = [k for k in diff if explicit is not None and k not in explicit]
    for k in adopted:
        setattr(config, k, stored.get(k, _LEGACY_DEFAULTS.get(k, legacy.get(k))))
    config.validate()
    rest = {k: v for k, v in diff.items() if k not in adopted}
    if rest:
        raise RunFolderConflict(Path(where).parent if Path(where).suffix else where, rest)
    return adopted


def _save_checkpoint(path: Path, model, opt, epoch: int, iteration: int, config) -> None:
    atomic_torch_save(
        path,
        {
            "format": CHECKPOINT_FORMAT,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch,
            "iteration": iteration,
            "torch_rng": torch.get_rng_state(),
            "config": config.to_dict(),
        },
    )


def _load_checkpoint(path: Path, device) -> Dict[str, Any]:
    state = torch.load(path, map_location=device, weights_only=False)
    fmt = checkpoint_format(state)
    if fmt not in READABLE_FORMATS:
        raise ValueError(f"{path}: checkpoint format {fmt!r} is not one this version reads ({READABLE_FORMATS})")
    return state


def _trim_logs(out: Path, epoch: int, iteration: int) -> None:
    """On resume from a checkpoint at (epoch, iteration): drop the log lines written after it (they are
    logged again) and any line a kill cut off, so every line of the logs describes saved work."""
    trim_jsonl(out / "history.jsonl", lambda r: (r.get("epoch", 0), r.get("iteration", 0)) <= (epoch, iteration))
    trim_jsonl(out / "metrics.jsonl", lambda r: r.get("epoch", 0) < epoch)


def train_flyvis_gnn(
    config: FlyVisTrainConfig,
    data: Union[str, Path, Dict[str, Any]],
    graph=None,
    out_dir: Optional[Union[str, Path]] = None,
    resume: bool = True,
    force: bool = False,
):
    """Train a :class:`FlyVisGNN` on ``data`` (see :func:`load_training_data`).

    With ``out_dir``: writes ``config.json``, ``history.jsonl`` (every ``log_every`` iterations:
    loss, data loss, each regulariser, seconds per iteration), ``metrics.jsonl`` (one line per
    epoch, with recovery metrics when ground truth is present), ``checkpoint.pt`` (end of each
    epoch and every ``checkpoint_every`` iterations).

    The run folder rule (:mod:`eirnn_fast.runstore`): a folder holding a run of the same config
    continues from its checkpoint (``resume=False``: that run afresh); keys the caller did not set take
    the run's values (:func:`reconcile_resume_config`); a different config raises
    :class:`~eirnn_fast.runstore.RunFolderConflict` naming the keys unless ``force``, which removes the
    old run's outputs (:data:`FLYVIS_OUTPUTS`) first. Returns ``(model, info)`` with ``info`` holding
    the last log line, timing and ``"resumed_from"`` (the checkpoint's ``(epoch, iteration)`` or None).
    """
    from tqdm.auto import tqdm

    from eirnn_fast.flyvis import metrics as M

    data = load_training_data(data)
    graph = graph if graph is not None else graph_from_data(data)
    out = Path(out_dir) if out_dir is not None else None
    state = None
    if out is not None:
        ck = out / "checkpoint.pt"
        if force:  # whatever the folder holds goes (even a checkpoint this version cannot read)
            state, stored = None, ({} if any((out / n).exists() for n in FLYVIS_OUTPUTS) else None)
        else:
            state = _load_checkpoint(ck, config.device) if ck.is_file() else None
            # killed before the first checkpoint: config.json (written first) holds the run's config
            stored = state.get("config", {}) if state is not None else load_json(out / "config.json")
        if stored is not None and not force:
            adopted = reconcile_resume_config(config, stored, str(ck))
            if adopted and not config.quiet:
                print(
                    f"resuming {out} with the run's own {', '.join(adopted)} (not set in the config)", file=sys.stderr
                )
        if stored is not None and (force or not resume):
            remove_outputs(out, FLYVIS_OUTPUTS)
            state = None
    torch.manual_seed(config.seed)
    model = build_model(config, graph)
    opt = make_optimizer(model, config)
    p = model.W
    xt = torch.as_tensor(data["x"], dtype=p.dtype, device=p.device)
    yt = torch.as_tensor(data["y"], dtype=p.dtype, device=p.device)
    It = torch.as_tensor(data["I"], dtype=p.dtype, device=p.device)
    T, N = xt.shape
    if N != model.n_neurons:
        raise ValueError(f"data has {N} neurons but the graph has {model.n_neurons}")
    xnorm = float(1.5 * xt.std())
    dt = float(data["dt"]) if "dt" in data else config.dt  # the simulation's step wins over the config's
    if "dt" in data and abs(dt - config.dt) > 1e-12 * max(1.0, abs(dt)):
        import warnings

        warnings.warn(
            f"config dt={config.dt} differs from the data's dt={dt}; using the data's", UserWarning, stacklevel=2
        )
    n_iter = _iterations_per_epoch(config, T)

    start_epoch, start_iter = 0, 0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", config.to_dict(), default=str)
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            start_epoch, start_iter = state["epoch"], state["iteration"]
            _trim_logs(out, start_epoch, start_iter)
            if not config.quiet and start_epoch < epochs_to_run(config):
                print(
                    f"resumed from {out / 'checkpoint.pt'} at epoch {start_epoch}, iteration {start_iter}",
                    file=sys.stderr,
                )
            if start_iter >= n_iter:
                start_epoch, start_iter = start_epoch + 1, 0
    hist_fh = open(out / "history.jsonl", "a") if out is not None else None
    disable = config.quiet or not sys.stderr.isatty()
    info: Dict[str, Any] = {
        "iterations_per_epoch": n_iter,
        "xnorm": xnorm,
        "resumed_from": None if state is None else (state["epoch"], state["iteration"]),
    }
    t_start = time.perf_counter()
    n_done = 0
    try:
        for epoch in range(start_epoch, epochs_to_run(config)):
            coeffs = annealed_coefficients(config, epoch)
            recurrent = config.recurrent_training and epoch >= config.recurrent_training_start_epoch
            steps = config.time_step if recurrent else 0
            span = max(steps, 1)
            if T - span - 1 < 1:
                raise ValueError(f"need more than {span + 1} frames, got {T}")
            rng = np.random.RandomState(config.seed + epoch)
            ks = rng.randint(0, T - span - 1, size=(n_iter, config.batch_size))  # drawn up front: resumable
            if recurrent and steps > 1:
                ks -= ks % steps
            bar = tqdm(range(start_iter, n_iter), desc=f"epoch {epoch}", disable=disable, leave=False)
            t_last, n_last = time.perf_counter(), 0
            for it in bar:
                loss_d = data_loss(model, xt, yt, It, ks[it], dt, steps, config.noise_recurrent_level)
                k_reg = int(ks[it, -1] if config.g_phi_reg_frame == "last" else ks[it, 0])
                # variant B's source-embedding permutation: a pure function of (seed, epoch, iteration), so resumable
                perm_gen = None
                if model.variant == "B":
                    perm_gen = torch.Generator().manual_seed((config.seed * 1_000_003 + epoch) * 100_000_007 + it)
                reg, parts = regularization_terms(
                    model,
                    xt[k_reg],
                    xnorm,
                    coeffs,
                    config.W_L2_with_L1,
                    f_theta_L1_norm=config.f_theta_weight_L1_norm,
                    diff_step=config.g_phi_diff_step,
                    detach_embedding=config.g_phi_reg_detach,
                    generator=perm_gen,
                )
                loss = loss_d + reg
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip_W > 0:
                    torch.nn.utils.clip_grad_norm_([model.W], config.grad_clip_W)
                opt.step()
                n_done += 1
                n_last += 1
                if (it + 1) % config.log_every == 0 or it + 1 == n_iter:
                    now = time.perf_counter()
                    line = {
                        "epoch": epoch,
                        "iteration": it + 1,
                        "loss": float(loss.detach()),
                        "loss_data": float(loss_d.detach()),
                        "recurrent": bool(recurrent),
                        "s_per_iter": (now - t_last) / max(n_last, 1),
                        **{f"regul_{k}": float(v.detach()) for k, v in parts.items()},
                    }
                    t_last, n_last = now, 0
                    info["last"] = line
                    if hist_fh is not None:
                        hist_fh.write(json.dumps(line) + "\n")
                        hist_fh.flush()
                    bar.set_postfix(loss=f"{line['loss']:.4g}")
                if out is not None and config.checkpoint_every and (it + 1) % config.checkpoint_every == 0:
                    _save_checkpoint(out / "checkpoint.pt", model, opt, epoch, it + 1, config)
            start_iter = 0
            if out is not None:
                # the epoch's line first, then its checkpoint: a kill between re-runs from the previous
                # checkpoint, which drops the line (_trim_logs)
                line = {
                    "epoch": epoch,
                    "iterations": n_iter,
                    "elapsed_s": time.perf_counter() - t_start,
                    "loss": info.get("last", {}).get("loss"),
                }
                if config.eval_each_epoch and any(data.get(k) is not None for k in ("W", "tau", "V_rest")):
                    ev = M.evaluate(model, data, n_test_frames=config.n_test_frames or None)
                    line.update({k: v for k, v in ev.items() if isinstance(v, (int, float))})
                with open(out / "metrics.jsonl", "a") as fh:
                    fh.write(json.dumps(line) + "\n")
                _save_checkpoint(out / "checkpoint.pt", model, opt, epoch + 1, 0, config)
    finally:
        if hist_fh is not None:
            hist_fh.close()
    elapsed = time.perf_counter() - t_start
    info.update(
        {
            "train_seconds": elapsed,
            "iterations_run": n_done,
            "s_per_iteration": elapsed / n_done if n_done else float("nan"),
        }
    )
    return model, info


def load_run(run_dir: Union[str, Path]):
    """Rebuild ``(config, model, data)`` from a run folder (config.json + checkpoint.pt)."""
    run = Path(run_dir)
    try:
        saved = json.loads((run / "config.json").read_text())
    except ValueError as exc:  # a truncated or hand-edited file: name it, not json's internals
        raise ValueError(f"{run}/config.json is not valid JSON ({exc}); re-run `eirnn-fast flyvis train`") from None
    cfg = FlyVisTrainConfig.from_dict({**_LEGACY_DEFAULTS, **saved})
    if not cfg.data_path:
        raise ValueError(f"{run}/config.json has no data_path")
    data = load_training_data(cfg.data_path)
    model = build_model(cfg, graph_from_data(data))
    model.load_state_dict(_load_checkpoint(run / "checkpoint.pt", cfg.device)["model"])
    return cfg, model, data


def flyvis_evaluate_main(
    run_dir: Union[str, Path], analysis: bool = False, train_info: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """Evaluate a trained run: all metrics + plots into ``run_dir`` and ``result.json`` (written
    atomically, last). ``analysis``: also seed 003's analysis tools (:func:`metrics.recovery_analysis`)
    into ``analysis.json`` and the ``analysis`` key of the result. ``train_info``: the training times
    to record (default: those of the run's earlier result.json)."""
    from eirnn_fast.flyvis import gnn_plots
    from eirnn_fast.flyvis import metrics as M

    run = Path(run_dir)
    if not (run / "config.json").exists() or not (run / "checkpoint.pt").exists():
        raise ValueError(
            f"{run} is not a run folder of `eirnn-fast flyvis train` (needs config.json and checkpoint.pt)"
        )
    cfg, model, data = load_run(run)
    res = M.evaluate(model, data, n_test_frames=cfg.n_test_frames or None, return_arrays=True)
    arrays = res.pop("arrays")
    res["plots"] = gnn_plots.plot_recovery(run, arrays, data, res.get("connectivity_outlier_threshold", 5.0))
    res["metric_definitions"] = "see eirnn_fast/flyvis/metrics.py module docstring"
    if analysis and data.get("W") is not None:
        res["analysis"] = M.recovery_analysis(
            arrays, data, model.src.cpu().numpy(), model.dst.cpu().numpy(), model.n_neurons, data.get("cell_type_names")
        )
        atomic_write_json(run / "analysis.json", res["analysis"], default=float)
    prev = run / "result.json"
    old = train_info if train_info is not None else (load_json(prev) or {})
    res = {
        **{k: v for k, v in old.items() if k in ("train_seconds", "s_per_iteration", "iterations_per_epoch")},
        **res,
    }
    atomic_write_json(prev, res, default=float)
    return res


def _finished_result(out: Path, cfg: FlyVisTrainConfig) -> Optional[Dict[str, Any]]:
    """result.json of a run folder whose training reached the end of ``cfg``'s schedule, else None.
    result.json is written last (atomically, after the evaluation), so its presence means done; one
    without the evaluation's keys (an older version wrote the training times first) does not."""
    res = load_json(out / "result.json") if (out / "checkpoint.pt").is_file() else None
    if res is None or "metric_definitions" not in res:
        return None
    state = _load_checkpoint(out / "checkpoint.pt", "cpu")
    return res if state["epoch"] >= epochs_to_run(cfg) else None


def flyvis_train_main(
    config_path: Union[str, Path], out_dir: Union[str, Path], *, force: bool = False
) -> Dict[str, Any]:
    """Train from a YAML config (``data_path`` names the npz), then evaluate; returns result.json's dict.
    A finished run of the same config is not trained again: "already finished, loaded from ..."."""
    cfg = FlyVisTrainConfig.from_yaml(config_path)
    if not cfg.data_path:
        raise ValueError(f"config key 'data_path': required by flyvis_train_main ({config_path})")
    out = Path(out_dir)
    if not force and (out / "checkpoint.pt").is_file():
        stored = _load_checkpoint(out / "checkpoint.pt", "cpu").get("config", {})
        reconcile_resume_config(cfg, stored, str(out / "checkpoint.pt"))  # a different config refuses here
        done = _finished_result(out, cfg)
        if done is not None:
            decision = ResumeDecision("finished", f"already finished, loaded from {out / 'result.json'}")
            announce(decision, cfg.quiet)
            return done
    _, info = train_flyvis_gnn(cfg, cfg.data_path, out_dir=out, force=force)
    train = {k: info[k] for k in ("train_seconds", "s_per_iteration", "iterations_per_epoch")}
    return flyvis_evaluate_main(out, train_info=train)
