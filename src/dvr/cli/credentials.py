"""`dvr host credential create|show|revoke HOST`: per-host agent credentials (admin only).

``create`` prints the new token alone (it is shown once; a new ``create`` rotates it), or
with ``--toml`` the settings file `dvr-agent --config` reads (``host`` and ``token``).
"""

from __future__ import annotations

import argparse

from dvr.agent.config import credential_toml
from dvr.cli.connect import server_client


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    host = subparsers.add_parser("host", help="a host's agent credential")
    host_sub = host.add_subparsers(dest="host_command", metavar="HOST_COMMAND", required=True)
    credential = host_sub.add_parser(
        "credential", help="mint, show or revoke the credential a host's agent presents",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = credential.add_subparsers(dest="credential_command", metavar="ACTION",
                                        required=True)
    create = actions.add_parser("create", help="mint (or rotate) HOST's credential; prints "
                                               "its token, shown once")
    create.add_argument("host", metavar="HOST")
    create.add_argument("--toml", action="store_true",
                        help="print the agent settings file (host, token) instead")
    create.set_defaults(handler=cmd_create)
    show = actions.add_parser("show", help="whether HOST has a credential, and since when")
    show.add_argument("host", metavar="HOST")
    show.set_defaults(handler=cmd_show)
    revoke = actions.add_parser("revoke", help="revoke HOST's credential at once")
    revoke.add_argument("host", metavar="HOST")
    revoke.set_defaults(handler=cmd_revoke)


def cmd_create(args: argparse.Namespace) -> int:
    with server_client(args) as client:
        credential = client.create_host_credential(args.host)
    if not credential.token:
        raise ValueError("the server's answer holds no token")
    print(credential_toml(credential.host, credential.token) if args.toml else credential.token,
          end="" if args.toml else "\n")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with server_client(args) as client:
        credential = client.host_credential(args.host)
    print(f"{credential.host}: credential created {credential.created_at}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    with server_client(args) as client:
        client.revoke_host_credential(args.host)
    print(f"revoked the credential of {args.host}")
    return 0
