"""`eirnn-fast` command-line entry point.

    eirnn-fast info                         which fused kernels this installation has
    eirnn-fast fit [--session 08_14 | --data FILE] [...]   fit an E-I RNN to an SC session (default: embedded 08_13)
    eirnn-fast diagnose [--data FILE]       data statistics and the untrained model's behaviour (seed 002, P0)
    eirnn-fast evaluate RUN_DIR|CHECKPOINT  metrics and plots of a run's best model
    eirnn-fast experiment SUITE             a suite of fit configs      (eirnn_fast.cli.experiment)
    eirnn-fast flyvis generate|train|evaluate|ladder                    (eirnn_fast.cli.flyvis)
    eirnn-fast explore CONFIG               UCB-tree configuration search (eirnn_fast.cli.explore)

One module per command family, each with ``register(subparsers)`` adding its parsers with
``set_defaults(func=handler)``; this module builds the parser from them and turns errors into one
line. Bad input (missing/malformed data or config files, bad option values) exits with status 2 and
one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from eirnn_fast.cli import experiment, explore, fit, flyvis
from eirnn_fast.cli.common import DEBUG_ENV, CLIError, Parser
from eirnn_fast.cli_checks import check_args, is_user_error
from eirnn_fast.executor import WorkerDied
from eirnn_fast.runtime import tune_cpu_allocator

__all__ = ["CLIError", "DEBUG_ENV", "build_parser", "main"]

#: the command modules, in the order `eirnn-fast --help` lists them
COMMANDS = (fit, experiment, flyvis, explore)


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


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="eirnn-fast", description="Fused E-I RNN fitting toolkit")
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the traceback of any error (also after the command, or {DEBUG_ENV}=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMANDS:
        module.register(sub)
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
            tune_cpu_allocator()  # full-batch [B, T, N] temporaries reuse heap memory (see runtime.py)
        if args.command == "fit":
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
    except WorkerDied as exc:  # killed / out of memory: not a bug of ours, and the message says how to resume
        if debug:
            raise
        print(_error_line(_command_prog(args, argv), str(exc)), file=sys.stderr)
        return 1
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
