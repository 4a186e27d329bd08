"""What one server process knows of host credentials: the host of each credential (by its
sha256) as last read from the database.

It serves two purposes:

- **While the database is unreachable**, an agent whose credential was read before is
  still answered from memory (``last_read``), as its watches and heartbeats are; no
  credential can be revoked meanwhile.
- **When this process hears of every credential write**, a credential read before is
  trusted without reading it again (``trusted``): the lookup was a read transaction of its
  own per agent request, ~7 times the CPU of a heartbeat or of a watch answered from
  memory (``bench/bench_request_cpu.py --auth``).  On SQLite one server process serves the
  database alone, so it sees every write (``sees_every_write``).  With PostgreSQL, the
  process that rotates or revokes a credential also sends a notice (``pg_notify``) that
  every other process's change listener hears (``forget_host``); a process trusts what it
  read only while its listener is connected (``hearing``), and forgets all trust whenever
  that changes, since a notice may have been missed meanwhile: then every request reads.
  The process that rotated or revoked forgets the host's credentials once the write has
  committed, so the old token is refused by its next request; another process refuses it
  as soon as it has heard the notice, which PostgreSQL sends at the commit, before the
  answer to the revocation has left.
  A read that began before a forget cannot bring the old credential back: what it found
  is remembered only if nothing was forgotten meanwhile (``generation``).

A token that names nobody is never remembered: a new credential works at once, and a
guessed token always reaches the database (and the failure rate limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

KNOWN_CREDENTIALS = 100_000  # memory bound (the oldest read is dropped first)


@dataclass
class KnownCredentials:
    sees_every_write: bool = False
    limit: int = KNOWN_CREDENTIALS
    # sha256 -> (host, the trust epoch it was read in), oldest read first
    _read: dict[str, tuple[str, int]] = field(default_factory=dict)
    _hearing: bool = False  # a PostgreSQL listener is connected (``hearing_from_now``)
    _trust_epoch: int = 0  # moved whenever hearing starts or stops: older reads untrusted
    _generation: int = 0  # moved by every forget

    @property
    def generation(self) -> int:
        """Taken before a read of the database, handed back to ``remember``."""
        return self._generation

    @property
    def hearing(self) -> bool:
        return self.sees_every_write or self._hearing

    def trusted(self, key: str) -> str | None:
        """The host of credential ``key`` when it need not be read again, else None."""
        found = self._read.get(key)
        if found is None or not self.hearing or found[1] != self._trust_epoch:
            return None
        return found[0]

    def last_read(self, key: str) -> str | None:
        """The host of credential ``key`` as last read (for outages), or None."""
        found = self._read.get(key)
        return None if found is None else found[0]

    def remember(self, key: str, host: str | None, generation: int) -> None:
        """What a read that began at ``generation`` found for ``key`` (None: nobody); kept
        only if nothing was forgotten since the read began."""
        if generation != self._generation:
            return
        self._read.pop(key, None)
        if host is None:
            return
        self._read[key] = (host, self._trust_epoch)
        while len(self._read) > self.limit:
            self._read.pop(next(iter(self._read)))

    def forget_host(self, host: str) -> None:
        """``host``'s credential was rotated or revoked (the write has committed)."""
        self._generation += 1
        for key in [k for k, (h, _) in self._read.items() if h == host]:
            del self._read[key]

    def hearing_from_now(self) -> None:
        """The change listener listens (again): what was read before may have been
        revoked unheard, so it is read again once; from now on reads are trusted."""
        self._forget_trust()
        self._hearing = True

    def deaf(self) -> None:
        """The change listener lost its connection: nothing is trusted until it is back."""
        self._forget_trust()
        self._hearing = False

    def _forget_trust(self) -> None:
        self._generation += 1
        self._trust_epoch += 1
