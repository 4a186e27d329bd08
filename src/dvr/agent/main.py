"""`dvr-agent`: the per-host agent."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from dvr.agent.config import build_parser, config_from_args
from dvr.agent.dataplane import HostDataplane
from dvr.agent.drivers.real import build_real_drivers
from dvr.agent.loop import AgentLoop, AgentRefused
from dvr.client import ServerClient
from dvr.gc_tuning import tune_garbage_collector


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except (OSError, ValueError) as exc:
        print(f"dvr-agent: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    client = ServerClient(config.servers, config.token, ca_file=config.ca_file,
                          view_patience=config.view_patience)
    dataplane = HostDataplane(config, build_real_drivers(config.ovs_rundir,
                                                          config.flow_mirror,
                                                          config.openflow_connection))
    tune_garbage_collector()  # full desired-state computations build thousands of flows
    try:
        AgentLoop(config, client, dataplane).run(stop, once=args.once)
    except AgentRefused:  # logged: "register failed and retrying cannot fix it: ..."
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
