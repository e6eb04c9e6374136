"""The two markdown files of an exploration (seed 004 "File Structure"):

* ``{name}_analysis.md`` - append-only, one entry per finished node in the fixed form::

    ## Iter N: [class]
    Node: id=N, parent=P
    Mode/Strategy: [exploit/explore/robustness-check]
    Config: k=v, k=v, ...
    Metrics: k=v, k=v, ...
    Mutation: [param]: [old] -> [new]          (one line per mutated parameter; "Mutation: none" if none)
    Parent rule: [one line]
    Observation: [one line]
    Next: parent=P

* ``{name}_memory.md`` - working memory rewritten after every batch: current best, locked
  parameters, search space, block summaries, parameter effects, next parent.

The ``Mutation:`` line is what the tree builder parses (:func:`parse_mutation_line`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

_NUM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_value(text: Any) -> Any:
    """'true'/'T' -> True, '3' -> 3, '1.2E-3' -> 0.0012, 'none' -> None, anything else stays a string."""
    if not isinstance(text, str):
        return text
    t = text.strip()
    low = t.lower()
    if low in ("true", "t", "yes"):
        return True
    if low in ("false", "f", "no"):
        return False
    if low in ("none", "null", "~"):
        return None
    if _NUM.match(t):
        if re.match(r"^[+-]?\d+$", t):
            return int(t)
        return float(t)
    if low in ("nan", "inf", "-inf"):
        return float(low)
    return t


def format_value(v: Any) -> str:
    """Inverse of :func:`parse_value` (floats use Python's shortest round-trip repr)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        r = repr(v)
        return r if ("." in r or "e" in r or "n" in r) else r + ".0"
    return str(v)


@dataclass
class Mutation:
    param: str
    old: Any
    new: Any

    def line(self) -> str:
        return f"Mutation: {self.param}: {format_value(self.old)} -> {format_value(self.new)}"

    def to_dict(self) -> Dict[str, Any]:
        return {"param": self.param, "old": self.old, "new": self.new}

    @classmethod
    def from_any(cls, m: Any) -> "Mutation":
        if isinstance(m, Mutation):
            return m
        if isinstance(m, dict):
            return cls(m["param"], m.get("old"), m["new"])
        if isinstance(m, str):
            parsed = parse_mutation_line(m if m.lstrip().startswith("Mutation:") else "Mutation: " + m)
            if not parsed:
                raise ValueError(f"not a mutation: {m!r}")
            return parsed[0]
        raise TypeError(f"cannot make a Mutation from {type(m).__name__}")


_MUT = re.compile(r"^\s*Mutation:\s*(.+?)\s*$")
_ONE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*:\s*(.*?)\s*->\s*(.*?)\s*$")


def parse_mutation_line(line: str) -> List[Mutation]:
    """``Mutation: lr_W: 6E-4 -> 1E-3`` -> [Mutation]. Several mutations may share a line separated
    by ``;`` (``Mutation: a: 1 -> 2; b: x -> y``). ``Mutation: none ...`` -> []. Raises ValueError on a
    malformed line."""
    m = _MUT.match(line)
    if not m:
        raise ValueError(f"not a Mutation line: {line!r}")
    body = m.group(1)
    if body.lower().startswith("none"):
        return []
    out = []
    for part in body.split(";"):
        mm = _ONE.match(part)
        if not mm:
            raise ValueError(f"malformed mutation {part.strip()!r} (expected 'param: old -> new')")
        out.append(Mutation(mm.group(1), parse_value(mm.group(2)), parse_value(mm.group(3))))
    return out


def mutations_from_text(text: str) -> List[Mutation]:
    """All ``Mutation:`` lines of a text (e.g. the stdout of an external proposer)."""
    out: List[Mutation] = []
    for line in text.splitlines():
        if line.strip().startswith("Mutation:"):
            out.extend(parse_mutation_line(line))
    return out


def _kv(d: Dict[str, Any], digits: Optional[int] = None) -> str:
    parts = []
    for k, v in d.items():
        if digits is not None and isinstance(v, float) and math.isfinite(v):
            v = round(v, digits)
        parts.append(f"{k}={format_value(v)}")
    return ", ".join(parts)


def _parse_kv(text: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    if not text.strip() or text.strip() == "-":
        return out
    for part in text.split(","):
        if "=" not in part:
            raise ValueError(f"expected key=value, got {part.strip()!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = parse_value(v.strip())
    return out


@dataclass
class IterEntry:
    iteration: int
    label: str
    node: int
    parent: int
    mode: str
    config: Dict[str, Any] = field(default_factory=dict)
    metrics: Dict[str, Any] = field(default_factory=dict)
    mutations: List[Mutation] = field(default_factory=list)
    parent_rule: str = ""
    observation: str = ""
    next_parent: Optional[int] = None
    note: str = ""  # text after "Mutation: none" (e.g. "(robustness re-run of node 3)")

    def format(self, metric_digits: Optional[int] = 4) -> str:
        lines = [
            f"## Iter {self.iteration}: {self.label}",
            f"Node: id={self.node}, parent={self.parent}",
            f"Mode/Strategy: {self.mode}",
            f"Config: {_kv(self.config) or '-'}",
            f"Metrics: {_kv(self.metrics, metric_digits) or '-'}",
        ]
        if self.mutations:
            lines += [m.line() for m in self.mutations]
        else:
            lines.append("Mutation: none" + (f" {self.note}" if self.note else ""))
        lines += [
            f"Parent rule: {_one_line(self.parent_rule)}",
            f"Observation: {_one_line(self.observation)}",
            f"Next: parent={'?' if self.next_parent is None else self.next_parent}",
            "",
        ]
        return "\n".join(lines) + "\n"


def _one_line(s: str) -> str:
    return " ".join(str(s).split())


_HEAD = re.compile(r"^## Iter (\d+):\s*(.*?)\s*$")


def parse_log(text: str) -> List[IterEntry]:
    """Entries of an analysis log (text outside ``## Iter`` entries is ignored)."""
    entries: List[IterEntry] = []
    cur: Optional[IterEntry] = None
    for line in text.splitlines():
        h = _HEAD.match(line)
        if h:
            cur = IterEntry(int(h.group(1)), h.group(2), -1, -1, "")
            entries.append(cur)
            continue
        if cur is None or ":" not in line:
            continue
        key, rest = line.split(":", 1)
        rest = rest.strip()
        if key == "Node":
            d = _parse_kv(rest)
            cur.node, cur.parent = int(d["id"]), int(d["parent"])
        elif key == "Mode/Strategy":
            cur.mode = rest
        elif key == "Config":
            cur.config = _parse_kv(rest)
        elif key == "Metrics":
            cur.metrics = _parse_kv(rest)
        elif key == "Mutation":
            muts = parse_mutation_line(line)
            cur.mutations.extend(muts)
            if not muts:
                cur.note = rest[4:].strip()
        elif key == "Parent rule":
            cur.parent_rule = rest
        elif key == "Observation":
            cur.observation = rest
        elif key == "Next":
            v = _parse_kv(rest).get("parent")
            cur.next_parent = v if isinstance(v, int) else None
    return entries
