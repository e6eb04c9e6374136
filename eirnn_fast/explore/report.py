"""What an exploration writes for people to read: the analysis-log entry of each finished node
(:func:`log_entry`), the working memory (:func:`memory_text`, also what an external proposer reads),
``summary.json`` (:func:`summary`) and ``summary.md`` (:func:`summary_markdown`)."""

from __future__ import annotations

import math
import statistics
from typing import Any, Dict, List, Optional

from eirnn_fast.explore.config import ExploreConfig
from eirnn_fast.explore.logfmt import IterEntry, Mutation, format_value
from eirnn_fast.explore.tree import ROOT, ExplorationTree, Node


def _scope(node: Node, per_slot: bool) -> Optional[int]:
    return node.slot if per_slot else None


def best_samples(tree: ExplorationTree, node: Node, per_slot: bool) -> List[float]:
    """Rewards of every finished sample of ``node``'s config (in its slot's tree when ``per_slot``)."""
    return [n.reward for n in tree.config_samples(node.config, _scope(node, per_slot)) if n.reward is not None]


def observation(cfg: ExploreConfig, tree: ExplorationTree, node: Node, per_slot: bool) -> str:
    """The log entry's ``Observation``: the reward metric, vs the parent, vs ``reference_range``, best so far."""
    if node.status != "done":
        return f"run failed: {node.error.splitlines()[0] if node.error else 'unknown error'}"
    m = cfg.reward.metric
    v = node.metrics.get(m)
    parts = [f"{m}={v:.4f}" if isinstance(v, (int, float)) else f"{m} missing"]
    par = tree.nodes.get(node.parent)
    if (
        par is not None
        and par.id != ROOT
        and isinstance(par.metrics.get(m), (int, float))
        and isinstance(v, (int, float))
    ):
        parts.append(f"vs parent {par.metrics[m]:.4f} ({v - par.metrics[m]:+.4f})")
    ref = cfg.reference_range
    if ref and isinstance(node.metrics.get(ref.get("metric", m)), (int, float)):
        lo, hi = ref["range"]
        x = node.metrics[ref.get("metric", m)]
        where = "below" if x < lo else "above" if x > hi else "within"
        parts.append(f"{where} {ref.get('name', 'reference')} range {lo}-{hi}")
    best = tree.best(_scope(node, per_slot))
    if best is not None:
        parts.append(f"best so far node {best.id} (reward {best.reward:.4f})")
    return "; ".join(parts)


def log_entry(cfg: ExploreConfig, tree: ExplorationTree, node: Node, per_slot: bool) -> IterEntry:
    """The analysis-log entry of a finished node (:class:`~eirnn_fast.explore.logfmt.IterEntry`)."""
    cl = cfg.config_line or list(cfg.constraints.space)
    conf = {k: node.config.get(k) for k in cl}
    for m in node.mutations:
        conf.setdefault(m["param"], node.config.get(m["param"]))
    ml = cfg.metrics_line or None
    metrics = {k: v for k, v in node.metrics.items() if (ml is None or k in ml) and isinstance(v, (int, float))}
    note = ""
    if not node.mutations:
        note = (
            "(baseline)"
            if node.mode == "baseline"
            else f"(robustness re-run of node {node.parent}, data seed {node.data_seed})"
        )
    return IterEntry(
        node.iteration,
        node.label or node.status,
        node.id,
        node.parent,
        node.mode,
        conf,
        metrics,
        [Mutation(m["param"], m["old"], m["new"]) for m in node.mutations],
        node.parent_rule,
        observation(cfg, tree, node, per_slot),
        tree.select_parent(cfg.ucb_c, _scope(node, per_slot)),
        note,
    )


def log_header(cfg: ExploreConfig) -> str:
    """The analysis log's first lines."""
    return f"# Analysis log: {cfg.name}\n\n{cfg.description}\n\n"


def _samples_stats(tree: ExplorationTree, node: Node, per_slot: bool) -> str:
    r = best_samples(tree, node, per_slot)
    if len(r) >= 2:
        return f"{statistics.mean(r):.4f} +/- {statistics.stdev(r):.4f} (n={len(r)})"
    return f"{r[0]:.4f} (n=1)" if r else "-"


def memory_text(
    cfg: ExploreConfig, tree: ExplorationTree, per_slot: bool, next_info: Optional[Dict[str, Any]] = None
) -> str:
    """The working memory (``NAME_memory.md``): current best with mean/std of its samples, locked table,
    search space, per-block class counts and best, per-parameter mean reward change, next parent."""
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
    scopes = range(cfg.slots) if per_slot else [None]
    for s in scopes:
        best = tree.best(s)
        tag = f"slot {s} ({cfg.slot_models[s].get('name', s)}): " if s is not None else ""
        if best is None:
            L.append(f"- {tag}none yet")
            continue
        L.append(
            f"- {tag}node {best.id} (iter {best.iteration}, {best.label}): reward {best.reward:.4f}; "
            f"samples of this config: {_samples_stats(tree, best, per_slot)}"
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
                f"Best in block: node {bb.id} reward {bb.reward:.4f} (samples of its config: {_samples_stats(tree, bb, per_slot)}); "
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
        L.append(f"Parent config: {', '.join(f'{k}={format_value(par.config.get(k))}' for k in cfg.constraints.space)}")
    else:
        for s in scopes:
            L.append(f"Next: parent={tree.select_parent(cfg.ucb_c, s)}" + (f", slot={s}" if s is not None else ""))
    return "\n".join(L) + "\n"


def summary(cfg: ExploreConfig, tree: ExplorationTree, per_slot: bool) -> Dict[str, Any]:
    """``summary.json``: counts, run times and, per slot, the best node with mean/std of every metric
    over all samples of its config."""
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
    for s in range(cfg.slots) if per_slot else [None]:
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
    return out


def summary_markdown(cfg: ExploreConfig, tree: ExplorationTree) -> str:
    """``summary.md``: the tree as a table."""
    return f"# {cfg.name}: tree\n\n" + tree.summary_table() + "\n"
