"""Child processes that end with the driver: started from one long-lived thread with
``PR_SET_PDEATHSIG`` (SIGTERM), so that an agent killed with ``kill -9`` leaves none of its
long-lived ``ovs-ofctl`` children behind.  (The signal follows the *thread* that started
the child, hence the one thread: the agent observes from short-lived threads.)"""

from __future__ import annotations

import ctypes
import signal
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child only calls it


def _die_with_parent_thread() -> None:  # runs in the child between fork and exec
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _popen(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen:
    return subprocess.Popen(list(argv), env=dict(env), text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=_die_with_parent_thread)


class ChildStarter:
    """Starts children (stdout and stderr in one pipe, no stdin) from its own thread.
    ``close()`` ends that thread (the children it started then get SIGTERM: stop them
    first)."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="dvr-children")

    def start(self, argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen:
        return self._thread.submit(_popen, argv, env).result()

    def close(self) -> None:
        self._thread.shutdown(wait=True)
