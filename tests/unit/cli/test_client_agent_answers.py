"""The client decodes the agent protocol's answers (``view?since=R``, the watch) with orjson,
and with the standard library what orjson refuses: every body decodes to what ``json.loads``
made of it, and a body that is not JSON raises what ``json.loads`` raised, which the agent
retries as before."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvr.agent.retry import retrying_can_fix
from dvr.client import ServerClient, decode_agent_answer
from dvr.model.hostview import HostView, NetworkView
from dvr.server.jsonbody import FastJSONResponse

# strings with lone surrogates too (st.text leaves them out of a mixed alphabet)
TEXT = st.lists(st.sampled_from(["\ud800", "\udc00", "\x00", "é"]) | st.characters(),
                max_size=5).map("".join)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"])


def outcome(decode, body: bytes) -> tuple:
    """What ``decode`` makes of ``body``: the value (its repr: NaN is not equal to itself),
    or the error's type and message."""
    try:
        return ("value", repr(decode(body)))
    except Exception as error:  # noqa: BLE001 (the point is which one)
        return ("error", type(error), str(error))


@settings(max_examples=300, deadline=None)
@given(VALUES, st.booleans(), ENCODINGS)
def test_a_json_body_decodes_as_the_standard_library_decodes_it(value, ascii_only, encoding):
    body = json.dumps(value, ensure_ascii=ascii_only).encode(encoding, "surrogatepass")
    assert outcome(decode_agent_answer, body) == outcome(json.loads, body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40) | VALUES.map(lambda v: json.dumps(v).encode()[:-1]))
def test_any_other_body_decodes_or_fails_as_the_standard_library_does(body):
    assert outcome(decode_agent_answer, body) == outcome(json.loads, body)


BAD_BODIES = [b"", b"<html>502 Bad Gateway</html>", b'{"host": "h", "revision": 3',
              b'{"revision": 1} trailing', b"\xff\xfe\xfd"]


@pytest.mark.parametrize("body", BAD_BODIES)
@pytest.mark.parametrize("call", [
    lambda client: client.fetch_view("h", 0),
    lambda client: client.fetch_view("h", 7),
    lambda client: client.watch("h", 0, 1.0, view_since=7),
], ids=["view", "view-since", "watch"])
def test_an_answer_that_is_not_json_raises_the_error_it_raised_before(call, body):
    with pytest.raises(Exception) as raised:  # noqa: PT011 (compared below)
        json.loads(body)
    with ServerClient.answering(body) as client, pytest.raises(type(raised.value)) as error:
        call(client)
    assert str(error.value) == str(raised.value)
    assert isinstance(error.value, ValueError)  # (json.JSONDecodeError, UnicodeDecodeError)
    assert retrying_can_fix(error.value)  # the agent retries it with its backoff


def test_a_view_the_server_wrote_with_escaped_surrogates_reads_back():
    network = NetworkView("n", "blue\ud800", "vxlan", 7, 1450, False, None, (), ())
    view = HostView(host="h", revision=4, agent_mode="dvr", host_mac=None, tunnel_ip=None,
                    ports=(), networks=(network,), routers=(), peer_host_macs=())
    answer = {"revision": 4, "resync": False, "changes": [{"kind": "network", "id": "n"}],
              "view": {**view.to_dict(), "full": True}}
    body = FastJSONResponse(answer).body  # (orjson refuses the name: escaped by json)
    assert b"\\ud800" in body
    with ServerClient.answering(body) as client:
        result = client.watch("h", 3, 1.0, view_since=3)
    assert result.view is not None and result.view.update == view
    assert result.changes == (("network", "n"),)


def test_a_patient_client_asks_the_server_to_wait_and_waits_that_long_itself():
    """``view_patience``: the view request says ``wait=S`` and its reply timeout is S plus
    the margin (the server keeps it queued that long rather than answer 503); a client
    without it asks as before."""
    import dataclasses

    import httpx

    seen: list[httpx.Request] = []
    body = FastJSONResponse({**dataclasses.asdict(HostView(
        host="h1", revision=3, agent_mode="dvr", host_mac=None, tunnel_ip=None, ports=(),
        networks=(), routers=(), peer_host_macs=())), "full": True}).body

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=body)

    for patience in (42.0, None):
        client = ServerClient("http://dvr-server", view_patience=patience)
        client._http = httpx.Client(transport=httpx.MockTransport(answer),
                                    base_url="http://dvr-server", timeout=7.0)
        client.fetch_view("h1", 3)
    patient, plain = seen
    assert dict(patient.url.params) == {"since": "3", "wait": "42.0"}
    assert patient.extensions["timeout"]["read"] == 42.0 + ServerClient.REPLY_MARGIN
    assert dict(plain.url.params) == {"since": "3"}
    assert plain.extensions["timeout"]["read"] == 7.0  # the client's own
