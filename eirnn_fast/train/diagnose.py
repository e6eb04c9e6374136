"""Diagnostics before training (seed 002, Priority 0) and evaluation of a finished run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from eirnn_fast.atomic import atomic_write_json
from eirnn_fast.data.session import INPUT_CHANNELS


def diagnose(
    session,
    seed: int = 0,
    n_trials: int = 10,
    outlier_threshold: float = 200.0,
    w_in_init: str = "uniform",
    **model_kwargs,
) -> dict:
    """Data statistics and outliers, the untrained model's response to the actual / zero / 10x
    inputs of the first ``n_trials`` trials, the input modulation ratio, temporal std model vs data,
    weight statistics and spectral radius, per-channel input statistics. JSON-ready dict.
    ``w_in_init``: as ``FitConfig.w_in_init`` (``"seed002"``: U(-0.5, 2.0))."""
    from eirnn_fast.models import create_model_from_data
    from eirnn_fast.train.fit import init_w_in
    from eirnn_fast.units import recorded_unit_index

    data = session.get_all_trials()
    targets, inputs = data["targets"].double(), data["inputs"]
    psth = targets.mean(0)  # [T, N]
    report = {"session": session.summary()}
    report["data"] = {
        "shape": list(targets.shape),
        "mean": float(targets.mean()),
        "std": float(targets.std()),
        "max": float(targets.max()),
        "min": float(targets.min()),
        "p99": float(np.percentile(targets.numpy(), 99)),
        "outlier_threshold": outlier_threshold,
        "n_above_threshold": int((targets > outlier_threshold).sum()),
        "fraction_above_threshold": float((targets > outlier_threshold).double().mean()),
        "psth_temporal_std_mean": float(psth.std(0).mean()) if psth.shape[0] > 1 else 0.0,
        "psth_neuron_std_mean": float(psth.std(1).mean()) if psth.shape[1] > 1 else 0.0,
        "per_neuron_mean_rate": [float(v) for v in targets.mean((0, 1))],
    }
    info = session.get_neuron_info()
    state = torch.random.get_rng_state(), np.random.get_state()
    torch.manual_seed(seed)
    np.random.seed(seed)
    try:
        kwargs = {"noise_draw": "batched", **model_kwargs}
        model = create_model_from_data(info["n_exc"], info["n_inh"], session.get_input_dim(), **kwargs)
        init_w_in(model, w_in_init)
        idx = recorded_unit_index(session.neuron_type, model.n_exc, model.n_inh)
        with torch.no_grad():
            x = inputs[:n_trials]
            actual = model(x)[0].double()
            zero = model(torch.zeros_like(x))[0].double()
            tenx = model(x * 10)[0].double()
    finally:
        torch.random.set_rng_state(state[0])
        np.random.set_state(state[1])
    mod = (actual.mean() - zero.mean()) / (zero.mean() + 1e-8)
    m_std = actual.index_select(-1, idx).std(1).mean() if actual.shape[1] > 1 else torch.tensor(0.0)
    t_std = targets[:n_trials].std(1).mean() if targets.shape[1] > 1 else torch.tensor(0.0)
    report["model"] = {
        "seed": seed,
        "w_in_init": w_in_init,
        "n_exc": model.n_exc,
        "n_inh": model.n_inh,
        "unit_index": idx.tolist(),
        "rates_actual_mean": float(actual.mean()),
        "rates_actual_std": float(actual.std()),
        "rates_zero_mean": float(zero.mean()),
        "rates_zero_std": float(zero.std()),
        "rates_10x_mean": float(tenx.mean()),
        "rates_10x_std": float(tenx.std()),
        "input_modulation_ratio": float(mod),
        "model_temporal_std": float(m_std),
        "target_temporal_std": float(t_std),
        "temporal_std_ratio": float(m_std / t_std) if float(t_std) else float("nan"),
    }
    w_rec = model.W_rec.detach().double().numpy()
    w_in = model.W_in.detach().double().numpy()
    report["weights"] = {
        "W_rec_shape": list(w_rec.shape),
        "W_rec_min": float(w_rec.min()),
        "W_rec_max": float(w_rec.max()),
        "W_in_shape": list(w_in.shape),
        "W_in_min": float(w_in.min()),
        "W_in_max": float(w_in.max()),
        "W_rec_spectral_radius": float(np.max(np.abs(np.linalg.eigvals(w_rec)))),
    }
    report["inputs"] = {
        "shape": list(inputs.shape),
        "mean": float(inputs.mean()),
        "std": float(inputs.std()),
        "min": float(inputs.min()),
        "max": float(inputs.max()),
        "channels": [
            {
                "name": name,
                "mean": float(inputs[:, :, i].mean()),
                "std": float(inputs[:, :, i].std()),
                "nonzero_fraction": float((inputs[:, :, i] != 0).double().mean()),
            }
            for i, name in enumerate(INPUT_CHANNELS[: inputs.shape[2]])
        ],
    }
    return report


def format_diagnosis(r: dict) -> str:
    d, m, w, i = r["data"], r["model"], r["weights"], r["inputs"]
    s = r["session"]
    lines = [
        "=" * 60,
        "DATA STATISTICS",
        "=" * 60,
        f"Session: {s['session_name']} ({s['format']}), {s['n_trials']} trials x {s['n_time_bins']} bins x "
        f"{s['n_neurons']} neurons ({s['n_exc']} E + {s['n_inh']} I)",
        f"Target shape: {tuple(d['shape'])}",
        f"Target mean: {d['mean']:.2f} sp/s   std: {d['std']:.2f}   min: {d['min']:.2f}   max: {d['max']:.2f}",
        f"Target 99th percentile: {d['p99']:.2f} sp/s",
        f"Values > {d['outlier_threshold']:g} sp/s: {d['n_above_threshold']} ({100 * d['fraction_above_threshold']:.3f}%)",
        f"Preprocessing: {s['preprocessing']}",
        f"PSTH temporal std (mean across neurons): {d['psth_temporal_std_mean']:.3f}",
        f"PSTH neuron std (mean across time): {d['psth_neuron_std_mean']:.3f}",
    ]
    for note in s["notes"]:
        lines.append(f"NOTE: {note}")
    lines += [
        "",
        "=" * 60,
        f"MODEL BEHAVIOUR (untrained, {m['n_exc']} E + {m['n_inh']} I units)",
        "=" * 60,
        f"Rates with actual input: {m['rates_actual_mean']:.3f} +- {m['rates_actual_std']:.3f} sp/s",
        f"Rates with zero input:   {m['rates_zero_mean']:.3f} +- {m['rates_zero_std']:.3f} sp/s",
        f"Rates with 10x input:    {m['rates_10x_mean']:.3f} +- {m['rates_10x_std']:.3f} sp/s",
        f"Input modulation ratio: {100 * m['input_modulation_ratio']:.2f}%",
        f"Model temporal std: {m['model_temporal_std']:.3f}   target: {m['target_temporal_std']:.3f}   "
        f"ratio: {100 * m['temporal_std_ratio']:.2f}%",
        "",
        "=" * 60,
        "WEIGHT STATISTICS",
        "=" * 60,
        f"W_rec: shape {tuple(w['W_rec_shape'])}, range [{w['W_rec_min']:.4f}, {w['W_rec_max']:.4f}]",
        f"W_in: shape {tuple(w['W_in_shape'])}, range [{w['W_in_min']:.4f}, {w['W_in_max']:.4f}]",
        f"W_rec spectral radius: {w['W_rec_spectral_radius']:.4f}",
        "",
        "=" * 60,
        "INPUT SIGNAL STATISTICS",
        "=" * 60,
        f"Inputs shape: {tuple(i['shape'])}  mean {i['mean']:.4f}  std {i['std']:.4f}  range [{i['min']:.4f}, {i['max']:.4f}]",
    ]
    for k, ch in enumerate(i["channels"]):
        lines.append(
            f"  Channel {k:2d} {ch['name']:<14s} mean={ch['mean']:.4f}, std={ch['std']:.4f}, "
            f"nonzero={100 * ch['nonzero_fraction']:.1f}%"
        )
    return "\n".join(lines)


def evaluate_run(path, data: Optional[str] = None, eval_noise: Optional[bool] = None, plots: bool = True) -> dict:
    """Metrics (and plots) of a finished or interrupted run's best-on-validation model.

    ``path``: run directory or its ``checkpoint.pt``. Without ``data`` the run's own session and
    test split are used; with ``data`` (another file of the same neuron layout) all its trials are
    evaluated. Writes ``evaluation.json`` (and ``psth_eval.png``) next to the checkpoint."""
    from eirnn_fast.data import load_session
    from eirnn_fast.metrics import noise_ceiling
    from eirnn_fast.train.config import FitConfig
    from eirnn_fast.train.fit import build_model, evaluate_rates, load_fit_data, make_split, predict

    path = Path(path)
    ckpt_path = path / "checkpoint.pt" if path.is_dir() else path
    if not ckpt_path.is_file():
        raise ValueError(f"{path}: no checkpoint.pt (not a run directory or checkpoint)")
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        cfg = FitConfig.from_saved(ckpt["config"])
        best = ckpt["best"]
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"{ckpt_path}: not an eirnn-fast checkpoint ({type(exc).__name__}: {exc})") from None
    if data is None:
        session = load_fit_data(cfg)
        split = (
            json.loads((ckpt_path.parent / "split.json").read_text())
            if (ckpt_path.parent / "split.json").is_file()
            else None
        )
        if split is None:
            split = make_split(cfg, session)
        trials, which = split["test"], "test split of the run"
    else:
        session = load_session(data, cfg.clip_percentile)
        trials, which = list(range(len(session))), f"all trials of {data}"
        if session.neuron_type.tolist() != ckpt["neuron_type"]:
            raise ValueError(
                f"{data}: neuron types {session.neuron_type.tolist()} differ from the run's {ckpt['neuron_type']}"
            )
    model, unit_index = build_model(cfg, session)
    model.load_state_dict(best["state"])
    noise = cfg.eval_noise if eval_noise is None else eval_noise
    d = session.get_all_trials()
    idx = torch.as_tensor(trials, dtype=torch.long)
    rates = predict(model, d["inputs"][idx], noise=noise, seed=cfg.seed + 11 if noise else None)
    metrics = evaluate_rates(rates, d["targets"][idx], d["mask"][idx], unit_index)
    ceiling = noise_ceiling(d["targets"][idx], d["mask"][idx], seed=cfg.seed)
    result = {
        "psth_corr": metrics["psth_corr"],
        "noise_ceiling": ceiling["ceiling"],
        "rate_error_median": metrics["rate_error"]["median_abs_log_ratio"],
        "frac_off_2x": metrics["rate_error"]["frac_off_2x"],
        "trials": which,
        "n_trials": len(trials),
        "eval_noise": noise,
        "best_epoch": best["epoch"],
        "best_val_psth_corr": best["val_corr"],
        "metrics": metrics,
        "noise_ceiling_detail": ceiling,
        "checkpoint": str(ckpt_path),
    }
    out_dir = ckpt_path.parent
    from eirnn_fast.train.fit import _jsonable

    atomic_write_json(out_dir / "evaluation.json", _jsonable(result))
    if plots:
        from eirnn_fast.train.plots import plot_psths
        from eirnn_fast.units import select_units

        plot_psths(
            select_units(rates, unit_index),
            d["targets"][idx],
            session,
            out_dir / "psth_eval.png",
            title=f"{which} (n={len(trials)}), PSTH r = {metrics['psth_corr']:.3f} (noise ceiling "
            f"{ceiling['ceiling']:.3f}), rate error median {metrics['rate_error']['median_abs_log_ratio']:.3f}",
            mask=d["mask"][idx],
        )
    return result
