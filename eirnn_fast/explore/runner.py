"""``Explorer``: the exploration loop (seed 003/004 protocol without a language model).

One *batch* = one node per parallel slot. For each new node: pick the parent (baseline while the
slot's tree has no finished node; the robustness slot re-runs the best node until it has
``min_samples`` samples; otherwise UCB, see :mod:`eirnn_fast.explore.tree`), propose one or two
mutations within the current block's parameters, save the tree (nodes ``running``), run the batch in
parallel, and after every finished node: reward, classification, atomic tree save, one analysis-log
entry. After every batch the working memory is rewritten. A restart loads the tree: finished nodes
are kept, in-flight nodes are re-run with the same id, config and data seed.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import shlex
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from eirnn_fast.atomic import atomic_write_text
from eirnn_fast.executor import Executor, WorkerDied
from eirnn_fast.explore.logfmt import IterEntry, Mutation, format_value, mutations_from_text, parse_log
from eirnn_fast.explore.objectives import run_node
from eirnn_fast.explore.space import Classifier, Constraints, RandomProposer, Reward
from eirnn_fast.explore.tree import ROOT, ExplorationTree, Node
from eirnn_fast.runstore import decide

KINDS = ("flyvis", "sc", "fake")
_TOP_KEYS = {
    "name",
    "kind",
    "description",
    "slots",
    "iterations",
    "seed",
    "data_seed_base",
    "ucb_c",
    "threads_per_slot",
    "keep_data",
    "reward",
    "classification",
    "base_config",
    "generate",
    "search_space",
    "locked",
    "blocks",
    "slot_models",
    "robustness",
    "proposer",
    "config_line",
    "metrics_line",
    "reference_range",
    "fake",
    "gpus_per_slot",
}


#: exploration config keys that may change between runs into one folder (how long it runs, its prose)
EXPLORE_FREE_KEYS = ("iterations", "description")


def _config_record(config: "ExploreConfig") -> Dict[str, Any]:
    """What an exploration folder's tree records of its config: the YAML's keys with the command
    line's slots and seed, as JSON stores them."""
    record = {**config.raw, "name": config.name, "kind": config.kind, "slots": config.slots, "seed": config.seed}
    if isinstance(record.get("fake"), dict):  # the fake objective's fault injection changes no node's result
        record["fake"] = {k: v for k, v in record["fake"].items() if k not in _FAKE_FAULT_KEYS}
    return json.loads(json.dumps(record, default=str))


_FAKE_FAULT_KEYS = ("die_on_node", "fail_on_node", "sleep")


def explore_outputs(config: "ExploreConfig") -> tuple:
    """What an exploration writes into its folder: removed by a forced fresh start."""
    return (
        "tree.json",
        "nodes",
        "cache",
        "summary.json",
        "summary.md",
        f"{config.name}_analysis.md",
        f"{config.name}_memory.md",
    )


class ExplorationInterrupted(RuntimeError):
    """Raised by ``Explorer.run(max_new_nodes=k)`` after k finished nodes (tests simulate a kill)."""


# key -> (type, lowest value or None): checked before the config is built (a YAML typo names its key)
_KEY_TYPES = {
    "name": (str, None),
    "description": (str, None),
    "slots": (int, 1),
    "iterations": (int, 1),
    "seed": (int, 0),
    "data_seed_base": (int, 0),
    "ucb_c": (float, 0.0),
    "threads_per_slot": (int, 1),
    "gpus_per_slot": (float, 0.0),
    "keep_data": (bool, None),
    "base_config": (dict, None),
    "search_space": (dict, None),
    "locked": (dict, None),
    "generate": (dict, None),
    "robustness": (dict, None),
    "proposer": (dict, None),
    "reference_range": (dict, None),
    "fake": (dict, None),
    "blocks": (list, None),
    "slot_models": (list, None),
    "config_line": (list, None),
    "metrics_line": (list, None),
}


def _check_types(d: Dict[str, Any]) -> None:
    for key, (want, lo) in _KEY_TYPES.items():
        if key not in d or d[key] is None:
            continue
        v = d[key]
        ok = isinstance(v, want) and not (want in (int, float) and isinstance(v, bool))
        if want is float and isinstance(v, int) and not isinstance(v, bool):
            ok = True
        if not ok:
            raise TypeError(f"exploration config key {key!r}: must be {want.__name__}, got {type(v).__name__} {v!r}")
        if want is str and key == "name" and not v.strip():
            raise ValueError(f"exploration config key 'name': must be a non-empty string, got {v!r}")
        if lo is not None and not (v >= lo and math.isfinite(v)):
            raise ValueError(f"exploration config key {key!r}: must be >= {lo}, got {v!r}")


@dataclass
class ExploreConfig:
    name: str
    kind: str
    base_config: Dict[str, Any]
    slots: int = 4
    iterations: int = 8
    seed: int = 0
    data_seed_base: int = 1000
    ucb_c: float = 1.0
    threads_per_slot: int = 1
    gpus_per_slot: float = 1.0
    keep_data: bool = False
    description: str = ""
    generate: Dict[str, Any] = field(default_factory=dict)
    reward: Reward = field(default_factory=Reward)
    classifier: Classifier = field(default_factory=Classifier)
    constraints: Constraints = field(default_factory=Constraints)
    blocks: List[Dict[str, Any]] = field(default_factory=list)
    slot_models: List[Dict[str, Any]] = field(default_factory=list)
    robustness: Dict[str, Any] = field(default_factory=dict)
    proposer: Dict[str, Any] = field(default_factory=lambda: {"type": "random"})
    config_line: List[str] = field(default_factory=list)
    metrics_line: List[str] = field(default_factory=list)
    reference_range: Dict[str, Any] = field(default_factory=dict)
    fake: Dict[str, Any] = field(default_factory=dict)
    raw: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ExploreConfig":
        unknown = sorted(set(d) - _TOP_KEYS)
        if unknown:
            raise ValueError(f"exploration config: unknown key(s) {unknown}")
        _check_types(d)
        kind = d.get("kind")
        if kind not in KINDS:
            raise ValueError(f"exploration config key 'kind': must be one of {KINDS}, got {kind!r}")
        cons = Constraints.from_dict(d.get("search_space", {}), d.get("locked", {}))
        blocks = list(d.get("blocks") or [])
        for i, b in enumerate(blocks):
            for p in b.get("parameters", []) or []:
                if p not in cons.space:
                    raise ValueError(f"blocks[{i}].parameters: {p!r} is not in search_space")
            if int(b.get("iterations", 0)) < 1:
                raise ValueError(f"blocks[{i}]: needs iterations >= 1")
        cfg = cls(
            name=str(d.get("name", "exploration")),
            kind=kind,
            base_config=cons.apply_locks(dict(d.get("base_config") or {})),
            slots=int(d.get("slots", 4)),
            iterations=int(d.get("iterations", 8)),
            seed=int(d.get("seed", 0)),
            data_seed_base=int(d.get("data_seed_base", 1000)),
            ucb_c=float(d.get("ucb_c", 1.0)),
            threads_per_slot=int(d.get("threads_per_slot", 1)),
            gpus_per_slot=float(d.get("gpus_per_slot", 1.0)),
            keep_data=bool(d.get("keep_data", False)),
            description=str(d.get("description", "")),
            generate=dict(d.get("generate") or {}),
            reward=Reward.from_dict(d.get("reward", "connectivity_R2")),
            classifier=Classifier.from_dict(d.get("classification")),
            constraints=cons,
            blocks=blocks,
            slot_models=list(d.get("slot_models") or []),
            robustness=dict(d.get("robustness") or {}),
            proposer=dict(d.get("proposer") or {"type": "random"}),
            config_line=list(d.get("config_line") or []),
            metrics_line=list(d.get("metrics_line") or []),
            reference_range=dict(d.get("reference_range") or {}),
            fake=dict(d.get("fake") or {}),
            raw=dict(d),
        )
        for p in cfg.constraints.space:
            if p not in cfg.base_config:
                raise ValueError(f"search_space.{p}: give its starting value in base_config")
        if kind == "sc":  # each node runs FitConfig.from_dict(base_config + its changes): check the start
            from eirnn_fast.train import FitConfig

            try:
                FitConfig.from_dict(dict(cfg.base_config))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"exploration config key 'base_config': {exc}") from None
        if cfg.slot_models and len(cfg.slot_models) < cfg.slots:
            raise ValueError(f"slot_models lists {len(cfg.slot_models)} models for {cfg.slots} slots")
        if cfg.slots < 1 or cfg.iterations < 1:
            raise ValueError("slots and iterations must be >= 1")
        return cfg

    @classmethod
    def from_yaml(cls, path) -> "ExploreConfig":
        from eirnn_fast.yamlio import read_yaml

        d = read_yaml(path)
        if not isinstance(d, dict):
            raise ValueError(f"{path}: an exploration config must be a mapping")
        return cls.from_dict(d)

    # -- blocks ------------------------------------------------------------------------------
    def block_of(self, iteration: int) -> int:
        """1-based block of a 1-based iteration; past the listed blocks the last block's length repeats."""
        if not self.blocks:
            return 1
        end = 0
        for i, b in enumerate(self.blocks):
            end += int(b["iterations"])
            if iteration <= end:
                return i + 1
        last = int(self.blocks[-1]["iterations"])
        return len(self.blocks) + 1 + (iteration - end - 1) // last

    def block_spec(self, block: int) -> Dict[str, Any]:
        if not self.blocks:
            return {"name": "all", "parameters": []}
        return self.blocks[min(block, len(self.blocks)) - 1]


def _import_callable(spec: str) -> Callable:
    mod, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"proposer.callable {spec!r}: expected 'module:function'")
    return getattr(importlib.import_module(mod), attr)


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
        record = _config_record(config)
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
        return [n.reward for n in self.tree.config_samples(node.config, self._scope(node.slot)) if n.reward is not None]

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
        if self.propose_fn is not None or ptype == "python":
            fn = self.propose_fn or _import_callable(self.cfg.proposer["callable"])
            raw = fn(self.memory_path.read_text(), self.tree)
            muts = [Mutation.from_any(m) for m in raw]
        elif ptype == "command":
            cmd = self.cfg.proposer["command"]
            cmd = (
                cmd.replace("{memory}", shlex.quote(str(self.memory_path)))
                if "{memory}" in cmd
                else f"{cmd} {shlex.quote(str(self.memory_path))}"
            )
            env = dict(
                os.environ,
                EIRNN_EXPLORE_TREE=str(self.tree_path),
                EIRNN_EXPLORE_PARENT=str(node.parent),
                EIRNN_EXPLORE_NODE=str(node.id),
                EIRNN_EXPLORE_SLOT=str(node.slot),
            )
            proc = subprocess.run(
                cmd,
                shell=True,
                capture_output=True,
                text=True,
                env=env,
                timeout=float(self.cfg.proposer.get("timeout_s", 600)),
            )
            if proc.returncode != 0:
                raise RuntimeError(f"proposer command failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
            muts = mutations_from_text(proc.stdout)
        else:
            raise ValueError(f"proposer.type must be random, python or command, got {ptype!r}")
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

    def _observation(self, node: Node) -> str:
        if node.status != "done":
            return f"run failed: {node.error.splitlines()[0] if node.error else 'unknown error'}"
        m = self.cfg.reward.metric
        v = node.metrics.get(m)
        parts = [f"{m}={v:.4f}" if isinstance(v, (int, float)) else f"{m} missing"]
        par = self.tree.nodes.get(node.parent)
        if (
            par is not None
            and par.id != ROOT
            and isinstance(par.metrics.get(m), (int, float))
            and isinstance(v, (int, float))
        ):
            parts.append(f"vs parent {par.metrics[m]:.4f} ({v - par.metrics[m]:+.4f})")
        ref = self.cfg.reference_range
        if ref and isinstance(node.metrics.get(ref.get("metric", m)), (int, float)):
            lo, hi = ref["range"]
            x = node.metrics[ref.get("metric", m)]
            where = "below" if x < lo else "above" if x > hi else "within"
            parts.append(f"{where} {ref.get('name', 'reference')} range {lo}-{hi}")
        best = self.tree.best(self._scope(node.slot))
        if best is not None:
            parts.append(f"best so far node {best.id} (reward {best.reward:.4f})")
        return "; ".join(parts)

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
        cl = self.cfg.config_line or list(self.cfg.constraints.space)
        conf = {k: node.config.get(k) for k in cl}
        for m in node.mutations:
            conf.setdefault(m["param"], node.config.get(m["param"]))
        ml = self.cfg.metrics_line or None
        metrics = {k: v for k, v in node.metrics.items() if (ml is None or k in ml) and isinstance(v, (int, float))}
        note = ""
        if not node.mutations:
            note = (
                "(baseline)"
                if node.mode == "baseline"
                else f"(robustness re-run of node {node.parent}, data seed {node.data_seed})"
            )
        entry = IterEntry(
            node.iteration,
            node.label or node.status,
            node.id,
            node.parent,
            node.mode,
            conf,
            metrics,
            [Mutation(m["param"], m["old"], m["new"]) for m in node.mutations],
            node.parent_rule,
            self._observation(node),
            self.tree.select_parent(self.cfg.ucb_c, self._scope(node.slot)),
            note,
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if not self.log_path.exists():
            self.log_path.write_text(f"# Analysis log: {self.cfg.name}\n\n{self.cfg.description}\n\n")
        with open(self.log_path, "a") as fh:
            fh.write(entry.format() + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    # -- memory ---------------------------------------------------------------------------------
    def _samples_stats(self, node: Node) -> str:
        r = self._best_samples(node)
        if len(r) >= 2:
            return f"{statistics.mean(r):.4f} +/- {statistics.stdev(r):.4f} (n={len(r)})"
        return f"{r[0]:.4f} (n=1)" if r else "-"

    def memory_text(self, next_info: Optional[Dict[str, Any]] = None) -> str:
        cfg, tree = self.cfg, self.tree
        L = [
            f"# Working memory: {cfg.name}",
            "",
            cfg.description.strip(),
            "",
            f"Kind: {cfg.kind}; reward: {cfg.reward.metric}"
            + (f" (constraints: {', '.join(cfg.reward.constraints)})" if cfg.reward.constraints else "")
            + f"; UCB c={cfg.ucb_c}; slots={cfg.slots}; finished nodes={len(tree.finished_nodes())}",
            "",
            "## Current best",
            "",
        ]
        scopes = range(cfg.slots) if self.per_slot else [None]
        for s in scopes:
            best = tree.best(s)
            tag = f"slot {s} ({cfg.slot_models[s].get('name', s)}): " if s is not None else ""
            if best is None:
                L.append(f"- {tag}none yet")
                continue
            L.append(
                f"- {tag}node {best.id} (iter {best.iteration}, {best.label}): reward {best.reward:.4f}; "
                f"samples of this config: {self._samples_stats(best)}"
            )
            L.append(
                f"  - config: {', '.join(f'{k}={format_value(best.config.get(k))}' for k in (cfg.config_line or cfg.constraints.space))}"
            )
            L.append(
                f"  - metrics: {', '.join(f'{k}={v:.4f}' for k, v in best.metrics.items() if k in (cfg.metrics_line or best.metrics) and isinstance(v, (int, float)))}"
            )
        L += ["", "## Locked parameters", "", "| parameter | value | reason |", "|---|---|---|"]
        for k, lock in cfg.constraints.locked.items():
            why = lock.reason + (f" (unlocked when {' or '.join(lock.unless)})" if lock.unless else "")
            L.append(f"| {k} | {format_value(lock.value)} | {why} |")
        L += ["", "## Search space", ""]
        for k, sp in cfg.constraints.space.items():
            L.append(
                f"- {k}: "
                + (
                    f"values {[format_value(v) for v in sp.values]}"
                    if sp.values is not None
                    else f"range {sp.range}{' (log)' if sp.log else ''}{' (integer)' if sp.integer else ''}"
                )
            )
        L += ["", "## Blocks", ""]
        blocks = sorted({n.block for n in tree.run_nodes()})
        for b in blocks:
            nodes = [n for n in tree.run_nodes() if n.block == b]
            fin = [n for n in nodes if n.status == "done" and n.reward is not None]
            spec = cfg.block_spec(b)
            labels: Dict[str, int] = {}
            for n in nodes:
                if n.finished:
                    labels[n.label] = labels.get(n.label, 0) + 1
            L.append(
                f"### Block {b}: {spec.get('name', '')} ({len([n for n in nodes if n.finished])}/{len(nodes)} finished)"
            )
            if spec.get("description"):
                L.append(f"Focus: {spec['description']}")
            L.append(f"Classes: {', '.join(f'{k}={v}' for k, v in sorted(labels.items())) or '-'}")
            if fin:
                bb = max(fin, key=lambda n: (n.reward, -n.id))
                rs = [n.reward for n in fin]
                L.append(
                    f"Best in block: node {bb.id} reward {bb.reward:.4f} (samples of its config: {self._samples_stats(bb)}); "
                    f"block rewards mean {statistics.mean(rs):.4f}"
                    + (f" std {statistics.stdev(rs):.4f}" if len(rs) > 1 else "")
                )
            L.append("")
        L += ["## Parameter effects (mean reward change child - parent, rule-based principles)", ""]
        eff: Dict[str, List[float]] = {}
        for n in tree.run_nodes():
            p = tree.nodes.get(n.parent)
            if n.mutations and n.reward is not None and p is not None and p.reward is not None:
                for m in n.mutations:
                    eff.setdefault(m["param"], []).append(n.reward - p.reward)
        for k, v in sorted(eff.items()):
            verdict = "helps" if statistics.mean(v) > 0.01 else "hurts" if statistics.mean(v) < -0.01 else "neutral"
            L.append(f"- {k}: {statistics.mean(v):+.4f} over {len(v)} mutations ({verdict})")
        if not eff:
            L.append("- none yet")
        L += ["", "## Next", ""]
        if next_info:
            L.append(
                f"Next: parent={next_info['parent']}, slot={next_info['slot']}, node={next_info['node']}, "
                f"block={next_info['block']}, parameters={next_info['parameters'] or 'any'}"
            )
            par = tree.nodes[next_info["parent"]]
            L.append(
                f"Parent config: {', '.join(f'{k}={format_value(par.config.get(k))}' for k in cfg.constraints.space)}"
            )
        else:
            for s in scopes:
                L.append(f"Next: parent={tree.select_parent(cfg.ucb_c, s)}" + (f", slot={s}" if s is not None else ""))
        return "\n".join(L) + "\n"

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
        cfg, tree = self.cfg, self.tree
        out: Dict[str, Any] = {
            "name": cfg.name,
            "kind": cfg.kind,
            "reward_metric": cfg.reward.metric,
            "n_nodes": len(tree.run_nodes()),
            "n_done": sum(n.status == "done" for n in tree.run_nodes()),
            "n_failed": sum(n.status == "failed" for n in tree.run_nodes()),
            "run_seconds": [r.get("seconds") for r in tree.meta.get("runs", [])],
            "best": {},
        }
        for s in range(cfg.slots) if self.per_slot else [None]:
            best = tree.best(s)
            if best is None:
                continue
            samples = tree.config_samples(best.config, s)
            stats = {}
            for k in sorted({k for n in samples for k, v in n.metrics.items() if isinstance(v, (int, float))}):
                vals = [
                    n.metrics[k]
                    for n in samples
                    if isinstance(n.metrics.get(k), (int, float)) and math.isfinite(n.metrics[k])
                ]
                if vals:
                    stats[k] = {
                        "mean": statistics.mean(vals),
                        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                        "n": len(vals),
                    }
            out["best"]["all" if s is None else str(s)] = {
                "node": best.id,
                "reward": best.reward,
                "label": best.label,
                "config": best.config,
                "samples": [n.id for n in samples],
                "data_seeds": [n.data_seed for n in samples],
                "metrics_mean_std": stats,
            }
        atomic_write_text(self.out / "summary.json", json.dumps(out, indent=1, default=str))
        atomic_write_text(self.out / "summary.md", f"# {cfg.name}: tree\n\n" + tree.summary_table() + "\n")
        return out
