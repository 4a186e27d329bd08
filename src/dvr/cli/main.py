"""The `dvr` command: operators' views of the cloud, the lab and the tracer."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import httpx

from dvr.cli.connect import add_connection_options
from dvr.client import ServerError

# Each module contributes subcommands through `add_commands(subparsers)`.
COMMAND_MODULES = ("dvr.cli.ops", "dvr.cli.credentials", "dvr.lab.cli", "dvr.trace.cli")


def build_parser() -> argparse.ArgumentParser:
    # no abbreviations: `--token` must not be read as `--token-file`
    parser = argparse.ArgumentParser(prog="dvr", description=__doc__, allow_abbrev=False)
    add_connection_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:
        # the reader went away (`dvr flows ... | head`): quiet, as other Unix tools are
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except ServerError as exc:
        print(f"dvr: server error: {exc}", file=sys.stderr)
        if exc.status == 401:
            print("dvr: give the token with --token-file FILE or $DVR_TOKEN", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"dvr: cannot reach the dvr server at {args.server}: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"dvr: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
