"""What one server process knows of host credentials: the host of each credential (by its
sha256) as last read from the database.

It serves two purposes:

- **While the database is unreachable**, an agent whose credential was read before is
  still answered from memory (``last_read``), as its watches and heartbeats are; no
  credential can be revoked meanwhile.
- **When this process sees every credential write** (``sees_every_write``: SQLite, which
  one server process serves alone), a credential read before is trusted without reading
  it again (``trusted``): the lookup was a read transaction of its own per agent request,
  ~8 times the CPU of a heartbeat or of a watch answered from memory
  (``bench/bench_request_cpu.py --auth``).  Rotating or revoking a host's credential goes
  through this process, which forgets the host's credentials once the write has
  committed (``forget_host``), so the old token is refused by the next request, as before.
  A read that began before that forget cannot bring the old credential back: what it
  found is remembered only if no credential was forgotten meanwhile (``generation``).
  With PostgreSQL, where other server processes may rotate or revoke, every request reads
  the credential again.

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
    _hosts: dict[str, str] = field(default_factory=dict)  # sha256 -> host, oldest first
    _generation: int = 0  # moved by every forget

    @property
    def generation(self) -> int:
        """Taken before a read of the database, handed back to ``remember``."""
        return self._generation

    def trusted(self, key: str) -> str | None:
        """The host of credential ``key`` when it need not be read again, else None."""
        return self._hosts.get(key) if self.sees_every_write else None

    def last_read(self, key: str) -> str | None:
        """The host of credential ``key`` as last read (for outages), or None."""
        return self._hosts.get(key)

    def remember(self, key: str, host: str | None, generation: int) -> None:
        """What a read that began at ``generation`` found for ``key`` (None: nobody); kept
        only if no credential was forgotten since the read began."""
        if generation != self._generation:
            return
        self._hosts.pop(key, None)
        if host is None:
            return
        self._hosts[key] = host
        while len(self._hosts) > self.limit:
            self._hosts.pop(next(iter(self._hosts)))

    def forget_host(self, host: str) -> None:
        """``host``'s credential was rotated or revoked (the write has committed)."""
        self._generation += 1
        for key in [k for k, h in self._hosts.items() if h == host]:
            del self._hosts[key]
