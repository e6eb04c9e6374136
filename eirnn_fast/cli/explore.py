"""``eirnn-fast explore CONFIG ...``: the UCB-tree configuration search (:mod:`eirnn_fast.explore`). Every key of
the exploration YAML (:class:`eirnn_fast.explore.config.ExploreFile`) is also a flag that overrides the file."""

from __future__ import annotations

import argparse
import json
import time

from eirnn_fast import configs
from eirnn_fast.cli.common import FORCE_HELP, CLIError
from eirnn_fast.explore import ExploreConfig, Explorer
from eirnn_fast.explore.config import ExploreFile


def register(sub) -> None:
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
    p.add_argument("--force", action="store_true", help=FORCE_HELP.replace("OUT", "--out"))
    # every other key of the exploration YAML (ExploreFile) as a flag overriding the file's value;
    # --slots, --iterations and --seed above are run options with their own checks and meaning; the
    # lists of tables (blocks, slot_models) are YAML only
    p.set_defaults(_yaml_flags=configs.add_flags(p, ExploreFile, skip=RUN_FLAGS + TABLE_LISTS, help=_KEY_HELP))
    p.set_defaults(func=_cmd_explore)


RUN_FLAGS = ("slots", "iterations", "seed")
TABLE_LISTS = ("blocks", "slot_models")  # lists of tables: in the YAML only
_KEY_HELP = {
    "kind": "flyvis | sc (overrides the YAML's kind)",
    "name": "exploration name (the default folder is runs/explore/NAME)",
    "base_config": "the training config every node starts from (JSON object, replaces the YAML's)",
    "search_space": "parameters and their ranges (JSON object, replaces the YAML's)",
}


def _cmd_explore(args: argparse.Namespace) -> int:
    try:
        cfg = ExploreConfig.from_yaml(
            args.config, configs.overrides_from_args(args, ExploreFile, fields=args._yaml_flags)
        )
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
