"""The ``flyvis train`` / ``flyvis evaluate`` commands as functions: train from a YAML config then
evaluate (:func:`flyvis_train_main`, which does not train a finished run again), evaluate a run folder
(:func:`flyvis_evaluate_main`), and rebuild a run from its folder (:func:`load_run`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

from eirnn_fast.atomic import atomic_write_json
from eirnn_fast.flyvis import gnn_plots
from eirnn_fast.flyvis import metrics as M
from eirnn_fast.flyvis.build import build_model
from eirnn_fast.flyvis.checkpoints import LEGACY_DEFAULTS, load_checkpoint, reconcile_resume_config
from eirnn_fast.flyvis.loop import train_flyvis_gnn
from eirnn_fast.flyvis.train_config import FlyVisTrainConfig, epochs_to_run
from eirnn_fast.flyvis.train_data import graph_from_data, load_training_data
from eirnn_fast.runstore import ResumeDecision, announce, load_json


def load_run(run_dir: Union[str, Path]):
    """Rebuild ``(config, model, data)`` from a run folder (config.json + checkpoint.pt)."""
    run = Path(run_dir)
    try:
        saved = json.loads((run / "config.json").read_text())
    except ValueError as exc:  # a truncated or hand-edited file: name it, not json's internals
        raise ValueError(f"{run}/config.json is not valid JSON ({exc}); re-run `eirnn-fast flyvis train`") from None
    cfg = FlyVisTrainConfig.from_dict({**LEGACY_DEFAULTS, **saved})
    if not cfg.data_path:
        raise ValueError(f"{run}/config.json has no data_path")
    data = load_training_data(cfg.data_path)
    model = build_model(cfg, graph_from_data(data))
    model.load_state_dict(load_checkpoint(run / "checkpoint.pt", cfg.device)["model"])
    return cfg, model, data


def flyvis_evaluate_main(
    run_dir: Union[str, Path], analysis: bool = False, train_info: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """Evaluate a trained run: all metrics + plots into ``run_dir`` and ``result.json`` (written
    atomically, last). ``analysis``: also seed 003's analysis tools (:func:`metrics.recovery_analysis`)
    into ``analysis.json`` and the ``analysis`` key of the result. ``train_info``: the training times
    to record (default: those of the run's earlier result.json)."""
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
    state = load_checkpoint(out / "checkpoint.pt", "cpu")
    return res if state["epoch"] >= epochs_to_run(cfg) else None


def train_config(
    config_path: Optional[Union[str, Path]] = None, overrides: Optional[Dict[str, Any]] = None
) -> FlyVisTrainConfig:
    """The YAML's config (the defaults when ``config_path`` is None) with ``overrides`` (field names or
    their old names, e.g. from ``flyvis train``'s flags) on top. A relative ``data_path`` is taken
    relative to the YAML when it comes from the YAML, relative to the working directory when it is an
    override. The keys the YAML set and the overrides all count as set explicitly (resume rule)."""
    cfg = FlyVisTrainConfig.from_yaml(config_path) if config_path is not None else None
    if not overrides:
        return cfg if cfg is not None else FlyVisTrainConfig.from_dict({})
    flat = {k: getattr(cfg, k) for k in cfg._explicit} if cfg is not None else {}
    over = dict(overrides)
    if isinstance(over.get("data_path"), str) and not os.path.isabs(over["data_path"]):
        over["data_path"] = str(Path(over["data_path"]).resolve())
    extra = dict(cfg.extra) if cfg is not None else {}
    source = f"{config_path} + flags" if config_path is not None else "flags"
    return FlyVisTrainConfig.from_dict({**flat, **over, "extra": extra}, source=source)


def flyvis_train_main(
    config_path: Optional[Union[str, Path]],
    out_dir: Union[str, Path],
    *,
    force: bool = False,
    overrides: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Train from a YAML config (``data_path`` names the npz) and/or ``overrides`` (field values, as
    :func:`train_config`), then evaluate; returns result.json's dict. A finished run of the same
    config is not trained again: "already finished, loaded from ..."."""
    cfg = train_config(config_path, overrides)
    if not cfg.data_path:
        where = f" ({config_path})" if config_path is not None else ""
        raise ValueError(
            f"config key 'data_path': required by flyvis_train_main{where}; set it in the YAML or as --data-path"
        )
    out = Path(out_dir)
    if not force and (out / "checkpoint.pt").is_file():
        stored = load_checkpoint(out / "checkpoint.pt", "cpu").get("config", {})
        reconcile_resume_config(cfg, stored, str(out / "checkpoint.pt"))  # a different config refuses here
        done = _finished_result(out, cfg)
        if done is not None:
            decision = ResumeDecision("finished", f"already finished, loaded from {out / 'result.json'}")
            announce(decision, cfg.quiet)
            return done
    _, info = train_flyvis_gnn(cfg, cfg.data_path, out_dir=out, force=force)
    train = {k: info[k] for k in ("train_seconds", "s_per_iteration", "iterations_per_epoch")}
    return flyvis_evaluate_main(out, train_info=train)
