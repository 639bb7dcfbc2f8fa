"""The simulator's HTTP server: threaded, keep-alive, JSON, with faults and a call log.
`/api/v1/...` is SolusIO (see `api`); `/_sim/...` is the control API tests and demos use
(README, "Talking to SolusIO")."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from solusio.simulator.api import PREFIX, Api, Request
from solusio.simulator.browser import LOGIN_PATH, login_page
from solusio.simulator.faults import BEFORE, CallLog, Fault, FaultConfig, FaultInjector
from solusio.simulator.state import Invalid, SeedConfig, SimState, parse_instant

log = logging.getLogger("solusio.simulator")

DEFAULT_TOKEN = "simulator-token"  # noqa: S105 - a well-known demo credential, not a secret


class Simulator:
    """Everything one simulated SolusIO holds; the HTTP server is a thin layer on top."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        seed: SeedConfig | None = None,
        faults: FaultConfig | None = None,
    ) -> None:
        self.token = token
        self.state = SimState(seed or SeedConfig())
        self.api = Api(self.state, token)
        self.faults = FaultInjector(faults)
        self.calls = CallLog()

    def reset(self, seed: SeedConfig | None = None) -> None:
        self.state.reseed(seed or self.state.config)
        self.faults.clear()
        self.calls.clear()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sim: Simulator) -> None:
        self.sim = sim
        super().__init__(address, _Handler)

    @property
    def host(self) -> str:
        host = self.server_address[0]
        return host.decode() if isinstance(host, bytes) else str(host)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool is exercised
    # Headers and body go out as two writes; with Nagle on, the body of every keep-alive
    # answer would wait ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _Server
    server_version = "SolusIO-simulator/1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = _MALFORMED
        if parts.path.startswith("/_sim/"):
            self._control(parts.path, query, body)
        elif parts.path == PREFIX or parts.path.startswith(PREFIX + "/"):
            self._api(parts.path[len(PREFIX) :] or "/", query, body)
        elif parts.path == LOGIN_PATH and self.command in ("GET", "HEAD"):
            status, html = login_page(self.server.sim.state, query.get("token", ""))
            self._send_html(status, html)
        else:
            self._send(404, {"message": "Not Found."})

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _api(self, path: str, query: dict[str, str], body: Any) -> None:
        sim = self.server.sim
        entry = sim.calls.start(self.command, path, query, None if body is _MALFORMED else body)
        fault = sim.faults.pick(self.command, path)
        # Known at once, so a test sees a slow call's fault while it is still sleeping.
        entry["fault"] = fault.kind if fault is not None else None
        # Each entry is finished before the answer goes out, so a client that reads the log
        # right after its call sees that call complete.
        if fault is not None and fault.kind in BEFORE:
            status = {"drop": None, "rate_limit": 429}.get(fault.kind, fault.status)
            sim.calls.finish(entry, status, fault.kind)
            self._before(fault)
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        if body is _MALFORMED:
            status, payload = 400, {"message": "The request body is not valid JSON."}
        else:
            request = Request(
                method=self.command,
                path=path,
                query=query,
                body=body,
                authorization=self.headers.get("Authorization", ""),
                host=self.headers.get("Host", "localhost"),
            )
            status, payload = sim.api.handle(request)
        kind = fault.kind if fault is not None else None
        sim.calls.finish(entry, status, kind)
        if kind == "drop_after":
            self.close_connection = True  # the work is done; the answer is lost
        else:
            self._send(status, payload, truncate=kind == "truncate")

    def _send_html(self, status: int, html: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(html)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(html)

    def _before(self, fault: Fault) -> None:
        if fault.kind == "drop":
            self.close_connection = True
        elif fault.kind == "rate_limit":
            self._send(
                429,
                {"message": "Too Many Attempts."},
                headers={"Retry-After": str(fault.retry_after)},
            )
        else:
            self._send(fault.status, {"message": "Server Error"})

    def _send(
        self,
        status: int,
        payload: Any,
        *,
        headers: dict[str, str] | None = None,
        truncate: bool = False,
    ) -> None:
        data = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        if truncate:
            data = data[: len(data) // 2]
        try:
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its read timeout fired during a slow answer).
            self.close_connection = True

    # --- control API -----------------------------------------------------------------------

    def _control(self, path: str, query: dict[str, str], body: Any) -> None:
        sim = self.server.sim
        method = self.command
        try:
            if path == "/_sim/health" and method == "GET":
                return self._send(200, {"ok": True})
            if path == "/_sim/calls" and method == "GET":
                since = int(query.get("since", "0") or 0)
                return self._send(200, {"data": sim.calls.entries(since)})
            if path == "/_sim/calls" and method == "DELETE":
                sim.calls.clear()
                return self._send(204, None)
            if path == "/_sim/faults" and method == "GET":
                return self._send(200, {"data": sim.faults.describe()})
            if path == "/_sim/faults" and method == "DELETE":
                sim.faults.clear()
                return self._send(204, None)
            if path == "/_sim/faults" and method == "POST":
                apply_faults(sim.faults, _object(body))
                return self._send(200, {"data": sim.faults.describe()})
            if path == "/_sim/seed" and method == "POST":
                sim.reset(seed_config(_object(body), sim.state.config))
                return self._send(200, {"data": sim.state.config.as_dict()})
            if path == "/_sim/reset" and method == "POST":
                sim.reset()
                return self._send(200, {"data": sim.state.config.as_dict()})
            if path == "/_sim/servers" and method == "POST":
                return self._send(201, {"data": sim.state.add_server(_object(body))})
        except Invalid as exc:
            return self._send(422, {"message": str(exc), "errors": exc.errors})
        except (ValueError, TypeError) as exc:
            return self._send(422, {"message": str(exc), "errors": {}})
        return self._send(404, {"message": "Not Found."})


_MALFORMED = object()


def _object(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def apply_faults(injector: FaultInjector, body: dict[str, Any]) -> None:
    """Merge a control-API fault body into the injector (see module docstring)."""
    current = injector.config
    known = {f.name for f in fields(FaultConfig)}
    unknown = set(body) - known - {"next"}
    if unknown:
        raise ValueError(f"unknown fault settings: {sorted(unknown)}")
    merged = FaultConfig(**{**current.__dict__, **{k: v for k, v in body.items() if k in known}})
    injector.configure(merged)
    fault_fields = {f.name for f in fields(Fault)}
    for spec in body.get("next", []):
        bad = set(spec) - fault_fields
        if bad:
            raise ValueError(f"unknown fault fields: {sorted(bad)}")
        injector.enqueue(Fault(**spec))


def seed_config(body: dict[str, Any], current: SeedConfig) -> SeedConfig:
    known = {f.name for f in fields(SeedConfig)}
    unknown = set(body) - known
    if unknown:
        raise ValueError(f"unknown seed settings: {sorted(unknown)}")
    values = {**current.as_dict(), **body}
    if isinstance(values.get("now"), str):
        errors: dict[str, list[str]] = {}
        values["now"] = parse_instant(values["now"], "now", errors)
        if errors:
            raise Invalid(errors)
    return SeedConfig(**values)


@dataclass
class RunningSimulator:
    """A simulator serving in a background thread of this process."""

    sim: Simulator
    httpd: _Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def root(self) -> str:
        return f"http://{self.httpd.host}:{self.port}"

    @property
    def url(self) -> str:
        """The API base URL, what SOLUSIO_API_URL would be."""
        return self.root + PREFIX

    @property
    def token(self) -> str:
        return self.sim.token

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve(sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> _Server:
    """Bind (port 0 picks a free port) without serving yet."""
    return _Server((host, port), sim)


def start_in_thread(
    sim: Simulator | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    sim = sim or Simulator()
    httpd = serve(sim, host, port)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.name = f"solusio-simulator:{httpd.server_address[1]}"
    thread.start()
    return RunningSimulator(sim=sim, httpd=httpd, thread=thread)
