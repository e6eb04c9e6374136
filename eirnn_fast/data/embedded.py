"""The one public real session in the exporter's format, shipped with the package.

``rnn_export_Newton_08_13_2025_SC.mat`` (890 trials x 227 bins x 14 neurons, 8 classic + 6
interneurons, interleaved; MATLAB v7.3) from the MIT-licensed ``jamespherman/4factors-rnn-analysis``;
provenance and licence notice in ``sessions/PROVENANCE.md`` next to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from eirnn_fast.data.session import DEFAULT_CLIP_PERCENTILE

EMBEDDED_SESSION = "rnn_export_Newton_08_13_2025_SC.mat"


def embedded_session_path() -> Path:
    """Path of the shipped ``.mat`` file (``ValueError`` if the installation lacks it)."""
    from importlib import resources

    path = Path(str(resources.files("eirnn_fast.data").joinpath("sessions", EMBEDDED_SESSION)))
    if not path.is_file():
        raise ValueError(f"embedded session {EMBEDDED_SESSION} is not installed (expected at {path})")
    return path


def load_embedded_session(clip_percentile: Optional[float] = DEFAULT_CLIP_PERCENTILE):
    """:func:`eirnn_fast.data.load_session` on the shipped 08_13 session."""
    from eirnn_fast.data.session import load_session

    return load_session(embedded_session_path(), clip_percentile=clip_percentile)
