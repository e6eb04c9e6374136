"""The FlyVis GNN trainer's config: :class:`FlyVisTrainConfig` (field names of saalfeldlab/flyvis-gnn,
the seeds' and NeuralGraph's old names accepted through :data:`ALIASES`, nested reference-style YAML
sections flattened), its validation, and the epoch schedule it implies (:func:`epochs_to_run`).
What the regulariser fields mean: :mod:`eirnn_fast.flyvis.objective`."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from eirnn_fast import configs
from eirnn_fast.flyvis.gnn import _ACTIVATIONS, W_INIT_MODES

# old (seeds / NeuralGraph) or alternative names -> field names (FlyVisTrainConfig.CONFIG_ALIASES)
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
    # regulariser forms (eirnn_fast.flyvis.objective); defaults are NeuralGraph's, the alternatives flyvis-gnn's
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

    # not fields (no annotation): the tables eirnn_fast.configs reads (old names; flag choices)
    CONFIG_ALIASES = ALIASES
    CONFIG_CHOICES = _CHOICES

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        def bad(key, msg):
            raise ValueError(f"config key {key!r}: {msg}, got {getattr(self, key)!r}")

        configs.check_types(self)  # YAML types: a string or a list where a flag / a name belongs
        if self.activation not in _ACTIVATIONS:
            bad("activation", f"must be one of {sorted(_ACTIVATIONS)}")
        try:
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
    def from_dict(cls, d: Dict[str, Any], source: Optional[str] = None) -> "FlyVisTrainConfig":
        """Build from a (possibly nested, reference-style) dict: the sections ``graph_model``,
        ``training``, ``model``, ``train`` and the MLP sections (``lin_edge: {hidden_dim, n_layers}``)
        are flattened, the free sections kept in ``extra``. Keys, old names (:data:`ALIASES`) and value
        types go through :mod:`eirnn_fast.configs`: an unknown key raises ``ValueError`` naming it
        (with a "did you mean"), a wrong type :class:`eirnn_fast.configs.ConfigTypeError` (both a
        ``ValueError`` and a ``TypeError``); ``source``: the file, named in those messages."""
        if not isinstance(d, dict):
            raise ValueError(f"{source or 'config'}: a config must be a mapping, got {type(d).__name__}")
        flat: Dict[str, Any] = {}
        extra: Dict[str, Any] = dict(d.get("extra", {}) or {})

        def put(values: Dict[str, Any], where: str) -> None:
            plain = {}
            for key, value in values.items():
                if key in _MLP_SECTIONS and isinstance(value, dict):
                    for k2 in value:
                        if k2 not in ("hidden_dim", "n_layers"):
                            raise ValueError(
                                f"config key {where + key + '.' + k2!r}: unknown (expected hidden_dim, n_layers)"
                            )
                    put({k2 + _MLP_SECTIONS[key]: v2 for k2, v2 in value.items()}, where + key + ".")
                else:
                    plain[key] = value
            resolved = configs.resolve_keys(cls, plain, source=source, prefix=where, exclude=("extra",))
            for name, value in resolved.items():  # the same field under two names in two sections
                if name in flat and flat[name] != value:
                    key = next(k for k in plain if ALIASES.get(k, k) == name)
                    raise ValueError(f"config key {where + key!r}: conflicts with another name for {name!r}")
                flat[name] = value

        top = {}
        for key, value in d.items():
            if key == "extra":
                continue
            if key in _SECTIONS and isinstance(value, dict):
                put(value, key + ".")
            elif key in _FREE_SECTIONS or key in ("description", "dataset", "config_file"):
                extra[key] = value
            else:
                top[key] = value
        put(top, "")
        # YAML 1.1 reads 1e-3 (no dot) as a string: numeric strings are taken for float fields
        flat = configs.coerce_values(cls, flat, source=source, numeric_strings=True)
        cfg = cls(**flat, extra=extra)
        cfg._explicit = frozenset(flat)  # the keys the caller set (resume: the others follow the run)
        return cfg

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> "FlyVisTrainConfig":
        cfg = cls.from_dict(configs.read_config_file(path, kind="YAML"), source=str(path))
        if cfg.data_path and not os.path.isabs(cfg.data_path):
            cfg.data_path = str((Path(path).parent / cfg.data_path).resolve())
        return cfg

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def epochs_to_run(config: FlyVisTrainConfig) -> int:
    """Number of epochs the trainer runs (``epoch_loop``): n_epochs + 1 as NeuralGraph, n_epochs as flyvis-gnn."""
    return config.n_epochs + (1 if config.epoch_loop == "neuralgraph" else 0)
