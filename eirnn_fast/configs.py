"""One config mechanism for every command: a dataclass read from a mapping or a file, and its
command-line flags derived from the same fields.

* :func:`read_config_file`: a TOML, YAML or JSON file (chosen by the suffix) as a ``dict``; a parse
  error names the file and the line (``ValueError``).
* :func:`resolve_keys`: maps old key names through an alias table (``{old: field}``) and rejects
  unknown keys with a "did you mean" hint (``difflib``).
* :func:`coerce_values`: checks (and, where lossless, casts) every value against its field's
  annotation: ``int``, ``float`` (an int is taken as a float), ``bool`` (never from a number), ``str``
  (a path object becomes a string), ``Optional[...]``, ``Dict``, ``List[X]``, ``Tuple[X, ...]``,
  ``Literal[...]`` and field ``choices``. A bool is never a number. The error is a
  :class:`ConfigTypeError` (a ``TypeError`` and a ``ValueError``) naming the key (``config key 'epochs': must be int, got str 'x'``) and the file.
* :func:`add_flags` / :func:`overrides_from_args`: one ``--field-name`` flag per field (help text from
  the field's ``metadata["help"]`` or a help table, old flag names as extra option strings, booleans
  as ``--x`` / ``--no-x``, ``Optional`` fields accept ``none``), and the inverse: the flags the user
  gave as a ``{field: value}`` dict. A flag that was not given is absent from the namespace
  (``argparse.SUPPRESS``), so it never overrides a config file or a preset.

A dataclass may declare, as class attributes, ``CONFIG_ALIASES`` (``{old key: field}``),
``CONFIG_HELP`` (``{field: help}``), ``CONFIG_CHOICES`` (``{field: allowed values}``) and
``FLAG_ALIASES`` (``{field: ("--old-flag", ...)}``); the functions read them unless given tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import json
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from eirnn_fast.yamlio import read_yaml

try:
    import tomllib
except ImportError:  # Python 3.10: the backport (a dependency there)
    import tomli as tomllib  # type: ignore[no-redef]

#: file suffixes :func:`read_config_file` reads
SUFFIXES = {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML", ".json": "JSON"}


# -- files -------------------------------------------------------------------------------------------
def parse_toml(text: str) -> Dict[str, Any]:
    """``tomllib.loads`` (the ``tomli`` backport on Python 3.10, a dependency there)."""
    return tomllib.loads(text)


def read_config_file(
    path: Union[str, os.PathLike], section: Optional[str] = None, kind: Optional[str] = None
) -> Dict[str, Any]:
    """The table of a TOML / YAML / JSON config file (by suffix, other suffixes read as JSON; ``kind``
    ``"TOML"`` / ``"YAML"`` / ``"JSON"`` fixes the format whatever the suffix).
    ``section``: when the file has a table of that name, it is returned instead of the whole file
    (``[fit]`` in the suites' TOMLs). ``ValueError`` naming the file for a missing file, a parse error
    (with its line and column) or a document that is not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such config file" + (" (it is a folder)" if path.is_dir() else ""))
    kind = kind or SUFFIXES.get(path.suffix.lower(), "JSON")
    if kind == "YAML":
        values = read_yaml(path)  # its parse error names the file and the line
    else:
        text = path.read_text()
        try:
            values = parse_toml(text) if kind == "TOML" else json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
        except tomllib.TOMLDecodeError as exc:  # "Invalid value (at line 1, column 10)"
            m = re.match(r"(.*?)\s*\(at line (\d+), column (\d+)\)\s*$", str(exc))
            where, problem = (f" (line {m[2]}, column {m[3]})", m[1]) if m else ("", str(exc))
            raise ValueError(f"{path}: not valid TOML{where}: {problem}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config must be a mapping (a table / an object), got {type(values).__name__}")
    if section is not None and isinstance(values.get(section), dict):
        return values[section]
    return values


# -- keys --------------------------------------------------------------------------------------------
def field_names(cls) -> List[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _table(cls, name: str, given):
    return dict(getattr(cls, name, {}) if given is None else given)


def did_you_mean(key: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(key, sorted(set(candidates)), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resolve_keys(
    cls,
    values: Mapping[str, Any],
    *,
    aliases: Optional[Mapping[str, str]] = None,
    source: Optional[str] = None,
    prefix: str = "",
    exclude: Sequence[str] = (),
) -> Dict[str, Any]:
    """``values`` with old key names replaced by their field names (``aliases``, default
    ``cls.CONFIG_ALIASES``). ``ValueError`` naming every unknown key (with a "did you mean"), or a key
    given under two names with different values. ``prefix``: how the keys are named in messages
    (``"training."`` for a nested section); ``exclude``: fields that are not config keys."""
    aliases = _table(cls, "CONFIG_ALIASES", aliases)
    names = [n for n in field_names(cls) if n not in exclude]
    out: Dict[str, Any] = {}
    unknown = []
    for key, value in values.items():
        name = aliases.get(key, key)
        if not isinstance(key, str) or name not in names:
            unknown.append(key)
            continue
        if name in out and out[name] != value:
            raise ValueError(_where(source) + f"config key {prefix + key!r}: conflicts with another name for {name!r}")
        out[name] = value
    if unknown:
        candidates = names + [a for a, n in aliases.items() if n in names]
        what = "; ".join(f"{prefix + str(k)!r}{did_you_mean(str(k), candidates)}" for k in unknown)
        raise ValueError(_where(source) + f"unknown config key{'s' if len(unknown) > 1 else ''} {what}")
    return out


def _where(source) -> str:
    return f"{source}: " if source else ""


# -- values ------------------------------------------------------------------------------------------
_NoneType = type(None)


@functools.lru_cache(maxsize=None)
def _hints(cls) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp) -> Tuple[Any, bool]:
    """(X, True) for ``Optional[X]``, (tp, False) otherwise."""
    if typing.get_origin(tp) is Union:
        args = [a for a in typing.get_args(tp) if a is not _NoneType]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def type_name(tp) -> str:
    """``int``, ``Optional[float]``, ``list of str``, ... as messages write them."""
    base, optional = _unwrap_optional(tp)
    origin = typing.get_origin(base)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(base) if a is not Ellipsis]
        name = f"a list of {type_name(args[0])}" if args else "a list"
    elif origin in (dict, Mapping) or base is dict:
        name = "a table (dict)"
    elif origin is typing.Literal:
        name = "one of " + ", ".join(repr(a) for a in typing.get_args(base))
    else:
        name = getattr(base, "__name__", str(base))
    return f"{name} or none" if optional else name


class _Bad(Exception):
    pass


class ConfigTypeError(TypeError, ValueError):
    """A config value of the wrong type. Both a ``TypeError`` and a ``ValueError``: the readers this
    mechanism replaced raised one or the other (FitConfig and explore a ``TypeError``, the FlyVis
    trainer a ``ValueError``), so callers catching either keep working."""


def _coerce(value, tp, numeric_strings: bool):
    """``value`` as type ``tp`` (lossless casts only), or raise :class:`_Bad`."""
    base, optional = _unwrap_optional(tp)
    if value is None:
        if optional or base is Any:
            return None
        raise _Bad
    if base is Any:
        return value
    origin = typing.get_origin(base)
    if base is bool:
        if isinstance(value, bool):
            return value
        raise _Bad
    if base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Bad
    if base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if numeric_strings and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise _Bad from None
        raise _Bad
    if base is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        raise _Bad
    if base is dict or origin in (dict, Mapping):
        if isinstance(value, Mapping):
            return dict(value)
        raise _Bad
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Bad
        args = [a for a in typing.get_args(base) if a is not Ellipsis]
        items = [_coerce(v, args[0], numeric_strings) for v in value] if args else list(value)
        return tuple(items) if origin is tuple else items
    if origin is typing.Literal:
        if value in typing.get_args(base):
            return value
        raise _Bad
    if isinstance(base, type):
        if isinstance(value, base):
            return value
        raise _Bad
    return value  # an annotation this module does not check


def coerce_value(cls, name: str, value, *, source=None, prefix: str = "", numeric_strings: bool = False, choices=None):
    """One field's value checked against its annotation and choices (see :func:`coerce_values`)."""
    tp = _hints(cls)[name]
    try:
        out = _coerce(value, tp, numeric_strings)
    except _Bad:
        got = f"{type(value).__name__} {value!r}" if value is not None else "none"
        raise ConfigTypeError(
            _where(source) + f"config key {prefix + name!r}: must be {type_name(tp)}, got {got}"
        ) from None
    allowed = _table(cls, "CONFIG_CHOICES", choices).get(name) or _field_metadata(cls, name).get("choices")
    if allowed is not None and out is not None:
        items = out if isinstance(out, (list, tuple)) else [out]
        for item in items:
            if item not in tuple(allowed):
                raise ValueError(
                    _where(source) + f"config key {prefix + name!r}: must be one of {tuple(allowed)}, got {item!r}"
                )
    return out


def coerce_values(
    cls,
    values: Mapping[str, Any],
    *,
    source: Optional[str] = None,
    prefix: str = "",
    numeric_strings: bool = False,
    choices: Optional[Mapping[str, Sequence]] = None,
) -> Dict[str, Any]:
    """Every value of ``values`` (field names) checked against its field's annotation and choices:
    ``TypeError`` / ``ValueError`` naming the key (and ``source``, the file). ``numeric_strings``:
    a string that reads as a number is taken for a float field (YAML files)."""
    return {
        k: coerce_value(cls, k, v, source=source, prefix=prefix, numeric_strings=numeric_strings, choices=choices)
        for k, v in values.items()
    }


def check_types(obj, *, source=None, choices=None) -> None:
    """Every field of a dataclass instance holds its annotated type (``TypeError`` naming the field)."""
    cls = type(obj)
    for f in dataclasses.fields(obj):
        coerce_value(cls, f.name, getattr(obj, f.name), source=source, choices=choices)


def from_mapping(
    cls,
    values: Mapping[str, Any],
    *,
    source: Optional[str] = None,
    aliases: Optional[Mapping[str, str]] = None,
    prefix: str = "",
    numeric_strings: bool = False,
    exclude: Sequence[str] = (),
) -> Dict[str, Any]:
    """:func:`resolve_keys` then :func:`coerce_values`: ``{field: checked value}``, ready for
    ``cls(**...)`` (or to be laid over a preset first)."""
    if not isinstance(values, Mapping):
        raise TypeError(_where(source) + f"a config must be a mapping, got {type(values).__name__}")
    resolved = resolve_keys(cls, values, aliases=aliases, source=source, prefix=prefix, exclude=exclude)
    return coerce_values(cls, resolved, source=source, prefix=prefix, numeric_strings=numeric_strings)


def from_file(cls, path, *, section: Optional[str] = None, **kwargs) -> Dict[str, Any]:
    """:func:`from_mapping` of :func:`read_config_file` (YAML files take numeric strings for floats)."""
    values = read_config_file(path, section=section)
    yaml = SUFFIXES.get(Path(path).suffix.lower()) == "YAML"
    kwargs.setdefault("numeric_strings", yaml)
    return from_mapping(cls, values, source=str(path), **kwargs)


def defaults(cls) -> Dict[str, Any]:
    """``{field: default}`` (factories called; fields without a default left out)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


# -- command line ------------------------------------------------------------------------------------
def _field_metadata(cls, name: str) -> Mapping[str, Any]:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata
    return {}


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _optional(kind: Callable) -> Callable:
    """An argparse ``type`` for an ``Optional`` field: ``none`` / ``null`` / ``""`` give None."""

    def parse(text: str):
        if text.lower() in ("none", "null", ""):
            return None
        return kind(text)

    parse.__name__ = getattr(kind, "__name__", "value")  # argparse's "invalid int value: 'x'"
    return parse


def _format_default(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value) or "(empty)"
    if isinstance(value, dict):
        return json.dumps(value)
    return "none" if value is None else str(value)


def add_flags(
    parser: argparse.ArgumentParser,
    cls,
    *,
    only: Optional[Sequence[str]] = None,
    skip: Sequence[str] = (),
    help: Optional[Mapping[str, str]] = None,
    flag_aliases: Optional[Mapping[str, Sequence[str]]] = None,
    choices: Optional[Mapping[str, Sequence]] = None,
    shown_defaults: Optional[Mapping[str, Any]] = None,
) -> List[str]:
    """One flag per field of ``cls`` (``only`` those / all but ``skip``): ``--field-name`` with
    ``dest`` the field name, its type from the annotation (booleans ``--x`` / ``--no-x``, lists
    ``--x A B``, dicts as JSON, ``Optional`` fields take ``none``), help from ``help`` / ``cls.CONFIG_HELP``
    / the field's ``metadata["help"]`` plus the default (``shown_defaults`` overrides what it says),
    and old names from ``flag_aliases`` / ``cls.FLAG_ALIASES`` as extra option strings. A flag not
    given is absent from the parsed namespace. Returns the fields given flags."""
    helps = {**getattr(cls, "CONFIG_HELP", {}), **(help or {})}
    old = {**getattr(cls, "FLAG_ALIASES", {}), **(flag_aliases or {})}
    allowed = {**getattr(cls, "CONFIG_CHOICES", {}), **(choices or {})}
    hints = _hints(cls)
    values = {**defaults(cls), **(shown_defaults or {})}
    added = []
    for f in dataclasses.fields(cls):
        if (only is not None and f.name not in only) or f.name in skip:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        text = helps.get(f.name) or f.metadata.get("help", "")
        field_choices = allowed.get(f.name) or f.metadata.get("choices")
        strings = [flag_name(f.name), *old.get(f.name, ())]
        kw: Dict[str, Any] = dict(dest=f.name, default=argparse.SUPPRESS)
        origin = typing.get_origin(tp)
        if f.name in values:
            shown = values[f.name]
            if tp is bool and isinstance(shown, bool):
                shown = flag_name(f.name) if shown else "--no-" + f.name.replace("_", "-")
            text = (text + " " if text else "") + f"(default: {_format_default(shown)})"
        kw["action"] = "store"
        if tp is bool:  # --x / --no-x: a preset or a file may have set either
            kw["action"] = argparse.BooleanOptionalAction
        elif tp is dict or origin in (dict, Mapping):
            kw["type"] = json.loads  # a JSON object; FitConfig's check names the key for anything else
            kw["metavar"] = "JSON"
        elif origin in (list, tuple):
            args = [a for a in typing.get_args(tp) if a is not Ellipsis]
            item = args[0] if args and args[0] in (int, float, str) else str
            kw.update(type=item, nargs="+")
        elif tp in (int, float, str):
            kw["type"] = _optional(tp) if optional else tp
        else:
            kw["type"] = str
        if field_choices is not None and tp is not bool:
            kw["choices"] = list(field_choices)
            if optional:
                kw["choices"].append(None)
        if old.get(f.name):
            kw["action"] = _warning_action(kw["action"], old[f.name], flag_name(f.name))
            text += " (old name" + ("s" if len(old[f.name]) > 1 else "") + f": {', '.join(old[f.name])})"
        parser.add_argument(*strings, help=text, **kw)
        added.append(f.name)
    return added


def _warning_action(action, old_flags: Sequence[str], new_flag: str):
    """``action`` (an argparse action class or ``"store"``) that also prints ``warning: --old is an
    old name, use --new`` to stderr when the user wrote an old flag (``--no-old`` too, for booleans)."""
    base = argparse._StoreAction if action == "store" else action
    olds = set(old_flags) | {"--no-" + o[2:] for o in old_flags}

    class OldFlag(base):
        def __call__(self, parser, namespace, values, option_string=None):
            if option_string in olds:
                new = (
                    new_flag
                    if not option_string.startswith("--no-") or option_string in old_flags
                    else "--no-" + new_flag[2:]
                )
                print(f"{parser.prog}: warning: {option_string} is an old name, use {new}", file=sys.stderr)
            super().__call__(parser, namespace, values, option_string)

    return OldFlag


def overrides_from_args(args: argparse.Namespace, cls, fields: Optional[Iterable[str]] = None) -> Dict[str, Any]:
    """``{field: value}`` of the flags :func:`add_flags` made that the user gave (the inverse)."""
    names = field_names(cls) if fields is None else list(fields)
    out = {}
    for name in names:
        if hasattr(args, name):
            value = getattr(args, name)
            out[name] = tuple(value) if isinstance(value, list) and _is_tuple(cls, name) else value
    return out


def _is_tuple(cls, name: str) -> bool:
    tp, _ = _unwrap_optional(_hints(cls)[name])
    return typing.get_origin(tp) is tuple
