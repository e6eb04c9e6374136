"""The FlyVis GNN training loop, :func:`train_flyvis_gnn` (saalfeldlab/flyvis-gnn ``data_train_flyvis``
semantics; the loss, the regularisers and their annealing: :mod:`eirnn_fast.flyvis.objective`; the run
folder's checkpoints and resume rule: :mod:`eirnn_fast.flyvis.checkpoints`).

Each epoch draws its ``[iterations, batch_size]`` start frames up front from ``RandomState(seed + epoch)``
(i.i.d. uniform; aligned ``k -= k % time_step`` in recurrent epochs), so a resumed epoch sees the same
frames. Iterations per epoch: ``int(n_frames * data_augmentation_loop // batch_size * 0.2)`` as in the
reference (``iterations_per_epoch > 0`` overrides). ``grad_clip_W > 0`` clips the gradient norm of W only.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from eirnn_fast.atomic import atomic_write_json
from eirnn_fast.flyvis import metrics as M
from eirnn_fast.flyvis.build import build_model, make_optimizer
from eirnn_fast.flyvis.checkpoints import (
    FLYVIS_OUTPUTS,
    load_checkpoint,
    reconcile_resume_config,
    save_checkpoint,
    trim_logs,
)
from eirnn_fast.flyvis.objective import annealed_coefficients, data_loss, regularization_terms
from eirnn_fast.flyvis.train_config import FlyVisTrainConfig, epochs_to_run
from eirnn_fast.flyvis.train_data import graph_from_data, load_training_data
from eirnn_fast.runstore import load_json, remove_outputs


def _iterations_per_epoch(config: FlyVisTrainConfig, n_frames: int) -> int:
    if config.iterations_per_epoch > 0:
        return config.iterations_per_epoch
    return max(1, int(n_frames * config.data_augmentation_loop // config.batch_size * 0.2))


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
    data = load_training_data(data)
    graph = graph if graph is not None else graph_from_data(data)
    out = Path(out_dir) if out_dir is not None else None
    state = None
    if out is not None:
        ck = out / "checkpoint.pt"
        if force:  # whatever the folder holds goes (even a checkpoint this version cannot read)
            state, stored = None, ({} if any((out / n).exists() for n in FLYVIS_OUTPUTS) else None)
        else:
            state = load_checkpoint(ck, config.device) if ck.is_file() else None
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
            trim_logs(out, start_epoch, start_iter)
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
                    save_checkpoint(out / "checkpoint.pt", model, opt, epoch, it + 1, config)
            start_iter = 0
            if out is not None:
                # the epoch's line first, then its checkpoint: a kill between re-runs from the previous
                # checkpoint, which drops the line (trim_logs)
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
                save_checkpoint(out / "checkpoint.pt", model, opt, epoch + 1, 0, config)
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
