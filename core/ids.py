"""Random identifiers for the ack path without a system call each.

``uuid.uuid4()`` reads 16 bytes from the kernel per id, and that ``getrandom`` call releases the
GIL: under load each one is a chance for the thread to wait for the GIL again. Here the kernel's
randomness is read 4 KiB at a time and handed out 16 bytes per id. The buffer is emptied in a
forked child (gunicorn forks its workers from one master), so no two processes hand out the same
bytes.
"""

from __future__ import annotations

import os
import threading

_CHUNK = 4096
_SIZE = 16


class _Pool:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._buffer = b""
        self._at = 0
        self._lock = threading.Lock()  # after a fork: a lock another thread held stays held

    def take(self) -> bytes:
        with self._lock:
            if self._at >= len(self._buffer):
                self._buffer, self._at = os.urandom(_CHUNK), 0
            start, self._at = self._at, self._at + _SIZE
            return self._buffer[start:self._at]


_pool = _Pool()
os.register_at_fork(after_in_child=_pool._reset)


def new_id() -> str:
    """128 random bits from the OS's CSPRNG as 32 lowercase hex characters (like uuid4().hex,
    without the version bits)."""
    return _pool.take().hex()
