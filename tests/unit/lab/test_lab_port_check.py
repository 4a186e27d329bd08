"""`dvr lab up` refuses an API port that something else listens on, before building."""

from __future__ import annotations

import socket

from dvr.lab.lab import loopback_port_in_use


def test_a_listening_port_is_in_use_and_a_closed_one_is_not():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert loopback_port_in_use(port) is True
    assert loopback_port_in_use(port) is False
