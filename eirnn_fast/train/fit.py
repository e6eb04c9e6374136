"""The SC training loop: one function, :func:`fit`, driven by :class:`FitConfig`.

Data -> split (train/val/test, saved) -> model (recorded neurons mapped to units of their own E/I
type) -> per batch: rates, L_neuron (+ L_trial after the curriculum warm-up, ramped), regularisers,
gradient balancing, clip, Adam -> per epoch: validation PSTH correlation (noise on/off as configured),
LR schedule, best-on-validation state, early stopping, ``metrics.jsonl`` line, ``checkpoint.pt``
(model, optimiser, scheduler, balancer, RNG states: an interrupted run resumes to the same result)
-> at the end the best state is evaluated once on the held-out **test** trials, with the data's
split-half noise ceiling and a data-only reference, into ``result.json`` and plots.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import sys
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

import eirnn_fast
from eirnn_fast.atomic import atomic_torch_save, atomic_write_json, atomic_write_text
from eirnn_fast.data import load_embedded_session, load_session, train_val_split, train_val_test_split
from eirnn_fast.data.embedded import DEFAULT_SESSION
from eirnn_fast.data.splits import trial_labels
from eirnn_fast.losses import (
    REG_FUNCTIONS,
    GradientBalancer,
    get_trial_matching_loss,
    l_activity_predecessor,
    l_activity_relative,
    l_neuron,
    l_rate,
)
from eirnn_fast.losses.trial_matching import OTStats
from eirnn_fast.metrics import noise_ceiling, psth_correlation, psth_correlation_report, rate_error, rate_statistics
from eirnn_fast.models import create_model_from_data
from eirnn_fast.runstore import ResumeDecision, announce, checkpoint_format, decide, load_json, remove_outputs
from eirnn_fast.train.config import ADDED_FIELDS, RUNTIME_FIELDS, W_IN_INITS, FitConfig
from eirnn_fast.train.plots import plot_psths, plot_training_curves
from eirnn_fast.train.protocols import describe_split
from eirnn_fast.units import ei_unit_counts, recorded_unit_index, select_units

logger = logging.getLogger(__name__)

#: what a fit writes into its run folder (and ``eirnn-fast evaluate`` beside it): removed by a forced
#: fresh start, so no output of the old run is left beside the new one
FIT_OUTPUTS = (
    "result.json",
    "checkpoint.pt",
    "config.json",
    "split.json",
    "metrics.jsonl",
    "training_curves.png",
    "psth_test.png",
    "evaluation.json",
    "psth_eval.png",
)
CHECKPOINT_FORMAT = "eirnn_fast.fit/1"

ALPHA_PARAM_NAMES = (
    "_alpha_logit",
    "_alpha_e_logit",
    "_alpha_i_logit",
    "_tau_e_raw",
    "_tau_i_raw",
    "_tau_per_neuron_raw",
)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_fit_data(cfg: FitConfig):
    """The session in ``cfg.data`` or, when None, the embedded one ``cfg.session`` names (08_13 when
    None too), optionally truncated."""
    if cfg.data is None:
        session = load_embedded_session(cfg.session or DEFAULT_SESSION, cfg.clip_percentile)
    else:
        session = load_session(cfg.data, cfg.clip_percentile)
    if cfg.max_trials is not None and cfg.max_trials < len(session):
        session = session.subset(np.arange(cfg.max_trials))
    return session


def build_model(cfg: FitConfig, session):
    """``(model, unit_index)`` for a session: EIRNN sized by ``create_model_from_data`` (the 4:1
    padding of the recorded neurons, grown to ``cfg.min_units`` when smaller) and the
    explicit recorded-neuron -> unit index: each neuron fitted by a unit of its own E/I type
    (``unit_pairing="type"``) or recorded neuron i by unit i (``"position"``, the predecessor's, which
    fits most interneurons with E units). ``w_in_init="seed002"`` maps the U(0, 1) draw of ``W_in``
    affinely onto U(-0.5, 2.0): the numbers seed 002's ``uniform_(W_in, -0.5, 2.0)`` would draw from
    the same RNG state."""
    info = session.get_neuron_info()
    kwargs = dict(
        noise_scale=cfg.noise_scale,
        spectral_radius=cfg.spectral_radius,
        learnable_alpha=cfg.learnable_alpha,
        alpha_init=cfg.alpha_init,
        learnable_tau=cfg.learnable_tau,
        low_rank=cfg.low_rank,
        input_embed_type=cfg.input_embed_type,
        input_embed_dim=cfg.input_embed_dim,
        learnable_h0=cfg.learnable_h0,
        backend=cfg.backend,
        noise_draw="counter",
    )
    n_padded = sum(ei_unit_counts(info["n_exc"], info["n_inh"], cfg.enforce_ratio))
    if cfg.enforce_ratio and cfg.min_units is not None and n_padded < cfg.min_units:
        kwargs["target_total"] = cfg.min_units  # model_kwargs may still set its own
    kwargs.update(cfg.model_kwargs)
    model = create_model_from_data(
        info["n_exc"],
        info["n_inh"],
        session.get_input_dim(),
        enforce_ratio=cfg.enforce_ratio,
        bypass_dale=cfg.bypass_dale,
        **kwargs,
    )
    init_w_in(model, cfg.w_in_init)
    if cfg.unit_pairing == "position":
        n_rec = len(session.neuron_type)
        if n_rec > model.n_total:
            raise ValueError(f"unit_pairing='position': {n_rec} recorded neurons but {model.n_total} units")
        unit_index = torch.arange(n_rec, dtype=torch.long)
    else:
        unit_index = recorded_unit_index(session.neuron_type, model.n_exc, model.n_inh)
    return model, unit_index


def init_w_in(model, kind: str = "uniform") -> None:
    """``W_in`` of a freshly built EIRNN (drawn U(0, 1)): left as is (``"uniform"``, the
    predecessor's) or mapped affinely onto U(-0.5, 2.0) (``"seed002"``, seed 002's Priority 1): the
    numbers its ``nn.init.uniform_(W_in, -0.5, 2.0)`` draws from the same RNG state."""
    if kind not in W_IN_INITS:
        raise ValueError(f"w_in_init must be one of {W_IN_INITS}, got {kind!r}")
    if kind == "seed002":
        with torch.no_grad():
            model.W_in.mul_(2.5).add_(-0.5)


def make_split(cfg: FitConfig, session) -> Dict[str, list]:
    """``{'train', 'val', 'test'}`` sorted trial indices by ``cfg.split_scheme``: ``"joint"`` (one
    stratified pass, :func:`eirnn_fast.data.train_val_test_split`) or ``"test_first"``: the
    stratified test split first, then the predecessor's ``train_val_split`` (per stratum, shuffled
    with ``RandomState(seed)``, ``int(n * val_fraction)`` to validation) on the remaining trials. With
    ``test_fraction = 0`` that is exactly the predecessor's 80/20 split."""
    if cfg.split_scheme == "joint":
        return train_val_test_split(session, cfg.val_fraction, cfg.test_fraction, cfg.stratify_by, cfg.seed)
    held = train_val_test_split(session, 0.0, cfg.test_fraction, cfg.stratify_by, cfg.seed)
    rest = np.asarray(held["train"], dtype=np.int64)
    tr, va = train_val_split(session.subset(rest), cfg.val_fraction, cfg.stratify_by, cfg.seed)
    split = {"train": sorted(int(rest[i]) for i in tr), "val": sorted(int(rest[i]) for i in va), "test": held["test"]}
    if not split["train"]:
        raise ValueError(f"the split leaves no training trials ({len(session)} trials)")
    return split


def _make_optimizer(cfg: FitConfig, model):
    alpha, rest = [], []
    for name, p in model.named_parameters():
        (alpha if name in ALPHA_PARAM_NAMES else rest).append(p)
    groups = [{"params": rest, "lr": cfg.lr, "name": "weights"}]
    if alpha:
        groups.append({"params": alpha, "lr": cfg.lr * cfg.alpha_lr_scale, "name": "alpha"})
    # fused: one pass over all parameters per step and no per-step ``.item()`` of the step count
    # (the single-tensor loop's host sync); same update as the loop, up to rounding
    return torch.optim.Adam(groups, fused=True)


def cosine_factor(cfg: FitConfig, epoch: int) -> float:
    """The cosine schedule's lr factor at ``epoch``: linear warmup over ``lr_warmup_epochs`` from
    ``1 / warm`` (ours) or from 0 (``lr_warmup_from_zero``, the predecessor's ``step / warm``), then
    a half cosine to 0 at ``epochs``, floored at ``cosine_min_factor`` (the predecessor: 0.01)."""
    warm, total = max(cfg.lr_warmup_epochs, 0), cfg.epochs
    if epoch < warm:
        return (epoch if cfg.lr_warmup_from_zero else epoch + 1) / warm
    progress = (epoch - warm) / max(total - warm, 1)
    return max(cfg.cosine_min_factor, 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


def _make_scheduler(cfg: FitConfig, optimizer):
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="max" if cfg.plateau_metric == "val_corr" else "min",
            factor=cfg.plateau_factor,
            patience=cfg.plateau_patience,
            min_lr=cfg.plateau_min_lr,
        )
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: cosine_factor(cfg, epoch))
    return None


def trial_weight_at(cfg: FitConfig, epoch: int) -> float:
    """Curriculum: 0 during ``warmup_epochs``, then linear ramp to ``ltrial_weight`` over ``ramp_epochs``."""
    if cfg.ltrial_weight <= 0 or epoch < cfg.warmup_epochs:
        return 0.0
    if cfg.ramp_epochs <= 0:
        return cfg.ltrial_weight
    return cfg.ltrial_weight * min(1.0, (epoch - cfg.warmup_epochs + 1) / cfg.ramp_epochs)


def loss_terms(
    cfg: FitConfig,
    model,
    rates: torch.Tensor,  # [B, T, N_units] model rates of the batch
    targets: torch.Tensor,  # [B, T, N_recorded]
    mask: torch.Tensor,  # [B, T]
    unit_index: torch.Tensor,  # [N_recorded]
    *,
    target_mean: float,
    w_trial: float = 0.0,
    trial_fn=None,
    trial_kw: Optional[dict] = None,
    tap=None,
    bin_ms: float = 25.0,
    ot_stats=None,
):
    """One batch's loss terms as ``cfg`` defines them: ``(balanced, extra)`` with ``balanced`` the
    data losses by name (``"neuron"``; ``"trial"`` when ``w_trial > 0``), unweighted (the balancer
    weighs them), and ``extra`` the regularisers and the per-neuron rate term already weighted
    (``"reg"``; ``"rate"``, ``"activity"`` when their weights are > 0). ``tap(name, recorded_rates)`` routes a loss's view of the rates through the
    balancer (identity by default). ``target_mean``: the training trials' mean rate."""
    tap = tap or (lambda name, x: x)
    rec = None  # [B, T, N_recorded], gathered only for the terms that need every trial's recorded units

    def recorded():
        nonlocal rec
        if rec is None:
            rec = select_units(rates, unit_index)
        return rec

    # L_neuron selects the recorded units' columns of its PSTH (same numbers as on the gathered
    # rates, and the same tap statistics: the hidden units' gradient is 0)
    balanced = {
        "neuron": l_neuron(
            tap("neuron", rates),
            targets,
            mask,
            smooth_ms=cfg.smooth_ms,
            mask_mode=cfg.lneuron_mask,
            unit_index=unit_index,
        )
    }
    if trial_fn is not None and w_trial > 0:
        kw = dict(trial_kw or {})
        if ot_stats is not None:  # Sinkhorn convergence, accumulated on the device (read once per epoch)
            kw["ot_stats"] = ot_stats
        if kw.get("feature", "pop_mean") == "pop_mean" and kw.get("recorded_indices") is None:
            # the population mean over the recorded units is one matrix-vector product on all units
            balanced["trial"] = trial_fn(tap("trial", rates), targets, mask=mask, recorded_indices=unit_index, **kw)
        else:
            balanced["trial"] = trial_fn(tap("trial", recorded()), targets, mask=mask, **kw)
    extra = {"reg": cfg.reg_weight * REG_FUNCTIONS[cfg.reg_form](model)}
    if cfg.rate_weight > 0:
        if cfg.rate_form == "log":  # per-neuron means: selected after the mean, as L_neuron
            extra["rate"] = cfg.rate_weight * l_rate(rates, targets, mask, form="log", unit_index=unit_index)
        else:
            extra["rate"] = cfg.rate_weight * l_rate(recorded(), targets, mask, form=cfg.rate_form, bin_ms=bin_ms)
    if cfg.activity_weight > 0:
        target = cfg.activity_target_rate if cfg.activity_target_rate is not None else target_mean
        if cfg.activity_form == "predecessor":
            extra["activity"] = l_activity_predecessor(recorded(), lambda_mean=cfg.activity_weight, target_mean=target)
        else:
            extra["activity"] = cfg.activity_weight * l_activity_relative(rates, target, mask)
    return balanced, extra


@torch.no_grad()
def predict(model, inputs: torch.Tensor, noise: bool, batch: int = 512, seed: Optional[int] = None) -> torch.Tensor:
    """Model rates ``[K, T, N_units]`` for ``inputs`` in chunks; with noise and ``seed`` the draw is
    reproducible and leaves the global RNG untouched."""
    was_training = model.training
    model.eval()
    state = torch.random.get_rng_state() if seed is not None else None
    if seed is not None:
        torch.manual_seed(seed)
    try:
        out = [model(inputs[i : i + batch], noise=noise)[0] for i in range(0, inputs.shape[0], batch)]
    finally:
        if state is not None:
            torch.random.set_rng_state(state)
        model.train(was_training)
    return torch.cat(out) if out else inputs.new_zeros((0, inputs.shape[1], model.n_total))


def evaluate_rates(rates, targets, mask, unit_index, smooth_ms: float = 0.0, bin_ms: float = 25.0) -> dict:
    """PSTH correlation report, scale statistics and the per-neuron rate error (``"rate_error"``)."""
    rep = psth_correlation_report(rates, targets, mask, smooth_ms=smooth_ms, bin_ms=bin_ms, unit_index=unit_index)
    rep.update(rate_statistics(rates, targets, mask, unit_index=unit_index))
    rep["rate_error"] = rate_error(rates, targets, mask, unit_index=unit_index)
    return rep


class _Interrupted(Exception):
    pass


def fit(cfg: FitConfig, *, resume: bool = True, force: bool = False, _interrupt_after: Optional[int] = None) -> dict:
    """Train, select on validation, report on test. Writes into ``cfg.out``: ``config.json``,
    ``split.json``, ``metrics.jsonl``, ``checkpoint.pt``, ``result.json``, ``training_curves.png``,
    ``psth_test.png``. Returns the result dict.

    The run folder rule (:mod:`eirnn_fast.runstore`): a folder holding a run of the same config
    resumes from its checkpoint (same result as an uninterrupted run; ``resume=False`` starts that run
    afresh), a finished one returns its ``result.json`` ("already finished, loaded from ..."); a
    different config raises :class:`~eirnn_fast.runstore.RunFolderConflict` naming the differing keys,
    unless ``force``, which removes the old run's outputs (:data:`FIT_OUTPUTS`) first."""
    cfg.validate()
    t_start = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    session = load_fit_data(cfg)  # before creating OUT: a bad data file leaves nothing behind
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    split = make_split(cfg, session)
    data = session.get_all_trials()
    inputs, targets, mask = data["inputs"], data["targets"], data["mask"]
    tr, va, te = (torch.as_tensor(split[k], dtype=torch.long) for k in ("train", "val", "test"))
    if len(va) == 0:
        va = tr  # tiny sessions: select on training trials (recorded in the result)
    target_mean = float(targets[tr].mean())

    seed_everything(cfg.seed)
    model, unit_index = build_model(cfg, session)
    optimizer = _make_optimizer(cfg, model)
    scheduler = _make_scheduler(cfg, optimizer)
    balancer = GradientBalancer(("neuron", "trial"), mode=cfg.balance, loss_ema_init=cfg.loss_ema_init)
    trial_fn, trial_impl = (None, None)
    ot_stats = None  # convergence of L_trial's Sinkhorn solves, reported per epoch in metrics.jsonl
    if cfg.ltrial_weight > 0:
        trial_fn, trial_impl = get_trial_matching_loss()
        if not cfg.ltrial_kwargs.get("faithful", False):
            ot_stats = OTStats()
    neuron_type = torch.as_tensor(session.neuron_type)
    groups = None
    if cfg.ltrial_group_by:
        if cfg.ltrial_group_by not in session.conditions:
            raise ValueError(
                f"ltrial_group_by={cfg.ltrial_group_by!r} is not a trial label of this session "
                f"(labels: {sorted(session.conditions)})"
            )
        labels = trial_labels(session, cfg.ltrial_group_by)  # NaN -> -1, as the splits read it
        groups = torch.as_tensor(np.unique(labels, return_inverse=True)[1].reshape(-1), dtype=torch.long)  # [K]

    config_dict = cfg.to_dict()
    start_epoch, history = 0, []
    best = {"val_corr": -float("inf"), "epoch": -1, "state": copy.deepcopy(model.state_dict())}
    bad_epochs = 0
    ckpt_path = out / "checkpoint.pt"
    # force: whatever the folder holds goes (even a checkpoint this version cannot read)
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False) if ckpt_path.is_file() and not force else None
    if ckpt is not None and ckpt.get("format", CHECKPOINT_FORMAT) != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{ckpt_path}: checkpoint format {checkpoint_format(ckpt)!r} is not {CHECKPOINT_FORMAT!r} "
            "(another version or another command wrote it); use --force to start afresh there"
        )
    # the run folder's config: the checkpoint's (the state it holds) or, killed before the first
    # epoch ended, config.json (written first)
    if force:
        stored = {} if any((out / name).exists() for name in FIT_OUTPUTS) else None
    else:
        stored = (ckpt.get("config") or {}) if ckpt is not None else load_json(out / "config.json")
    finished = ckpt is not None and bool(ckpt.get("finished", False))
    decision = decide(
        out,
        config_dict,
        stored,
        finished=finished and (out / "result.json").is_file(),
        force=force,
        stale_outputs=FIT_OUTPUTS,
        legacy_defaults=ADDED_FIELDS,
        free_keys=RUNTIME_FIELDS,
        source=out / "result.json" if finished else ckpt_path,
    )
    if decision.action != "fresh" and not resume:  # --no-resume: the same run again, from scratch
        remove_outputs(out, FIT_OUTPUTS)
        decision, ckpt = ResumeDecision("fresh", f"starting afresh in {out}"), None
    if decision.action == "finished":
        announce(decision, cfg.quiet)
        logger.info("%s", decision.message)
        return json.loads((out / "result.json").read_text())
    skip_training = False
    if decision.action == "resume" and ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        balancer.load_state_dict(ckpt["balancer"])
        start_epoch, history, best, bad_epochs = ckpt["epoch"], ckpt["history"], ckpt["best"], ckpt["bad_epochs"]
        torch.random.set_rng_state(ckpt["rng"]["torch"])
        np.random.set_state(ckpt["rng"]["numpy"])
        random.setstate(ckpt["rng"]["python"])
        # trained to the end but killed before result.json: evaluate the saved best state, train no more
        skip_training = finished
        announce(
            ResumeDecision("resume", f"{decision.message} at epoch {start_epoch}" + (" (training done)" * finished)),
            cfg.quiet,
        )
        logger.info("resumed from %s at epoch %d", ckpt_path, start_epoch)
    atomic_write_json(out / "config.json", config_dict)
    atomic_write_json(
        out / "split.json",
        {
            **split,
            "seed": cfg.seed,
            "stratify_by": cfg.stratify_by,
            "scheme": cfg.split_scheme,
            "description": describe_split(cfg),
            "source": session.meta.get("source", ""),
        },
        indent=None,
    )
    # rewritten from the checkpoint's history on resume (a line a kill cut off is dropped)
    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(line) + "\n" for line in history))

    params = [p for p in model.parameters() if p.requires_grad]
    batch = cfg.batch_size or len(tr)
    show = not (cfg.quiet or not sys.stderr.isatty())
    from tqdm.auto import tqdm

    epochs = range(start_epoch, start_epoch if skip_training else cfg.epochs)
    bar = tqdm(epochs, desc="fit", disable=not show, initial=start_epoch, total=cfg.epochs)
    stopped_early = skip_training and len(history) < cfg.epochs
    warned_ot = False
    # (model, optimizer) states before the last update, undone if it led to a runaway (not checkpointed:
    # a runaway on the first step after a resume is skipped without undoing the update before it)
    last_good = None
    for epoch in bar:
        t0 = time.perf_counter()
        w_trial = trial_weight_at(cfg, epoch)
        balancer.set_weights({"neuron": cfg.lneuron_weight, "trial": w_trial})
        model.train()
        perm = tr[torch.randperm(len(tr), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))]
        sums: Dict[str, float] = {}
        n_steps = 0
        for i in range(0, len(perm), batch):
            idx = perm[i : i + batch]
            if len(idx) < 2:
                continue
            rates, _ = model(inputs[idx])  # [B, T, N_units], noise on
            trial_kw = {"neuron_type": neuron_type, "backend": cfg.backend, **cfg.ltrial_kwargs}
            if groups is not None:
                trial_kw["groups"] = groups[idx]
            losses, extras = loss_terms(
                cfg,
                model,
                rates,
                targets[idx],
                mask[idx],
                unit_index,
                target_mean=target_mean,
                w_trial=w_trial,
                trial_fn=trial_fn,
                trial_kw=trial_kw,
                tap=balancer.tap,
                bin_ms=session.bin_size_ms,
                ot_stats=ot_stats,
            )
            extra = sum(extras.values())
            optimizer.zero_grad(set_to_none=True)
            update_ema = cfg.loss_ema_update == "step" or n_steps == 0
            stats = balancer.backward(losses, extra=extra, params=params, update_loss_ema=update_ema)
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip else float("inf"))
            if not math.isfinite(float(gnorm)):
                # the dynamics of this batch ran away (rates -> inf: the fitted networks have spectral
                # radii ~2, held in check only by the softplus floor), and its update would turn every
                # parameter into NaN. The previous update led here: undo it and halve the learning rate
                optimizer.zero_grad(set_to_none=True)
                sums["runaway_steps"] = sums.get("runaway_steps", 0.0) + 1.0
                if last_good is not None:
                    model.load_state_dict(last_good[0])
                    optimizer.load_state_dict(last_good[1])
                    for group in optimizer.param_groups:
                        group["lr"] *= 0.5
                    last_good = None
                continue
            last_good = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()))
            optimizer.step()
            for k, v in losses.items():
                sums[f"train_l_{k}"] = sums.get(f"train_l_{k}", 0.0) + float(v.detach())
            sums["train_extra"] = sums.get("train_extra", 0.0) + float(extra.detach())
            for k, v in extras.items():
                sums[f"train_{k}"] = sums.get(f"train_{k}", 0.0) + float(v.detach())
            sums["batch_trials"] = sums.get("batch_trials", 0.0) + len(idx)
            sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(gnorm)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n_steps += 1
        train_time = time.perf_counter() - t0

        val_rates = predict(model, inputs[va], noise=cfg.eval_noise, seed=cfg.seed + 7 if cfg.eval_noise else None)
        val_corr = psth_correlation(val_rates, targets[va], mask[va], unit_index=unit_index)
        with torch.no_grad():
            val_lneuron = float(
                l_neuron(select_units(val_rates, unit_index), targets[va], mask[va], mask_mode=cfg.lneuron_mask)
            )
        if not math.isfinite(val_corr):
            val_corr_sel = -float("inf")
        else:
            val_corr_sel = val_corr
        improved = val_corr_sel > best["val_corr"]
        if improved:
            best = {"val_corr": val_corr_sel, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
            bad_epochs = 0
        else:
            bad_epochs += 1
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if cfg.plateau_metric == "val_l_neuron":
                scheduler.step(val_lneuron if math.isfinite(val_lneuron) else float("inf"))
            else:
                scheduler.step(val_corr_sel if math.isfinite(val_corr_sel) else -1.0)
        elif scheduler is not None:
            scheduler.step()
        line = {
            "epoch": epoch,
            "stage": "warmup" if epoch < cfg.warmup_epochs else "full",
            "lambda_trial": w_trial,
            **{k: v / max(n_steps, 1) for k, v in sums.items() if k != "runaway_steps"},
            "runaway_steps": int(sums.get("runaway_steps", 0)),
            "val_psth_corr": val_corr,
            "val_l_neuron": val_lneuron,
            "lr": optimizer.param_groups[0]["lr"],
            "steps": n_steps,
            "train_seconds": train_time,
            "epoch_seconds": time.perf_counter() - t0,
            "best_epoch": best["epoch"],
        }
        if ot_stats is not None and ot_stats.solves:
            ot = ot_stats.read()  # one host sync per epoch
            line.update({f"ltrial_{k}": v for k, v in ot.items()})
            if ot["ot_unconverged"] and not warned_ot:
                warned_ot = True
                logger.warning(
                    "epoch %d: %d of %d L_trial Sinkhorn solves did not converge (largest marginal error %.3g); "
                    "raise ltrial_kwargs max_iter or eps. Counted per epoch in metrics.jsonl (ltrial_ot_unconverged)",
                    epoch,
                    ot["ot_unconverged"],
                    ot["ot_solves"],
                    ot["ot_max_marginal_error"],
                )
        history.append(line)
        with open(out / "metrics.jsonl", "a") as fh:  # a log: the checkpoint below is the record
            fh.write(json.dumps(line) + "\n")
        stop = cfg.patience and bad_epochs >= cfg.patience
        _save_checkpoint(
            ckpt_path,
            model,
            optimizer,
            scheduler,
            balancer,
            epoch + 1,
            history,
            best,
            bad_epochs,
            config_dict,
            unit_index,
            session,
            finished=False,
        )
        bar.set_postfix(val_corr=f"{val_corr:.3f}", best=f"{best['val_corr']:.3f}")
        if stop:
            stopped_early = True
            break
        if _interrupt_after is not None and epoch + 1 >= _interrupt_after:
            raise _Interrupted(f"interrupted after epoch {epoch + 1} (test hook)")
    bar.close()

    # ---- final: best-on-validation state, evaluated once on the held-out test trials
    model.load_state_dict(best["state"])
    test_rates = predict(model, inputs[te], noise=cfg.eval_noise, seed=cfg.seed + 11 if cfg.eval_noise else None)
    test = evaluate_rates(test_rates, targets[te], mask[te], unit_index)
    ceiling = noise_ceiling(targets[te], mask[te], n_splits=20, seed=cfg.seed)
    # data-only reference: the training trials' PSTH as a "model" of the test PSTH
    train_psth_as_model = targets[tr].mean(0, keepdim=True).expand(2, -1, -1)
    data_reference = psth_correlation(train_psth_as_model, targets[te], None)
    val_final = evaluate_rates(
        predict(model, inputs[va], noise=cfg.eval_noise, seed=cfg.seed + 7 if cfg.eval_noise else None),
        targets[va],
        mask[va],
        unit_index,
    )
    result = {
        "test_psth_corr": test["psth_corr"],
        "noise_ceiling": ceiling["ceiling"],
        "test_split_half_r": ceiling["split_half_r"],
        "test_rate_error_median": test["rate_error"]["median_abs_log_ratio"],
        "test_frac_off_2x": test["rate_error"]["frac_off_2x"],
        "data_reference_train_vs_test": data_reference,
        "best_val_psth_corr": best["val_corr"],
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "stopped_early": bool(stopped_early),
        "wall_seconds": None,  # filled below
        "n_train": len(split["train"]),
        "n_val": len(split["val"]),
        "n_test": len(split["test"]),
        "split_description": describe_split(cfg),
        "protocol": cfg.protocol,
        "protocol_overrides": cfg.protocol_overrides(),
        "test": test,
        "val": val_final,
        "noise_ceiling_detail": ceiling,
        "metric_definition": {
            "psth": "mean over recorded neurons of Pearson r of trial-averaged PSTHs",
            "smooth_ms": 0.0,
            "bin_ms": session.bin_size_ms,
            "eval_noise": cfg.eval_noise,
            "selection": "best validation epoch; reported on test trials",
        },
        "model": {
            "n_exc": model.n_exc,
            "n_inh": model.n_inh,
            "unit_index": unit_index.tolist(),
            "unit_pairing": cfg.unit_pairing,
            "recorded_fitted_by_other_type": int(
                ((torch.as_tensor(session.neuron_type) == 2) != (unit_index >= model.n_exc)).sum()
            ),
            "alpha": model.get_alpha_values(),
        },
        "session": session.summary(),
        "ltrial_impl": trial_impl,
        "backend": _backend_summary(),
    }
    _save_checkpoint(
        ckpt_path,
        model,
        optimizer,
        scheduler,
        balancer,
        len(history),
        history,
        best,
        bad_epochs,
        config_dict,
        unit_index,
        session,
        finished=True,
    )
    if cfg.plots:
        try:
            plot_training_curves(history, out / "training_curves.png")
            plot_psths(
                select_units(test_rates, unit_index),
                targets[te],
                session,
                out / "psth_test.png",
                title=f"test trials (n={len(te)}), PSTH r = {test['psth_corr']:.3f} (noise ceiling "
                f"{ceiling['ceiling']:.3f}), rate error median {test['rate_error']['median_abs_log_ratio']:.3f}",
                mask=mask[te],
            )
        except Exception as exc:  # plots never lose a finished run
            logger.warning("plotting failed: %s", exc)
    result["wall_seconds"] = time.perf_counter() - t_start
    atomic_write_json(out / "result.json", _jsonable(result))  # its existence means "done" to the suites
    return result


def _backend_summary() -> dict:
    info = eirnn_fast.backend_info()
    return {k: info.get(k) for k in ("compiled", "cpu_kernels", "cuda_kernels", "torch")}


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _save_checkpoint(
    path: Path,
    model,
    optimizer,
    scheduler,
    balancer,
    epoch,
    history,
    best,
    bad_epochs,
    config,
    unit_index,
    session,
    finished: bool,
) -> None:
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "balancer": balancer.state_dict(),
        "epoch": epoch,
        "history": history,
        "best": best,
        "bad_epochs": bad_epochs,
        "config": config,
        "unit_index": unit_index,
        "neuron_type": session.neuron_type.tolist(),
        "model_sizes": {"n_exc": model.n_exc, "n_inh": model.n_inh, "n_inputs": model.n_inputs},
        "rng": {"torch": torch.random.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        "finished": finished,
    }
    atomic_torch_save(path, ckpt)  # an interruption never leaves a half-written checkpoint
