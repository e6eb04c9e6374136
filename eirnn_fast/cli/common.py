"""What every command module of the CLI shares: :class:`CLIError`, the parser class whose argument
errors become one line, and the small printing helpers."""

from __future__ import annotations

import argparse
from typing import Optional

#: help of every command's --force (OUT is replaced by the command's output option)
FORCE_HELP = "OUT holds a run of another config: start afresh there (its old outputs are removed)"

#: set to 1 to see the traceback of any error the CLI turns into a one-line message
DEBUG_ENV = "EIRNN_FAST_DEBUG"


class CLIError(Exception):
    """A user error: printed as one line ``eirnn-fast <command>: error: <what>`` (argument errors add
    ``(usage: eirnn-fast <command> --help)``), exit status 2.
    ``prog`` is the command (``eirnn-fast fit``); a message that starts with it is not prefixed twice."""

    def __init__(self, message: str, prog: Optional[str] = None, usage: Optional[str] = None):
        super().__init__(message)
        self.prog, self.usage = prog, usage


class Parser(argparse.ArgumentParser):
    def error(self, message):  # the usage line, then one line in the CLI's format, status 2
        raise CLIError(message, prog=self.prog, usage=self.format_usage())


def fmt_seconds(s: float) -> str:
    return f"{int(s // 60)}m{s % 60:04.1f}s" if s >= 60 else f"{s:.1f}s"


def rate_error_line(metrics: dict) -> str:
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
