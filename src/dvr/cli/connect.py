"""How the `dvr` command reaches the server: where it is, and which token it presents.

The token comes from ``--token-file FILE``, else ``$DVR_TOKEN``, else, when ``--server`` is
the API of a lab running on this machine, from that lab's admin token file (the way
`dvr trace --verify` finds the lab's switches), else none (a unix socket is trusted).
Never from a command-line value.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping

from dvr.client import TOKEN_ENV, ServerClient, read_token_file

DEFAULT_SERVER = "http://127.0.0.1:9696"
SERVER_ENV = "DVR_SERVER"

LabTokenFinder = Callable[[str], "str | None"]


def add_connection_options(parser: argparse.ArgumentParser,
                           environ: Mapping[str, str] = os.environ) -> None:
    parser.add_argument(
        "--server", default=environ.get(SERVER_ENV, DEFAULT_SERVER),
        help=f"dvr server URL or unix:/path (default ${SERVER_ENV} or %(default)s)",
    )
    parser.add_argument(
        "--token-file", metavar="FILE",
        help=f"file holding the token to send (default ${TOKEN_ENV}, or the admin token of "
             "the lab serving --server)",
    )
    parser.add_argument("--ca-file", metavar="FILE",
                        help="CA certificate that verifies an https server")


def running_lab_token(server: str) -> str | None:
    """The admin token of the lab on this machine whose API ``server`` is, if any."""
    from dvr.lab.lab import lab_serving

    lab = lab_serving(server)
    return lab.admin_token() if lab else None


def resolve_token(token_file: str | None, server: str,
                  environ: Mapping[str, str] = os.environ,
                  find_lab_token: LabTokenFinder = running_lab_token) -> str | None:
    if token_file:
        return read_token_file(token_file)
    return environ.get(TOKEN_ENV) or find_lab_token(server)


def server_client(args: argparse.Namespace) -> ServerClient:
    """A client for ``--server`` with the token the options (or the environment) give."""
    token = resolve_token(args.token_file, args.server)
    return ServerClient(args.server, token, ca_file=args.ca_file)
