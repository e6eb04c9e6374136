"""An exploration's config: :class:`ExploreConfig` (the YAML's keys, their types checked before the
config is built so a typo names its key), the keys that may change between runs into one folder
(:data:`EXPLORE_FREE_KEYS`), what its tree records of it (:func:`config_record`) and what the
exploration writes into its folder (:func:`explore_outputs`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

from eirnn_fast import configs
from eirnn_fast.explore.space import Classifier, Constraints, Reward
from eirnn_fast.train import FitConfig

KINDS = ("flyvis", "sc", "fake")


@dataclass
class ExploreFile:
    """The keys of an exploration YAML and their types, read by :mod:`eirnn_fast.configs` (unknown
    keys refused with a "did you mean", types checked, the file named) before :class:`ExploreConfig`
    is built from them. Every key may be ``null`` (= its default)."""

    name: Optional[str] = "exploration"
    kind: Optional[str] = None  # one of KINDS (required)
    description: Optional[str] = ""
    slots: Optional[int] = 4
    iterations: Optional[int] = 8
    seed: Optional[int] = 0
    data_seed_base: Optional[int] = 1000
    ucb_c: Optional[float] = 1.0
    threads_per_slot: Optional[int] = 1
    gpus_per_slot: Optional[float] = 1.0
    keep_data: Optional[bool] = False
    reward: Any = "connectivity_R2"  # a metric name or {metric, constraints, ...} (space.Reward)
    classification: Any = None  # space.Classifier
    base_config: Optional[Dict[str, Any]] = None
    generate: Optional[Dict[str, Any]] = None
    search_space: Optional[Dict[str, Any]] = None
    locked: Optional[Dict[str, Any]] = None
    blocks: Optional[List[Any]] = None
    slot_models: Optional[List[Any]] = None
    robustness: Optional[Dict[str, Any]] = None
    proposer: Optional[Dict[str, Any]] = None
    config_line: Optional[List[Any]] = None
    metrics_line: Optional[List[Any]] = None
    reference_range: Optional[Dict[str, Any]] = None
    fake: Optional[Dict[str, Any]] = None


_TOP_KEYS = {f.name for f in fields(ExploreFile)}
#: key -> lowest value (checked with the types, before the config is built)
_MINIMUM = {
    "slots": 1,
    "iterations": 1,
    "seed": 0,
    "data_seed_base": 0,
    "ucb_c": 0.0,
    "threads_per_slot": 1,
    "gpus_per_slot": 0.0,
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


def _read_keys(d: Dict[str, Any], source: Optional[str]) -> Dict[str, Any]:
    """The YAML's keys checked (:class:`ExploreFile`), ``null`` and absent keys at their defaults."""
    given = configs.from_mapping(ExploreFile, d, source=source)
    where = f"{source}: " if source else ""
    for key, lo in _MINIMUM.items():
        v = given.get(key)
        if v is not None and not (v >= lo and math.isfinite(v)):
            raise ValueError(f"{where}config key {key!r}: must be >= {lo}, got {v!r}")
    if given.get("name") is not None and not given["name"].strip():
        raise ValueError(f"{where}config key 'name': must be a non-empty string, got {given['name']!r}")
    return {**configs.defaults(ExploreFile), **{k: v for k, v in given.items() if v is not None}}


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
    def from_dict(cls, d: Dict[str, Any], source: Optional[str] = None) -> "ExploreConfig":
        """Build from the YAML's mapping: keys and types checked first (:class:`ExploreFile`, the
        messages name the key and ``source``, the file), then the search space, blocks and slots."""
        v = _read_keys(d, source)
        kind = v["kind"]
        if kind not in KINDS:
            raise ValueError(f"exploration config key 'kind': must be one of {KINDS}, got {kind!r}")
        cons = Constraints.from_dict(v["search_space"] or {}, v["locked"] or {})
        blocks = list(v["blocks"] or [])
        for i, b in enumerate(blocks):
            for p in b.get("parameters", []) or []:
                if p not in cons.space:
                    raise ValueError(f"blocks[{i}].parameters: {p!r} is not in search_space")
            if int(b.get("iterations", 0)) < 1:
                raise ValueError(f"blocks[{i}]: needs iterations >= 1")
        cfg = cls(
            name=v["name"],
            kind=kind,
            base_config=cons.apply_locks(dict(v["base_config"] or {})),
            slots=v["slots"],
            iterations=v["iterations"],
            seed=v["seed"],
            data_seed_base=v["data_seed_base"],
            ucb_c=v["ucb_c"],
            threads_per_slot=v["threads_per_slot"],
            gpus_per_slot=v["gpus_per_slot"],
            keep_data=v["keep_data"],
            description=v["description"],
            generate=dict(v["generate"] or {}),
            reward=Reward.from_dict(v["reward"]),
            classifier=Classifier.from_dict(v["classification"]),
            constraints=cons,
            blocks=blocks,
            slot_models=list(v["slot_models"] or []),
            robustness=dict(v["robustness"] or {}),
            proposer=dict(v["proposer"] or {"type": "random"}),
            config_line=list(v["config_line"] or []),
            metrics_line=list(v["metrics_line"] or []),
            reference_range=dict(v["reference_range"] or {}),
            fake=dict(v["fake"] or {}),
            raw=dict(d),
        )
        for p in cfg.constraints.space:
            if p not in cfg.base_config:
                raise ValueError(f"search_space.{p}: give its starting value in base_config")
        if kind == "sc":  # each node runs FitConfig.from_dict(base_config + its changes): check the start
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
    def from_yaml(cls, path, overrides: Optional[Dict[str, Any]] = None) -> "ExploreConfig":
        """The YAML's config, with ``overrides`` (YAML keys, e.g. ``explore``'s flags) laid over its keys."""
        d = configs.read_config_file(path, kind="YAML")
        if not overrides:
            return cls.from_dict(d, source=str(path))
        if not isinstance(d, dict):
            raise ValueError(f"{path}: an exploration config must be a mapping, got {type(d).__name__}")
        return cls.from_dict({**d, **overrides}, source=f"{path} + flags")

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
