"""The one configuration loader: YAML files into typed, documented dataclasses.

A configuration is a (nested) dataclass whose fields are declared with :func:`option`, which records a
one-line description next to the default. :func:`load_config` reads YAML with ``yaml.safe_load`` (no
code execution), fills in defaults, converts lists to tuples where the field is a tuple, and rejects
unknown keys and values of the wrong type with an :class:`~echokdm.errors.InputError` that names the
key. :func:`dump_config` writes the effective configuration back (what a run saves next to its weights)
and :func:`describe_config` renders every field with its default and description as commented YAML.

Example::

    @dataclass
    class Optim:
        lr: float = option(1e-3, "learning rate")

    cfg = load_config("run.yaml", Optim)
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from echokdm.errors import InputError
from echokdm.paths import regular_file

C = TypeVar("C")

_MISSING = dataclasses.MISSING


def option(default: Any, doc: str, low: float | None = None, high: float | None = None) -> Any:
    """Declare a configuration field with its default and one-line description.

    Args:
        default: the default value; a dataclass type means "a default instance of it", lists and dicts
            are copied per instance.
        doc: what the field controls (shown by :func:`describe_config`).
        low, high: the range a number must lie in (inclusive; None = unbounded on that side).

    Returns:
        A ``dataclasses.field``.
    """
    meta = {"doc": doc, "range": (low, high)}
    if isinstance(default, type) and dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=default, metadata=meta)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def load_config(source: str | os.PathLike | dict | None, cls: type[C]) -> C:
    """Build a ``cls`` instance from a YAML file, a mapping, or nothing (all defaults).

    Args:
        source: path of a YAML file, an already-parsed mapping, or ``None``.
        cls: the dataclass type of the configuration.

    Returns:
        The configuration, every field set (defaults where the source is silent).

    Raises:
        InputError: the file is missing or not YAML, a key is unknown, or a value has the wrong type.
    """
    if source is None:
        data: Any = {}
        where = "defaults"
    elif isinstance(source, dict):
        data, where = source, "config"
    else:
        path = regular_file(source, "config file")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise InputError(f"config file {path} is not valid YAML: {' '.join(str(e).split())}") from None
        except UnicodeDecodeError:
            raise InputError(f"config file {path} is not UTF-8 text") from None
        where = str(path)
    return _build(cls, data, where)


def config_to_dict(cfg: Any) -> dict:
    """The configuration as plain YAML-able data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def dump_config(cfg: Any) -> str:
    """The configuration as YAML text that :func:`load_config` reads back to an equal object."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def describe_config(cls: type, indent: int = 0) -> str:
    """Every field of ``cls`` with its default and description, as commented YAML.

    Args:
        cls: a configuration dataclass type.
        indent: leading spaces (used for nested sections).

    Returns:
        YAML text that is itself a valid configuration holding the defaults.
    """
    pad = " " * indent
    lines = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        doc = f.metadata.get("doc", "")
        ftype = hints[f.name]
        if dataclasses.is_dataclass(ftype):
            lines.append(f"{pad}# {doc}")
            lines.append(f"{pad}{f.name}:")
            lines.append(describe_config(ftype, indent + 2))
            continue
        default = f.default if f.default is not _MISSING else f.default_factory()  # type: ignore[misc]
        value = yaml.safe_dump(config_to_dict(default), default_flow_style=True).strip()
        value = value.removesuffix("\n...").removesuffix(" ...")
        lines.append(f"{pad}{f.name}: {value}  # {doc}")
    return "\n".join(lines)


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; expected some of {', '.join(fields)}"
        )
    kwargs = {name: _convert(hints[name], value, f"{where}: {name}") for name, value in data.items()}
    for name, value in kwargs.items():
        low, high = fields[name].metadata.get("range", (None, None))
        if isinstance(value, (int, float)) and not ((low is None or value >= low) and (high is None or value <= high)):
            bounds = (
                f"from {low:g} to {high:g}"
                if low is not None and high is not None
                else (f">= {low:g}" if low is not None else f"<= {high:g}")
            )
            raise InputError(f"{where}: {name} must be {bounds}, got {value!r}")
    return cls(**kwargs)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        exact = [a for a in args if isinstance(a, type) and type(value) is a]  # an int stays an int in int | float
        for arg in exact + [a for a in args if a is not type(None) and a not in exact]:
            try:
                return _convert(arg, value, where)
            except InputError as e:
                errors.append(str(e))
        raise InputError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in args:
            raise InputError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
            raise InputError(f"{where}: expected {len(args)} values, got {len(value)}")
        item_types = [args[0]] * len(value) if (origin is list or args[-1:] == (Ellipsis,)) else list(args)
        items = [_convert(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(item_types, value))]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a mapping, got {value!r}")
        return {_convert(args[0], k, where): _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp in (bool, str):
        if not isinstance(value, tp):
            raise InputError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    raise TypeError(f"unsupported config field type {tp!r} at {where}")


__all__ = ["option", "load_config", "config_to_dict", "dump_config", "describe_config"]
