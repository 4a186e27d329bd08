"""Frozen dataclasses <-> JSON, driven by their type hints (pure).

Used to hand a ``DesiredState`` to a process running inside a lab host, and to bring an
``ObservedState`` or a plan back.  Handles what these types use: nested dataclasses,
NamedTuples, ``tuple[X, ...]``, fixed tuples, ``frozenset[X]``, ``X | None``, ``Union`` of
dataclasses (tagged with their class name), ``str``/``int``/``bool``/``float``/``Path``.
Fields declared ``compare=False`` are not part of a value (a plan's basis, a flow mirror's
snapshot: handles into the process that made them) and are left out.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

TYPE_KEY = "__type__"


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: to_jsonable(getattr(value, f.name))
                for f in dataclasses.fields(value) if f.compare}
        data[TYPE_KEY] = type(value).__name__
        return data
    if isinstance(value, (tuple, list)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, frozenset):
        return sorted((to_jsonable(v) for v in value), key=repr)
    if isinstance(value, Path):
        return str(value)
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_jsonable(data: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or data is None:
        return data
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if isinstance(data, dict) and TYPE_KEY in data:
            chosen = next(a for a in options if getattr(a, "__name__", "") == data[TYPE_KEY])
            return from_jsonable(data, chosen)
        return from_jsonable(data, options[0])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_jsonable(v, args[0]) for v in data)
        return tuple(from_jsonable(v, a) for v, a in zip(data, args, strict=True))
    if origin is frozenset:
        return frozenset(from_jsonable(v, args[0]) for v in data)
    if origin is dict:
        return {k: from_jsonable(v, args[1]) for k, v in data.items()}
    if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
        hints = _hints(hint)  # a NamedTuple: encoded as a list of its fields
        return hint(*(from_jsonable(v, hints[name])
                      for v, name in zip(data, hint._fields, strict=True)))
    if dataclasses.is_dataclass(hint):
        hints = _hints(hint)
        return hint(**{f.name: from_jsonable(data[f.name], hints[f.name])
                       for f in dataclasses.fields(hint) if f.name in data})
    if hint is Path:
        return Path(data)
    return data


def decode(data: Any, cls: type) -> Any:
    return from_jsonable(data, cls)
