"""Subnet pools (Neutron's ``subnet_allocation``, ``default-subnetpools`` and
``subnetpool-prefix-ops``): create, update, add/remove prefixes, delete, render, and the
prefix a new subnet is given from a pool.

Neutron's rules: a pool holds prefixes of one IP version (collapsed: overlapping or adjacent
prefixes merge); ``min_prefixlen`` (default /8, IPv6 /64) <= ``default_prefixlen`` (default
min) <= ``max_prefixlen`` (default /32, /128); an update may only add address space; one
default pool per IP version; a pool in an address scope of its own version, whose other
pools' prefixes it must not overlap.  ``default_quota`` is stored, not enforced.  The prefix
arithmetic is ``prefixes`` (pure).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from dvr.db.tables import subnetpools, subnets
from dvr.server.errors import BadRequestError, ConflictError, conflict, invalid_input
from dvr.server.services import prefixes as px
from dvr.server.services.common import bump, new_id, standard_fields, standard_values
from dvr.server.services.queries import get_address_scope, get_subnetpool
from dvr.server.tx import WriteTx

BOUNDS = ("min_prefixlen", "max_prefixlen", "default_prefixlen")


def render_subnetpool(row: Any) -> dict[str, Any]:
    return {
        **standard_fields(row),
        "name": row.name,
        "ip_version": row.ip_version,
        "prefixes": list(row.prefixes),
        # Neutron renders the three lengths as strings
        "default_prefixlen": str(row.default_prefixlen),
        "min_prefixlen": str(row.min_prefixlen),
        "max_prefixlen": str(row.max_prefixlen),
        "default_quota": row.default_quota,
        "shared": row.shared,
        "is_default": row.is_default,
        "address_scope_id": row.address_scope_id,
    }


def show(conn: Connection, subnetpool_id: str) -> dict[str, Any]:
    return render_subnetpool(get_subnetpool(conn, subnetpool_id))


# -- the shape of a pool: prefixes and prefix bounds (Neutron's SubnetPoolReader) ------------
@dataclass(frozen=True)
class PoolShape:
    ip_version: int
    prefixes: tuple[px.IPNetwork, ...]
    min_prefixlen: int
    max_prefixlen: int
    default_prefixlen: int

    def prefix_strings(self) -> list[str]:
        return [str(p) for p in self.prefixes]


def _bounds_error(kind: str, prefixlen: int, base_kind: str, base: int) -> BadRequestError:
    return BadRequestError(
        f"Illegal prefix bounds: {kind}={prefixlen}, {base_kind}={base}.",
        type_name="IllegalSubnetPoolPrefixBounds",
    )


def _empty_pool_error() -> BadRequestError:
    return BadRequestError("Empty subnet pool prefix list.", type_name="EmptySubnetPoolPrefixList")


def read_shape(cidrs: list[str], bounds: dict[str, int | None]) -> PoolShape:
    """Validate a pool's prefixes and bounds (None: the default) and collapse the prefixes."""
    if not cidrs:
        raise _empty_pool_error()
    networks = px.networks(cidrs)
    versions = {n.version for n in networks}
    if len(versions) > 1:
        raise BadRequestError(
            "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
            type_name="PrefixVersionMismatch",
        )
    version = versions.pop()
    minimum = bounds.get("min_prefixlen")
    minimum = px.DEFAULT_MIN_PREFIXLEN[version] if minimum is None else minimum
    maximum = bounds.get("max_prefixlen")
    maximum = px.MAX_PREFIXLEN[version] if maximum is None else maximum
    default = bounds.get("default_prefixlen")
    default = minimum if default is None else default
    if minimum > maximum:
        raise _bounds_error("min_prefixlen", minimum, "max_prefixlen", maximum)
    if maximum > px.MAX_PREFIXLEN[version]:
        raise _bounds_error("max_prefixlen", maximum, "ip_version_max", px.MAX_PREFIXLEN[version])
    if default < minimum:
        raise _bounds_error("default_prefixlen", default, "min_prefixlen", minimum)
    if default > maximum:
        raise _bounds_error("default_prefixlen", default, "max_prefixlen", maximum)
    return PoolShape(version, tuple(px.collapse(networks)), minimum, maximum, default)


def _stored_shape(row: Any) -> PoolShape:
    return PoolShape(
        row.ip_version,
        tuple(px.networks(row.prefixes)),
        row.min_prefixlen,
        row.max_prefixlen,
        row.default_prefixlen,
    )


# -- the rules that involve other rows -------------------------------------------------------
def _check_one_default(conn: Connection, ip_version: int) -> None:
    query = select(subnetpools.c.id).where(
        subnetpools.c.is_default.is_(True), subnetpools.c.ip_version == ip_version
    )
    if conn.execute(query).first() is not None:
        raise invalid_input(
            "A default subnetpool for this IP family has already been set. Only one default "
            "may exist per IP family"
        )


def _check_address_scope(
    conn: Connection, address_scope_id: str | None, subnetpool_id: str, shape: PoolShape
) -> None:
    """Neutron's ``_validate_address_scope_id``: the scope exists, has the pool's IP
    version, and the pool overlaps none of the scope's other pools."""
    if address_scope_id is None:
        return
    scope = get_address_scope(conn, address_scope_id)
    if scope.ip_version != shape.ip_version:
        raise BadRequestError(
            f"Illegal subnetpool association: subnetpool {subnetpool_id} cannot associate "
            f"with address scope {address_scope_id} because subnetpool ip_version is not "
            f"{scope.ip_version}.",
            type_name="IllegalSubnetPoolIpVersionAssociationToAddressScope",
        )
    query = select(subnetpools.c.id, subnetpools.c.prefixes).where(
        subnetpools.c.address_scope_id == address_scope_id, subnetpools.c.id != subnetpool_id
    )
    for _, other_prefixes in conn.execute(query):
        if px.overlap(shape.prefixes, px.networks(other_prefixes)):
            raise ConflictError(
                "Failed to associate address scope: subnetpools within an address scope "
                "must have unique prefixes.",
                type_name="AddressScopePrefixConflict",
            )


def _check_rescoping_keeps_networks_whole(
    conn: Connection, subnetpool_id: str, ip_version: int
) -> None:
    """The pool's subnets change scope together: refused if a network they are on also has
    subnets of that IP version from elsewhere.  (Neutron checks this on every update of a
    pool in a scope, so renaming one of two pools of a scope that share a network fails
    there; we check it when the scope changes.)"""
    pool_subnets = select(subnets.c.network_id).where(subnets.c.subnetpool_id == subnetpool_id)
    query = select(subnets.c.id).where(
        subnets.c.network_id.in_(pool_subnets),
        subnets.c.ip_version == ip_version,
        (subnets.c.subnetpool_id != subnetpool_id) | subnets.c.subnetpool_id.is_(None),
    )
    if conn.execute(query).first() is not None:
        raise address_scope_affinity_error()


def address_scope_affinity_error() -> BadRequestError:
    return BadRequestError(
        "Subnets of the same address family hosted on the same network must all participate "
        "in the same address scope.",
        type_name="NetworkAddressScopeAffinityError",
    )


def allocated(conn: Connection, subnetpool_id: str) -> list[px.IPNetwork]:
    query = select(subnets.c.cidr).where(subnets.c.subnetpool_id == subnetpool_id)
    return px.networks(cidr for (cidr,) in conn.execute(query))


# -- writes ----------------------------------------------------------------------------------
def create(tx: WriteTx, body: dict[str, Any]) -> dict[str, Any]:
    shape = read_shape(body["prefixes"], {k: body.get(k) for k in BOUNDS})
    subnetpool_id = new_id()
    is_default = body.get("is_default", False)
    if is_default:
        _check_one_default(tx.conn, shape.ip_version)
    _check_address_scope(tx.conn, body.get("address_scope_id"), subnetpool_id, shape)
    tx.conn.execute(
        insert(subnetpools).values(
            id=subnetpool_id,
            name=body["name"],
            ip_version=shape.ip_version,
            prefixes=shape.prefix_strings(),
            default_prefixlen=shape.default_prefixlen,
            min_prefixlen=shape.min_prefixlen,
            max_prefixlen=shape.max_prefixlen,
            default_quota=body.get("default_quota"),
            shared=body.get("shared", False),
            is_default=is_default,
            address_scope_id=body.get("address_scope_id"),
            **standard_values(tx.now, body.get("project_id"), body.get("description")),
        )
    )
    return show(tx.conn, subnetpool_id)


def _prefix_update_error(reason: str) -> BadRequestError:
    return BadRequestError(
        f"Illegal update to prefixes: {reason}.", type_name="IllegalSubnetPoolPrefixUpdate"
    )


def update_subnetpool(tx: WriteTx, subnetpool_id: str, body: dict[str, Any]) -> dict[str, Any]:
    row = get_subnetpool(tx.conn, subnetpool_id)
    cidrs = list(row.prefixes)
    if "prefixes" in body:
        if not px.covers(px.networks(body["prefixes"]), px.networks(row.prefixes)):
            raise _prefix_update_error("Existing prefixes must be a subset of the new prefixes")
        cidrs = body["prefixes"]
    bounds = {k: body[k] if k in body else getattr(row, k) for k in BOUNDS}
    shape = read_shape(cidrs, bounds)
    is_default = body.get("is_default", row.is_default)
    if is_default and not row.is_default:
        _check_one_default(tx.conn, shape.ip_version)
    scope_id = body["address_scope_id"] if "address_scope_id" in body else row.address_scope_id
    _check_address_scope(tx.conn, scope_id, subnetpool_id, shape)
    if scope_id != row.address_scope_id:
        _check_rescoping_keeps_networks_whole(tx.conn, subnetpool_id, shape.ip_version)
    values: dict[str, Any] = {
        k: body[k] for k in ("name", "description", "default_quota") if k in body
    }
    bump(
        tx.conn,
        subnetpools,
        subnetpool_id,
        tx.now,
        **values,
        prefixes=shape.prefix_strings(),
        min_prefixlen=shape.min_prefixlen,
        max_prefixlen=shape.max_prefixlen,
        default_prefixlen=shape.default_prefixlen,
        is_default=is_default,
        address_scope_id=scope_id,
    )
    return show(tx.conn, subnetpool_id)


def add_prefixes(tx: WriteTx, subnetpool_id: str, cidrs: list[str]) -> list[str]:
    row = get_subnetpool(tx.conn, subnetpool_id)
    if cidrs:
        update_subnetpool(tx, subnetpool_id, {"prefixes": [*row.prefixes, *cidrs]})
    return list(get_subnetpool(tx.conn, subnetpool_id).prefixes)


def remove_prefixes(tx: WriteTx, subnetpool_id: str, cidrs: list[str]) -> list[str]:
    row = get_subnetpool(tx.conn, subnetpool_id)
    removed = px.networks(cidrs)
    current = px.networks(row.prefixes)
    if not removed or not px.overlap(current, removed):
        return list(row.prefixes)
    if px.overlap(allocated(tx.conn, subnetpool_id), removed):
        raise _prefix_update_error("One or more the prefixes to be removed is in use by a subnet")
    remaining = [str(p) for p in px.subtract(current, removed)]
    if not remaining:  # Neutron would store an empty pool; we keep pools non-empty
        raise _empty_pool_error()
    bump(tx.conn, subnetpools, subnetpool_id, tx.now, prefixes=remaining)
    return remaining


def delete_subnetpool(tx: WriteTx, subnetpool_id: str) -> None:
    get_subnetpool(tx.conn, subnetpool_id)
    query = select(subnets.c.id).where(subnets.c.subnetpool_id == subnetpool_id)
    if tx.conn.execute(query).first() is not None:
        raise BadRequestError(
            "Unable to delete subnet pool: Subnet pool has existing allocations.",
            type_name="SubnetPoolDeleteError",
        )
    tx.conn.execute(delete(subnetpools).where(subnetpools.c.id == subnetpool_id))


# -- subnets from a pool ---------------------------------------------------------------------
def default_pool_id(conn: Connection, ip_version: int) -> str | None:
    query = select(subnetpools.c.id).where(
        subnetpools.c.is_default.is_(True), subnetpools.c.ip_version == ip_version
    )
    return conn.execute(query).scalar()


def _allocation_error(reason: str) -> ConflictError:
    # Neutron's SubnetAllocationError has no HTTP mapping there (a 500); a full pool is a
    # conflict with the pool's state, as a full subnet is (IpAddressGenerationFailure)
    return conflict("SubnetAllocationError", f"Failed to allocate subnet: {reason}.")


def allocate_prefix(
    conn: Connection, pool: Any, wanted: px.IPNetwork | None, prefixlen: int | None
) -> px.IPNetwork:
    """The prefix a new subnet gets from ``pool``: ``wanted`` if it is free, otherwise the
    next free prefix of ``prefixlen`` (default: the pool's ``default_prefixlen``)."""
    length = wanted.prefixlen if wanted is not None else prefixlen
    length = pool.default_prefixlen if length is None else length
    if length > pool.max_prefixlen:
        raise BadRequestError(
            f"Unable to allocate subnet with prefix length {length}, maximum allowed prefix "
            f"is {pool.max_prefixlen}.",
            type_name="MaxPrefixSubnetAllocationError",
        )
    if length < pool.min_prefixlen:
        raise BadRequestError(
            f"Unable to allocate subnet with prefix length {length}, minimum allowed prefix "
            f"is {pool.min_prefixlen}.",
            type_name="MinPrefixSubnetAllocationError",
        )
    shape = _stored_shape(pool)
    taken = allocated(conn, pool.id)
    if wanted is not None:
        if not px.is_free(shape.prefixes, taken, wanted):
            raise _allocation_error(
                "Cannot allocate requested subnet from the available set of prefixes"
            )
        return wanted
    found = px.next_free(shape.prefixes, taken, length)
    if found is None:
        raise _allocation_error(f"Insufficient prefix space to allocate subnet size /{length}")
    return found


def prefix_for_gateway(gateway_ip: str, prefixlen: int) -> px.IPNetwork:
    """A specific request given only a gateway: the network of ``gateway_ip/prefixlen``."""
    try:
        return ipaddress.ip_network(f"{gateway_ip}/{prefixlen}", strict=False)
    except ValueError:
        raise invalid_input(f"{gateway_ip}/{prefixlen} is not in a CIDR format.") from None


def pools_in_scope(conn: Connection, pool_ids: Iterable[str]) -> dict[str, str | None]:
    """pool id -> its address scope id."""
    ids = list(pool_ids)
    if not ids:
        return {}
    query = select(subnetpools.c.id, subnetpools.c.address_scope_id).where(
        subnetpools.c.id.in_(ids)
    )
    return dict(conn.execute(query).all())
