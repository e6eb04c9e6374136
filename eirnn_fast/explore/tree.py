"""The exploration tree: one node per run (config, metrics, status), UCB parent selection and an
atomic JSON file that makes a run resumable.

UCB score of a finished node ``k`` (documented formula, seed 004 step 4)::

    score(k) = mean_reward(subtree(k)) + c * sqrt(ln N_parent(k) / n(k))

* ``subtree(k)`` is ``k`` and all its descendants; ``mean_reward`` averages the rewards of the
  finished nodes in it (failed nodes and nodes without a reward are skipped).
* ``n(k)`` ("visits") counts the nodes of ``subtree(k)`` that are finished **or in flight** (a
  pending child is a virtual visit, so slots of one parallel batch spread over parents).
* ``N_parent(k)`` is ``n`` of k's parent; for a top-level node (parent = the root, id 0, the base
  config, which is never run itself) it is the number of visited nodes in the same tree
  (the whole tree or one slot's tree).
* ``c`` is the exploration constant (``ucb_c`` in the exploration config, default 1.0).
Candidates are the finished nodes with a reward; ties go to the lower id. With none yet, the parent
is the root.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from eirnn_fast.atomic import atomic_write_text
from eirnn_fast.explore.logfmt import format_value

ROOT = 0
RERUN_MODES = ("robustness-check", "final-robustness")  # same config as the parent, new data seed
STATUSES = ("pending", "running", "done", "failed")
TREE_FORMAT = "eirnn_fast.explore.tree/1"


@dataclass
class Node:
    id: int
    parent: int
    config: Dict[str, Any]
    slot: int = 0
    block: int = 1
    iteration: int = 0  # 1-based iteration number (= the log's "Iter N")
    data_seed: int = 0
    mode: str = "explore"  # explore | exploit | baseline | robustness-check
    mutations: List[Dict[str, Any]] = field(default_factory=list)  # [{param, old, new}]
    parent_rule: str = ""
    status: str = "pending"
    metrics: Dict[str, Any] = field(default_factory=dict)
    reward: Optional[float] = None
    label: str = ""  # classification (e.g. "V_rest success")
    error: str = ""
    wall_seconds: Optional[float] = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")


class ExplorationTree:
    """Nodes keyed by id; id 0 is the root (the base config of the exploration, never run)."""

    def __init__(self, base_config: Optional[Dict[str, Any]] = None, meta: Optional[Dict[str, Any]] = None):
        self.nodes: Dict[int, Node] = {ROOT: Node(ROOT, -1, dict(base_config or {}), status="done", mode="root")}
        self.meta: Dict[str, Any] = dict(meta or {})

    # -- construction ------------------------------------------------------------------------
    def add(self, parent: int, config: Dict[str, Any], **kw) -> Node:
        if parent not in self.nodes:
            raise KeyError(f"parent node {parent} does not exist")
        nid = max(self.nodes) + 1
        node = Node(nid, parent, dict(config), **kw)
        self.nodes[nid] = node
        return node

    def children(self, nid: int) -> List[Node]:
        return [n for n in self.nodes.values() if n.parent == nid]

    def subtree(self, nid: int) -> List[Node]:
        out, stack = [], [nid]
        kids: Dict[int, List[int]] = {}
        for n in self.nodes.values():
            kids.setdefault(n.parent, []).append(n.id)
        while stack:
            k = stack.pop()
            out.append(self.nodes[k])
            stack.extend(kids.get(k, []))
        return out

    def run_nodes(self, slot: Optional[int] = None) -> List[Node]:
        return [n for n in self.nodes.values() if n.id != ROOT and (slot is None or n.slot == slot)]

    def finished_nodes(self, slot: Optional[int] = None) -> List[Node]:
        return [n for n in self.run_nodes(slot) if n.finished]

    def unfinished_nodes(self) -> List[Node]:
        return [n for n in self.run_nodes() if not n.finished]

    # -- UCB -----------------------------------------------------------------------------------
    @staticmethod
    def _visited(n: Node) -> bool:
        return n.id != ROOT and n.status in ("done", "failed", "running", "pending")

    def visits(self, nid: int, slot: Optional[int] = None) -> int:
        if nid == ROOT:
            return sum(1 for n in self.run_nodes(slot))
        return sum(1 for n in self.subtree(nid) if self._visited(n))

    def mean_reward(self, nid: int) -> Optional[float]:
        r = [n.reward for n in self.subtree(nid) if n.status == "done" and n.reward is not None and n.id != ROOT]
        return sum(r) / len(r) if r else None

    def ucb_score(self, nid: int, c: float = 1.0, slot: Optional[int] = None) -> float:
        node = self.nodes[nid]
        mean = self.mean_reward(nid)
        if mean is None:
            return -math.inf
        n = max(self.visits(nid), 1)
        n_parent = max(self.visits(node.parent, slot), 1)
        return mean + c * math.sqrt(math.log(n_parent) / n)

    def ucb_scores(self, c: float = 1.0, slot: Optional[int] = None) -> Dict[int, float]:
        return {
            n.id: self.ucb_score(n.id, c, slot)
            for n in self.finished_nodes(slot)
            if n.status == "done" and n.reward is not None
        }

    def select_parent(self, c: float = 1.0, slot: Optional[int] = None) -> int:
        scores = self.ucb_scores(c, slot)
        if not scores:
            return ROOT
        return max(sorted(scores), key=lambda k: scores[k])

    def best(self, slot: Optional[int] = None) -> Optional[Node]:
        """Highest-reward finished node that is not a re-run (re-runs only add samples to its config)."""
        done = [
            n
            for n in self.finished_nodes(slot)
            if n.status == "done" and n.reward is not None and n.mode not in RERUN_MODES
        ]
        return max(sorted(done, key=lambda n: n.id), key=lambda n: n.reward) if done else None

    def config_samples(self, config: Dict[str, Any], slot: Optional[int] = None) -> List[Node]:
        """Finished nodes run with exactly ``config`` (the best node and its robustness re-runs)."""
        key = json.dumps(config, sort_keys=True, default=str)
        return [
            n
            for n in self.finished_nodes(slot)
            if n.status == "done" and json.dumps(n.config, sort_keys=True, default=str) == key
        ]

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return {
            "format": TREE_FORMAT,
            "meta": self.meta,
            "nodes": [dataclasses.asdict(n) for n in sorted(self.nodes.values(), key=lambda n: n.id)],
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ExplorationTree":
        fmt = d.get("format", "eirnn_fast.explore.tree/0")  # /0: the trees written before formats (same keys)
        if fmt not in ("eirnn_fast.explore.tree/0", TREE_FORMAT):
            raise ValueError(f"tree file format {fmt!r} is not one this version reads ({TREE_FORMAT!r})")
        t = cls()
        t.meta = dict(d.get("meta", {}))
        t.nodes = {}
        names = {f.name for f in dataclasses.fields(Node)}
        for nd in d["nodes"]:
            node = Node(**{k: v for k, v in nd.items() if k in names})
            t.nodes[node.id] = node
        if ROOT not in t.nodes:
            raise ValueError("tree file has no root node (id 0)")
        return t

    def save(self, path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, default=_json_default))

    @classmethod
    def load(cls, path) -> "ExplorationTree":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def summary_table(self) -> str:
        """Markdown table, one row per run node."""
        rows = [
            "| id | parent | slot | block | iter | status | mode | mutation | reward | class | data_seed |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n in sorted(self.run_nodes(), key=lambda n: n.id):
            mut = "; ".join(f"{m['param']}: {_fmt(m['old'])} -> {_fmt(m['new'])}" for m in n.mutations) or "-"
            rew = f"{n.reward:.4f}" if isinstance(n.reward, (int, float)) else "-"
            rows.append(
                f"| {n.id} | {n.parent} | {n.slot} | {n.block} | {n.iteration} | {n.status} | {n.mode} | "
                f"{mut} | {rew} | {n.label or '-'} | {n.data_seed} |"
            )
        return "\n".join(rows)


def _fmt(v):
    return format_value(v)


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    return str(o)
