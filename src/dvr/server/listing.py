"""List semantics shared by every collection: filters, fields, sorting, pagination.

Works on rendered resource dicts (the API representation), so "filter by any attribute"
means exactly the attributes a client sees.  Neutron rules:
- ``?a=x&a=y`` keeps items whose ``a`` is x or y; booleans accept true/false/True/False/1/0;
- ``fields=a&fields=b`` keeps only those keys;
- ``sort_key``/``sort_dir`` (repeatable, paired); ``id`` is always the final tie-breaker;
- ``limit`` + ``marker`` (+ ``page_reverse``) with ``<plural>_links`` next/previous hrefs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from dvr.server.errors import http_bad_request, not_found
from dvr.server.validate import to_bool, to_int

PAGING_KEYS = frozenset({"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse"})
TAG_KEYS = frozenset({"tags", "tags-any", "not-tags", "not-tags-any"})
FIXED_IPS_FILTER_KEYS = frozenset({"ip_address", "subnet_id", "ip_address_substr"})


@dataclass(frozen=True)
class FilterTypes:
    """Which attributes of a collection are integers or booleans (their filter values are
    converted, as Neutron's ``convert_to`` does, and refused when they do not convert), and
    which cannot be sort keys (lists and dicts)."""

    integers: frozenset[str] = frozenset()
    booleans: frozenset[str] = frozenset()
    unsortable: frozenset[str] = frozenset()


def _canonical_filter_value(key: str, value: str, types: FilterTypes) -> str:
    try:
        if key in types.integers:
            return str(to_int(value))
        if key in types.booleans:
            return str(to_bool(value))
    except ValueError as exc:
        raise http_bad_request(f"Invalid input for {key}. Reason: {exc}.") from None
    if key == "fixed_ips":
        name, sep, expected = value.partition("=")
        if not sep or name not in FIXED_IPS_FILTER_KEYS or not expected:
            raise http_bad_request(
                f"Invalid input for fixed_ips. Reason: '{value}' must be one of "
                f"{', '.join(sorted(f'{k}=VALUE' for k in FIXED_IPS_FILTER_KEYS))}."
            )
    return value


def validated_filters(filters: dict[str, list[str]], types: FilterTypes) -> dict[str, list[str]]:
    """The filters with integer/boolean values in canonical form; 400 for a bad value."""
    return {
        key: [_canonical_filter_value(key, value, types) for value in values]
        for key, values in filters.items()
    }


@dataclass(frozen=True)
class Query:
    """The parsed query string of a list or show request."""

    items: tuple[tuple[str, str], ...]

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Query:
        return cls(tuple(pairs))

    def get_all(self, key: str) -> list[str]:
        return [v for k, v in self.items if k == key]

    def first(self, key: str) -> str | None:
        values = self.get_all(key)
        return values[0] if values else None

    def filters(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for key, value in self.items:
            if key not in PAGING_KEYS:
                result.setdefault(key, []).append(value)
        return result

    @property
    def fields(self) -> list[str]:
        return [f for value in self.get_all("fields") for f in value.split(",") if f]


def _value_matches(value: Any, wanted: Sequence[str], key: str) -> bool:
    if isinstance(value, bool):
        try:
            return value in {to_bool(w) for w in wanted}
        except ValueError:
            raise http_bad_request(f"Invalid input for {key}. Reason: not a boolean.") from None
    if value is None:
        return any(w in ("", "None", "null") for w in wanted)
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            return False
        return any(w in [str(v) for v in value] for w in wanted)
    if isinstance(value, dict):
        return False
    return str(value) in wanted


def _fixed_ips_match(value: list[dict[str, str]], wanted: Sequence[str]) -> bool:
    """``fixed_ips=ip_address=X`` / ``subnet_id=Y`` / ``ip_address_substr=Z``; any of."""
    for condition in wanted:
        name, _, expected = condition.partition("=")
        for ip in value:
            if name == "ip_address_substr" and expected in ip["ip_address"]:
                return True
            if name in ("ip_address", "subnet_id") and ip[name] == expected:
                return True
    return False


def _tags_match(tags: list[str], filters: dict[str, list[str]]) -> bool:
    def split(key: str) -> list[set[str]]:
        return [set(v.split(",")) for v in filters.get(key, [])]

    have = set(tags)
    if any(not want <= have for want in split("tags")):
        return False
    if any(not want & have for want in split("tags-any")):
        return False
    if any(want <= have for want in split("not-tags")):
        return False
    return not any(want & have for want in split("not-tags-any"))


def apply_filters(
    items: list[dict[str, Any]], filters: dict[str, list[str]], allowed: set[str]
) -> list[dict[str, Any]]:
    unknown = sorted(k for k in filters if k not in allowed and k not in TAG_KEYS)
    if unknown:
        raise http_bad_request(f"{unknown} is invalid attribute for filtering")
    result = []
    for item in items:
        ok = True
        for key, wanted in filters.items():
            if key in TAG_KEYS:
                continue
            value = item.get(key)
            if key == "fixed_ips" and isinstance(value, list):
                ok = _fixed_ips_match(value, wanted)
            else:
                ok = _value_matches(value, wanted, key)
            if not ok:
                break
        if ok and any(k in TAG_KEYS for k in filters):
            ok = _tags_match(item.get("tags", []), filters)
        if ok:
            result.append(item)
    return result


def select_fields(item: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    if not fields:
        return item
    return {k: v for k, v in item.items() if k in fields}


def _sort_value(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value))


def apply_sort(
    items: list[dict[str, Any]], query: Query, allowed: set[str],
    unsortable: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    keys = query.get_all("sort_key")
    dirs = query.get_all("sort_dir")
    if dirs and len(dirs) != len(keys):
        raise http_bad_request("The number of sort_keys and sort_dirs must be same")
    for key in keys:
        structured = any(isinstance(i.get(key), list | dict) for i in items)
        if key not in allowed or key in unsortable or key in TAG_KEYS or structured:
            raise http_bad_request(f"{key} is an invalid attribute for sort_keys")
    for direction in dirs:
        if direction not in ("asc", "desc"):
            raise http_bad_request(f"{direction} is an invalid value for sort_dirs")
    if not keys:
        return items
    ordered = sorted(items, key=lambda i: str(i.get("id")))
    pairs = list(zip(keys, dirs or ["asc"] * len(keys), strict=True))
    for key, direction in reversed(pairs):
        ordered.sort(key=lambda i, k=key: _sort_value(i.get(k)), reverse=direction == "desc")
    return ordered


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    links: list[dict[str, str]]


def _link(base_url: str, query: Query, rel: str, marker: str, reverse: bool) -> dict[str, str]:
    kept = [(k, v) for k, v in query.items if k not in ("marker", "page_reverse")]
    kept.append(("marker", marker))
    if reverse:
        kept.append(("page_reverse", "True"))
    return {"rel": rel, "href": f"{base_url}?{urlencode(kept)}"}


def paginate(items: list[dict[str, Any]], query: Query, base_url: str, resource: str) -> Page:
    raw_limit = query.first("limit")
    marker = query.first("marker")
    try:
        reverse = to_bool(query.first("page_reverse") or "false")
    except ValueError as exc:
        raise http_bad_request(f"Invalid input for page_reverse. Reason: {exc}.") from None
    if raw_limit is None and marker is None:
        return Page(items, [])
    try:
        limit = int(raw_limit) if raw_limit is not None else 0
    except ValueError:
        raise http_bad_request(
            f"Limit must be an integer 0 or greater and not '{raw_limit}'"
        ) from None
    if limit < 0:
        raise http_bad_request(f"Limit must be an integer 0 or greater and not '{raw_limit}'")
    ids = [str(i.get("id")) for i in items]
    if marker is not None:
        if marker not in ids:
            raise not_found(resource, marker)
        position = ids.index(marker)
        before, after = items[:position], items[position + 1 :]
    else:
        before, after = [], items
    links: list[dict[str, str]] = []
    if reverse:
        page = before[-limit:] if limit else before
        has_previous = len(page) < len(before)
        if page and has_previous:
            links.append(_link(base_url, query, "previous", str(page[0]["id"]), True))
        if page:
            links.append(_link(base_url, query, "next", str(page[-1]["id"]), False))
        return Page(page, links)
    page = after[:limit] if limit else after
    if limit and len(after) > limit:
        links.append(_link(base_url, query, "next", str(page[-1]["id"]), False))
    if marker is not None and page:
        links.append(_link(base_url, query, "previous", str(page[0]["id"]), True))
    return Page(page, links)
