"""Who is calling, and what that identity may do (docs/security.md).

Pure decisions only: the middleware (``dvr.server.authn``) resolves the identity from the
request and applies these rules; the registration service asks ``registration_refusal``.

Identities: the admin (the admin token, or the trusted unix socket without a token), a host
(its host credential, or a client certificate whose CN names it), or anonymous.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

from dvr.server.errors import NeutronError

ADMIN_TOKEN_PREFIX = "dvra_"
HOST_TOKEN_PREFIX = "dvrh_"
IDENTITY_KEY = "dvr.identity"  # where the middleware leaves the caller's Identity in the scope


class Role(Enum):
    ADMIN = "admin"
    HOST = "host"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Identity:
    role: Role
    host: str | None = None  # set exactly when role is HOST

    def __str__(self) -> str:
        return f"host {self.host}" if self.role is Role.HOST else self.role.value


ADMIN = Identity(Role.ADMIN)
ANONYMOUS = Identity(Role.ANONYMOUS)


def host_identity(host: str) -> Identity:
    return Identity(Role.HOST, host)


# -- tokens -------------------------------------------------------------------------------------
def new_host_token() -> str:
    """``dvrh_`` and 43 urlsafe characters (32 random bytes)."""
    return HOST_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_admin_token() -> str:
    """``dvra_`` and 43 urlsafe characters (32 random bytes).  The prefix also keeps the
    token from starting with ``-``, which a command line (``--os-token $TOKEN``) would take
    for an option."""
    return ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    """How a host token is stored and looked up (the lookup is by hash: timing reveals
    nothing about the token)."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_admin_token(presented: str, admin_token: str | None) -> bool:
    if not admin_token:
        return False
    return hmac.compare_digest(presented.encode(), admin_token.encode())


# -- what each identity may call ----------------------------------------------------------------
# (method, last path segment) of /dvr/v1/hosts/{host}/... a host identity may call for itself
HOST_OWN_CALLS = frozenset({
    ("POST", "heartbeat"),
    ("POST", "host-mac"),
    ("POST", "report"),
    ("GET", "view"),
    ("GET", "watch"),
    ("GET", "agent-state"),
})
PUBLIC_PAGES = (("",), ("ui",), ("ui", ""))  # the version document and the web view's page


def path_segments(raw_path: bytes) -> tuple[str, ...]:
    """The request path's segments, each percent-decoded on its own (so an encoded "/" in a
    host name stays inside its segment)."""
    text = raw_path.decode("latin-1").split("?", 1)[0]
    return tuple(unquote(part) for part in text.split("/")[1:])


def is_public(method: str, segments: tuple[str, ...]) -> bool:
    """The version document (as Neutron's) and the web view's static page and assets, which
    hold no data: the page asks the person for a token before it reads anything."""
    if method not in ("GET", "HEAD"):
        return False
    return segments in PUBLIC_PAGES or segments[:2] == ("ui", "assets")


def host_may_call(host: str, method: str, segments: tuple[str, ...]) -> bool:
    """A host may register (the body must name only itself, checked by the handler) and
    call its own agent-protocol paths; nothing else."""
    if segments == ("dvr", "v1", "agents"):
        return method == "POST"
    if len(segments) == 5 and segments[:3] == ("dvr", "v1", "hosts"):
        return segments[3] == host and (method, segments[4]) in HOST_OWN_CALLS
    return False


def unauthorized(message: str) -> NeutronError:
    return NeutronError(message, type_name="HTTPUnauthorized", status=401)


def forbidden(message: str) -> NeutronError:
    return NeutronError(message, type_name="HTTPForbidden", status=403)


def access_refusal(
    identity: Identity, method: str, segments: tuple[str, ...]
) -> NeutronError | None:
    """Why this identity may not make this call (None: it may)."""
    if identity.role is Role.ADMIN or is_public(method, segments):
        return None
    if identity.role is Role.ANONYMOUS:
        return unauthorized("Authentication required: send a token as X-Auth-Token.")
    assert identity.host is not None
    if host_may_call(identity.host, method, segments):
        return None
    return forbidden(
        f"The credential of host {identity.host} may only call that host's agent protocol."
    )


def registration_refusal(
    caller: Identity, host: str, changes_identity: bool, has_credential: bool
) -> NeutronError | None:
    """Why ``caller`` may not register ``host`` (None: it may).

    ``changes_identity``: the host is registered with another tunnel IP or agent mode.  Only
    the host itself may register itself; once it has a credential, the admin may no longer
    change its tunnel IP or mode (the host's own credential must)."""
    if caller.role is Role.HOST and caller.host != host:
        return forbidden(f"The credential of host {caller.host} may not register host {host}.")
    if caller.role is Role.ADMIN and changes_identity and has_credential:
        return NeutronError(
            f"Host {host} has a credential: only that credential may change its tunnel IP "
            "or agent mode.",
            type_name="HostIdentityConflict",
            status=409,
        )
    return None
