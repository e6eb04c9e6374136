"""``Explorer``: the exploration loop (seed 003/004 protocol without a language model).

One *batch* = one node per parallel slot. For each new node: pick the parent (baseline while the
slot's tree has no finished node; the robustness slot re-runs the best node until it has
``min_samples`` samples; otherwise UCB, see :mod:`eirnn_fast.explore.tree`), propose one or two
mutations within the current block's parameters, save the tree (nodes ``running``), run the batch in
parallel, and after every finished node: reward, classification, atomic tree save, one analysis-log
entry. After every batch the working memory is rewritten. A restart loads the tree: finished nodes
are kept, in-flight nodes are re-run with the same id, config and data seed.

The config: :mod:`eirnn_fast.explore.config`; where mutations come from:
:mod:`eirnn_fast.explore.proposers`; what a node runs: :mod:`eirnn_fast.explore.objectives`; the
analysis log, working memory and summaries as text: :mod:`eirnn_fast.explore.report`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from eirnn_fast.atomic import atomic_write_text
from eirnn_fast.executor import Executor, WorkerDied
from eirnn_fast.explore import report
from eirnn_fast.explore.config import EXPLORE_FREE_KEYS, KINDS, ExploreConfig, config_record, explore_outputs
from eirnn_fast.explore.logfmt import Mutation, parse_log
from eirnn_fast.explore.objectives import run_node
from eirnn_fast.explore.proposers import RandomProposer, external_mutations
from eirnn_fast.explore.tree import ROOT, ExplorationTree, Node
from eirnn_fast.runstore import decide

__all__ = ["KINDS", "EXPLORE_FREE_KEYS", "explore_outputs", "ExploreConfig", "ExplorationInterrupted", "Explorer"]


class ExplorationInterrupted(RuntimeError):
    """Raised by ``Explorer.run(max_new_nodes=k)`` after k finished nodes (tests simulate a kill)."""


class Explorer:
    def __init__(
        self,
        config: ExploreConfig,
        out_dir,
        engine: str = "local",
        quiet: bool = True,
        propose_fn: Optional[Callable] = None,
        force: bool = False,
    ):
        """The run folder rule (:mod:`eirnn_fast.runstore`) on ``out_dir/tree.json``: a tree of the same
        config resumes (finished nodes kept, nodes in flight re-run), one of another config raises
        :class:`~eirnn_fast.runstore.RunFolderConflict` naming the keys unless ``force``, which removes
        the old exploration's outputs. ``iterations`` and ``description`` may change between runs."""
        if engine not in ("local", "ray", "serial"):
            raise ValueError(f"engine must be local, ray or serial, got {engine!r}")
        self.cfg = config
        self.out = Path(out_dir)
        self.engine = engine
        self.quiet = quiet
        self.propose_fn = propose_fn
        self.tree_path = self.out / "tree.json"
        self.log_path = self.out / f"{config.name}_analysis.md"
        self.memory_path = self.out / f"{config.name}_memory.md"
        self.proposer = RandomProposer(
            config.constraints, seed=config.seed, p_two=float(config.proposer.get("p_two", 0.3))
        )
        self.per_slot = bool(config.slot_models)
        self._executor: Optional[Executor] = None
        record = config_record(config)
        stored, compared = None, record
        if self.tree_path.exists() and force:  # whatever the folder holds goes (even an unreadable tree)
            stored = {}
        elif self.tree_path.exists():
            meta = ExplorationTree.load(self.tree_path).meta
            stored = meta.get("config")
            if stored is None:  # a tree of an older version recorded only the name and kind: it resumes
                stored = {k: meta.get(k) for k in ("name", "kind")}  # under today's other settings
                compared = {k: record.get(k) for k in ("name", "kind")}
        decision = decide(
            self.out,
            compared,
            stored,
            force=force,
            stale_outputs=explore_outputs(config),
            free_keys=EXPLORE_FREE_KEYS,
            source=self.tree_path,
        )
        if decision.action == "resume":
            self.tree = ExplorationTree.load(self.tree_path)
            self.resumed = True
        else:
            self.tree = ExplorationTree(
                config.base_config,
                {
                    "name": config.name,
                    "kind": config.kind,
                    "reward_metric": config.reward.metric,
                    "ucb_c": config.ucb_c,
                },
            )
            self.resumed = False
        self.tree.meta["config"] = record

    def finished(self, iterations: Optional[int] = None) -> bool:
        """Every node of the search (``iterations``, default the config's) and the final robustness
        re-runs finished: :meth:`run` has nothing left to do."""
        tree, total = self.tree, int(iterations or self.cfg.iterations)
        if tree.unfinished_nodes() or len([n for n in tree.run_nodes() if n.mode != "final-robustness"]) < total:
            return False
        n_final = int(self.cfg.robustness.get("final_reruns", 0))
        for s in range(self.cfg.slots) if self.per_slot else [None]:
            have = [n for n in tree.run_nodes(s) if n.mode == "final-robustness"]
            if n_final and tree.best(s) is not None and len(have) < n_final:
                return False
        return True

    # -- helpers --------------------------------------------------------------------------------
    def _say(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def _scope(self, slot: int) -> Optional[int]:
        return slot if self.per_slot else None

    def _base_for_slot(self, slot: int) -> Dict[str, Any]:
        cfg = dict(self.cfg.base_config)
        if self.per_slot:
            cfg.update(self.cfg.slot_models[slot].get("config") or {})
        return self.cfg.constraints.apply_locks(cfg)

    def _best_samples(self, node: Node) -> List[float]:
        return report.best_samples(self.tree, node, self.per_slot)

    def _new_node(self, slot: int, iteration: int, final: bool = False) -> Node:
        cfg, tree, scope = self.cfg, self.tree, self._scope(slot)
        block = cfg.block_of(iteration)
        rob = cfg.robustness
        best = tree.best(scope)
        kw = dict(slot=slot, block=block, iteration=iteration)
        if final:
            kw["block"] = max(1, min(block, len(cfg.blocks) or 1))
            return tree.add(
                best.id,
                best.config,
                mode="final-robustness",
                parent_rule=f"final robustness re-run of best node {best.id}",
                **kw,
            )
        if not tree.finished_nodes(scope) and not any(n.mode != "baseline" for n in tree.run_nodes(scope)):
            return tree.add(
                ROOT,
                self._base_for_slot(slot),
                mode="baseline",
                parent_rule="baseline: no finished node in this tree yet",
                **kw,
            )
        if (
            best is not None
            and rob.get("slot") is not None
            and int(rob["slot"]) == slot
            and len(self._best_samples(best)) + sum(1 for n in tree.unfinished_nodes() if n.config == best.config)
            < int(rob.get("min_samples", 3))
        ):
            return tree.add(
                best.id,
                best.config,
                mode="robustness-check",
                parent_rule=f"robustness: best node {best.id} has < {rob.get('min_samples', 3)} samples",
                **kw,
            )
        scores = tree.ucb_scores(cfg.ucb_c, scope)
        parent = tree.select_parent(cfg.ucb_c, scope)
        if parent == ROOT:  # nothing finished yet (baselines in flight): mutate the base config
            pconf, rule = self._base_for_slot(slot), "UCB: no finished node yet, mutate the base config"
        else:
            pconf = tree.nodes[parent].config
            rule = (
                f"UCB max score={scores[parent]:.3f} (subtree mean={tree.mean_reward(parent):.3f}, "
                f"n={tree.visits(parent)}, c={cfg.ucb_c})"
            )
        node = tree.add(
            parent,
            pconf,
            mode="exploit" if best is not None and parent == best.id else "explore",
            parent_rule=rule,
            **kw,
        )
        try:
            muts = self._propose(node, pconf, cfg.block_spec(block).get("parameters") or None)
            config = cfg.constraints.apply(pconf, muts)
        except BaseException:
            # a proposer error (locked/out-of-space mutation, failed command, Ctrl-C) must not leave a
            # half-built node behind: a restart would run it as an unmutated copy of its parent
            del tree.nodes[node.id]
            tree.meta.pop("pending", None)
            raise
        # locks whose exception held in the parent but not any more go back to their locked value
        for param, value in cfg.constraints.relock(config).items():
            muts.append(Mutation(param, config[param], value))
            config[param] = value
        node.config = config
        node.mutations = [m.to_dict() for m in muts]
        return node

    def _propose(self, node: Node, pconf: Dict[str, Any], params) -> List[Mutation]:
        ptype = self.cfg.proposer.get("type", "random")
        info = {"node": node.id, "parent": node.parent, "slot": node.slot, "block": node.block, "parameters": params}
        if self.propose_fn is None and ptype == "random":
            return self.proposer.propose(pconf, node.id, params)
        self.tree.meta["pending"] = info
        self.write_memory(next_info=info)
        muts = external_mutations(self.cfg.proposer, self.propose_fn, self.memory_path, self.tree_path, self.tree, node)
        self.tree.meta.pop("pending", None)
        for m in muts:  # the parent's value is the truth for "old"
            m.old = pconf.get(m.param)
        if not muts:
            raise ValueError("external proposer returned no mutation")
        return muts

    def _task(self, node: Node) -> Dict[str, Any]:
        t = {
            "kind": self.cfg.kind,
            "node_id": node.id,
            "config": node.config,
            "data_seed": node.data_seed,
            "node_dir": str(self.out / "nodes" / f"node_{node.id:04d}"),
            "threads": self.cfg.threads_per_slot,
            "generate": self.cfg.generate,
            "keep_data": self.cfg.keep_data,
            "cache_dir": str(self.out / "cache"),
            "fake": self.cfg.fake,
        }
        if self.per_slot:
            t["params_seed"] = self.cfg.slot_models[node.slot].get("params_seed")
        return t

    # -- finishing a node ----------------------------------------------------------------------
    def _finish(self, node: Node, result: Dict[str, Any]) -> None:
        node.status = result["status"]
        node.metrics = result.get("metrics", {})
        node.error = result.get("error", "")
        node.wall_seconds = result.get("wall_seconds")
        if node.status == "done":
            node.reward = self.cfg.reward(node.metrics)
            node.label = self.cfg.classifier(node.metrics)
        else:
            node.reward, node.label = None, "failed (error)"
        self.tree.save(self.tree_path)
        self._append_log(node)
        self._say(
            f"node {node.id} (slot {node.slot}, {node.mode}) {node.status}: "
            f"{self.cfg.reward.metric}={node.metrics.get(self.cfg.reward.metric, float('nan')):.4f} reward="
            f"{node.reward if node.reward is None else round(node.reward, 4)} [{node.label}] {node.wall_seconds or 0:.1f}s"
        )

    def _logged_nodes(self) -> set:
        if not self.log_path.exists():
            return set()
        return {e.node for e in parse_log(self.log_path.read_text())}

    def _append_missing_log_entries(self) -> None:
        """Resume: finished nodes whose log entry a kill cut off (the tree is saved first) get it now."""
        logged = self._logged_nodes()
        for node in sorted(self.tree.finished_nodes(), key=lambda n: n.id):
            if node.id != ROOT and node.id not in logged:
                self._append_log(node)

    def _append_log(self, node: Node) -> None:
        entry = report.log_entry(self.cfg, self.tree, node, self.per_slot)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if not self.log_path.exists():
            self.log_path.write_text(report.log_header(self.cfg))
        with open(self.log_path, "a") as fh:
            fh.write(entry.format() + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    # -- memory ---------------------------------------------------------------------------------
    def memory_text(self, next_info: Optional[Dict[str, Any]] = None) -> str:
        return report.memory_text(self.cfg, self.tree, self.per_slot, next_info)

    def write_memory(self, next_info=None) -> None:
        atomic_write_text(self.memory_path, self.memory_text(next_info))

    # -- execution ------------------------------------------------------------------------------
    def _run_batch(self, nodes: List[Node], budget: List[int]) -> None:
        for n in nodes:
            n.status = "running"
        self.tree.save(self.tree_path)
        tasks = {n.id: self._task(n) for n in nodes}
        if self._executor is None:  # kept across batches: the pool's workers are started once
            self._executor = Executor(
                self.engine,
                self.cfg.slots,
                mp_context="spawn",  # workers import torch afresh: no inherited threads or CUDA state
                ray_options=lambda task: {"num_gpus": self.cfg.gpus_per_slot},
                ray_log_to_driver=not self.quiet,
            )
        by_id = {n.id: n for n in nodes}
        try:
            for task, outcome in self._executor.run(run_node, [tasks[n.id] for n in nodes]):
                result = outcome.value if outcome.ok else {"status": "failed", "error": outcome.error}
                self._finish(by_id[task["node_id"]], result)
                self._count(budget)
        except WorkerDied as exc:
            self._close_pool()
            raise WorkerDied(f"{exc} (finished nodes are in {self.tree_path})") from exc

    def _count(self, budget: List[int]) -> None:
        if budget:
            budget[0] -= 1
            if budget[0] <= 0:
                self._close_pool()
                raise ExplorationInterrupted("stopped after the requested number of finished nodes")

    def _close_pool(self) -> None:
        if getattr(self, "_executor", None) is not None:
            self._executor.close()
            self._executor = None

    def run(self, iterations: Optional[int] = None, max_new_nodes: Optional[int] = None) -> Dict[str, Any]:
        """Run (or resume) until ``iterations`` nodes have finished, then the final robustness
        re-runs; returns the summary (also written to ``summary.json``)."""
        cfg, tree = self.cfg, self.tree
        total = int(iterations or cfg.iterations)
        self.out.mkdir(parents=True, exist_ok=True)
        budget = [int(max_new_nodes)] if max_new_nodes else []
        t0 = time.perf_counter()
        tree.meta.setdefault("runs", []).append(
            {"started": time.time(), "resumed": self.resumed, "engine": self.engine}
        )
        reran = [n.id for n in tree.unfinished_nodes()]
        if self.resumed:
            self._append_missing_log_entries()
        try:
            if reran:
                self._say(f"resuming: re-running in-flight node(s) {reran}")
                self._run_batch(sorted(tree.unfinished_nodes(), key=lambda n: n.id), budget)
                self.write_memory()
            while True:
                explored = [n for n in tree.run_nodes() if n.mode != "final-robustness"]
                if len(explored) >= total:
                    break
                batch = []
                for slot in range(min(cfg.slots, total - len(explored))):
                    it = max(tree.nodes) + 1
                    node = self._new_node(slot, it)
                    node.data_seed = cfg.data_seed_base + node.id
                    batch.append(node)
                self._run_batch(batch, budget)
                self.write_memory()
            n_final = int(cfg.robustness.get("final_reruns", 0))
            for s in range(cfg.slots) if self.per_slot else [None]:
                have = [n for n in tree.run_nodes(s) if n.mode == "final-robustness"]
                if n_final and tree.best(s) is not None and len(have) < n_final:
                    batch = []
                    for _ in range(n_final - len(have)):
                        node = self._new_node(s or 0, max(tree.nodes) + 1, final=True)
                        node.data_seed = cfg.data_seed_base + node.id
                        batch.append(node)
                    self._run_batch(batch, budget)
            self.write_memory()
        finally:
            self._close_pool()
            tree.meta["runs"][-1]["seconds"] = time.perf_counter() - t0
            tree.save(self.tree_path)
        return self.write_summary()

    def write_summary(self) -> Dict[str, Any]:
        out = report.summary(self.cfg, self.tree, self.per_slot)
        atomic_write_text(self.out / "summary.json", json.dumps(out, indent=1, default=str))
        atomic_write_text(self.out / "summary.md", report.summary_markdown(self.cfg, self.tree))
        return out
