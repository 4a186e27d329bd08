"""Which database errors are an outage (503), and one log line per outage."""

import logging
import sqlite3

from sqlalchemy import exc as sa_exc

from dvr.server.dbhealth import DatabaseHealth, is_unavailable


def operational(orig: Exception) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", {}, orig)


def test_outages_and_load_are_unavailable_bugs_are_not():
    assert is_unavailable(operational(OSError("connection refused")))
    assert is_unavailable(operational(sqlite3.OperationalError("database is locked")))
    assert is_unavailable(sa_exc.TimeoutError("QueuePool limit reached"))
    assert not is_unavailable(operational(sqlite3.OperationalError("no such table: x")))
    assert not is_unavailable(sa_exc.ProgrammingError("SELECT", {}, Exception("syntax")))
    assert not is_unavailable(sa_exc.IntegrityError("INSERT", {}, Exception("duplicate")))
    assert not is_unavailable(ValueError("not a database error"))


def test_one_line_when_an_outage_starts_and_one_when_it_ends(caplog):
    now = [100.0]
    health = DatabaseHealth(retry_after=7, clock=lambda: now[0])
    health.succeeded(now[0])
    with caplog.at_level(logging.WARNING, logger="dvr.server.database"):
        for _ in range(50):
            error = health.failed(operational(OSError("connection refused\nmore detail")))
            assert (error.status, error.type_name) == (503, "ServiceUnavailable")
            assert error.headers() == {"Retry-After": "7"}
        assert health.down
        health.succeeded(99.0)  # began before the outage: proves nothing
        assert health.down
        now[0] = 112.5
        health.succeeded(112.0)
        health.succeeded(112.4)
    assert not health.down
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "database unreachable (OSError: connection refused)" in lines[0]
    assert "reachable again after 12.5 s (50 requests answered 503)" in lines[1]
    assert not any(r.exc_info for r in caplog.records)
