"""Synthetic SC sessions from a ground-truth E-I teacher network, in the exporter's MAT format.

Default shape = the seeds' 08_15 session (not public): 1043 trials, 41 E + 13 I recorded neurons
(types interleaved at random, as the exporter does not sort), 219 bins of 25 ms, 14 inputs, mean
~13.6 sp/s. Trial structure follows ``export_for_rnn.m``: fixation from 0 ms, a target (location 1-4,
identity face/nonface/bullseye, salience for bullseyes) from 400-800 ms, go at fixation offset, a
200-ms reward pulse after the saccade, eye channels all zero (as in the public export). Rates are
those of an :class:`eirnn_fast.EIRNN` teacher (noise on), rescaled through ``rate_scale``/
``rate_baseline`` to the target mean, turned into Poisson counts per 25-ms bin; a rare fraction of
bins gets a burst of 15-19 spikes (outliers like the real file's 760 sp/s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from eirnn_fast.data.mat import write_mat
from eirnn_fast.data.session import _INPUT_VARS_AFTER, DEFAULT_CLIP_PERCENTILE, load_session, session_from_variables
from eirnn_fast.models import EIRNN


def _task_inputs(rng: np.random.Generator, n_trials: int, n_bins: int, bin_ms: float):
    """MATLAB-order input arrays and trial labels for ``n_trials`` synthetic trials."""
    t = (np.arange(n_bins) + 0.5) * bin_ms - 200.0  # bin centres, ms from fixation onset
    K, T = n_trials, n_bins
    shape = (T, K)
    fix = np.zeros(shape)
    go = np.zeros(shape)
    rew = np.zeros(shape)
    loc_in = np.zeros((4, T, K))
    feats = {k: np.zeros(shape) for k in ("face", "nonface", "bullseye", "high", "low")}
    location = rng.integers(1, 5, K).astype(np.float64)
    identity = rng.choice([1, 2, 3], K, p=[0.18, 0.18, 0.64]).astype(np.float64)
    salience = np.where(identity == 3, rng.integers(1, 3, K), 0).astype(np.float64)
    reward = (rng.random(K) < 0.5).astype(np.float64)
    probability = (rng.random(K) < 0.5).astype(np.float64)
    span = max(float(t[-1]) - 700.0, 300.0)  # leave the 500-ms post-reward window
    duration = np.zeros(K)
    for k in range(K):
        target_on = rng.uniform(0.09, 0.17) * span
        fix_off = target_on + rng.uniform(0.1, 0.25) * span
        reward_t = min(fix_off + rng.uniform(0.05, 0.12) * span, span)
        duration[k] = reward_t
        fix[:, k] = (t >= 0) & (t < fix_off)
        go[:, k] = t >= fix_off
        rew[:, k] = (t >= reward_t) & (t < reward_t + 200.0)
        on = t >= target_on
        loc_in[int(location[k]) - 1, :, k] = on
        feats[("face", "nonface", "bullseye")[int(identity[k]) - 1]][:, k] = on
        if salience[k] == 1:
            feats["high"][:, k] = on
        elif salience[k] == 2:
            feats["low"][:, k] = on
    variables = {
        "input_fixation_on": fix,
        "input_target_loc": loc_in,
        "input_go_signal": go,
        "input_reward_on": rew,
        "input_eye_x": np.zeros(shape),
        "input_eye_y": np.zeros(shape),
        "input_is_face": feats["face"],
        "input_is_nonface": feats["nonface"],
        "input_is_bullseye": feats["bullseye"],
        "input_high_salience": feats["high"],
        "input_low_salience": feats["low"],
        "trial_duration_ms": duration.reshape(-1, 1),
        "trial_reward": reward.reshape(-1, 1),
        "trial_probability": probability.reshape(-1, 1),
        "trial_identity": identity.reshape(-1, 1),
        "trial_salience": salience.reshape(-1, 1),
        "trial_location": location.reshape(-1, 1),
        "time_axis": t.reshape(1, -1),
    }
    return variables


def make_synthetic_variables(
    seed: int = 0,
    n_trials: int = 1043,
    n_exc: int = 41,
    n_inh: int = 13,
    n_time_bins: int = 219,
    mean_rate: float = 13.6,
    outlier_fraction: float = 2e-5,
    bin_size_ms: float = 25.0,
    interleave: bool = True,
    return_teacher: bool = False,
):
    """MAT variables (MATLAB order) of a synthetic session; with ``return_teacher`` also
    ``(teacher EIRNN, recorded-neuron -> teacher-unit index)``."""
    import torch

    rng = np.random.default_rng(seed)
    variables = _task_inputs(rng, n_trials, n_time_bins, bin_size_ms)
    N = n_exc + n_inh
    K, T = n_trials, n_time_bins
    inputs = np.zeros((K, T, 14), dtype=np.float32)  # model order, built like the loader does
    inputs[:, :, 0] = variables["input_fixation_on"].T
    inputs[:, :, 1:5] = variables["input_target_loc"].transpose(2, 1, 0)
    for i, name in enumerate(_INPUT_VARS_AFTER, start=5):  # the loader's channel order
        inputs[:, :, i] = variables[name].T

    gen_state, np_state = torch.random.get_rng_state(), np.random.get_state()
    try:
        torch.manual_seed(seed)
        np.random.seed(seed)  # EIRNN's weight init draws from numpy's global RNG
        teacher = EIRNN(
            n_exc=n_exc,
            n_inh=n_inh,
            n_inputs=14,
            noise_scale=0.3,
            learnable_alpha="neuron",
            alpha_e_init=0.4,
            alpha_i_init=0.7,
            noise_draw="batched",
        )
        with torch.no_grad():
            teacher.W_in.mul_(2.0).sub_(0.5)  # mixed-sign, stronger drive: inputs modulate the rates
            rates = torch.cat([teacher(torch.from_numpy(inputs[i : i + 256]))[0] for i in range(0, K, 256)])
            c = mean_rate / max(float(rates.mean()), 1e-6)
            teacher.rate_scale.mul_(c)
            teacher.rate_baseline.mul_(c)
            rates = rates * c  # == the rescaled teacher's rates for the same noise
    finally:
        torch.random.set_rng_state(gen_state)
        np.random.set_state(np_state)
    lam = rates.numpy().astype(np.float64) * (bin_size_ms / 1000.0)  # expected counts [K, T, N_units]

    types = np.array([1] * n_exc + [2] * n_inh)
    order = rng.permutation(N) if interleave else np.arange(N)  # recorded neuron j = teacher unit order[j]
    counts = rng.poisson(lam[:, :, order]).astype(np.float64)  # [K, T, N]
    n_out = rng.binomial(counts.size, outlier_fraction) if outlier_fraction > 0 else 0
    if n_out:
        flat = rng.choice(counts.size, n_out, replace=False)
        counts.reshape(-1)[flat] = rng.integers(15, 20, n_out)
    rates_out = counts / (bin_size_ms / 1000.0)
    variables.update(
        {
            "firing_rates": rates_out.transpose(2, 1, 0),  # N x T x K
            "neuron_type": types[order].astype(np.float64).reshape(-1, 1),
            "neuron_ids": (np.arange(N) + 1.0).reshape(-1, 1),
            "brain_area": np.ones((N, 1)),
            "n_trials": np.array([[float(K)]]),
            "n_neurons": np.array([[float(N)]]),
            "n_time_bins": np.array([[float(T)]]),
            "bin_size_ms": np.array([[float(bin_size_ms)]]),
            "session_name": f"synthetic_seed{seed}",
            "export_date": "1970-01-01 00:00:00",
            "pipeline_version": "synthetic-1",
        }
    )
    if return_teacher:
        return variables, teacher, torch.as_tensor(order)
    return variables


def make_synthetic_session(
    path: Optional[Union[str, Path]] = None,
    seed: int = 0,
    fmt: str = "v7.3",
    clip_percentile: Optional[float] = DEFAULT_CLIP_PERCENTILE,
    **kwargs,
):
    """A synthetic :class:`~eirnn_fast.data.SCSession` (see module docstring; ``kwargs`` go to
    :func:`make_synthetic_variables`: ``n_trials``, ``n_exc``, ``n_inh``, ``n_time_bins``,
    ``mean_rate``, ``outlier_fraction``, ...). With ``path`` the session is also written there as a
    MAT file of format ``fmt`` (``'v5'`` or ``'v7.3'``, MATLAB-style reversed axes) and loaded back
    through the normal loader."""
    variables = make_synthetic_variables(seed=seed, **kwargs)
    if path is None:
        return session_from_variables(variables, source=f"synthetic(seed={seed})", clip_percentile=clip_percentile)
    write_mat(path, variables, fmt=fmt)
    return load_session(path, clip_percentile=clip_percentile)
