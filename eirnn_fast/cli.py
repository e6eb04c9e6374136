"""`eirnn-fast` command-line entry point.

    eirnn-fast info                         which fused kernels this installation has
    eirnn-fast fit [--session 08_14 | --data FILE] [...]   fit an E-I RNN to an SC session (default: embedded 08_13)
    eirnn-fast diagnose [--data FILE]       data statistics and the untrained model's behaviour (seed 002, P0)
    eirnn-fast evaluate RUN_DIR|CHECKPOINT  metrics and plots of a run's best model

Bad input (missing/malformed data or config files, bad option values) exits with status 2 and one
line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

from eirnn_fast.cli_checks import check_args, is_user_error

# FitConfig fields whose default is None: their value type on the command line
_OPTIONAL_TYPES = {
    "data": str,
    "session": str,
    "clip_percentile": float,
    "max_trials": int,
    "low_rank": int,
    "input_embed_dim": int,
    "threads": int,
    "stratify_by": str,
    "activity_target_rate": float,
    "loss_ema_init": float,
}
_HELP = {
    "data": "session .mat file (v5 or v7.3); default: the embedded session --session names",
    "session": "embedded session when no --data: 08_13 (None = the default) | 08_14",
    "rate_weight": "weight of the per-neuron rate term L_rate (0 = off, as before issue 15)",
    "rate_form": "log (mean_n log((m_n + 0.5) / (d_n + 0.5))^2) | poisson (normalised count deviance)",
    "out": "run directory (config.json, metrics.jsonl, checkpoint.pt, result.json, plots)",
    "epochs": "maximum number of epochs",
    "seed": "seed for split, init, noise and batching",
    "batch_size": "trials per step; 0 = all training trials",
    "ltrial_weight": "L_trial weight (0 = off)",
    "balance": "none | param_norm | loss_ema | activity_ema",
    "scheduler": "plateau | cosine | none",
    "warmup_epochs": "curriculum: epochs of L_neuron only before L_trial ramps in",
    "learnable_alpha": "none | scalar | population | neuron",
    "patience": "early stopping patience (epochs)",
    "eval_noise": "keep the model's noise on during evaluation",
    "ltrial_kwargs": "JSON object for trial_matching_loss",
    "clip_percentile": "outlier clipping percentile ('none' = raw rates)",
    "protocol": "ours | predecessor: the preset the other options start from (flags given here override it)",
    "split_scheme": "joint (train/val/test at once) | test_first (test held out, then the predecessor's split)",
    "unit_pairing": "type (each recorded neuron by a unit of its E/I type) | position (unit i, the predecessor's)",
    "w_in_init": "uniform (U(0, 1)) | seed002 (U(-0.5, 2.0))",
    "lneuron_mask": "valid (mean over valid trials) | multiply (mean of rates * mask, the predecessor's)",
    "reg_form": "sum | mean (of the squared weights; the predecessor's: mean)",
    "activity_form": "relative | predecessor (lambda (mean - 10)^2 on recorded units + max-rate hinge)",
    "activity_target_rate": "L_activity target in sp/s ('none' = the training data's mean rate)",
    "loss_ema_init": "loss_ema start value ('none' = the first loss value; the predecessor: 1.0)",
    "loss_ema_update": "step | epoch",
    "plateau_metric": "val_corr | val_l_neuron",
}


_FORCE_HELP = "OUT holds a run of another config: start afresh there (its old outputs are removed)"


class CLIError(Exception):
    """A user error: printed as one line ``eirnn-fast <command>: error: <what>`` (argument errors add
    ``(usage: eirnn-fast <command> --help)``), exit status 2.
    ``prog`` is the command (``eirnn-fast fit``); a message that starts with it is not prefixed twice."""

    def __init__(self, message: str, prog: Optional[str] = None, usage: Optional[str] = None):
        super().__init__(message)
        self.prog, self.usage = prog, usage


#: set to 1 to see the traceback of any error the CLI turns into a one-line message
DEBUG_ENV = "EIRNN_FAST_DEBUG"


def _error_line(prog: str, message: str) -> str:
    message = message.strip().splitlines()[0] if message.strip() else "error"
    for p in (prog + ": ", "eirnn-fast: "):
        if message.startswith(p):
            message = message[len(p) :]
    return f"{prog}: error: {message}"


def _subparser(parser: argparse.ArgumentParser, args) -> argparse.ArgumentParser:
    """The innermost parser of the command in ``args`` (``fit``, ``flyvis train``, ...)."""
    for dest in ("command", "flyvis_command"):
        name = getattr(args, dest, None)
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not name or not actions or name not in actions[0].choices:
            break
        parser = actions[0].choices[name]
    return parser


def _command_prog(args, argv) -> str:
    """``eirnn-fast <command> [<subcommand>]`` from parsed args (or the raw argv when parsing failed)."""
    words = []
    if args is not None and getattr(args, "command", None):
        words.append(args.command)
        if args.command == "flyvis" and getattr(args, "flyvis_command", None):
            words.append(args.flyvis_command)
    else:
        words = [a for a in argv[:1] if not a.startswith("-")]
    return " ".join(["eirnn-fast"] + words)


def _cmd_info(args: argparse.Namespace) -> int:
    import eirnn_fast

    print(json.dumps(eirnn_fast.backend_info(), indent=2))
    return 0


def _optional(kind):
    def parse(text: str):
        if text.lower() in ("none", "null", ""):
            return None
        return kind(text)

    parse.__name__ = kind.__name__
    return parse


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    from eirnn_fast.train import FitConfig

    p.add_argument("--config", help="TOML or JSON file of FitConfig fields (flags given here override it)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT has a checkpoint")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    for f in dataclasses.fields(FitConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = _HELP.get(f.name, "") + f" (default: {default})"
        if isinstance(default, bool):
            on = f"--{f.name.replace('_', '-')}"
            help_text = (_HELP.get(f.name, "") + "; " if f.name in _HELP else "") + (
                f"default: {on if default else '--no-' + on[2:]}"
            )  # --x and --no-x: a protocol preset may have set either
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif isinstance(default, dict):
            p.add_argument(flag, dest=f.name, type=json.loads, default=None, help=help_text)
        elif default is None:
            p.add_argument(
                flag, dest=f.name, type=_optional(_OPTIONAL_TYPES.get(f.name, str)), default=None, help=help_text
            )
        elif f.name == "clip_percentile":
            p.add_argument(flag, dest=f.name, type=_optional(float), default=None, help=help_text)
        else:
            p.add_argument(flag, dest=f.name, type=type(default), default=None, help=help_text)


def _config_from_args(args: argparse.Namespace):
    from eirnn_fast.train import FitConfig, read_config_file

    values = {}
    if args.config:
        values.update(read_config_file(args.config))
    explicit = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(FitConfig) if getattr(args, f.name, None) is not None
    }
    # --clip-percentile none must override a config value: argparse gives None for both, so look at argv
    if getattr(args, "_clip_none", False):
        explicit["clip_percentile"] = None
    values.update(explicit)
    return FitConfig.from_dict(values)


def _fmt_seconds(s: float) -> str:
    return f"{int(s // 60)}m{s % 60:04.1f}s" if s >= 60 else f"{s:.1f}s"


def _cmd_fit(args: argparse.Namespace) -> int:
    from eirnn_fast.data.embedded import DEFAULT_SESSION, EMBEDDED_SESSIONS
    from eirnn_fast.train import fit

    cfg = _config_from_args(args)
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
        f"wall time {_fmt_seconds(wall)}"
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
    print(_rate_error_line(t))
    print(
        f"population mean rate model/data: {t['model_mean_rate']:.2f}/{t['data_mean_rate']:.2f} sp/s; "
        f"PSTH temporal std ratio {t['psth_temporal_std_ratio']:.2f}"
    )
    print(f"results: {cfg.out}/result.json, metrics.jsonl, checkpoint.pt, training_curves.png, psth_test.png")
    return 0


def _rate_error_line(metrics: dict) -> str:
    """One line of the per-neuron rate error of an evaluation (``metrics["rate_error"]``)."""
    e = metrics["rate_error"]
    worst = e["worst_neuron"]
    detail = ""
    if worst is not None:
        detail = f"; worst #{worst}: model {e['model_rate'][worst]:.1f} vs data {e['data_rate'][worst]:.1f} sp/s"
    return (
        f"per-neuron rate error: median |log((model + 0.5) / (data + 0.5))| {e['median_abs_log_ratio']:.3f}, "
        f"{e['n_off_2x']}/{len(e['per_neuron_log_ratio'])} neurons off by > 2x "
        f"({100 * e['frac_off_2x']:.0f} %){detail}"
    )


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from eirnn_fast.data import load_embedded_session, load_session
    from eirnn_fast.train.diagnose import diagnose, format_diagnosis
    from eirnn_fast.train.fit import _jsonable

    session = (
        load_embedded_session(args.session, args.clip_percentile)
        if args.data is None
        else load_session(args.data, args.clip_percentile)
    )
    report = diagnose(session, seed=args.seed, n_trials=args.n_trials)
    print(format_diagnosis(report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(_jsonable(report), fh, indent=2)
        print(f"\nJSON report: {args.json}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from eirnn_fast.train.diagnose import evaluate_run

    r = evaluate_run(args.run, data=args.data, eval_noise=True if args.eval_noise else None, plots=not args.no_plots)
    print(f"{r['trials']} (n={r['n_trials']}), eval noise {'on' if r['eval_noise'] else 'off'}")
    print(
        f"PSTH correlation: {r['psth_corr']:.4f}   noise ceiling: {r['noise_ceiling']:.4f}   "
        f"(ratio {r['psth_corr'] / r['noise_ceiling']:.3f}; best validation epoch {r['best_epoch']}, val r {r['best_val_psth_corr']:.4f})"
    )
    m = r["metrics"]
    print(_rate_error_line(m))
    print(
        f"population mean rate model/data: {m['model_mean_rate']:.2f}/{m['data_mean_rate']:.2f} sp/s; "
        f"PSTH temporal std ratio {m['psth_temporal_std_ratio']:.2f}"
    )
    print(f"written: {r['checkpoint'].rsplit('/', 1)[0]}/evaluation.json")
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # the usage line, then one line in the CLI's format, status 2
        raise CLIError(message, prog=self.prog, usage=self.format_usage())


class _SuiteHelp(argparse.Action):
    """``experiment [SUITE] --help``: the usual help, then what SUITE runs (or the shipped suites)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from eirnn_fast.suites import describe_suite, suite_dirs

        parser.print_help()
        suite = getattr(namespace, "suite", None)
        try:
            print("\n" + describe_suite(suite) if suite else "\nshipped suites: " + ", ".join(sorted(suite_dirs())))
        except ValueError as exc:
            print(f"\n{exc}")
        parser.exit()


def _add_experiment_parser(sub) -> None:
    """`eirnn-fast experiment SUITE ...`: run a suite of fit configs (eirnn_fast.suites)."""
    p = sub.add_parser(
        "experiment",
        help="run an experiment suite (phase2, phase2c, priorities or a folder of TOMLs)",
        description="Run every experiment x seed of a suite (resumable), then summary.md and comparison.png. "
        "`eirnn-fast experiment SUITE --help` also lists what SUITE runs.",
        add_help=False,
    )
    p.add_argument("-h", "--help", action=_SuiteHelp, nargs=0, help="show this help (and the suite's experiments)")
    p.add_argument("suite", help="suite name or a folder with _base.toml and one NAME.toml per experiment")
    p.add_argument("--data", help="session .mat file (default: the embedded session --session names)")
    p.add_argument("--session", help="embedded session for every run without --data: 08_13 (default) | 08_14")
    p.add_argument("--epochs", type=int, help="override every config's epochs")
    p.add_argument("--seeds", type=int, default=1, help="seeds per experiment (42, 43, ...)")
    p.add_argument("--workers", type=int, help="parallel runs (default: one per core)")
    p.add_argument("--engine", choices=["local", "ray"], default="local")
    p.add_argument("--address", help="Ray cluster address (--engine ray)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="60 epochs per run on every trial, no per-run plots (phase2 in ~2.5 min on 2 cores)",
    )
    p.add_argument("--out", help="results folder (default: runs/SUITE[_quick][_PROTOCOL])")
    p.add_argument(
        "--protocol",
        help="ours | predecessor: run every config under this protocol instead of the one its _base.toml names",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP.replace("OUT", "--out or a run folder in it"))

    def _cmd_experiment(args: argparse.Namespace) -> int:
        import time

        from eirnn_fast.suites import PRIORITY_TESTS, check_priorities, resolve_suite, run_suite

        folder = resolve_suite(args.suite)
        if args.protocol is not None:
            from eirnn_fast.train.config import protocol_fields

            protocol_fields(args.protocol)  # a bad name: one line, status 2, before any folder is made
        tag = f"{'_quick' if args.quick else ''}{'_' + args.protocol if args.protocol else ''}"
        out = Path(args.out or f"runs/{folder.name}{tag}")
        t0 = time.perf_counter()
        summary = run_suite(
            str(folder),
            str(out),
            data=args.data,
            epochs=args.epochs,
            seeds=args.seeds,
            workers=args.workers,
            engine=args.engine,
            quick=args.quick,
            address=args.address,
            progress=not args.quiet,
            protocol=args.protocol,
            session=args.session,
            force=args.force,
        )
        print((out / "summary.md").read_text())
        if PRIORITY_TESTS <= set(p.stem for p in folder.glob("*.toml")):  # the shipped suite or a copy of it
            checks = check_priorities(out, data=args.data, session=args.session)
            for name, v in checks.items():
                print(
                    f"{name}: "
                    + (
                        "PASS"
                        if v.get("pass")
                        else "missing"
                        if v.get("missing")
                        else "report"
                        if "pass" not in v
                        else "FAIL"
                    )
                    + "  "
                    + json.dumps(v.get("criteria", {k: v[k] for k in v if k != "pass"}))
                    + (
                        "  per model seed: " + ", ".join(f"{k}: {r:.2f}" for k, r in v["per_model_seed"].items())
                        if "per_model_seed" in v
                        else ""
                    )
                )
        for f in summary.get("failures", []):
            print(f"FAILED {f['name']} seed {f['seed']}: {f['error']}", file=sys.stderr)
        print(
            f"wall time {_fmt_seconds(time.perf_counter() - t0)}; results in {out}/ (summary.json, summary.md, comparison.png)"
        )
        return 1 if summary.get("failures") else 0

    p.set_defaults(func=_cmd_experiment)


def _add_flyvis_commands(sub) -> None:
    """`eirnn-fast flyvis generate ...` (self-contained: parser and handler live here)."""
    p_fly = sub.add_parser("flyvis", help="FlyVis connectome data")
    fly_sub = p_fly.add_subparsers(dest="flyvis_command", required=True)
    p_gen = fly_sub.add_parser(
        "generate",
        help="simulate a FlyVis dataset (ground truth regenerated per seed)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Simulate voltages of the FlyVis network under moving stimuli. Size: frames x neurons x 8 "
        "bytes (x and y, float32) plus the test split: the defaults (extent 8, 64,000 + 8,000 frames) write "
        "~7.5 GB; extent 1 with 8,000 frames ~60 MB.",
    )
    p_gen.add_argument("--out-dir", required=True, help="folder for chunks, params.npz, metadata.json, plots")
    p_gen.add_argument("--seed", type=int, default=0, help="stimuli and noise (and the 'sampled' ground truth)")
    p_gen.add_argument("--extent", type=int, default=8, help="hex lattice radius (8: 13,741 neurons)")
    p_gen.add_argument("--n-frames", type=int, default=64_000, help="training frames")
    p_gen.add_argument("--n-test-frames", type=int, default=8_000, help="held-out frames (other sequences)")
    p_gen.add_argument("--sequence-length", type=int, default=50, help="frames per stimulus sequence")
    p_gen.add_argument("--n-streams", type=int, default=8, help="parallel streams integrated together")
    p_gen.add_argument("--dt", type=float, default=0.02, help="Euler step (s)")
    p_gen.add_argument(
        "--noise-model-level", type=float, default=0.05, help="process noise per frame: x += level * N(0, 1)"
    )
    p_gen.add_argument("--chunk-frames", type=int, default=1000, help="frames per chunk file")
    p_gen.add_argument(
        "--params",
        default="flyvis:flow/0000/000",
        help="ground truth: flyvis:flow/0000/000 (the trained network the seeds simulate, shipped), "
        "'sampled' (synthetic with its statistics, drawn from --seed) or an npz with tau, V_rest, W "
        "(default: %(default)s)",
    )
    p_gen.add_argument(
        "--tau-clamp",
        choices=["none", "dt"],
        default="none",
        help="'none': integrate the raw tau (flyvis-gnn's ODE); 'dt': max(tau, dt) as flyvis",
    )
    p_gen.add_argument("--backend", choices=["auto", "fused", "reference"], default="auto")
    p_gen.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on busy CPUs)")
    p_gen.add_argument("--no-plots", action="store_true")
    p_gen.add_argument("--quiet", action="store_true", help="no progress bars")

    def _cmd_generate(args: argparse.Namespace) -> int:
        import torch

        from eirnn_fast.flyvis import GenerateConfig, generate_dataset

        if args.threads:
            torch.set_num_threads(args.threads)
        cfg = GenerateConfig(
            extent=args.extent,
            n_frames=args.n_frames,
            n_test_frames=args.n_test_frames,
            sequence_length=args.sequence_length,
            n_streams=args.n_streams,
            dt=args.dt,
            noise_model_level=args.noise_model_level,
            chunk_frames=args.chunk_frames,
            params=args.params,
            tau_clamp=args.tau_clamp,
            backend=args.backend,
            plots=not args.no_plots,
            progress=not args.quiet and sys.stderr.isatty(),
        )
        meta = generate_dataset(cfg, args.seed, args.out_dir)
        print(
            json.dumps(
                {
                    "out_dir": args.out_dir,
                    "connectome": meta["connectome"],
                    "aggregation": meta["aggregation"],
                    "chunks": len(meta["chunks"]),
                    "timing": meta["timing"],
                },
                indent=1,
            )
        )
        return 0

    p_gen.set_defaults(func=_cmd_generate)

    p_train = fly_sub.add_parser(
        "train", help="train the FlyVis GNN from a YAML config (data_path: npz or generate folder)"
    )
    p_train.add_argument("config", help="YAML config with the seeds' parameter names (see README)")
    p_train.add_argument("--out", default="runs/flyvis", help="run folder (resumes if it has a checkpoint)")
    p_train.add_argument("--force", action="store_true", help=_FORCE_HELP.replace("OUT", "--out"))
    p_train.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's). Use 1 when anything else runs on a 2-core machine: a contended "
        "second thread made extent-1 iterations 100x slower here (0.56 s instead of 5.7 ms)",
    )

    def _cmd_train(args: argparse.Namespace) -> int:
        import torch

        from eirnn_fast.flyvis.train import flyvis_train_main

        if args.threads:
            torch.set_num_threads(args.threads)
        result = flyvis_train_main(args.config, args.out, force=args.force)
        print(json.dumps(result.get("metrics", result), indent=1, default=str))
        return 0

    p_train.set_defaults(func=_cmd_train)

    p_feval = fly_sub.add_parser("evaluate", help="recovery metrics and plots of a FlyVis GNN run")
    p_feval.add_argument("run", help="run folder written by `eirnn-fast flyvis train`")
    p_feval.add_argument(
        "--analysis",
        action="store_true",
        help="also seed 003's analysis tools (per-type R2, sign flips, W-sum correlations, recovery "
        "mechanism, activity ranks) into analysis.json",
    )

    def _cmd_flyvis_evaluate(args: argparse.Namespace) -> int:
        from eirnn_fast.flyvis.train import flyvis_evaluate_main

        result = flyvis_evaluate_main(args.run, analysis=args.analysis)
        shown = {k: v for k, v in result.items() if k != "analysis"}
        if "analysis" in result:  # the per-type tables stay in analysis.json
            shown["analysis"] = {k: v for k, v in result["analysis"].items() if k != "per_type"}
            shown["analysis"]["per_type"] = f"{args.run}/analysis.json"
        print(json.dumps(shown, indent=1, default=str))
        return 0

    p_feval.set_defaults(func=_cmd_flyvis_evaluate)

    p_lad = fly_sub.add_parser(
        "ladder", help="the recovery ladder: generate -> train -> evaluate per rung and seed, resumable"
    )
    p_lad.add_argument("ladder", help="ladder YAML (see experiments/flyvis_recovery/ladder.yaml)")
    p_lad.add_argument("--out", default="runs/flyvis_ladder", help="folder of the cases (done cases are kept)")
    p_lad.add_argument(
        "--results", default=None, help="write the table into this markdown file (between its ladder markers)"
    )

    def _cmd_ladder(args: argparse.Namespace) -> int:
        from eirnn_fast.flyvis.ladder import run_ladder, summarise, write_results

        cases = run_ladder(args.ladder, args.out)
        table = summarise(cases)
        if args.results:
            write_results(args.results, table)  # between the file's ladder markers: its prose is kept
        print(table)
        return 0

    p_lad.set_defaults(func=_cmd_ladder)


def _add_explore_parser(sub) -> None:
    """`eirnn-fast explore CONFIG ...` (self-contained: parser and handler live here)."""
    p = sub.add_parser("explore", help="UCB-tree configuration search (seeds 003/004), parallel slots, resumable")
    p.add_argument("config", help="exploration YAML (kind: flyvis | sc; see experiments/explore/)")
    p.add_argument("--slots", type=int, default=None, help="parallel slots (default: the config's)")
    p.add_argument("--iterations", type=int, default=None, help="nodes to run in total (default: the config's)")
    p.add_argument(
        "--engine",
        choices=["local", "ray", "serial"],
        default="local",
        help="local: process pool; ray: one Ray task (1 GPU) per slot; serial: in-process",
    )
    p.add_argument(
        "--out", default=None, help="exploration folder (default runs/explore/NAME); resumes from its tree.json"
    )
    p.add_argument("--seed", type=int, default=None, help="proposer seed (default: the config's)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP.replace("OUT", "--out"))

    def _cmd_explore(args: argparse.Namespace) -> int:
        from eirnn_fast.explore import ExploreConfig, Explorer

        try:
            cfg = ExploreConfig.from_yaml(args.config)
        except ValueError as exc:  # an OSError: main's one line, without errno text
            raise CLIError(f"eirnn-fast explore: {exc}") from None
        if args.slots is not None:
            if args.slots < 1 or (cfg.slot_models and args.slots > len(cfg.slot_models)):
                raise CLIError(f"eirnn-fast explore: --slots must be 1..{len(cfg.slot_models) or 'N'}")
            cfg.slots = args.slots
        if args.seed is not None:
            cfg.seed = args.seed
        out = args.out or f"runs/explore/{cfg.name}"
        ex = Explorer(cfg, out, engine=args.engine, quiet=args.quiet, force=args.force)
        if ex.resumed and ex.finished(args.iterations) and not args.quiet:
            print(f"already finished, loaded from {out}/tree.json", flush=True)
        elif ex.resumed and not args.quiet:
            print(
                f"resuming {out}/tree.json: {len(ex.tree.finished_nodes())} finished node(s), "
                f"{len(ex.tree.unfinished_nodes())} in flight (re-run)",
                flush=True,
            )
        t0 = time.perf_counter()
        summary = ex.run(iterations=args.iterations)
        summary["wall_seconds_this_run"] = time.perf_counter() - t0
        print(ex.tree.summary_table())
        print(json.dumps({k: summary[k] for k in ("n_nodes", "n_done", "n_failed", "wall_seconds_this_run")}, indent=1))
        print(f"written: {out}/tree.json, {ex.log_path.name}, {ex.memory_path.name}, summary.json, summary.md")
        return 0

    p.set_defaults(func=_cmd_explore)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="eirnn-fast", description="Fused E-I RNN fitting toolkit")
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the traceback of any error (also after the command, or {DEBUG_ENV}=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p_info = sub.add_parser("info", help="show which fused kernels this installation has")
    p_info.set_defaults(func=_cmd_info)

    p_fit = sub.add_parser("fit", help="fit an E-I RNN to an SC session (default: the embedded real session)")
    _add_fit_options(p_fit)
    p_fit.set_defaults(func=_cmd_fit)

    p_diag = sub.add_parser("diagnose", help="data statistics and untrained-model diagnostics (seed 002, Priority 0)")
    p_diag.add_argument("--data", help="session .mat file (default: the embedded session --session names)")
    p_diag.add_argument("--session", default="08_13", help="embedded session without --data: 08_13 | 08_14")
    p_diag.add_argument("--json", default="", help="also write the JSON report to this file (default: not written)")
    p_diag.add_argument("--seed", type=int, default=0)
    p_diag.add_argument("--n-trials", type=int, default=10, help="trials run through the untrained model")
    p_diag.add_argument(
        "--clip-percentile",
        type=_optional(float),
        default=None,
        help="outlier clipping before the statistics (default: none, raw data)",
    )
    p_diag.set_defaults(func=_cmd_diagnose)

    p_eval = sub.add_parser("evaluate", help="metrics and plots of a run's best model")
    p_eval.add_argument("run", help="run directory or its checkpoint.pt")
    p_eval.add_argument("--data", help="evaluate on all trials of this file instead of the run's test split")
    p_eval.add_argument("--eval-noise", action="store_true", help="keep the model's noise on")
    p_eval.add_argument("--no-plots", action="store_true")
    p_eval.set_defaults(func=_cmd_evaluate)

    _add_experiment_parser(sub)
    _add_flyvis_commands(sub)
    _add_explore_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = None
    debug = os.environ.get(DEBUG_ENV) == "1" or "--debug" in argv
    try:
        args, extra = parser.parse_known_args(argv)
        # --debug is accepted after the command too
        extra = [a for a in extra if a != "--debug"]
        if extra:  # reported by the (sub)command that was given them, with its usage
            _subparser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
        bad = check_args(args)  # every value's range, before any data loads or folder is made
        if bad:
            _subparser(parser, args).error(bad)
        if args.command != "info":
            from eirnn_fast.runtime import tune_cpu_allocator

            tune_cpu_allocator()  # full-batch [B, T, N] temporaries reuse heap memory (see runtime.py)
        if args.command == "fit":
            args._clip_none = any(
                a == "--clip-percentile" and i + 1 < len(argv) and argv[i + 1].lower() == "none"
                for i, a in enumerate(argv)
            ) or any(a.lower() == "--clip-percentile=none" for a in argv)
            if not getattr(args, "quiet", None):
                logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
            else:
                logging.basicConfig(level=logging.ERROR, format="%(levelname)s: %(message)s")
        return int(args.func(args) or 0)
    except CLIError as exc:
        if debug:
            raise
        prog = exc.prog or _command_prog(args, argv)
        hint = f" (usage: {prog} --help)" if exc.usage else ""  # argument errors point to the usage
        print(_error_line(prog, str(exc)) + hint, file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as exc:
        if debug or not is_user_error(exc):  # a ValueError from inside torch/numpy/Python is a bug: traceback
            raise
        if isinstance(exc, OSError) and exc.filename is not None:  # "No such file or directory: PATH", no errno
            msg = f"{exc.strerror or type(exc).__name__}: {exc.filename}"
        else:
            msg = str(exc) or type(exc).__name__
        print(_error_line(_command_prog(args, argv), msg), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        command = getattr(args, "command", None)
        if command == "flyvis":
            command = "flyvis " + str(getattr(args, "flyvis_command", ""))
        what = {
            "fit": "the fit resumes from its checkpoint",
            "experiment": "finished runs are kept, the others resume",
            "explore": "finished nodes are kept, nodes in flight re-run",
            "flyvis train": "training resumes from its checkpoint",
        }.get(command, "")
        print(
            f"eirnn-fast: interrupted{f' ({what} when the same command runs again)' if what else ''}", file=sys.stderr
        )
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
