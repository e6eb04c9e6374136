"""Training protocols: named presets of :class:`~eirnn_fast.train.FitConfig` fields.

``"ours"`` is the dataclass defaults. ``"predecessor"`` is the scheme of
``jamespherman/4factors-rnn-analysis`` @ 6fa65af (MIT) that produced the numbers of seeds 000-002:
``scripts/experiment_phase2.py`` (``train_with_config``, the 17 Phase 2 runs) with
``src/losses.py``, ``src/model.py`` and ``src/data_loader.py``; ``scripts/train_final_model.py``
(its best fit) trains the same way (2000 epochs, patience 300, an attention input embedding and a
learnable h0 on top).

A preset only sets fields; each difference is its own option, so any of them can be combined with
the other protocol (``FitConfig.preset("predecessor", unit_pairing="type")``). This module is the
one place that says what each protocol is; the trainer reads fields, never a protocol name.

======================  ======================================  ======================================
field                   ours                                    predecessor
======================  ======================================  ======================================
reg_form                sum of squares                          mean of squares (compute_L_reg)
activity_form           relative to the data mean, all units    lambda (mean - 10)^2 on recorded units
                                                                + 0.001 max-rate hinge at 100 sp/s
batch_size              64 (L_trial: OT within each batch)      0: full batch, one step per epoch,
                                                                OT over all training trials
split_scheme            joint 70/15/15                          test_first: stratified 15 % test, then
                                                                80/20 by its train_val_split
plateau_metric          val_corr (max)                          val_l_neuron (min), min_lr 1e-5
eval_noise              off                                     on (its noise stays on in eval mode)
lr_warmup_from_zero     warmup (epoch + 1) / warm               epoch / warm (first epoch at lr 0)
cosine_min_factor       0                                       0.01 (get_cosine_schedule_with_warmup)
loss_ema_init / update  first value / every step                1.0 / every epoch (= its one step)
unit_pairing            by E/I type                             by position (unit i <-> neuron i)
lneuron_mask            mean over valid trials                  mean of rates * mask over all trials
clip_percentile         99.99                                   99.5 (preprocess_firing_rates)
ramp_epochs             100                                     0 (L_trial at full weight from epoch 0)
rate_weight             0.1: per-neuron rate term L_rate (log)   0 (only the population mean, L_scale)
======================  ======================================  ======================================

plus the predecessor's own training settings (Phase 2 baseline): fixed alpha 0.5, Adam lr 1e-3,
L_neuron + 0.5 L_trial (its Sinkhorn, ``ltrial_kwargs = {faithful = true}``) balanced by loss EMAs,
lambda_reg 1e-4, no activity term, plateau patience 50 (factor 0.5), 500 epochs, early stop after
100 without improvement, cosine warmup 50 epochs when the cosine schedule is chosen.
"""

from __future__ import annotations

from typing import Any, Dict

PROTOCOLS = ("ours", "predecessor")

_PREDECESSOR: Dict[str, Any] = {
    # --- the protocol differences (README "Fitting SC data: two protocols")
    "reg_form": "mean",  # src/losses.py l. 690-720: (W_rec ** 2).mean() + (W_in ** 2).mean()
    "activity_form": "predecessor",  # losses.py l. 477-510; experiment_phase2.py l. 182, 214: recorded units
    "activity_target_rate": 10.0,  # its target_mean default
    "batch_size": 0,  # experiment_phase2.py l. 176-236: model(all train inputs), one optimizer.step() per epoch
    "split_scheme": "test_first",  # l. 337 train_val_split(val_fraction=0.2), after our test hold-out
    "val_fraction": 0.2,
    "test_fraction": 0.15,
    "plateau_metric": "val_l_neuron",  # experiment_phase2.py l. 128-130, 272: scheduler.step(val L_neuron)
    "plateau_min_lr": 1e-5,
    "eval_noise": True,  # src/model.py adds noise whether or not model.training
    "lr_warmup_from_zero": True,  # losses.py l. 659-687: float(step) / warmup
    "cosine_min_factor": 0.01,  # ... max(min_lr_ratio=0.01, cosine)
    "loss_ema_init": 1.0,  # experiment_phase2.py l. 153, 222-230: loss_ema = {'L_neuron': 1.0, 'L_trial': 1.0}
    "loss_ema_update": "epoch",  # updated once per step, and there is one step per epoch
    "unit_pairing": "position",  # model_rates[:, :, :n_recorded]
    "lneuron_mask": "multiply",  # compute_L_neuron: rates * mask, then .mean(dim=0)
    # --- differences found beside those listed in the issue
    "clip_percentile": 99.5,  # data_loader.py l. 259: preprocess_firing_rates(clip_percentile=99.5)
    "ramp_epochs": 0,  # no curriculum in Phase 2: L_trial at ltrial_scale from the first epoch
    "rate_weight": 0.0,  # its losses match only the population mean rate (L_scale of compute_L_neuron)
    # --- the predecessor's Phase 2 baseline (experiment_phase2.py 'baseline' and its defaults)
    "learnable_alpha": "none",
    "alpha_init": 0.5,
    "noise_scale": 0.1,
    "spectral_radius": 0.9,
    "enforce_ratio": True,
    "min_units": None,  # create_model_from_data: the 4:1 padding of the recorded neurons alone
    "stratify_by": "reward",
    "lr": 1e-3,
    "grad_clip": 1.0,
    "scheduler": "plateau",
    "plateau_patience": 50,
    "plateau_factor": 0.5,
    "lr_warmup_epochs": 50,  # experiment_phase2.py l. 132: config.get('warmup_epochs', 50)
    "epochs": 500,
    "patience": 100,
    "warmup_epochs": 0,
    "balance": "loss_ema",
    "ltrial_weight": 0.5,  # ltrial_scale
    "ltrial_kwargs": {"faithful": True},  # compute_L_trial: eps 0.1, 20 iterations, all trials
    "reg_weight": 1e-4,  # lambda_reg
    "activity_weight": 0.0,  # use_activity_reg False in the baseline
    "lneuron_weight": 1.0,
}


def predecessor_fields() -> Dict[str, Any]:
    """``{field: value}`` the predecessor's protocol sets (a fresh dict); :func:`FitConfig`'s
    ``protocol_fields`` pairs it with "ours" (the same fields at their defaults)."""
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in _PREDECESSOR.items()}


def describe_split(cfg) -> str:
    """One line saying how ``cfg`` splits the trials (printed and saved with each run)."""
    strata = f"stratified by {cfg.stratify_by}" if cfg.stratify_by else "unstratified"
    if cfg.split_scheme == "test_first":
        return (
            f"test trials held out first ({100 * cfg.test_fraction:g} %, {strata}); the rest split "
            f"{100 * (1 - cfg.val_fraction):g}/{100 * cfg.val_fraction:g} train/val by the predecessor's train_val_split"
        )
    train = 1 - cfg.val_fraction - cfg.test_fraction
    return f"{100 * train:g}/{100 * cfg.val_fraction:g}/{100 * cfg.test_fraction:g} train/val/test, {strata}"
