"""Fast JSON-ready conversion of frozen dataclass trees (HostView): the same result as
``dataclasses.asdict`` followed by a JSON round trip, without asdict's deep copies.

Each dataclass gets a converter built once from its type hints: primitive fields are
copied as they are, nested dataclasses (or ``X | None``) and ``tuple[X, ...]`` of them are
converted recursively, tuples of primitives become lists.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any

Converter = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _for_type(hint: Any) -> Converter:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return converter_for(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(options) == 1 and dataclasses.is_dataclass(options[0]):
            inner = converter_for(options[0])
            return lambda v: None if v is None else inner(v)
        return to_jsonable
    if origin in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if len(args) == 1:
            item = _for_type(args[0])
            if item is _identity:
                return list
            return lambda v: [item(x) for x in v]
        return to_jsonable
    if hint in (str, int, float, bool, type(None)):
        return _identity
    return to_jsonable


@cache
def converter_for(cls: type) -> Converter:
    hints = typing.get_type_hints(cls)
    fields = [(f.name, _for_type(hints[f.name])) for f in dataclasses.fields(cls)]

    def convert(value: Any) -> dict[str, Any]:
        return {name: conv(getattr(value, name)) for name, conv in fields}

    return convert


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return converter_for(type(value))(value)
    if isinstance(value, tuple | list):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    return value
