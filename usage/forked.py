"""Run a function in a forked child with its own database connection, so the close's pure-Python
build uses the second core. The child leaves the caller's connection (which holds the close's
lock) unclosed and dies with its parent; use only outside a transaction."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from django.db import connections

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


class ChildFailed(Exception):
    """The child raised, or died, before returning a result."""


def available() -> bool:
    return hasattr(os, "fork") and sys.platform.startswith("linux")


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


_inherited: list[Any] = []  # the parent's connections: referenced, so never finalized here


def _forget_parent_connections() -> None:
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _inherited.append(conn.connection)
            conn.connection = None
        # A fresh wrapper state: no transaction, no savepoints, autocommit as configured.
        conn.in_atomic_block = False
        conn.savepoint_ids = []
        conn.needs_rollback = False
        conn.run_on_commit = []


class Child(Generic[T]):
    def __init__(self, fn: Callable[..., T], *args: Any) -> None:
        parent = os.getpid()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child; its effects are tested
            os.close(read_end)
            status = 0
            try:
                _die_with_parent(parent)
                _forget_parent_connections()
                payload: tuple[bool, Any] = (True, fn(*args))
            except BaseException:  # noqa: BLE001 - everything goes back to the parent
                payload = (False, traceback.format_exc())
                status = 1
            try:
                data = pickle.dumps(payload)
                with os.fdopen(write_end, "wb") as out:
                    out.write(data)
                for conn in connections.all(initialized_only=True):
                    conn.close()  # the child's own connections
            finally:
                # No finalizer may run on the parent's connections (closing one ends the
                # close's session and its advisory lock for both processes).
                os._exit(status)
        os.close(write_end)
        self.pid = pid
        self._read_end: int | None = read_end

    def result(self) -> T:
        """Wait for the child; its return value, or ChildFailed. Interrupted while waiting
        (a time limit, a signal), the caller stops the child before it goes on."""
        read_end, self._read_end = self._read_end, None
        assert read_end is not None, "result() is called once"
        try:
            with os.fdopen(read_end, "rb") as incoming:
                data = incoming.read()
            _, status = os.waitpid(self.pid, 0)
        except BaseException:
            self.kill()
            raise
        if not data:
            raise ChildFailed(f"build process {self.pid} died ({_describe(status)})")
        ok, value = pickle.loads(data)  # noqa: S301 - our own child, through our own pipe
        if not ok:
            raise ChildFailed(f"build process {self.pid} failed:\n{value}")
        return value  # type: ignore[no-any-return]

    def kill(self) -> None:
        """Stop the child at once (the caller failed) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        if self._read_end is not None:
            with contextlib.suppress(OSError):
                os.close(self._read_end)
            self._read_end = None
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
