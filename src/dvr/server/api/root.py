"""GET / (version document) and GET /v2.0/ (resource list)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dvr.server.api.common import json_response

RESOURCES = ("network", "subnet", "port", "router", "floatingip", "agent")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def versions(request: Request) -> Response:
    return json_response(
        {
            "versions": [
                {
                    "id": "v2.0",
                    "status": "CURRENT",
                    "links": [{"rel": "self", "href": f"{_base(request)}/v2.0/"}],
                }
            ]
        }
    )


async def resources(request: Request) -> Response:
    base = _base(request)
    return json_response(
        {
            "resources": [
                {
                    "name": name,
                    "collection": f"{name}s",
                    "links": [{"rel": "self", "href": f"{base}/v2.0/{name}s"}],
                }
                for name in RESOURCES
            ]
        }
    )


ROUTES = [
    Route("/", versions, methods=["GET"]),
    Route("/v2.0", resources, methods=["GET"]),
    Route("/v2.0/", resources, methods=["GET"]),
]
