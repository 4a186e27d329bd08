"""dvr.agent.retry: jittered capped backoff for transient errors, none for permanent ones."""

import logging

import httpx
import pytest

from dvr.agent.desired import LocalVlanExhausted
from dvr.agent.retry import IncompleteReconcile, Retries, backoff_delay, retrying_can_fix
from dvr.client import ServerError


def constant(value):
    return lambda: value


def test_backoff_doubles_up_to_the_cap_without_jitter_at_its_top():
    assert [backoff_delay(n, 4.0, constant(0.999999)) for n in range(6)] == pytest.approx(
        [0.0, 0.5, 1.0, 2.0, 4.0, 4.0], abs=1e-5)


def test_backoff_jitter_spans_the_upper_half_of_each_step():
    assert [backoff_delay(n, 4.0, constant(0.0)) for n in range(1, 6)] == [
        0.25, 0.5, 1.0, 2.0, 2.0]
    assert backoff_delay(3, 4.0, constant(0.5)) == 1.5


def test_agents_failing_together_do_not_retry_together():
    draws = iter([0.1, 0.9, 0.5])
    delays = [backoff_delay(4, 30.0, lambda: next(draws)) for _ in range(3)]
    assert len(set(delays)) == 3
    assert all(2.0 <= d <= 4.0 for d in delays)


def test_backoff_stays_finite_after_a_very_long_outage():
    assert backoff_delay(100_000, 30.0, constant(0.0)) == 15.0


@pytest.mark.parametrize(("error", "can_fix"), [
    (ServerError(503, "ServiceUnavailable", "restarting"), True),
    (ServerError(500, "Internal", "boom"), True),
    (ServerError(429, "TooMany", "slow down"), True),
    (ServerError(408, "Timeout", ""), True),
    (httpx.ConnectError("refused"), True),
    (OSError("switch unreachable"), True),
    (IncompleteReconcile(("add-flow failed",)), True),
    (ServerError(400, "BadRequest", "invalid mode"), False),
    (ServerError(401, "Unauthorized", "bad token"), False),
    (ServerError(404, "HostNotFound", "h"), False),
    (ServerError(409, "Conflict", "host registered with another mode"), False),
    (LocalVlanExhausted("4094 networks"), False),
])
def test_errors_are_sorted_into_transient_and_permanent(error, can_fix):
    assert retrying_can_fix(error) is can_fix


def retries():
    return Retries("watch", 8.0, constant(0.0), logging.getLogger("test.retry"))


def test_transient_failures_back_off_and_success_starts_over(caplog):
    r = retries()
    with caplog.at_level(logging.INFO, "test.retry"):
        assert [r.failed(OSError("down")) for _ in range(5)] == [0.25, 0.5, 1.0, 2.0, 4.0]
        r.succeeded()
        assert r.failed(OSError("down")) == 0.25
    warnings = [rec for rec in caplog.records if rec.levelno == logging.WARNING]
    assert len(warnings) == 6 and "retrying in 0.2s" in warnings[0].getMessage()
    assert any(rec.getMessage() == "watch works again" for rec in caplog.records)


def test_a_permanent_error_is_not_retried_and_logged_once_until_it_changes(caplog):
    r = retries()
    refused = ServerError(400, "BadRequest", "invalid local_ip")
    with caplog.at_level(logging.DEBUG, "test.retry"):
        assert [r.failed(refused) for _ in range(3)] == [None, None, None]
        assert r.failed(ServerError(401, "Unauthorized", "bad token")) is None
    errors = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.ERROR]
    assert errors == [
        "watch failed and retrying cannot fix it: 400 BadRequest: invalid local_ip; "
        "waiting for a change",
        "watch failed and retrying cannot fix it: 401 Unauthorized: bad token; "
        "waiting for a change",
    ]


def test_a_permanent_error_between_transient_ones_restarts_the_backoff(caplog):
    r = retries()
    assert [r.failed(OSError("down")) for _ in range(3)] == [0.25, 0.5, 1.0]
    assert r.failed(ServerError(404, "HostNotFound", "h")) is None
    assert r.failed(OSError("down")) == 0.25


def test_the_longest_delay_is_the_cap_jittered():
    assert Retries("watch", 8.0, constant(0.0), logging.getLogger()).longest_delay() == 4.0
    assert Retries("watch", 8.0, constant(0.5), logging.getLogger()).longest_delay() == 6.0


def test_retry_after_is_honoured_with_jitter_and_never_shortened():
    from dvr.agent.retry import retry_delay

    shed = ServerError(503, "ServiceUnavailable", "overloaded", retry_after=4.0)
    delays = [retry_delay(shed, 1, 30.0, constant(r)) for r in (0.0, 0.5, 0.999)]
    assert delays == pytest.approx([4.0, 5.0, 5.998])  # at least 4 s, spread over 2 more
    # a backoff already longer than Retry-After stays
    assert retry_delay(shed, 8, 30.0, constant(0.0)) == 15.0
    assert retry_delay(ServerError(503, "X", "no header"), 1, 30.0, constant(0.0)) == 0.25


def test_the_client_reads_retry_after_from_the_answer():
    from dvr.client import _raise_for_error

    response = httpx.Response(
        503, headers={"Retry-After": "5"},
        json={"NeutronError": {"type": "ServiceUnavailable", "message": "db", "detail": ""}},
    )
    with pytest.raises(ServerError) as raised:
        _raise_for_error(response)
    assert (raised.value.status, raised.value.retry_after) == (503, 5.0)
    dated = httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    with pytest.raises(ServerError) as raised:
        _raise_for_error(dated)
    assert raised.value.retry_after is None


def test_a_shed_request_is_logged_with_the_wait_it_was_asked_for(caplog):
    retries = Retries("reconcile", 30.0, constant(0.0), logging.getLogger("t"))
    with caplog.at_level(logging.WARNING):
        delay = retries.failed(ServerError(503, "ServiceUnavailable", "busy", retry_after=3))
    assert delay == 3.0 and "retrying in 3.0s" in caplog.text


def test_a_refused_connection_backs_off_to_a_lower_cap():
    from dvr.agent.retry import CONNECT_BACKOFF_CAP, retry_delay

    refused = httpx.ConnectError("[Errno 111] Connection refused")
    assert retry_delay(refused, 1, 30.0, constant(0.0)) == 0.25  # the same first steps
    assert retry_delay(refused, 20, 30.0, constant(0.0)) == CONNECT_BACKOFF_CAP / 2
    assert retry_delay(refused, 20, 30.0, constant(0.999)) < CONNECT_BACKOFF_CAP
    assert retry_delay(httpx.ReadTimeout("slow"), 20, 30.0, constant(0.0)) == 15.0
    # a server shedding load still gets the wait it asked for
    shed = ServerError(503, "ServiceUnavailable", "overloaded", retry_after=9.0)
    assert retry_delay(shed, 20, 30.0, constant(0.0)) == 15.0
