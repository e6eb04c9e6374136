"""Search spaces, locked parameters, conditions, classification rules, rewards and the
language-model-free mutation proposer."""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from eirnn_fast.explore.logfmt import Mutation, format_value, parse_value


class LockedParameterError(ValueError):
    """A mutation touched a parameter of the exploration's locked table."""


class SearchSpaceError(ValueError):
    """A mutation names an unknown parameter or a value outside its search space."""


# -- conditions: "metric > 0.6", "recurrent_training == true" ------------------------------------
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne}
_COND = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|!=|>|<)\s*(.+?)\s*$")


def parse_condition(text: str):
    m = _COND.match(text)
    if not m:
        raise ValueError(f"condition {text!r}: expected 'name OP value' with OP in {sorted(_OPS)}")
    return m.group(1), m.group(2), parse_value(m.group(3))


def check_condition(text: str, values: Dict[str, Any]) -> bool:
    """False when the name is missing or its value is NaN."""
    name, op, ref = parse_condition(text)
    v = values.get(name)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return False
    try:
        return bool(_OPS[op](v, ref))
    except TypeError:
        return False


# -- search space ---------------------------------------------------------------------------------
@dataclass
class ParamSpace:
    """``values`` (a finite list) or ``range: [lo, hi]`` (``log: true`` samples log-uniformly,
    ``integer: true`` rounds; floats are rounded to ``digits`` significant digits)."""

    name: str
    values: Optional[List[Any]] = None
    range: Optional[List[float]] = None
    log: bool = False
    integer: bool = False
    digits: int = 3

    @classmethod
    def from_dict(cls, name: str, d: Any) -> "ParamSpace":
        if isinstance(d, list):
            return cls(name, values=list(d))
        if not isinstance(d, dict) or ("values" in d) == ("range" in d):
            raise ValueError(f"search_space.{name}: give a list, or a mapping with exactly one of 'values' / 'range'")
        unknown = set(d) - {"values", "range", "log", "integer", "digits"}
        if unknown:
            raise ValueError(f"search_space.{name}: unknown key(s) {sorted(unknown)}")
        ps = cls(
            name,
            values=d.get("values"),
            range=d.get("range"),
            log=bool(d.get("log", False)),
            integer=bool(d.get("integer", False)),
            digits=int(d.get("digits", 3)),
        )
        if ps.range is not None:
            if not isinstance(ps.range, (list, tuple)) or len(ps.range) != 2:
                raise ValueError(f"search_space.{name}: range must be [lo, hi], got {ps.range!r}")
            ps.range = [float(parse_value(x)) if isinstance(x, str) else float(x) for x in ps.range]
            lo, hi = ps.range
            if not lo < hi or (ps.log and lo <= 0):
                raise ValueError(f"search_space.{name}: range needs lo < hi (and lo > 0 with log), got {ps.range}")
        else:
            ps.values = [parse_value(x) if isinstance(x, str) else x for x in ps.values]
        return ps

    def contains(self, v: Any) -> bool:
        if self.values is not None:
            return any(_same(v, x) for x in self.values)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        lo, hi = self.range
        tol = 1e-9 * max(abs(lo), abs(hi))
        return lo - tol <= v <= hi + tol and (not self.integer or float(v).is_integer())

    def sample(self, rng: np.random.Generator, old: Any) -> Any:
        """A value different from ``old`` (when the space has one)."""
        if self.values is not None:
            choices = [x for x in self.values if not _same(x, old)] or list(self.values)
            return choices[int(rng.integers(len(choices)))]
        lo, hi = self.range
        for _ in range(20):
            if self.integer:
                v = int(rng.integers(int(math.ceil(lo)), int(math.floor(hi)) + 1))
            else:
                v = float(math.exp(rng.uniform(math.log(lo), math.log(hi))) if self.log else rng.uniform(lo, hi))
                v = float(f"{v:.{self.digits}g}")
                v = min(max(v, lo), hi)
            if not _same(v, old):
                return v
        return v


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0) or a == b
    return a == b


@dataclass
class Lock:
    value: Any
    reason: str = ""
    unless: List[str] = field(default_factory=list)  # conditions on the NEW config that unlock it


@dataclass
class Constraints:
    """Search space + locked table of one exploration."""

    space: Dict[str, ParamSpace] = field(default_factory=dict)
    locked: Dict[str, Lock] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, space: Dict[str, Any], locked: Dict[str, Any]) -> "Constraints":
        sp = {k: ParamSpace.from_dict(k, v) for k, v in (space or {}).items()}
        lk = {}
        for k, v in (locked or {}).items():
            if isinstance(v, dict) and "value" in v:
                unless = v.get("unless") or []
                lk[k] = Lock(
                    parse_value(v["value"]) if isinstance(v["value"], str) else v["value"],
                    str(v.get("reason", "")),
                    [unless] if isinstance(unless, str) else list(unless),
                )
                for c in lk[k].unless:
                    parse_condition(c)
            else:
                lk[k] = Lock(parse_value(v) if isinstance(v, str) else v)
        both = sorted(set(sp) & {k for k, l in lk.items() if not l.unless})
        if both:
            raise ValueError(f"parameter(s) {both} are both locked and in the search space")
        return cls(sp, lk)

    def apply_locks(self, config: Dict[str, Any]) -> Dict[str, Any]:
        out = dict(config)
        for k, lock in self.locked.items():
            out[k] = lock.value
        return out

    def is_locked(self, param: str, new_config: Dict[str, Any]) -> bool:
        lock = self.locked.get(param)
        if lock is None:
            return False
        return not any(check_condition(c, new_config) for c in lock.unless)

    def relock(self, config: Dict[str, Any]) -> Dict[str, Any]:
        """``{param: locked value}`` for every locked parameter of ``config`` that is off its locked
        value although none of its ``unless`` conditions holds (e.g. ``lr`` raised while
        ``recurrent_training`` was true, in a config where it is false again)."""
        return {
            k: lock.value
            for k, lock in self.locked.items()
            if k in config and config[k] != lock.value and self.is_locked(k, config)
        }

    def apply(self, config: Dict[str, Any], mutations: Sequence[Mutation], check_space: bool = True) -> Dict[str, Any]:
        """Config after ``mutations``. Raises :class:`LockedParameterError` for a locked parameter
        (unless one of its ``unless`` conditions holds in the mutated config) and
        :class:`SearchSpaceError` for a parameter or value outside the search space."""
        new = dict(config)
        for m in mutations:
            new[m.param] = m.new
        for m in mutations:
            if self.is_locked(m.param, new):
                lock = self.locked[m.param]
                why = f" ({lock.reason})" if lock.reason else ""
                extra = f"; allowed only when {' or '.join(lock.unless)}" if lock.unless else ""
                raise LockedParameterError(f"parameter {m.param!r} is locked at {format_value(lock.value)}{why}{extra}")
            if check_space:
                sp = self.space.get(m.param)
                if sp is None and m.param not in self.locked:
                    raise SearchSpaceError(f"parameter {m.param!r} is not in the search space {sorted(self.space)}")
                if sp is not None and not sp.contains(m.new):
                    raise SearchSpaceError(
                        f"{m.param} = {format_value(m.new)} is outside its search space "
                        f"({sp.values if sp.values is not None else sp.range})"
                    )
        return new


# -- classification and reward --------------------------------------------------------------------
@dataclass
class Classifier:
    """Ordered rules ``[{label, when: [conditions]}]``; the first whose conditions all hold wins,
    else ``default``. Seed 004: success = V_rest_R2 > 0.6 and connectivity_R2 > 0.8; partial =
    V_rest_R2 >= 0.3 and connectivity_R2 > 0.8; failed otherwise."""

    rules: List[Dict[str, Any]] = field(default_factory=list)
    default: str = "done"

    @classmethod
    def from_dict(cls, d: Optional[Dict[str, Any]]) -> "Classifier":
        d = d or {}
        rules = list(d.get("rules", []))
        for r in rules:
            if "label" not in r:
                raise ValueError("classification rule needs a 'label'")
            r["when"] = [r["when"]] if isinstance(r.get("when"), str) else list(r.get("when", []))
            for c in r["when"]:
                parse_condition(c)
        return cls(rules, str(d.get("default", "done")))

    def __call__(self, metrics: Dict[str, Any]) -> str:
        for r in self.rules:
            if all(check_condition(c, metrics) for c in r["when"]):
                return r["label"]
        return self.default


@dataclass
class Reward:
    """``metric`` (higher is better; ``sign: -1`` to minimise); if any of ``constraints`` fails, or the
    metric is missing/NaN, the reward is ``violation_reward``."""

    metric: str = "connectivity_R2"
    sign: float = 1.0
    constraints: List[str] = field(default_factory=list)
    violation_reward: float = 0.0

    @classmethod
    def from_dict(cls, d: Any) -> "Reward":
        if isinstance(d, str):
            return cls(metric=d)
        d = dict(d or {})
        cons = d.get("constraints", [])
        r = cls(
            metric=str(d.get("metric", "connectivity_R2")),
            sign=float(d.get("sign", 1.0)),
            constraints=[cons] if isinstance(cons, str) else list(cons),
            violation_reward=float(d.get("violation_reward", 0.0)),
        )
        for c in r.constraints:
            parse_condition(c)
        return r

    def __call__(self, metrics: Dict[str, Any]) -> float:
        v = metrics.get(self.metric)
        if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
            return self.violation_reward
        if not all(check_condition(c, metrics) for c in self.constraints):
            return self.violation_reward
        return self.sign * float(v)
