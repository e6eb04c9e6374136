"""The one resume rule for a run folder (issue 17, deliverable 1; not yet wired into the commands).

A run folder holds one config. Re-running a command into it:

- no stored config: a fresh run;
- the same config (after ``legacy_defaults`` fill keys an older run did not record, and
  ``free_keys`` such as an epoch budget are ignored): resume, or "already finished" when the
  caller says the run is done;
- a different config: :class:`RunFolderConflict` naming every differing key (``old -> new``),
  unless ``force``, which starts afresh and removes the old run's stale outputs.

Writes go through :mod:`eirnn_fast.atomic`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

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
) -> ResumeDecision:
    """Apply the one resume rule; with ``force`` (or a conflict forced) remove ``stale_outputs``
    (names relative to ``run_dir``) before a fresh start."""
    run_dir = Path(run_dir)
    if stored_config is not None and not force:
        diff = config_diff(stored_config, config, legacy_defaults=legacy_defaults, free_keys=free_keys)
        if diff:
            raise RunFolderConflict(run_dir, diff)
        if finished:
            return ResumeDecision("finished", f"already finished, loaded from {run_dir}")
        return ResumeDecision("resume", f"resumed from {run_dir}")
    if stored_config is not None:
        remove_outputs(run_dir, stale_outputs)
    return ResumeDecision("fresh", f"starting a fresh run in {run_dir}")


def remove_outputs(run_dir, names: Iterable[str]) -> None:
    run_dir = Path(run_dir)
    for name in names:
        p = run_dir / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def checkpoint_format(obj: Mapping[str, Any]) -> str:
    """The format of a stored checkpoint: its ``"format"`` key (``eirnn_fast.fit/1``), or
    ``"eirnn_fast.flyvis/0"`` for today's unversioned FlyVis checkpoint."""
    fmt = obj.get("format")
    if fmt is None:
        return "eirnn_fast.flyvis/0"
    if not isinstance(fmt, str):
        raise ValueError(f"checkpoint 'format' must be a string, got {fmt!r}")
    return fmt
