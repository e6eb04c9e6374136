"""``FitConfig``: every knob of an SC fit, saved as ``config.json`` with each run."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from eirnn_fast.data.session import DEFAULT_CLIP_PERCENTILE

SCHEDULERS = ("plateau", "cosine", "none")


@dataclass
class FitConfig:
    # --- data
    data: Optional[str] = None  # .mat path; None = the embedded 08_13 session
    clip_percentile: Optional[float] = DEFAULT_CLIP_PERCENTILE
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    stratify_by: Optional[str] = "reward"
    max_trials: Optional[int] = None  # use only the first n trials of the file (quick runs, tests)
    # --- model (eirnn_fast.EIRNN arguments)
    enforce_ratio: bool = True
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
    # --- losses
    lneuron_weight: float = 1.0
    ltrial_weight: float = 0.0  # > 0 imports eirnn_fast.losses.trial_matching_loss
    ltrial_kwargs: Dict[str, Any] = field(default_factory=dict)  # passed to trial_matching_loss
    ltrial_group_by: Optional[str] = None  # match trials within condition groups of this label (e.g. "location")
    reg_weight: float = 1e-4
    activity_weight: float = 0.01
    smooth_ms: float = 0.0  # L_neuron smoothing (the metric reports its own smooth_ms as 0)
    balance: str = "none"  # none | param_norm | loss_ema | activity_ema
    # --- optimisation
    epochs: int = 250
    batch_size: int = 64  # trials per step; 0 = full batch (see README: 64 fits better on 08_13)
    lr: float = 1e-2
    alpha_lr_scale: float = 1.0
    grad_clip: float = 1.0
    scheduler: str = "plateau"
    plateau_patience: int = 20
    plateau_factor: float = 0.5
    lr_warmup_epochs: int = 10  # cosine only
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

    def validate(self) -> "FitConfig":
        from eirnn_fast.losses.balancing import BALANCE_MODES

        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        if self.balance not in BALANCE_MODES:
            raise ValueError(f"balance must be one of {BALANCE_MODES}, got {self.balance!r}")
        if self.epochs < 1 or self.batch_size < 0:
            raise ValueError(f"need epochs >= 1 and batch_size >= 0, got {self.epochs}, {self.batch_size}")
        return self

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "FitConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(unknown)}")
        return cls(**values).validate()

    @classmethod
    def from_file(cls, path) -> "FitConfig":
        """Read a TOML or JSON config (a flat table of :class:`FitConfig` fields, optionally under ``[fit]``)."""
        return cls.from_dict(read_config_file(path))


def parse_toml(text: str) -> Dict[str, Any]:
    """``tomllib.loads`` (the ``tomli`` backport on Python 3.10, a dependency there)."""
    try:
        import tomllib
    except ImportError:
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(text)


def read_config_file(path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such config file")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            values = parse_toml(text)
        else:
            values = json.loads(text)
    except Exception as exc:
        raise ValueError(f"{path}: cannot parse config ({type(exc).__name__}: {exc})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: config must be a table/object")
    return values.get("fit", values)
