"""The transaction handed to service functions."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection

from dvr.server.config import ServerConfig
from dvr.server.liveness import LivenessMemory
from dvr.server.services.notify import Impact


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class ReadTx:
    conn: Connection
    config: ServerConfig
    now: datetime = field(default_factory=utcnow)
    liveness: LivenessMemory = field(default_factory=LivenessMemory)  # heartbeats not flushed


@dataclass
class WriteTx(ReadTx):
    impact: Impact = field(init=False)
    rng: random.Random = field(default_factory=random.SystemRandom)

    def __post_init__(self) -> None:
        self.impact = Impact(self.conn)
