"""``eirnn-fast flyvis generate | train | evaluate | ladder``. ``generate``'s flags are derived from
:class:`eirnn_fast.flyvis.GenerateConfig`, ``train``'s from :class:`FlyVisTrainConfig` (one per field,
:func:`eirnn_fast.configs.add_flags`)."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from eirnn_fast import configs
from eirnn_fast.cli.common import FORCE_HELP
from eirnn_fast.flyvis import GenerateConfig, generate_dataset
from eirnn_fast.flyvis.ladder import run_ladder, summarise, write_results
from eirnn_fast.flyvis.train import flyvis_evaluate_main, flyvis_train_main
from eirnn_fast.flyvis.train_config import FlyVisTrainConfig


def register(sub) -> None:
    p_fly = sub.add_parser("flyvis", help="FlyVis connectome data")
    fly_sub = p_fly.add_subparsers(dest="flyvis_command", required=True)

    p_gen = fly_sub.add_parser(
        "generate",
        help="simulate a FlyVis dataset (ground truth regenerated per seed)",
        description="Simulate voltages of the FlyVis network under moving stimuli. Size: frames x neurons x 8 "
        "bytes (x and y, float32) plus the test split: the defaults (extent 8, 64,000 + 8,000 frames) write "
        "~7.5 GB; extent 1 with 8,000 frames ~60 MB.",
    )
    p_gen.add_argument("--out-dir", required=True, help="folder for chunks, params.npz, metadata.json, plots")
    p_gen.add_argument(
        "--seed", type=int, default=0, help="stimuli and noise (and the 'sampled' ground truth) (default: 0)"
    )
    configs.add_flags(p_gen, GenerateConfig, shown_defaults={"progress": "on when stderr is a terminal"})
    p_gen.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on busy CPUs)")
    p_gen.add_argument("--quiet", action="store_true", help="no progress bars (as --no-progress)")
    p_gen.set_defaults(func=_cmd_generate)

    p_train = fly_sub.add_parser(
        "train",
        help="train the FlyVis GNN from a YAML config (data_path: npz or generate folder) and/or flags",
        description="Train the FlyVis GNN, then evaluate it. Every field of FlyVisTrainConfig is a flag "
        "(old names as aliases); a flag overrides the YAML's value. Without a YAML, --data-path is needed.",
    )
    p_train.add_argument(
        "config", nargs="?", default=None, help="YAML config with the seeds' parameter names (see README); optional"
    )
    p_train.add_argument("--out", default="runs/flyvis", help="run folder (resumes if it has a checkpoint)")
    p_train.add_argument("--force", action="store_true", help=FORCE_HELP.replace("OUT", "--out"))
    p_train.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's). Use 1 when anything else runs on a 2-core machine: a contended "
        "second thread made extent-1 iterations 100x slower here (0.56 s instead of 5.7 ms)",
    )
    configs.add_flags(
        p_train,
        FlyVisTrainConfig,
        skip=("extra",),
        help={"data_path": "training data: an npz or a `flyvis generate` folder (relative: to the working directory)"},
    )
    p_train.set_defaults(func=_cmd_train)

    p_feval = fly_sub.add_parser("evaluate", help="recovery metrics and plots of a FlyVis GNN run")
    p_feval.add_argument("run", help="run folder written by `eirnn-fast flyvis train`")
    p_feval.add_argument(
        "--analysis",
        action="store_true",
        help="also seed 003's analysis tools (per-type R2, sign flips, W-sum correlations, recovery "
        "mechanism, activity ranks) into analysis.json",
    )
    p_feval.set_defaults(func=_cmd_flyvis_evaluate)

    p_lad = fly_sub.add_parser(
        "ladder", help="the recovery ladder: generate -> train -> evaluate per rung and seed, resumable"
    )
    p_lad.add_argument("ladder", help="ladder YAML (see experiments/flyvis_recovery/ladder.yaml)")
    p_lad.add_argument("--out", default="runs/flyvis_ladder", help="folder of the cases (done cases are kept)")
    p_lad.add_argument(
        "--results", default=None, help="write the table into this markdown file (between its ladder markers)"
    )
    p_lad.set_defaults(func=_cmd_ladder)


def generate_config_from_args(args: argparse.Namespace) -> GenerateConfig:
    """The :class:`GenerateConfig` of the flags given (the others at its defaults); progress bars only
    on a terminal unless ``--progress``."""
    values = configs.overrides_from_args(args, GenerateConfig)
    if args.quiet:
        values["progress"] = False
    values.setdefault("progress", sys.stderr.isatty())
    return GenerateConfig(**values)


def _cmd_generate(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = generate_config_from_args(args)
    meta = generate_dataset(cfg, args.seed, args.out_dir)
    shown = {"out_dir": args.out_dir, "connectome": meta["connectome"], "aggregation": meta["aggregation"]}
    print(json.dumps({**shown, "chunks": len(meta["chunks"]), "timing": meta["timing"]}, indent=1))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = configs.overrides_from_args(args, FlyVisTrainConfig)
    if args.config is None and "data_path" not in overrides:
        raise ValueError("give a YAML config or --data-path (the training data)")
    result = flyvis_train_main(args.config, args.out, force=args.force, overrides=overrides)
    print(json.dumps(result.get("metrics", result), indent=1, default=str))
    return 0


def _cmd_flyvis_evaluate(args: argparse.Namespace) -> int:
    result = flyvis_evaluate_main(args.run, analysis=args.analysis)
    shown = {k: v for k, v in result.items() if k != "analysis"}
    if "analysis" in result:  # the per-type tables stay in analysis.json
        shown["analysis"] = {k: v for k, v in result["analysis"].items() if k != "per_type"}
        shown["analysis"]["per_type"] = f"{args.run}/analysis.json"
    print(json.dumps(shown, indent=1, default=str))
    return 0


def _cmd_ladder(args: argparse.Namespace) -> int:
    cases = run_ladder(args.ladder, args.out)
    table = summarise(cases)
    if args.results:
        write_results(args.results, table)  # between the file's ladder markers: its prose is kept
    print(table)
    return 0
