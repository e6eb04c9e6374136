"""Proposer back-ends: where a new node's mutations come from (``proposer.type`` of the config).

* ``random``: :class:`RandomProposer`, seeded per node, new values drawn inside the declared space;
* ``python``: ``proposer.callable = "pkg.mod:propose"`` (or ``Explorer(propose_fn=...)``), called as
  ``propose(memory_text, tree) -> [Mutation | "p: old -> new" | {param, new}]``;
* ``command``: ``proposer.command``, a shell command given the working-memory file (``{memory}`` or
  appended; env ``EIRNN_EXPLORE_TREE``, ``_PARENT``, ``_NODE``, ``_SLOT``) whose ``Mutation:`` lines
  are parsed.

The external ones (:func:`external_mutations`) read the working memory the runner wrote just before.
"""

from __future__ import annotations

import importlib
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from eirnn_fast.explore.logfmt import Mutation, mutations_from_text
from eirnn_fast.explore.space import Constraints, LockedParameterError, SearchSpaceError
from eirnn_fast.explore.tree import ExplorationTree, Node


class RandomProposer:
    """Mutates one parameter (two with probability ``p_two``) of the parent's config, drawn from the
    current block's focus parameters (all search-space parameters when the block names none),
    new values drawn inside the declared space. Seeded per node: ``rng = default_rng([seed, node_id])``,
    so a resumed run proposes the same mutations."""

    def __init__(self, constraints: Constraints, seed: int = 0, p_two: float = 0.3):
        self.constraints = constraints
        self.seed = int(seed)
        self.p_two = float(p_two)

    def propose(
        self, parent_config: Dict[str, Any], node_id: int, params: Optional[Sequence[str]] = None
    ) -> List[Mutation]:
        rng = np.random.default_rng([self.seed, int(node_id)])
        pool = [p for p in (params or sorted(self.constraints.space)) if p in self.constraints.space]
        if not pool:
            raise SearchSpaceError(f"no searchable parameter among {list(params or [])}")
        k = 2 if (len(pool) >= 2 and rng.random() < self.p_two) else 1
        chosen = [pool[i] for i in sorted(rng.choice(len(pool), size=k, replace=False))]
        muts: List[Mutation] = []
        for _ in range(10):  # a locked-unless parameter may need its unlocking partner: retry
            muts = [
                Mutation(p, parent_config.get(p), self.constraints.space[p].sample(rng, parent_config.get(p)))
                for p in chosen
            ]
            try:
                self.constraints.apply(parent_config, muts)
                return muts
            except LockedParameterError:
                free = [p for p in pool if p not in self.constraints.locked]
                chosen = [free[int(rng.integers(len(free)))]] if free else chosen
        self.constraints.apply(parent_config, muts)
        return muts


def import_callable(spec: str) -> Callable:
    """The function ``"module:function"`` names."""
    mod, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"proposer.callable {spec!r}: expected 'module:function'")
    return getattr(importlib.import_module(mod), attr)


def command_mutations(command: str, memory_path: Path, tree_path: Path, node: Node, timeout_s: float) -> List[Mutation]:
    """Run the proposer ``command`` on the memory file; the ``Mutation:`` lines it prints."""
    cmd = (
        command.replace("{memory}", shlex.quote(str(memory_path)))
        if "{memory}" in command
        else f"{command} {shlex.quote(str(memory_path))}"
    )
    env = dict(
        os.environ,
        EIRNN_EXPLORE_TREE=str(tree_path),
        EIRNN_EXPLORE_PARENT=str(node.parent),
        EIRNN_EXPLORE_NODE=str(node.id),
        EIRNN_EXPLORE_SLOT=str(node.slot),
    )
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"proposer command failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return mutations_from_text(proc.stdout)


def external_mutations(
    proposer: Dict[str, Any],
    propose_fn: Optional[Callable],
    memory_path: Path,
    tree_path: Path,
    tree: ExplorationTree,
    node: Node,
) -> List[Mutation]:
    """The mutations of the ``python`` (or ``propose_fn``) or ``command`` proposer for ``node``."""
    ptype = proposer.get("type", "random")
    if propose_fn is not None or ptype == "python":
        fn = propose_fn or import_callable(proposer["callable"])
        return [Mutation.from_any(m) for m in fn(memory_path.read_text(), tree)]
    if ptype == "command":
        timeout_s = float(proposer.get("timeout_s", 600))
        return command_mutations(proposer["command"], memory_path, tree_path, node, timeout_s)
    raise ValueError(f"proposer.type must be random, python or command, got {ptype!r}")
