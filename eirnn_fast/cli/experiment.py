"""``eirnn-fast experiment SUITE ...``: run a suite of fit configs (:mod:`eirnn_fast.suites`). The
options that set a FitConfig field of every run (``--data``, ``--session``, ``--epochs``,
``--protocol``) are derived from :class:`eirnn_fast.train.FitConfig`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from eirnn_fast import configs
from eirnn_fast.cli.common import FORCE_HELP, fmt_seconds
from eirnn_fast.suites import PRIORITY_TESTS, check_priorities, describe_suite, resolve_suite, run_suite, suite_dirs
from eirnn_fast.train import FitConfig, protocol_fields

_FIT_FIELDS = ("data", "session", "epochs", "protocol")


class _SuiteHelp(argparse.Action):
    """``experiment [SUITE] --help``: the usual help, then what SUITE runs (or the shipped suites)."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        suite = getattr(namespace, "suite", None)
        try:
            print("\n" + describe_suite(suite) if suite else "\nshipped suites: " + ", ".join(sorted(suite_dirs())))
        except ValueError as exc:
            print(f"\n{exc}")
        parser.exit()


def register(sub) -> None:
    p = sub.add_parser(
        "experiment",
        help="run an experiment suite (phase2, phase2c, priorities or a folder of TOMLs)",
        description="Run every experiment x seed of a suite (resumable), then summary.md and comparison.png. "
        "`eirnn-fast experiment SUITE --help` also lists what SUITE runs.",
        add_help=False,
    )
    p.add_argument("-h", "--help", action=_SuiteHelp, nargs=0, help="show this help (and the suite's experiments)")
    p.add_argument("suite", help="suite name or a folder with _base.toml and one NAME.toml per experiment")
    configs.add_flags(
        p,
        FitConfig,
        only=_FIT_FIELDS,
        help={
            "data": "session .mat file for every run (default: the embedded session --session names)",
            "session": "embedded session for every run without --data: 08_13 (default) | 08_14",
            "epochs": "override every config's epochs",
            "protocol": "ours | predecessor: run every config under this protocol instead of the one its "
            "_base.toml names",
        },
        shown_defaults={"data": None, "session": None, "epochs": "each config's", "protocol": "the suite's"},
    )
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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true", help=FORCE_HELP.replace("OUT", "--out or a run folder in it"))
    p.set_defaults(func=_cmd_experiment)


def _cmd_experiment(args: argparse.Namespace) -> int:
    given = configs.overrides_from_args(args, FitConfig, _FIT_FIELDS)
    protocol = given.get("protocol")
    folder = resolve_suite(args.suite)
    if protocol is not None:
        protocol_fields(protocol)  # a bad name: one line, status 2, before any folder is made
    tag = f"{'_quick' if args.quick else ''}{'_' + protocol if protocol else ''}"
    out = Path(args.out or f"runs/{folder.name}{tag}")
    t0 = time.perf_counter()
    summary = run_suite(
        str(folder),
        str(out),
        data=given.get("data"),
        epochs=given.get("epochs"),
        seeds=args.seeds,
        workers=args.workers,
        engine=args.engine,
        quick=args.quick,
        address=args.address,
        progress=not args.quiet,
        protocol=protocol,
        session=given.get("session"),
        force=args.force,
    )
    print((out / "summary.md").read_text())
    if PRIORITY_TESTS <= set(p.stem for p in folder.glob("*.toml")):  # the shipped suite or a copy of it
        checks = check_priorities(out, data=given.get("data"), session=given.get("session"))
        for name, v in checks.items():
            verdict = (
                "PASS" if v.get("pass") else "missing" if v.get("missing") else "report" if "pass" not in v else "FAIL"
            )
            per_seed = (
                "  per model seed: " + ", ".join(f"{k}: {r:.2f}" for k, r in v["per_model_seed"].items())
                if "per_model_seed" in v
                else ""
            )
            print(
                f"{name}: {verdict}  " + json.dumps(v.get("criteria", {k: v[k] for k in v if k != "pass"})) + per_seed
            )
    for f in summary.get("failures", []):
        print(f"FAILED {f['name']} seed {f['seed']}: {f['error']}", file=sys.stderr)
    print(
        f"wall time {fmt_seconds(time.perf_counter() - t0)}; results in {out}/ (summary.json, summary.md, comparison.png)"
    )
    return 1 if summary.get("failures") else 0
