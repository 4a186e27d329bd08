"""Schemathesis against the served /openapi.json, on SQLite and PostgreSQL.

Every operation is fuzzed with schema-valid and schema-invalid requests, then a stateful run
walks the document's links (create -> show/update/delete/tags/interfaces ...). Each response
must: not be a 5xx, have a status code the document declares for that operation, have the
declared content type, and match the declared schema.

Bounded and seeded for ``make test``; ``make fuzz`` runs it longer:
  DVR_FUZZ_EXAMPLES  examples per operation and mode (default 3); each stateful walk runs
                     five times as many scenarios, of up to DVR_FUZZ_STEPS (default 6) calls
  DVR_FUZZ_SEED      the seed (default fixed, so a CI failure replays exactly)
  DVR_FUZZ_ALL_TAGS  1: fuzz the tag routes of every collection (default: of networks only;
                     they are one handler bound to five tables, and the walks tag every kind)
"""

from __future__ import annotations

import collections
import ipaddress
import os
import re
import warnings
import zlib

import hypothesis
import pytest
from hypothesis import strategies as st
from server_helpers import make_config

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import schemathesis
    from schemathesis import GenerationMode

from dvr.db.seed import seed_default_security_group_rules
from dvr.db.session import Database
from dvr.db.tables import metadata, server_state
from dvr.server.app import create_app

EXAMPLES = int(os.environ.get("DVR_FUZZ_EXAMPLES", "3"))
STEPS = int(os.environ.get("DVR_FUZZ_STEPS", "6"))
SEED = int(os.environ.get("DVR_FUZZ_SEED", "20261202"))
ALL_TAGS = os.environ.get("DVR_FUZZ_ALL_TAGS") == "1"
TAGGED_ELSEWHERE = re.compile(r"^/v2\.0/(subnets|ports|routers|floatingips)/\{id\}/tags")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
# Walks use the same checks. Not schemathesis' "ensure_resource_availability" (it reads any
# 404 after a create as the created object missing, while here it is as often the subnet a
# router-interface call names) nor "use_after_free" (it reads DELETE .../tags, which empties
# the tag list, as deleting the object, and then its 200 GET as a use after free).


def _cidrs() -> st.SearchStrategy[str]:
    """Subnets inside the documentation ranges (the format "cidr" of the document)."""
    v4 = st.builds(
        lambda base, plen: str(next(ipaddress.ip_network(base).subnets(new_prefix=plen))),
        st.sampled_from(("198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24")),
        st.integers(24, 30),
    )
    v6 = st.builds(lambda plen: f"2001:db8::/{plen}", st.integers(48, 64))
    return v4 | v6 | st.text(max_size=20)  # and some that are not subnets at all


schemathesis.openapi.format("cidr", _cidrs())


def _config(stateful: bool) -> schemathesis.Config:
    """Stateless runs send valid and invalid requests; walks send valid ones (an invalid
    create ends a walk before it starts)."""
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {
            "mode": "positive" if stateful else "all",
            "allow-x00": not stateful,
            "max-examples": EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "phases": {
            "examples": {"enabled": False},
            "coverage": {"enabled": False},
            # walk the document's own links only (not links schemathesis guesses)
            "stateful": {"max-steps": STEPS, "inference": {"algorithms": []}},
        },
        "suppress-health-check": ["all"],
    })


@pytest.fixture
def fuzz_app(db_url):  # type: ignore[no-untyped-def]
    """The server with long polls capped near zero (the fuzzer asks for timeout=1e9)."""
    database = Database.from_url(db_url)
    config = make_config(db_url, watch_max_timeout=0.01, watch_default_timeout=0.0)
    yield create_app(config, database, migrate=False)
    database.dispose()


class FreshEachWalk:
    """The walks' server: before each scenario, the database emptied to what a fresh one
    holds (its revision counter goes on) and a new app on it (new memory).  A scenario
    then meets the same server whatever ran before it, so replaying its choices replays
    its answers: with the state
    of earlier scenarios carried over, a replayed prefix could meet another answer (a
    create refused as a duplicate, an address pool exhausted) and enable other rules, and
    hypothesis stopped with ``FlakyStrategyDefinition`` (``make fuzz``, 60 examples, on
    both backends)."""

    def __init__(self, db_url: str) -> None:
        self.database = Database.from_url(db_url)
        self.config = make_config(db_url, watch_max_timeout=0.01, watch_default_timeout=0.0)
        self.app = create_app(self.config, self.database, migrate=False)

    def reset(self) -> None:
        with self.database.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                if table is not server_state:
                    conn.execute(table.delete())
            seed_default_security_group_rules(conn)
        self.app = create_app(self.config, self.database, migrate=False)

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await self.app(scope, receive, send)


@pytest.fixture
def walk_server(db_url):  # type: ignore[no-untyped-def]
    server = FreshEachWalk(db_url)
    yield server
    server.database.dispose()


def _settings(seed_text: str) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        derandomize=False,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.generate, hypothesis.Phase.shrink],
        verbosity=hypothesis.Verbosity.quiet,
    )


def _seeded(test, seed_text: str):  # type: ignore[no-untyped-def]
    """``test`` with a seed of its own: derived from SEED and a stable text (not hash())."""
    return hypothesis.seed(SEED ^ zlib.crc32(seed_text.encode()))(test)


def _fuzz(operation, mode: GenerationMode) -> str | None:  # type: ignore[no-untyped-def]
    """Run ``operation`` with EXAMPLES generated cases; the failure report, or None."""

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:  # type: ignore[no-untyped-def]
        case.call_and_validate()

    label = f"{operation.label} [{mode.value}]"
    try:
        _seeded(_settings(label)(run), label)()
    except hypothesis.errors.Unsatisfiable:
        return None  # nothing about this operation can be made invalid (no parameters)
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is the latter
        return f"{label}: {exc}"
    return None


def test_every_operation_answers_as_documented(fuzz_app):  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app, config=_config(False))
    schema.validate()  # it is a valid OpenAPI 3.1 document
    operations = [
        operation
        for operation in (result.ok() for result in schema.get_all_operations())
        if ALL_TAGS or not TAGGED_ELSEWHERE.match(operation.path)
    ]
    failures = [
        failure
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (failure := _fuzz(operation, mode)) is not None
    ]
    assert not failures, "\n\n".join(failures)


# Two walks: schemathesis starts a walk only at a create whose inputs it believes exist, and
# guesses from names that ``project_id``, ``flavor_id``, ... refer to resources nobody creates;
# with the agent protocol's register (no such inputs) in the same walk, the Neutron creates
# would never start one.
WALKS = {"neutron": "^/v2.0/", "agent protocol": "^/dvr/v1/|^/v2.0/agents"}


@pytest.mark.parametrize("walk", WALKS)
def test_stateful_walks_answer_as_documented(walk_server, walk):  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_asgi("/openapi.json", walk_server, config=_config(True))
    seen: collections.Counter[tuple[str, int]] = collections.Counter()

    class Walk(schema.include(path_regex=WALKS[walk]).as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            walk_server.reset()

        def after_call(self, response, case):  # type: ignore[no-untyped-def]
            super().after_call(response, case)
            seen[(case.operation.label, response.status_code)] += 1

    # seeded like every other run here, and each scenario on a fresh server (FreshEachWalk)
    label = f"stateful {walk}"
    _seeded(Walk, label).run(settings=hypothesis.settings(_settings(label),
                                                           max_examples=EXAMPLES * 5))
    followed = {
        label for (label, status) in seen
        if status < 300 and label.startswith(("GET", "PUT", "DELETE"))
    }
    assert followed, f"the walk never got past its first calls: {seen}"
