"""Atomic file writes: a temporary file in the target's folder, flushed and fsynced, then
``os.replace`` onto the target, so a killed process never leaves a half-written file that a later
command could read as complete. The one place every run folder (fit, flyvis train, the ladder,
explore trees) writes its results and checkpoints through."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def _atomic(path, write: Callable[[str], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)

    _atomic(path, write)


def atomic_write_json(path, obj: Any, **dumps_kwargs) -> None:
    """``json.dumps(obj, **dumps_kwargs)`` to ``path`` atomically (default ``indent=2``)."""
    atomic_write_text(path, json.dumps(obj, **{"indent": 2, **dumps_kwargs}))


def atomic_torch_save(path, obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    _atomic(path, lambda tmp: torch.save(obj, tmp))
