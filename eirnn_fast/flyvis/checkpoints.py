"""A ``flyvis train`` run folder's checkpoint and resume rules: what the folder holds
(:data:`FLYVIS_OUTPUTS`), the checkpoint format, which config keys may change on resume
(:data:`RESUME_FREE_KEYS`), what an old checkpoint meant by a key it lacks (:data:`LEGACY_DEFAULTS`),
and :func:`reconcile_resume_config` (the rule of :mod:`eirnn_fast.runstore` for this config)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict

import torch

from eirnn_fast.atomic import atomic_torch_save
from eirnn_fast.flyvis.train_config import FlyVisTrainConfig
from eirnn_fast.runstore import RunFolderConflict, checkpoint_format, config_diff, trim_jsonl

# config fields that may change between an interrupted run and its resume (bookkeeping only)
RESUME_FREE_KEYS = frozenset({"quiet", "log_every", "checkpoint_every", "n_epochs", "eval_each_epoch", "data_path"})
# what a checkpoint written before a field existed meant by it (the field's old behaviour)
LEGACY_DEFAULTS = {
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
    """``values`` restricted to the config's fields (``extra`` and :data:`RESUME_FREE_KEYS` left out) as
    JSON would store them (tuples -> lists)."""
    names = {f.name for f in dataclasses.fields(config)} - RESUME_FREE_KEYS - {"extra"}
    return json.loads(json.dumps({k: v for k, v in values.items() if k in names}, default=str))


def _legacy_defaults(config: FlyVisTrainConfig) -> Dict[str, Any]:
    """What a stored config that lacks a key meant by it: its old meaning (:data:`LEGACY_DEFAULTS`) or,
    for a key added without changing what the code did, the field's default."""
    defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
    return _comparable(config, {**defaults, **LEGACY_DEFAULTS})


def reconcile_resume_config(config: FlyVisTrainConfig, stored: Dict[str, Any], where: str) -> list:
    """Make ``config`` continue the run whose config is ``stored`` (a checkpoint's or config.json's dict).

    Keys the stored config lacks take their old meaning (:data:`LEGACY_DEFAULTS`). A key the caller set
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
        setattr(config, k, stored.get(k, LEGACY_DEFAULTS.get(k, legacy.get(k))))
    config.validate()
    rest = {k: v for k, v in diff.items() if k not in adopted}
    if rest:
        raise RunFolderConflict(Path(where).parent if Path(where).suffix else where, rest)
    return adopted


def save_checkpoint(path: Path, model, opt, epoch: int, iteration: int, config) -> None:
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


def load_checkpoint(path: Path, device) -> Dict[str, Any]:
    state = torch.load(path, map_location=device, weights_only=False)
    fmt = checkpoint_format(state)
    if fmt not in READABLE_FORMATS:
        raise ValueError(f"{path}: checkpoint format {fmt!r} is not one this version reads ({READABLE_FORMATS})")
    return state


def trim_logs(out: Path, epoch: int, iteration: int) -> None:
    """On resume from a checkpoint at (epoch, iteration): drop the log lines written after it (they are
    logged again) and any line a kill cut off, so every line of the logs describes saved work."""
    trim_jsonl(out / "history.jsonl", lambda r: (r.get("epoch", 0), r.get("iteration", 0)) <= (epoch, iteration))
    trim_jsonl(out / "metrics.jsonl", lambda r: r.get("epoch", 0) < epoch)
