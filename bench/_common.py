"""Pieces the benches and drills share: free ports, waiting, child processes that are always
stopped, a private redis-server and the SolusIO simulator as its own process."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done = predicate()
        except Exception:  # not up yet
            done = False
        if done:
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


class Processes:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[Any]] = []

    def start(self, args: list[str], env: dict[str, str] | None = None, **kw: Any) -> Any:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, **kw)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)

    def redis_server(self, port: int, *extra: str) -> Any:
        """A private redis-server on `port` (the shared one is never touched); no
        persistence unless `extra` asks for it (a later option wins)."""
        proc = self.start(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
        )
        import redis

        wait_for(lambda: redis.Redis(port=port).ping(), 10, "redis-server")
        return proc

    def simulator(self, token: str, *extra: str) -> tuple[Any, str]:
        """The SolusIO simulator as its own process; returns it and its API URL."""
        sim = self.start(
            [sys.executable, "-m", "solusio.simulator", "--port", "0", "--token", token, *extra],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = sim.stdout.readline()
        # Keep reading its output: a full pipe would stop the simulator mid-run.
        threading.Thread(target=lambda: sim.stdout.read(), daemon=True).start()
        return sim, line.split(" on ", 1)[1].split()[0]
