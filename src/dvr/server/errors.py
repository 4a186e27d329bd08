"""Neutron-shaped errors: ``{"NeutronError": {"type", "message", "detail"}}``.

Services raise ``NeutronError`` (or one of the helpers below); the app turns it into a
JSON response with the right status.  Anything unexpected becomes a 500 of the same shape.
"""

from __future__ import annotations

from typing import Any


class NeutronError(Exception):
    status = 500
    type_name = "HTTPInternalServerError"

    def __init__(self, message: str, *, type_name: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if type_name is not None:
            self.type_name = type_name
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        return {"NeutronError": {"type": self.type_name, "message": self.message, "detail": ""}}

    def headers(self) -> dict[str, str]:
        """HTTP headers that go with the error response."""
        return {}


class ServiceUnavailable(NeutronError):
    """503: the server cannot answer now (overloaded, its database unreachable); the client
    should ask again after ``retry_after`` seconds."""

    status = 503
    type_name = "ServiceUnavailable"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class BadRequestError(NeutronError):
    status = 400
    type_name = "BadRequest"


class ConflictError(NeutronError):
    status = 409
    type_name = "Conflict"


class NotFoundError(NeutronError):
    status = 404
    type_name = "NotFound"


def invalid_input(message: str) -> NeutronError:
    return BadRequestError(f"Invalid input for operation: {message}", type_name="InvalidInput")


def http_bad_request(message: str) -> NeutronError:
    return BadRequestError(message, type_name="HTTPBadRequest")


def bad_request(resource: str, message: str) -> NeutronError:
    """Neutron's BadRequest: "Bad <resource> request: <message>"."""
    return BadRequestError(f"Bad {resource} request: {message}", type_name="BadRequest")


RESOURCE_TITLES = {
    "network": "Network",
    "subnet": "Subnet",
    "port": "Port",
    "router": "Router",
    "floatingip": "FloatingIP",
    "agent": "Agent",
    "subnetpool": "SubnetPool",
    "address_scope": "AddressScope",
    "security_group": "SecurityGroup",
    "security_group_rule": "SecurityGroupRule",
    "default_security_group_rule": "DefaultSecurityGroupRule",
    "address_group": "AddressGroup",
}


def not_found(resource: str, resource_id: str) -> NeutronError:
    title = RESOURCE_TITLES.get(resource, resource.capitalize())
    messages = {
        "floatingip": f"Floating IP {resource_id} could not be found",
        "agent": f"Agent {resource_id} could not be found.",
        "subnetpool": f"Subnet pool {resource_id} could not be found.",
        "address_scope": f"Address scope {resource_id} could not be found.",
        "security_group": f"Security group {resource_id} does not exist",
        "security_group_rule": f"Security group rule {resource_id} does not exist",
        "default_security_group_rule": (
            f"Default Security Group rule {resource_id} does not exist"
        ),
        "address_group": f"Address group {resource_id} could not be found.",
    }
    message = messages.get(resource, f"{title} {resource_id} could not be found.")
    return NotFoundError(message, type_name=f"{title}NotFound")


def conflict(type_name: str, message: str) -> NeutronError:
    return ConflictError(message, type_name=type_name)
