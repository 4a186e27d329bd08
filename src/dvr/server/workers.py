"""``dvr-server --workers N``: N server processes behind the same listening sockets.

The parent binds every listener once (TCP and unix sockets), then forks N workers; each
worker runs the whole server (its own event loop, database pool, change hub, liveness
memory) on the inherited sockets, and the kernel hands each new connection to one of them.
Workers learn of each other's writes through the database (``dvr.server.pg_notify``), so
``--workers`` needs PostgreSQL.

The parent only supervises: SIGTERM or SIGINT to it stops every worker gracefully
(SIGTERM, then SIGKILL after ``stop_timeout``) and removes the unix sockets.  A worker
that dies later than ``startup_grace`` seconds after it started is replaced; one that dies
sooner (a start-up error: it would die again) stops the server.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dvr.server.config import Listener

log = logging.getLogger("dvr.server")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# a worker's whole life: serve on the inherited sockets until told to stop; its exit status
ServeWorker = Callable[[Sequence[socket.socket]], int]


def bind_tcp_socket(listener: Listener) -> socket.socket:
    """A listening TCP socket for ``listener`` (IPv6 when its host is an IPv6 address)."""
    assert listener.host is not None and listener.port is not None
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    return socket.create_server((listener.host, listener.port), family=family, backlog=2048)


@dataclass
class Supervisor:
    count: int
    serve: ServeWorker
    sockets: Sequence[socket.socket]
    stop_timeout: float = 20.0
    startup_grace: float = 10.0
    clock: Callable[[], float] = time.monotonic
    workers: dict[int, float] = field(default_factory=dict)  # pid -> when it started

    def run(self) -> int:
        """Start the workers and supervise them until a stop signal; the exit status."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {*STOP_SIGNALS, signal.SIGCHLD})
        status = 0
        try:
            for _ in range(self.count):
                self._start_worker()
            log.info("dvr-server: %d workers (pids %s); stop them all with SIGTERM to %d",
                     self.count, " ".join(map(str, self.workers)), os.getpid())
            while True:
                received = signal.sigtimedwait({*STOP_SIGNALS, signal.SIGCHLD}, 1.0)
                if received is not None and received.si_signo in STOP_SIGNALS:
                    break
                if not self._reap_and_replace():
                    status = 1
                    break
        finally:
            self._stop_all()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {*STOP_SIGNALS, signal.SIGCHLD})
        return status

    def _start_worker(self) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                code = self.serve(self.sockets)
            except BaseException:  # noqa: BLE001 - a worker must never return into the parent's loop
                log.exception("worker %d failed", os.getpid())
            finally:
                os._exit(code)
        self.workers[pid] = self.clock()

    def _reap_and_replace(self) -> bool:
        """Reap exited workers and replace each; False when one died during its start-up."""
        while self.workers:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return True
            started = self.workers.pop(pid, None)
            if started is None:
                continue
            how = describe_exit(status)
            if self.clock() - started < self.startup_grace:
                log.error("worker %d %s during its start-up: stopping the server", pid, how)
                return False
            log.error("worker %d %s: starting another", pid, how)
            self._start_worker()
        return True

    def _stop_all(self) -> None:
        for pid in self.workers:
            _signal(pid, signal.SIGTERM)
        deadline = self.clock() + self.stop_timeout
        while self.workers and self.clock() < deadline:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(0.05)
            else:
                self.workers.pop(pid, None)
        for pid in list(self.workers):
            log.warning("worker %d did not stop within %.0f s: killing it", pid,
                        self.stop_timeout)
            _signal(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self.workers.pop(pid)


def _signal(pid: int, signo: int) -> None:
    try:
        os.kill(pid, signo)
    except ProcessLookupError:
        pass


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def remove_unix_sockets(listeners: Sequence[Listener]) -> None:
    for listener in listeners:
        if listener.unix_path and Path(listener.unix_path).is_socket():
            Path(listener.unix_path).unlink()
