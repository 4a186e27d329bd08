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
from dataclasses import dataclass, field
from functools import cache
from typing import Any

Converter = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


ForClass = Callable[[type], Converter]  # a dataclass -> its converter


def _for_type(hint: Any, for_class: ForClass) -> Converter:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return for_class(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(options) == 1 and dataclasses.is_dataclass(options[0]):
            inner = for_class(options[0])
            return lambda v: None if v is None else inner(v)
        return to_jsonable
    if origin in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if len(args) == 1:
            item = _for_type(args[0], for_class)
            if item is _identity:
                return list
            return lambda v: [item(x) for x in v]
        return to_jsonable
    if hint in (str, int, float, bool, type(None)):
        return _identity
    return to_jsonable


def _fields(cls: type, for_class: ForClass) -> list[tuple[str, Converter]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, _for_type(hints[f.name], for_class)) for f in dataclasses.fields(cls)]


@cache
def converter_for(cls: type) -> Converter:
    fields = _fields(cls, converter_for)

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


@dataclass
class JsonableCache:
    """``to_jsonable`` that keeps the form of each object of the ``shared`` types, by
    identity, and gives it again for the very same object: the objects many answers share
    (a router every view of the revision holds, a remote host of a network) are converted
    once.  The forms it gives are shared: read them, never change them.  Past ``limit``
    objects it starts afresh."""

    shared: frozenset[type]
    limit: int = 100_000
    _forms: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    _converters: dict[type, Converter] = field(default_factory=dict)

    def to_jsonable(self, value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._converter(type(value))(value)
        return to_jsonable(value)

    def _converter(self, cls: type) -> Converter:
        converter = self._converters.get(cls)
        if converter is None:
            converter = self._converters[cls] = self._build(cls)
        return converter

    def _build(self, cls: type) -> Converter:
        fields = _fields(cls, self._converter)
        if cls not in self.shared:
            return lambda value: {name: conv(getattr(value, name)) for name, conv in fields}
        forms = self._forms

        def convert(value: Any) -> dict[str, Any]:
            kept = forms.get(id(value))
            if kept is not None and kept[0] is value:
                return kept[1]
            form = {name: conv(getattr(value, name)) for name, conv in fields}
            if len(forms) >= self.limit:
                forms.clear()
            forms[id(value)] = (value, form)  # (the object: its id stays its own)
            return form

        return convert
