"""What one node runs, in a worker process. ``run_node(task)`` never raises for an ordinary failure
(it returns ``status: failed`` with the error); a dying worker surfaces as a broken pool in the parent,
which leaves the node in flight so that a restart re-runs it.

Kinds:
* ``flyvis``: ``generate_dataset`` at the config's ``generate`` extent with the node's data seed
  (ground truth fixed per slot when the slot sets ``params_seed``), then ``train_flyvis_gnn`` with the
  node's config, then ``metrics.evaluate`` (connectivity_R2, tau_R2, V_rest_R2, cluster_accuracy,
  test_pearson) + ``training_time_min``.
* ``sc``: ``eirnn_fast.train.fit`` with ``FitConfig(**config, seed=data_seed)`` (a new seed re-splits
  the trials and re-initialises the model); metrics are the result's scalars (test_psth_corr, ...).
* ``fake``: an analytic objective for tests and demos (no torch work): reward peaks at ``optimum``.
"""

from __future__ import annotations

import math
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Dict

from eirnn_fast.flyvis import GenerateConfig, generate_dataset, load_connectome, sample_parameters
from eirnn_fast.flyvis import metrics as M
from eirnn_fast.flyvis.train import FlyVisTrainConfig, load_training_data, train_flyvis_gnn
from eirnn_fast.train import FitConfig, fit


def run_node(task: Dict[str, Any]) -> Dict[str, Any]:
    t0 = time.perf_counter()
    node_dir = Path(task["node_dir"])
    if node_dir.exists():  # a re-run after an interruption starts clean
        shutil.rmtree(node_dir, ignore_errors=True)
    node_dir.mkdir(parents=True, exist_ok=True)
    if task["kind"] != "fake":
        import torch

        torch.set_num_threads(int(task.get("threads") or 1))
    try:
        kind = task["kind"]
        if kind == "flyvis":
            metrics = _run_flyvis(task, node_dir)
        elif kind == "sc":
            metrics = _run_sc(task, node_dir)
        elif kind == "fake":
            metrics = _run_fake(task)
        else:
            raise ValueError(f"unknown kind {kind!r}")
        return {"status": "done", "metrics": metrics, "error": "", "wall_seconds": time.perf_counter() - t0}
    except Exception as exc:  # an ordinary failure is a finished (failed) node
        return {
            "status": "failed",
            "metrics": {},
            "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}",
            "wall_seconds": time.perf_counter() - t0,
        }


def _scalars(d: Dict[str, Any]) -> Dict[str, Any]:
    return {
        k: (float(v) if not isinstance(v, bool) else v)
        for k, v in d.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _run_flyvis(task, node_dir: Path) -> Dict[str, Any]:
    gen = dict(task.get("generate") or {})
    gen.setdefault("plots", False)
    gen["progress"] = False
    params_seed = task.get("params_seed")
    if params_seed is not None:  # the slot's fixed ground-truth "model"; stimuli and noise still new
        cache = Path(task["cache_dir"]) / f"params_e{gen.get('extent', 8)}_s{int(params_seed)}.npz"
        if not cache.exists():
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.stem + f".{os.getpid()}.npz")
            sample_parameters(load_connectome(gen.get("extent", 8)), int(params_seed)).save(tmp)
            os.replace(tmp, cache)
        gen["params_path"] = str(cache)
    data_dir = node_dir / "data"
    t0 = time.perf_counter()
    generate_dataset(GenerateConfig(**gen), int(task["data_seed"]), data_dir)
    t_gen = time.perf_counter() - t0
    cfg_d = dict(task["config"])
    cfg_d.update(data_path=str(data_dir), seed=int(task["data_seed"]), quiet=True, eval_each_epoch=False)
    cfg = FlyVisTrainConfig.from_dict(cfg_d)
    data = load_training_data(str(data_dir))
    t1 = time.perf_counter()
    model, info = train_flyvis_gnn(cfg, data, out_dir=node_dir / "run")
    train_s = time.perf_counter() - t1
    res = M.evaluate(model, data, n_test_frames=cfg.n_test_frames or None)
    metrics = _scalars(res)
    metrics.update(training_time_min=train_s / 60.0, generate_seconds=t_gen)
    if not task.get("keep_data", False):
        shutil.rmtree(data_dir, ignore_errors=True)
    return metrics


def _run_sc(task, node_dir: Path) -> Dict[str, Any]:
    d = dict(task["config"])
    d.update(seed=int(task["data_seed"]), out=str(node_dir / "run"), quiet=True)
    d.setdefault("plots", False)
    res = fit(FitConfig.from_dict(d))
    return _scalars(res)


def _run_fake(task) -> Dict[str, Any]:
    """reward = 1 - sum_k w_k (log10 x_k - log10 opt_k)^2 for numbers (squared difference for other
    kinds when equal/unequal), plus seeded noise; options: ``sleep`` seconds, ``die_on_node`` (the
    worker process exits at once, like a killed job), ``fail_on_node`` (raises)."""
    import numpy as np

    opt = task.get("fake", {}) or {}
    node_id = int(task["node_id"])
    if opt.get("die_on_node") is not None and node_id in _as_list(opt["die_on_node"]):
        os._exit(17)
    if opt.get("fail_on_node") is not None and node_id in _as_list(opt["fail_on_node"]):
        raise RuntimeError(f"fake failure on node {node_id}")
    if opt.get("sleep"):
        time.sleep(float(opt["sleep"]))
    cfg = task["config"]
    loss = 0.0
    for k, target in (opt.get("optimum") or {}).items():
        v = cfg.get(k)
        if isinstance(target, bool) or not isinstance(target, (int, float)):
            loss += 0.0 if v == target else 0.2
        elif isinstance(v, (int, float)) and v > 0 and target > 0:
            loss += 0.5 * (math.log10(v) - math.log10(target)) ** 2
        else:
            loss += 1.0
    rng = np.random.default_rng(int(task["data_seed"]))
    score = 1.0 - loss + float(opt.get("noise", 0.02)) * float(rng.standard_normal())
    return {"score": score, "V_rest_R2": score, "connectivity_R2": 0.9 - 0.1 * loss}


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]
