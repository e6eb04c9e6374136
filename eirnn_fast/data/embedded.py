"""The public real sessions in the exporter's format, shipped with the package.

From the MIT-licensed ``jamespherman/4factors-rnn-analysis`` (MATLAB v7.3); provenance and licence
notice in ``sessions/PROVENANCE.md`` next to them:

* ``08_13`` (the default): ``rnn_export_Newton_08_13_2025_SC.mat``, 890 trials x 227 bins x 14
  neurons (8 classic + 6 interneurons, interleaved);
* ``08_14``: ``rnn_export_Newton_08_14_2025_SC.mat``, 536 trials x 219 bins x 41 neurons (25 classic
  + 16 interneurons, interleaved), the session seed 002's commands name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

from eirnn_fast.data.session import DEFAULT_CLIP_PERCENTILE, load_session

#: session name -> file shipped in ``eirnn_fast/data/sessions/``
EMBEDDED_SESSIONS: Dict[str, str] = {
    "08_13": "rnn_export_Newton_08_13_2025_SC.mat",
    "08_14": "rnn_export_Newton_08_14_2025_SC.mat",
}
DEFAULT_SESSION = "08_13"
EMBEDDED_SESSION = EMBEDDED_SESSIONS[DEFAULT_SESSION]  # the default's file name (kept for old callers)


def _file_name(name: str) -> str:
    if name in EMBEDDED_SESSIONS:
        return EMBEDDED_SESSIONS[name]
    if name in EMBEDDED_SESSIONS.values():  # the file name itself
        return name
    raise ValueError(f"unknown embedded session {name!r}: one of {sorted(EMBEDDED_SESSIONS)}")


def embedded_session_path(name: str = DEFAULT_SESSION) -> Path:
    """Path of a shipped ``.mat`` file by session name (``"08_13"``, ``"08_14"``) or file name
    (``ValueError`` for an unknown name or if the installation lacks the file)."""
    from importlib import resources

    file_name = _file_name(name)
    path = Path(str(resources.files("eirnn_fast.data").joinpath("sessions", file_name)))
    if not path.is_file():
        raise ValueError(f"embedded session {file_name} is not installed (expected at {path})")
    return path


def load_embedded_session(
    name: Optional[str] = DEFAULT_SESSION, clip_percentile: Optional[float] = DEFAULT_CLIP_PERCENTILE
):
    """:func:`eirnn_fast.data.load_session` on a shipped session (``"08_13"`` by default, or
    ``"08_14"``). A number as the first argument is taken as ``clip_percentile`` (the signature
    before 08_14 shipped was ``load_embedded_session(clip_percentile)``)."""
    if name is None or isinstance(name, (int, float)):  # old positional clip_percentile
        name, clip_percentile = DEFAULT_SESSION, name
    return load_session(embedded_session_path(name), clip_percentile=clip_percentile)
