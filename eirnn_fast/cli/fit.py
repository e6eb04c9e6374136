"""``eirnn-fast info | fit | diagnose | evaluate``: the SC commands. ``fit``'s flags are derived from
:class:`eirnn_fast.train.FitConfig` (one per field, :func:`eirnn_fast.configs.add_flags`), and the
options of ``diagnose`` and ``evaluate`` that are FitConfig fields (``--data``, ``--session``,
``--clip-percentile``, ``--eval-noise``, ``--plots``) come from the same fields."""

from __future__ import annotations

import argparse
import json
import time

import eirnn_fast
from eirnn_fast import configs
from eirnn_fast.cli.common import FORCE_HELP, fmt_seconds, rate_error_line
from eirnn_fast.data import load_embedded_session, load_session
from eirnn_fast.data.embedded import DEFAULT_SESSION, EMBEDDED_SESSIONS
from eirnn_fast.train import FitConfig, fit, read_config_file
from eirnn_fast.train.diagnose import diagnose, evaluate_run, format_diagnosis
from eirnn_fast.train.fit import _jsonable


def register(sub) -> None:
    p_info = sub.add_parser("info", help="show which fused kernels this installation has")
    p_info.set_defaults(func=_cmd_info)

    p_fit = sub.add_parser("fit", help="fit an E-I RNN to an SC session (default: the embedded real session)")
    add_fit_options(p_fit)
    p_fit.set_defaults(func=_cmd_fit)

    p_diag = sub.add_parser("diagnose", help="data statistics and untrained-model diagnostics (seed 002, Priority 0)")
    configs.add_flags(
        p_diag,
        FitConfig,
        only=("data", "session", "clip_percentile"),
        help={
            "data": "session .mat file (default: the embedded session --session names)",
            "session": "embedded session without --data: 08_13 | 08_14",
            "clip_percentile": "outlier clipping before the statistics ('none' = raw data)",
        },
        shown_defaults={"session": DEFAULT_SESSION, "clip_percentile": None},
    )
    p_diag.add_argument("--json", default="", help="also write the JSON report to this file (default: not written)")
    p_diag.add_argument("--seed", type=int, default=0)
    p_diag.add_argument("--n-trials", type=int, default=10, help="trials run through the untrained model")
    p_diag.set_defaults(func=_cmd_diagnose)

    p_eval = sub.add_parser("evaluate", help="metrics and plots of a run's best model")
    p_eval.add_argument("run", help="run directory or its checkpoint.pt")
    configs.add_flags(
        p_eval,
        FitConfig,
        only=("data", "eval_noise", "plots"),
        help={
            "data": "evaluate on all trials of this file instead of the run's test split",
            "eval_noise": "keep the model's noise on (--no-eval-noise: off; default: as the run was fitted)",
            "plots": "write psth_eval.png",
        },
        shown_defaults={"data": "the run's test split", "eval_noise": "as the run", "plots": True},
    )
    p_eval.set_defaults(func=_cmd_evaluate)


def add_fit_options(p: argparse.ArgumentParser) -> None:
    """``--config``, ``--no-resume``, ``--force`` and one flag per :class:`FitConfig` field."""
    p.add_argument("--config", help="TOML, YAML or JSON file of FitConfig fields (flags given here override it)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT has a checkpoint")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    configs.add_flags(p, FitConfig)


def config_from_args(args: argparse.Namespace) -> FitConfig:
    """The ``--config`` file (if any) with the flags the user gave laid over it, over the protocol preset."""
    values = read_config_file(args.config) if args.config else {}
    values = {**values, **configs.overrides_from_args(args, FitConfig)}
    return FitConfig.from_dict(values, source=args.config)


def _cmd_info(args: argparse.Namespace) -> int:
    print(json.dumps(eirnn_fast.backend_info(), indent=2))
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if not cfg.quiet:
        what = cfg.data or f"embedded {EMBEDDED_SESSIONS[cfg.session or DEFAULT_SESSION]}"
        print(f"eirnn-fast fit: data {what} -> {cfg.out}", flush=True)
    t0 = time.perf_counter()
    r = fit(cfg, resume=not args.no_resume, force=args.force)
    wall = time.perf_counter() - t0
    s, m = r["session"], r["model"]
    changed = ", ".join(f"{k}={v}" for k, v in r["protocol_overrides"].items())
    print(f"protocol: {cfg.protocol}" + (f" (changed from its preset: {changed})" if changed else ""))
    print(
        f"session: {s['session_name'] or s['source']} ({s['n_trials']} trials x {s['n_time_bins']} bins x "
        f"{s['n_neurons']} neurons: {s['n_exc']} E + {s['n_inh']} I); model {m['n_exc']} E + {m['n_inh']} I units"
    )
    if m["unit_pairing"] == "position":
        print(
            f"units paired by position (recorded neuron i -> unit i, the predecessor's): "
            f"{m['recorded_fitted_by_other_type']} recorded neuron(s) fitted by a unit of the other E/I type"
        )
    print(
        f"split: {r['n_train']} train / {r['n_val']} val / {r['n_test']} test trials "
        f"(seed {cfg.seed}; {r['split_description']})"
    )
    print(
        f"epochs run: {r['epochs_run']} (best validation epoch {r['best_epoch']}, "
        f"val PSTH r {r['best_val_psth_corr']:.4f}){', stopped early' if r['stopped_early'] else ''}; "
        f"wall time {fmt_seconds(wall)}"
    )
    print(
        f"test PSTH correlation: {r['test_psth_corr']:.4f}  (mean over neurons of Pearson r of trial-averaged "
        f"PSTHs, 25-ms bins, no smoothing, eval noise {'on' if cfg.eval_noise else 'off'})"
    )
    print(
        f"noise ceiling (test trials, split-half + Spearman-Brown): {r['noise_ceiling']:.4f}  "
        f"(split-half r {r['test_split_half_r']:.4f}; train-PSTH-vs-test reference "
        f"{r['data_reference_train_vs_test']:.4f})"
    )
    t = r["test"]
    print(
        f"test PSTH r / noise ceiling: {r['test_psth_corr'] / r['noise_ceiling']:.3f}"
        if r["noise_ceiling"]
        else "test PSTH r / noise ceiling: n/a"
    )
    print(rate_error_line(t))
    print(
        f"population mean rate model/data: {t['model_mean_rate']:.2f}/{t['data_mean_rate']:.2f} sp/s; "
        f"PSTH temporal std ratio {t['psth_temporal_std_ratio']:.2f}"
    )
    print(f"results: {cfg.out}/result.json, metrics.jsonl, checkpoint.pt, training_curves.png, psth_test.png")
    return 0


def _cmd_diagnose(args: argparse.Namespace) -> int:
    given = configs.overrides_from_args(args, FitConfig, ("data", "session", "clip_percentile"))
    clip = given.get("clip_percentile")  # diagnose's default: none (raw data)
    if given.get("data") is None:
        session = load_embedded_session(given.get("session") or DEFAULT_SESSION, clip)
    else:
        session = load_session(given["data"], clip)
    report = diagnose(session, seed=args.seed, n_trials=args.n_trials)
    print(format_diagnosis(report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(_jsonable(report), fh, indent=2)
        print(f"\nJSON report: {args.json}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    given = configs.overrides_from_args(args, FitConfig, ("data", "eval_noise", "plots"))
    r = evaluate_run(
        args.run, data=given.get("data"), eval_noise=given.get("eval_noise"), plots=given.get("plots", True)
    )
    print(f"{r['trials']} (n={r['n_trials']}), eval noise {'on' if r['eval_noise'] else 'off'}")
    print(
        f"PSTH correlation: {r['psth_corr']:.4f}   noise ceiling: {r['noise_ceiling']:.4f}   "
        f"(ratio {r['psth_corr'] / r['noise_ceiling']:.3f}; best validation epoch {r['best_epoch']}, val r {r['best_val_psth_corr']:.4f})"
    )
    m = r["metrics"]
    print(rate_error_line(m))
    print(
        f"population mean rate model/data: {m['model_mean_rate']:.2f}/{m['data_mean_rate']:.2f} sp/s; "
        f"PSTH temporal std ratio {m['psth_temporal_std_ratio']:.2f}"
    )
    print(f"written: {r['checkpoint'].rsplit('/', 1)[0]}/evaluation.json")
    return 0
