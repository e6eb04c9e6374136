"""One YAML reader for the configs (flyvis train, explore, ladder): a parse error names the file and
the line, as a ``ValueError`` (one line on the command line, not a yaml traceback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union


def read_yaml(path: Union[str, Path]) -> Any:
    """The parsed document of ``path`` (``{}`` for an empty file)."""
    import yaml

    text = Path(path).read_text()
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ValueError(f"{path}: not valid YAML{where}: {problem}") from None
