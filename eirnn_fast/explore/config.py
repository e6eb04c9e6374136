"""An exploration's config: :class:`ExploreConfig` (the YAML's keys, their types checked before the
config is built so a typo names its key), the keys that may change between runs into one folder
(:data:`EXPLORE_FREE_KEYS`), what its tree records of it (:func:`config_record`) and what the
exploration writes into its folder (:func:`explore_outputs`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List

from eirnn_fast.explore.space import Classifier, Constraints, Reward
from eirnn_fast.yamlio import read_yaml

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


def config_record(config: "ExploreConfig") -> Dict[str, Any]:
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
