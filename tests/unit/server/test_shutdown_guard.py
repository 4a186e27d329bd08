"""A request cut off by the server's shutdown (uvicorn cancels it) is answered 503 +
Retry-After in Neutron's shape, unless its response had already started."""

from __future__ import annotations

import asyncio
import json

import pytest

from dvr.server.shutdown_guard import RETRY_AFTER_SHUTDOWN, ShutdownGuard

SCOPE = {"type": "http", "method": "GET", "path": "/v2.0/networks", "headers": []}


async def _receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


def _run_cancelled(app, scope=SCOPE) -> tuple[list[dict], BaseException | None]:
    """Run ``ShutdownGuard(app)`` until it waits, cancel it as uvicorn does at the end of
    its graceful shutdown; the messages it sent and what the task ended with."""
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def main() -> BaseException | None:
        task = asyncio.create_task(ShutdownGuard(app)(scope, _receive, send))
        await asyncio.sleep(0.01)
        task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        try:
            await task
        except BaseException as exc:  # noqa: BLE001 - what the task ended with is the result
            return exc
        return None

    return sent, asyncio.run(main())


async def _waits_forever(scope, receive, send) -> None:
    await asyncio.Event().wait()


def test_a_request_cut_off_before_its_answer_gets_503_with_retry_after():
    sent, ended_with = _run_cancelled(_waits_forever)
    assert ended_with is None  # answered: uvicorn sends nothing of its own
    start, body = sent
    assert start["status"] == 503
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    assert headers["retry-after"] == str(RETRY_AFTER_SHUTDOWN)
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body["body"])["NeutronError"]
    assert error["type"] == "ServiceUnavailable"
    assert "shutting down" in error["message"]


def test_a_request_whose_answer_started_is_left_to_uvicorn():
    async def starts_then_waits(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.Event().wait()

    sent, ended_with = _run_cancelled(starts_then_waits)
    assert isinstance(ended_with, asyncio.CancelledError)
    assert [m["type"] for m in sent] == ["http.response.start"]


def test_a_finished_request_passes_through_untouched():
    async def answers(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(ShutdownGuard(answers)(SCOPE, _receive, send))
    assert [m.get("status") for m in sent] == [201, None]


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
def test_other_scopes_are_not_guarded(kind):
    sent, ended_with = _run_cancelled(_waits_forever, {"type": kind})
    assert isinstance(ended_with, asyncio.CancelledError)
    assert sent == []
