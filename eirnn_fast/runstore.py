"""The one resume rule for a run folder, used by ``fit``, ``flyvis train``, ``experiment`` (each run
folder and the suite folder) and ``explore``.

A run folder holds one config. Re-running a command into it:

- no stored config: a fresh run;
- the same config (after ``legacy_defaults`` fill keys an older run did not record, and
  ``free_keys`` such as an epoch budget are ignored): resume, or "already finished" when the
  caller says the run is done;
- a different config: :class:`RunFolderConflict` naming every differing key (``old -> new``),
  unless ``force``, which starts afresh and removes the old run's stale outputs.

Writes go through :mod:`eirnn_fast.atomic`: a file that marks a run (or a dataset) as done is
written last and atomically, so a killed process never leaves one that a later command reads as
complete.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from eirnn_fast.atomic import atomic_write_text

_MISSING = "<missing>"


class RunFolderConflict(ValueError):
    """A different config was given for an existing run folder (and ``force`` was not)."""

    def __init__(self, run_dir, diff: Mapping[str, tuple]):
        self.run_dir = Path(run_dir)
        self.diff = dict(diff)
        keys = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(self.diff.items()))
        super().__init__(
            f"run folder {self.run_dir} holds a run with a different config ({keys}); "
            "use --force to start afresh there (its old outputs are removed) or choose a new folder"
        )


def config_diff(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    legacy_defaults: Optional[Mapping[str, Any]] = None,
    free_keys: Iterable[str] = (),
) -> dict:
    """``{key: (old, new)}`` for every key whose value differs. A key missing from ``old`` takes its
    value from ``legacy_defaults`` (the default it had when the old run was written); ``free_keys``
    are never compared."""
    legacy = dict(legacy_defaults or {})
    free = set(free_keys)
    diff = {}
    for key in sorted(set(old) | set(new)):
        if key in free:
            continue
        o = old[key] if key in old else legacy.get(key, _MISSING)
        n = new[key] if key in new else _MISSING
        if o != n:
            diff[key] = (o, n)
    return diff


@dataclass(frozen=True)
class ResumeDecision:
    action: str  # "fresh", "resume" or "finished"
    message: str


def decide(
    run_dir,
    config: Mapping[str, Any],
    stored_config: Optional[Mapping[str, Any]],
    *,
    finished: bool = False,
    force: bool = False,
    stale_outputs: Iterable[str] = (),
    legacy_defaults: Optional[Mapping[str, Any]] = None,
    free_keys: Iterable[str] = (),
    source=None,
) -> ResumeDecision:
    """Apply the one resume rule; with ``force`` (or a conflict forced) remove ``stale_outputs``
    (names relative to ``run_dir``) before a fresh start. ``source``: the file a resumed or finished
    run is loaded from, named in the message (default: ``run_dir``)."""
    run_dir = Path(run_dir)
    where = run_dir if source is None else source
    if stored_config is not None and not force:
        diff = config_diff(stored_config, config, legacy_defaults=legacy_defaults, free_keys=free_keys)
        if diff:
            raise RunFolderConflict(run_dir, diff)
        if finished:
            return ResumeDecision("finished", f"already finished, loaded from {where}")
        return ResumeDecision("resume", f"resumed from {where}")
    if stored_config is not None:
        remove_outputs(run_dir, stale_outputs)
    return ResumeDecision("fresh", f"starting a fresh run in {run_dir}")


def announce(decision: ResumeDecision, quiet: bool = False, prefix: str = "") -> None:
    """Say a resume or an "already finished" on stderr (a fresh start into a new folder is silent)."""
    if not quiet and decision.action != "fresh":
        print(prefix + decision.message, file=sys.stderr, flush=True)


def load_json(path) -> Optional[dict]:
    """The JSON object stored in ``path``; None when there is no such file. A file that is not a
    JSON object raises ``ValueError`` naming it (older versions wrote some files non-atomically: a
    kill could truncate them)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is unreadable ({exc}); use --force to start afresh in its folder") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} does not hold a JSON object; use --force to start afresh in its folder")
    return value


def trim_jsonl(path, keep) -> None:
    """Rewrite a JSON-lines log atomically with the lines ``keep(record)`` accepts; a line a kill cut
    off (not JSON) is dropped. No file: nothing to do."""
    path = Path(path)
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and keep(record):
            kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))


def remove_outputs(run_dir, names: Iterable[str]) -> None:
    run_dir = Path(run_dir)
    for name in names:
        p = run_dir / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def checkpoint_format(obj: Mapping[str, Any]) -> str:
    """The format of a stored checkpoint: its ``"format"`` key (``eirnn_fast.fit/1``,
    ``eirnn_fast.flyvis/1``), or ``"eirnn_fast.flyvis/0"`` for the unversioned FlyVis checkpoint written
    before formats existed (same keys as ``flyvis/1``; both read)."""
    fmt = obj.get("format")
    if fmt is None:
        return "eirnn_fast.flyvis/0"
    if not isinstance(fmt, str):
        raise ValueError(f"checkpoint 'format' must be a string, got {fmt!r}")
    return fmt
