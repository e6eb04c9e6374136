"""The command line's value checks and its user-error rule (issue 18), kept out of :mod:`eirnn_fast.cli`.

* :data:`ARG_RULES`: the range of every numeric option of every command, checked right after
  parsing, before any data loads or any folder is made (``fit`` checks its values in
  :meth:`eirnn_fast.train.FitConfig.validate`, which also covers ``--config`` files).
* :func:`is_user_error`: which exceptions the CLI turns into one line (status 2). A ``ValueError`` /
  ``TypeError`` is a user error only when eirnn_fast raised it on purpose (a ``raise`` statement in
  the package: a validation message naming the argument); one raised inside torch, numpy or Python
  itself (``int("x")`` on an unchecked value, a wrong call) is a bug and keeps its traceback, so it
  gets reported and fixed. ``OSError`` (missing file, permissions, full disk) is always the user's.
"""

from __future__ import annotations

import linecache
import math
import os
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _int_at_least(lo: int) -> Tuple[Callable, str]:
    return (lambda v: isinstance(v, int) and v >= lo), f"must be an integer >= {lo}"


def _float_above(lo: float) -> Tuple[Callable, str]:
    return (lambda v: math.isfinite(v) and v > lo), f"must be a finite number > {lo:g}"


def _float_at_least(lo: float) -> Tuple[Callable, str]:
    return (lambda v: math.isfinite(v) and v >= lo), f"must be a finite number >= {lo:g}"


def _in_range(lo: float, hi: float) -> Tuple[Callable, str]:
    return (lambda v: math.isfinite(v) and lo < v <= hi), f"must be in ({lo:g}, {hi:g}]"


#: command -> {dest: (check, what)}; ``None`` values (option not given) are not checked
ARG_RULES: Dict[str, Dict[str, Tuple[Callable, str]]] = {
    "flyvis generate": {
        "seed": _int_at_least(0),
        "extent": _int_at_least(1),
        "n_frames": _int_at_least(1),
        "n_test_frames": _int_at_least(0),
        "sequence_length": _int_at_least(1),
        "n_streams": _int_at_least(1),
        "dt": _float_above(0.0),
        "noise_model_level": _float_at_least(0.0),
        "chunk_frames": _int_at_least(1),
        "threads": _int_at_least(1),
    },
    "flyvis train": {"threads": _int_at_least(1)},
    "experiment": {"epochs": _int_at_least(1), "seeds": _int_at_least(1), "workers": _int_at_least(1)},
    "explore": {"slots": _int_at_least(1), "iterations": _int_at_least(1), "seed": _int_at_least(0)},
    "diagnose": {"seed": _int_at_least(0), "n_trials": _int_at_least(1), "clip_percentile": _in_range(0.0, 100.0)},
}

#: command -> (dest, what the positional must be): checked before any work
PATH_RULES: Dict[str, Tuple[str, str]] = {
    "flyvis train": ("config", "file"),
    "flyvis ladder": ("ladder", "file"),
    "explore": ("config", "file"),
}


def command_name(args) -> str:
    """``fit``, ``flyvis train``, ... of parsed ``args``."""
    name = getattr(args, "command", None) or ""
    if name == "flyvis" and getattr(args, "flyvis_command", None):
        name += " " + args.flyvis_command
    return name


def check_args(args) -> Optional[str]:
    """The first bad value of ``args`` as ``argument --flag: must be ..., got V`` (None when all are good)."""
    command = command_name(args)
    for dest, (ok, what) in ARG_RULES.get(command, {}).items():
        value = getattr(args, dest, None)
        if value is not None and not ok(value):
            return f"argument --{dest.replace('_', '-')}: {what}, got {value!r}"
    if command in PATH_RULES:
        dest, _ = PATH_RULES[command]
        if getattr(args, dest) is None:  # an optional positional left out (flyvis train with --data-path)
            return None
        path = Path(getattr(args, dest))
        if not path.exists():
            return f"{path}: no such file (the {dest} argument names a YAML file)"
        if not path.is_file():
            return f"{path} is a folder; the {dest} argument names a YAML file"
    return None


def is_user_error(exc: BaseException) -> bool:
    """Whether the CLI reports ``exc`` as one line (see the module docstring)."""
    if isinstance(exc, OSError):
        return True
    if not isinstance(exc, (ValueError, TypeError)):
        return False
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = os.path.abspath(tb.tb_frame.f_code.co_filename)
    if not filename.startswith(_PACKAGE_DIR + os.sep):
        return False
    return linecache.getline(filename, tb.tb_lineno).lstrip().startswith("raise")
