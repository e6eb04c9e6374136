"""``FitConfig``: every knob of an SC fit, saved as ``config.json`` with each run."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from eirnn_fast import configs
from eirnn_fast._ext import BACKENDS
from eirnn_fast.configs import parse_toml  # noqa: F401  (its old home: eirnn_fast.suites reads TOML with it)
from eirnn_fast.data.embedded import EMBEDDED_SESSIONS
from eirnn_fast.data.session import DEFAULT_CLIP_PERCENTILE
from eirnn_fast.losses import ACTIVITY_FORMS, BALANCE_MODES, MASK_MODES, RATE_FORMS, REG_FORMS
from eirnn_fast.models.eirnn import LEARNABLE_ALPHA_MODES, LEARNABLE_TAU_MODES
from eirnn_fast.models.embeddings import EMBED_TYPES
from eirnn_fast.train.protocols import PROTOCOLS, predecessor_fields

SCHEDULERS = ("plateau", "cosine", "none")
SPLIT_SCHEMES = ("joint", "test_first")
PLATEAU_METRICS = ("val_corr", "val_l_neuron")
LOSS_EMA_UPDATES = ("step", "epoch")
UNIT_PAIRINGS = ("type", "position")
W_IN_INITS = ("uniform", "seed002")

#: Fields added after the first checkpoint format ("eirnn_fast.fit/1") with the value that
#: reproduces what runs did before the field existed: a saved config lacking one of them takes
#: this value (:meth:`FitConfig.from_saved`), so old checkpoints resume and evaluate unchanged.
ADDED_FIELDS: Dict[str, Any] = {
    "protocol": "ours",
    "session": None,
    "split_scheme": "joint",
    "unit_pairing": "type",
    "w_in_init": "uniform",
    "lneuron_mask": "valid",
    "reg_form": "sum",
    "activity_form": "relative",
    "activity_target_rate": None,
    "loss_ema_init": None,
    "loss_ema_update": "step",
    "plateau_metric": "val_corr",
    "plateau_min_lr": 0.0,
    "lr_warmup_from_zero": False,
    "cosine_min_factor": 0.0,
    "rate_weight": 0.0,  # no per-neuron rate term before issue 15
    "min_units": None,  # networks were the 4:1 padding of the recorded neurons
    "rate_form": "log",
}

#: Fields that change how a run is executed, shown or where it lives, not what it computes: a
#: checkpoint whose config differs only in these still resumes.
RUNTIME_FIELDS = ("threads", "quiet", "plots", "out")


@dataclass
class FitConfig:
    # --- protocol: the preset the other fields were started from (see eirnn_fast.train.protocols);
    # any field set next to it overrides the preset, and the run records which ones did
    protocol: str = "ours"
    # --- data
    data: Optional[str] = None  # .mat path; None = the embedded session named by `session`
    session: Optional[str] = None  # embedded session ("08_13", "08_14") when data is None; None = 08_13
    clip_percentile: Optional[float] = DEFAULT_CLIP_PERCENTILE
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    stratify_by: Optional[str] = "reward"
    # joint: one stratified pass into test / val / train; test_first: hold out the stratified test
    # split, then split the rest by the predecessor's train_val_split (val_fraction of each stratum)
    split_scheme: str = "joint"
    max_trials: Optional[int] = None  # use only the first n trials of the file (quick runs, tests)
    # --- model (eirnn_fast.EIRNN arguments)
    enforce_ratio: bool = True
    # with enforce_ratio: a network smaller than this (the 4:1 padding of the recorded neurons) is
    # grown to min_units at 4:1 E:I with hidden units (create_model_from_data's target_total); None =
    # the padding alone, the predecessor's size. 80 = 08_14's padded size: on 08_13 (14 neurons, 30
    # units by the padding) it lifted test r / ceiling from 0.795 to 0.935 (experiments/sc_0813_why)
    min_units: Optional[int] = 80
    bypass_dale: bool = False
    noise_scale: float = 0.1
    spectral_radius: float = 0.9
    learnable_alpha: str = "neuron"
    alpha_init: float = 0.5
    learnable_tau: str = "none"
    low_rank: Optional[int] = None
    input_embed_type: str = "learnable"
    input_embed_dim: Optional[int] = None
    learnable_h0: bool = False
    model_kwargs: Dict[str, Any] = field(default_factory=dict)  # any other EIRNN keyword (alpha_e_init, ...)
    backend: str = "auto"
    unit_pairing: str = "type"  # type: each recorded neuron fitted by a unit of its E/I type; position: unit i
    w_in_init: str = "uniform"  # uniform: U(0, 1) (EIRNN, the predecessor); seed002: U(-0.5, 2.0)
    # --- losses
    lneuron_weight: float = 1.0
    ltrial_weight: float = 0.0  # > 0 imports eirnn_fast.losses.trial_matching_loss
    ltrial_kwargs: Dict[str, Any] = field(default_factory=dict)  # passed to trial_matching_loss
    ltrial_group_by: Optional[str] = None  # match trials within condition groups of this label (e.g. "location")
    lneuron_mask: str = "valid"  # valid: PSTH over valid trials per bin; multiply: mean of rates * mask
    reg_weight: float = 1e-4  # weight of L_reg in the form reg_form
    reg_form: str = "sum"  # sum: sum of squares of W_rec and W_in; mean: their means (the predecessor's)
    activity_weight: float = 0.01  # weight of L_activity in the form activity_form (0 = off)
    activity_form: str = "relative"  # relative: ((mean - target) / target)^2, all units; predecessor: see losses
    activity_target_rate: Optional[float] = None  # sp/s; None = the training trials' mean rate
    # weight of the per-neuron rate term L_rate (eirnn_fast.losses.rates; 0 = off, the old behaviour): 0.1
    # brings every neuron's mean rate within ~10 % on 08_13 and 08_14 (README "Fitting SC data")
    rate_weight: float = 0.1
    rate_form: str = "log"  # log: mean_n log((m_n + 0.5) / (d_n + 0.5))^2; poisson: normalised count deviance
    smooth_ms: float = 0.0  # L_neuron smoothing (the metric reports its own smooth_ms as 0)
    balance: str = "none"  # none | param_norm | loss_ema | activity_ema
    loss_ema_init: Optional[float] = None  # loss_ema: None = start at the first value; a number = start there
    loss_ema_update: str = "step"  # loss_ema: update every step, or once per epoch (at its first step)
    # --- optimisation
    epochs: int = 250
    batch_size: int = 64  # trials per step; 0 = full batch (see README: 64 fits better on 08_13)
    lr: float = 1e-2
    alpha_lr_scale: float = 1.0
    grad_clip: float = 1.0
    scheduler: str = "plateau"
    plateau_patience: int = 20
    plateau_factor: float = 0.5
    plateau_metric: str = "val_corr"  # val_corr (maximised) or val_l_neuron (minimised)
    plateau_min_lr: float = 0.0
    lr_warmup_epochs: int = 10  # cosine only
    lr_warmup_from_zero: bool = False  # cosine warmup factor epoch / warm (from 0) instead of (epoch + 1) / warm
    cosine_min_factor: float = 0.0  # cosine: floor of the lr factor after the warmup
    warmup_epochs: int = 0  # curriculum: L_neuron only for these epochs, then L_trial ramps up
    ramp_epochs: int = 100
    patience: int = 50  # early stopping on the validation PSTH correlation
    eval_noise: bool = False  # noise during evaluation (the predecessor left it on)
    seed: int = 42
    threads: Optional[int] = None  # torch.set_num_threads; None = leave as is
    # --- output
    out: str = "runs/fit"
    plots: bool = True
    quiet: bool = False

    # not fields (no annotation): the tables eirnn_fast.configs reads
    #: help text of the flags (``eirnn-fast fit --help``); the default is appended
    CONFIG_HELP = {
        "data": "session .mat file (v5 or v7.3); default: the embedded session --session names",
        "session": "embedded session when no --data: 08_13 (None = the default) | 08_14",
        "rate_weight": "weight of the per-neuron rate term L_rate (0 = off, as before issue 15)",
        "min_units": "grow a smaller network (the 4:1 padding of the recorded neurons) to this many units; none = "
        "the padding alone (the predecessor's size)",
        "rate_form": "log (mean_n log((m_n + 0.5) / (d_n + 0.5))^2) | poisson (normalised count deviance)",
        "out": "run directory (config.json, metrics.jsonl, checkpoint.pt, result.json, plots)",
        "epochs": "maximum number of epochs",
        "seed": "seed for split, init, noise and batching",
        "batch_size": "trials per step; 0 = all training trials",
        "ltrial_weight": "L_trial weight (0 = off)",
        "balance": "none | param_norm | loss_ema | activity_ema",
        "scheduler": "plateau | cosine | none",
        "warmup_epochs": "curriculum: epochs of L_neuron only before L_trial ramps in",
        "learnable_alpha": "none | scalar | population | neuron",
        "patience": "early stopping patience (epochs)",
        "eval_noise": "keep the model's noise on during evaluation",
        "ltrial_kwargs": "JSON object for trial_matching_loss",
        "clip_percentile": "outlier clipping percentile ('none' = raw rates)",
        "protocol": "ours | predecessor: the preset the other options start from (flags given here override it)",
        "split_scheme": "joint (train/val/test at once) | test_first (test held out, then the predecessor's split)",
        "unit_pairing": "type (each recorded neuron by a unit of its E/I type) | position (unit i, the predecessor's)",
        "w_in_init": "uniform (U(0, 1)) | seed002 (U(-0.5, 2.0))",
        "lneuron_mask": "valid (mean over valid trials) | multiply (mean of rates * mask, the predecessor's)",
        "reg_form": "sum | mean (of the squared weights; the predecessor's: mean)",
        "activity_form": "relative | predecessor (lambda (mean - 10)^2 on recorded units + max-rate hinge)",
        "activity_target_rate": "L_activity target in sp/s ('none' = the training data's mean rate)",
        "loss_ema_init": "loss_ema start value ('none' = the first loss value; the predecessor: 1.0)",
        "loss_ema_update": "step | epoch",
        "plateau_metric": "val_corr | val_l_neuron",
    }
    #: old config keys -> field names (none renamed yet); FLAG_ALIASES: old flags -> fields
    CONFIG_ALIASES = {}
    FLAG_ALIASES = {}

    def validate(self) -> "FitConfig":
        self._check_types()
        choices = (
            ("protocol", PROTOCOLS),
            ("scheduler", SCHEDULERS),
            ("balance", BALANCE_MODES),
            ("split_scheme", SPLIT_SCHEMES),
            ("unit_pairing", UNIT_PAIRINGS),
            ("w_in_init", W_IN_INITS),
            ("lneuron_mask", MASK_MODES),
            ("reg_form", REG_FORMS),
            ("activity_form", ACTIVITY_FORMS),
            ("rate_form", RATE_FORMS),
            ("loss_ema_update", LOSS_EMA_UPDATES),
            ("plateau_metric", PLATEAU_METRICS),
        )
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.data is not None and self.session is not None:
            raise ValueError(f"give data or session, not both (data={self.data!r}, session={self.session!r})")
        if self.session is not None and self.session not in EMBEDDED_SESSIONS:
            raise ValueError(f"session must be one of {sorted(EMBEDDED_SESSIONS)}, got {self.session!r}")
        for name, allowed in (
            ("learnable_alpha", LEARNABLE_ALPHA_MODES),
            ("learnable_tau", LEARNABLE_TAU_MODES),
            ("input_embed_type", EMBED_TYPES),
            ("backend", BACKENDS),
        ):  # the model's choices, checked here so a typo fails before the data loads
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {tuple(allowed)}, got {getattr(self, name)!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 0:
            raise ValueError(f"batch_size must be >= 0 (0 = all training trials), got {self.batch_size}")
        positive = ("lr", "alpha_init", "plateau_factor")
        for name in positive:
            if not getattr(self, name) > 0:  # also rejects NaN
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.alpha_init < 1 or not self.plateau_factor < 1:
            raise ValueError(f"alpha_init and plateau_factor must be < 1, got {self.alpha_init}, {self.plateau_factor}")
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:  # 0: no such split (tests, quick runs)
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not self.val_fraction + self.test_fraction < 1:
            raise ValueError(
                f"val_fraction + test_fraction must be < 1, got {self.val_fraction} + {self.test_fraction}"
            )
        nonneg = (
            "lneuron_weight",
            "ltrial_weight",
            "reg_weight",
            "activity_weight",
            "noise_scale",
            "spectral_radius",
            "smooth_ms",
            "grad_clip",
        )
        for name in nonneg:
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("patience", "plateau_patience", "warmup_epochs", "ramp_epochs", "lr_warmup_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.clip_percentile is not None and not 0 < self.clip_percentile <= 100:
            raise ValueError(f"clip_percentile must be in (0, 100] or None, got {self.clip_percentile}")
        if self.max_trials is not None and self.max_trials < 1:
            raise ValueError(f"max_trials must be >= 1 or None, got {self.max_trials}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {self.threads}")
        if not self.alpha_lr_scale >= 0:
            raise ValueError(f"alpha_lr_scale must be >= 0 (0 freezes alpha), got {self.alpha_lr_scale}")
        if self.loss_ema_init is not None and not self.loss_ema_init > 0:
            raise ValueError(f"loss_ema_init must be None or > 0, got {self.loss_ema_init}")
        if self.activity_target_rate is not None and not self.activity_target_rate > 0:
            raise ValueError(f"activity_target_rate must be None or > 0 sp/s, got {self.activity_target_rate}")
        if not self.rate_weight >= 0:
            raise ValueError(f"rate_weight must be >= 0 (0 = off), got {self.rate_weight}")
        if self.plateau_min_lr < 0:
            raise ValueError(f"plateau_min_lr must be >= 0, got {self.plateau_min_lr}")
        if not 0.0 <= self.cosine_min_factor <= 1.0:
            raise ValueError(f"cosine_min_factor must be in [0, 1], got {self.cosine_min_factor}")
        for name in ("low_rank", "input_embed_dim", "min_units"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        for f in dataclasses.fields(self):  # inf weights / rates / lr: no finite training would follow
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be finite, got {value}")
        return self

    def _check_types(self) -> None:
        """Each field holds its annotated type (``TypeError`` naming the key; see :mod:`eirnn_fast.configs`)."""
        configs.check_types(self)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: Optional[str] = None) -> "FitConfig":
        """The preset of ``values["protocol"]`` (default ``"ours"``) with ``values`` laid over it.
        Unknown keys and wrong value types raise naming the key (and ``source``, the file they came
        from); old key names (:attr:`CONFIG_ALIASES`) are accepted."""
        values = configs.from_mapping(cls, values, source=source)
        preset = protocol_fields(values.get("protocol", "ours"))
        return cls(**{**preset, **values}).validate()

    @classmethod
    def preset(cls, protocol: str, **overrides) -> "FitConfig":
        """``FitConfig.preset("predecessor", epochs=100)``: a protocol's settings, some overridden."""
        return cls.from_dict({**overrides, "protocol": protocol})

    @classmethod
    def from_saved(cls, values: Dict[str, Any]) -> "FitConfig":
        """A config saved with a run (``config.json``, a checkpoint's ``config``): complete, so no
        preset is applied; fields it lacks take their :data:`ADDED_FIELDS` value."""
        return cls.from_dict(complete_saved_config(values))

    @classmethod
    def from_file(cls, path) -> "FitConfig":
        """Read a TOML, YAML or JSON config (a flat table of :class:`FitConfig` fields, optionally under ``[fit]``)."""
        return cls.from_dict(read_config_file(path), source=str(path))

    def protocol_overrides(self) -> Dict[str, Any]:
        """The fields a protocol sets whose value here differs from its preset (``{}`` = pure)."""
        preset = protocol_fields(self.protocol)
        return {k: getattr(self, k) for k, v in preset.items() if getattr(self, k) != v}


def complete_saved_config(values: Dict[str, Any]) -> Dict[str, Any]:
    """A saved config with every field added since it was written set to its :data:`ADDED_FIELDS`
    value and, for resume checks, nothing else changed."""
    return {**ADDED_FIELDS, **values}


def same_run(saved: Dict[str, Any], current: Dict[str, Any]) -> Dict[str, Any]:
    """``{}`` when a saved config and the current one describe the same computation, else
    ``{field: (saved, current)}`` of the differences (:data:`RUNTIME_FIELDS` ignored)."""
    saved = complete_saved_config(saved)
    keys = (set(saved) | set(current)) - set(RUNTIME_FIELDS)
    return {k: (saved.get(k), current.get(k)) for k in sorted(keys) if saved.get(k) != current.get(k)}


def read_config_file(path) -> Dict[str, Any]:
    """The :class:`FitConfig` table of a TOML / YAML / JSON file (its ``[fit]`` table when it has one):
    :func:`eirnn_fast.configs.read_config_file`."""
    return configs.read_config_file(path, section="fit")


def protocol_fields(name: str) -> Dict[str, Any]:
    """``{field: value}`` that protocol ``name`` sets (a fresh dict; see :mod:`eirnn_fast.train.protocols`).
    ``"ours"`` gives the :class:`FitConfig` defaults of the same fields, so switching protocols resets
    all of them."""
    if name not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {name!r}")
    fields = predecessor_fields()
    if name == "predecessor":
        return fields
    defaults = configs.defaults(FitConfig)
    return {k: defaults[k] for k in fields}
