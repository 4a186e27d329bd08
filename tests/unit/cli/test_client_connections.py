"""How long the client keeps an idle connection to the server: past an agent's heartbeat
interval (its reports reuse one connection), within what the server keeps."""

from __future__ import annotations

import pytest

from dvr.agent.config import AgentConfig
from dvr.client import IDLE_CONNECTION_S, make_http_client
from dvr.server.main import KEEP_ALIVE_S


def test_idle_connections_outlive_a_heartbeat_interval_and_close_before_the_servers():
    assert AgentConfig.heartbeat_interval < IDLE_CONNECTION_S < KEEP_ALIVE_S


@pytest.mark.parametrize("server", ["http://127.0.0.1:9696", "unix:/run/dvr/server.sock"])
def test_every_client_keeps_idle_connections_that_long(server):
    with make_http_client(server) as client:
        assert client.keepalive_expiry == IDLE_CONNECTION_S
