"""A small test client for the server API (in-process TestClient or httpx against a URL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dvr.db.tables import changes
from dvr.model.hostview import HostView, host_view_from_dict
from dvr.server.config import ServerConfig
from dvr.server.hostview import build_host_view
from dvr.server.services.hosts import all_hosts
from dvr.server.services.notify import current_revision


def make_config(db_url: str, **overrides: Any) -> ServerConfig:
    """The tests' config: authentication off unless ``no_auth=False`` is given (the server's
    own default is on; tests/server/test_server_auth*.py test it)."""
    settings: dict[str, Any] = {"watch_poll_interval": 0.2, "no_auth": True, **overrides}
    return ServerConfig(db_url=db_url, **settings)


def pool(prefix: str) -> list[dict[str, str]]:
    """An allocation pool of ``prefix``.100-.254 of a /24: random allocations never take the
    low addresses a test asks for by name (a fixed IP may lie outside the pools, as in Neutron).
    """
    return [{"start": f"{prefix}.100", "end": f"{prefix}.254"}]


UPPER_POOL = pool("198.51.100")


def collection_path(resource: str) -> str:
    """/v2.0/security-groups for resource security_group."""
    return f"/v2.0/{resource.replace('_', '-')}s"


class ApiError(AssertionError):
    pass


class Api:
    def __init__(self, client: Any, context: Any = None) -> None:
        self.client = client
        self.context = context

    # -- raw -------------------------------------------------------------------------------------
    def call(
        self, method: str, path: str, body: Any = None, expect: int | None = None, **params: Any
    ) -> Any:
        response = self.client.request(method, path, json=body, params=params or None)
        if expect is not None and response.status_code != expect:
            raise ApiError(f"{method} {path} -> {response.status_code} {response.text}")
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def error(self, method: str, path: str, body: Any = None, **params: Any) -> tuple[int, dict]:
        response = self.client.request(method, path, json=body, params=params or None)
        assert response.status_code >= 400, response.text
        payload = response.json()
        assert set(payload) == {"NeutronError"}, payload
        assert set(payload["NeutronError"]) == {"type", "message", "detail"}
        return response.status_code, payload["NeutronError"]

    # -- resources ---------------------------------------------------------------------------------
    # ``resource`` is the body key (security_group); the URL says security-groups
    def create(self, resource: str, **attrs: Any) -> dict[str, Any]:
        return self.call("POST", collection_path(resource), {resource: attrs}, expect=201)[
            resource
        ]

    def update(self, resource: str, object_id: str, **attrs: Any) -> dict[str, Any]:
        path = f"{collection_path(resource)}/{object_id}"
        return self.call("PUT", path, {resource: attrs}, expect=200)[resource]

    def delete(self, resource: str, object_id: str) -> None:
        self.call("DELETE", f"{collection_path(resource)}/{object_id}", expect=204)

    def show(self, resource: str, object_id: str) -> dict[str, Any]:
        return self.call("GET", f"{collection_path(resource)}/{object_id}", expect=200)[resource]

    def list(self, resource: str, **params: Any) -> list[dict[str, Any]]:
        return self.call("GET", collection_path(resource), expect=200, **params)[f"{resource}s"]

    def network(self, name: str = "net", **attrs: Any) -> dict[str, Any]:
        return self.create("network", name=name, **attrs)

    def subnet(self, network_id: str, cidr: str, **attrs: Any) -> dict[str, Any]:
        version = 6 if ":" in cidr else 4
        return self.create("subnet", network_id=network_id, cidr=cidr, ip_version=version, **attrs)

    def port(
        self, network_id: str, host: str = "", owner: str = "compute:nova", **attrs: Any
    ) -> dict[str, Any]:
        if host:
            attrs["binding:host_id"] = host
        return self.create("port", network_id=network_id, device_owner=owner, **attrs)

    def router(self, name: str = "r", distributed: bool = True, **attrs: Any) -> dict[str, Any]:
        return self.create("router", name=name, distributed=distributed, **attrs)

    def add_interface(self, router_id: str, expect: int = 200, **body: Any) -> dict[str, Any]:
        return self.call(
            "PUT", f"/v2.0/routers/{router_id}/add_router_interface", body, expect=expect
        )

    def remove_interface(self, router_id: str, expect: int = 200, **body: Any) -> dict[str, Any]:
        return self.call(
            "PUT", f"/v2.0/routers/{router_id}/remove_router_interface", body, expect=expect
        )

    def set_gateway(self, router_id: str, network_id: str, **info: Any) -> dict[str, Any]:
        return self.update(
            "router", router_id, external_gateway_info={"network_id": network_id, **info}
        )

    def clear_gateway(self, router_id: str) -> dict[str, Any]:
        return self.update("router", router_id, external_gateway_info={})

    def fip(self, network_id: str, **attrs: Any) -> dict[str, Any]:
        return self.create("floatingip", floating_network_id=network_id, **attrs)

    # -- agent protocol ----------------------------------------------------------------------------
    def register(
        self, host: str, mode: str = "dvr", tunnel_ip: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        body = {"host": host, "agent_mode": mode, "tunnel_ip": tunnel_ip, **extra}
        return self.call("POST", "/dvr/v1/agents", body, expect=200)

    def heartbeat(self, host: str, **body: Any) -> dict[str, Any]:
        return self.call("POST", f"/dvr/v1/hosts/{host}/heartbeat", body, expect=200)

    def host_mac(self, host: str) -> str:
        return self.call("POST", f"/dvr/v1/hosts/{host}/host-mac", expect=200)["mac_address"]

    def view(self, host: str) -> HostView:
        return host_view_from_dict(self.call("GET", f"/dvr/v1/hosts/{host}/view", expect=200))

    def watch(self, host: str, since: int, timeout: float = 0) -> dict[str, Any]:
        return self.call(
            "GET", f"/dvr/v1/hosts/{host}/watch", expect=200, since=since, timeout=timeout
        )

    def router_hosts(self, router_id: str) -> set[str]:
        return set(self.call("GET", f"/dvr/v1/routers/{router_id}/hosts", expect=200)["hosts"])

    def host_routers(self, host: str) -> set[str]:
        return set(self.call("GET", f"/dvr/v1/hosts/{host}/routers", expect=200)["routers"])

    # -- direct database reads (in-process only) ---------------------------------------------------
    def revision(self) -> int:
        return self.context.run_read(lambda tx: current_revision(tx.conn))

    def notified_since(self, revision: int) -> set[str]:
        query = select(changes.c.host).where(changes.c.revision > revision)
        return self.context.run_read(lambda tx: {r[0] for r in tx.conn.execute(query)})

    def known_hosts(self) -> set[str]:
        return self.context.run_read(lambda tx: all_hosts(tx.conn))

    def all_views(self, extra_hosts: set[str] = frozenset()) -> dict[str, HostView]:
        """Every known host's view with the revision zeroed (to compare contents)."""

        def work(tx: Any) -> dict[str, HostView]:
            hosts = all_hosts(tx.conn) | set(extra_hosts)
            return {h: build_host_view(tx.conn, h) for h in sorted(hosts)}

        views = self.context.run_read(work)
        return {h: _without_revision(v) for h, v in views.items()}


def _without_revision(view: HostView) -> HostView:
    from dataclasses import replace

    return replace(view, revision=0)
