"""The fake Stripe's HTTP server: the API under /v1 (form-encoded requests, a bearer secret
key, Idempotency-Key honoured, Stripe-shaped JSON and errors), the hosted checkout page at
each session's `url`, signed webhook delivery, and /_fake/ for tests and the demo."""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from payments.fake_stripe.state import Delivery, FakeState, StripeFault, _Declined, sign
from payments.minor_units import from_minor

log = logging.getLogger("payments.fake_stripe")

# Webhook delivery: Stripe waits this long for an answer (its own limit is longer).
DELIVERY_TIMEOUT = 10.0


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`a[b][0][c]=v`) into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head] + (rest[:-1].split("][") if rest else [])
        node = root
        for index, part in enumerate(parts):
            if part == "":
                part = str(len(node))  # `a[]=x`: append
            if index == len(parts) - 1:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    values = {k: _lists(v) for k, v in node.items()}
    if values and all(k.isdigit() for k in values):
        return [values[k] for k in sorted(values, key=int)]
    return values


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: FakeState) -> None:
        self.state = state
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server
    server_version = "fake-stripe/1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_DELETE = do_GET

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length > 0 else ""
        path = parts.path
        try:
            if path.startswith("/v1/"):
                self._api(path, parse_qsl(parts.query), raw)
            elif path.startswith("/checkout/"):
                self._hosted(path, dict(parse_qsl(raw)))
            elif path.startswith("/_fake/"):
                self._control(path, raw)
            else:
                self._json(
                    404,
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "message": "Unrecognized request URL.",
                        }
                    },
                )
        except StripeFault as fault:
            self._json(fault.status, fault.body)

    # --- API -----------------------------------------------------------------------------

    def _api(self, path: str, query: list[tuple[str, str]], raw: str) -> None:
        state = self.server.state
        given = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if given != state.secret_key:
            # Stripe shows a key only masked; so does this.
            masked = f"{given[:8]}{'*' * max(len(given) - 12, 0)}{given[-4:]}" if given else ""
            raise StripeFault(401, "invalid_request_error", f"Invalid API Key provided: {masked}")
        params = decode_form(parse_qsl(raw, keep_blank_values=True))
        key = self.headers.get("Idempotency-Key", "")
        fingerprint = f"{self.command} {path} {raw}"
        with state.lock:
            state.calls.append({"method": self.command, "path": path, "params": params,
                                "idempotency_key": key})  # fmt: skip
            if key and self.command == "POST" and key in state.idempotent:
                seen, status, body = state.idempotent[key]
                if seen != fingerprint:
                    raise StripeFault(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key}' if you "
                        "meant to execute a different request.",
                    )
                return self._json(status, body, replayed=True)
            events: list[dict[str, Any]] = []
            try:
                status, body, events = self._route(path, dict(query), params)
            except _Declined as declined:
                status, body, events = declined.fault.status, declined.fault.body, declined.events
            except StripeFault as fault:
                status, body = fault.status, fault.body
            if key and self.command == "POST":
                # A snapshot: Stripe replays the first answer as it was, not the object now.
                state.idempotent[key] = (fingerprint, status, json.loads(json.dumps(body)))
        self._json(status, body)
        _send_later(state, events)

    def _route(
        self, path: str, query: dict[str, str], params: dict[str, Any]
    ) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
        state = self.server.state
        parts = path.strip("/").split("/")[1:]  # below /v1
        expand = [v for k, v in parse_qsl(urlsplit(self.path).query) if k.startswith("expand")]
        method = self.command
        if parts == ["checkout", "sessions"] and method == "POST":
            return 200, state.create_session(params), []
        if len(parts) == 3 and parts[:2] == ["checkout", "sessions"] and method == "GET":
            return 200, state.session(parts[2]), []
        if parts == ["payment_intents"] and method == "POST":
            intent, events = state.create_intent(params)
            return 200, intent, events
        if len(parts) == 2 and parts[0] == "payment_intents" and method == "GET":
            return 200, state.intent(parts[1], expand), []
        if parts == ["customers"] and method == "POST":
            return 200, state.create_customer(params), []
        if len(parts) == 2 and parts[0] == "customers" and method == "GET":
            return 200, state.customer(parts[1]), []
        if len(parts) == 2 and parts[0] == "payment_methods" and method == "GET":
            return 200, state.method(parts[1]), []
        raise StripeFault(
            404, "invalid_request_error", f"Unrecognized request URL ({method}: {path})."
        )

    # --- The hosted checkout page ----------------------------------------------------------

    def _hosted(self, path: str, form: dict[str, str]) -> None:
        state = self.server.state
        parts = path.strip("/").split("/")  # checkout/<id>[/pay|/cancel]
        with state.lock:
            session = state.session(parts[1])
            if len(parts) == 2 and self.command == "GET":
                return self._html(200, _checkout_page(session))
            if parts[2:] == ["cancel"]:
                return self._redirect(session["cancel_url"])
            if parts[2:] != ["pay"] or self.command != "POST":
                raise StripeFault(404, "invalid_request_error", "Unrecognized request URL.")
            events = state.pay_session(session["id"], form.get("method", "card"))
        # Stripe sends the webhook before it sends the customer back.
        deliver(state, events)
        self._redirect(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"]))

    # --- Control -------------------------------------------------------------------------

    def _control(self, path: str, raw: str) -> None:
        state = self.server.state
        body = json.loads(raw) if raw.strip() else {}
        if path == "/_fake/health":
            return self._json(200, {"ok": True})
        if path == "/_fake/events":
            with state.lock:
                sent = [{"event": d.event, "status": d.status, "error": d.error}
                        for d in state.deliveries]  # fmt: skip
            return self._json(200, {"data": sent})
        if path == "/_fake/webhook" and self.command == "POST":
            state.webhook_url = str(body.get("url", ""))
            return self._json(200, {"url": state.webhook_url})
        if path.startswith("/_fake/payment_intents/") and path.endswith("/settle"):
            with state.lock:
                events = state.settle_intent(
                    path.split("/")[3], str(body.get("outcome", "succeeded"))
                )
            deliver(state, events)
            return self._json(200, {"events": [e["id"] for e in events]})
        if path == "/_fake/redeliver" and self.command == "POST":
            with state.lock:
                event = next(d.event for d in state.deliveries if d.event["id"] == body.get("id"))
            deliver(state, [event])
            return self._json(200, {"id": event["id"]})
        raise StripeFault(404, "invalid_request_error", "Unrecognized control URL.")

    # --- Answers -------------------------------------------------------------------------

    def _json(self, status: int, body: Any, *, replayed: bool = False) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", f"req_fake_{int(time.time() * 1000)}")
        if replayed:
            self.send_header("Idempotent-Replayed", "true")
        self.end_headers()
        self.wfile.write(data)

    def _html(self, status: int, page: str) -> None:
        data = page.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, url: str) -> None:
        self.send_response(303)
        self.send_header("Location", url)
        self.send_header("Content-Length", "0")
        self.end_headers()


def deliver(state: FakeState, events: list[dict[str, Any]]) -> list[Delivery]:
    """POST each event to the webhook endpoint, signed as Stripe signs, in order."""
    done = []
    for event in events:
        delivery = Delivery(event)
        payload = json.dumps(event, indent=2)  # Stripe's bodies are pretty-printed too
        if state.webhook_url:
            header = sign(payload, state.webhook_secret, int(time.time()))
            try:
                answer = requests.post(
                    state.webhook_url,
                    data=payload.encode(),
                    headers={
                        "Content-Type": "application/json; charset=utf-8",
                        "Stripe-Signature": header,
                    },
                    timeout=DELIVERY_TIMEOUT,
                )
                delivery.status = answer.status_code
            except requests.RequestException as exc:
                delivery.error = type(exc).__name__
        else:
            delivery.error = "no webhook endpoint configured"
        with state.lock:
            state.deliveries.append(delivery)
        done.append(delivery)
    return done


def _send_later(state: FakeState, events: list[dict[str, Any]]) -> None:
    # API calls answer first, as Stripe's do; their events follow on their own.
    if events:
        threading.Thread(target=deliver, args=(state, events), daemon=True).start()


def _money(amount: int, currency: str) -> str:
    return f"{from_minor(amount, currency):,} {currency.upper()}"


_METHOD_LABELS = {
    "card": "Card (4242 4242 4242 4242)",
    "sepa_debit": "SEPA Direct Debit (DE89 3704 0044 0532 0130 00)",
}
_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 30rem; margin: 2rem auto; }
.banner { background: #635bff; color: #fff; padding: .5rem 1rem; border-radius: .4rem; }
.amount { font-size: 2rem; font-weight: 600; margin: 1rem 0; }
fieldset { border: 1px solid #ddd; border-radius: .4rem; margin: 1rem 0; }
button { background: #635bff; color: #fff; border: 0; padding: .7rem 1.5rem;
         border-radius: .4rem; font: inherit; }
"""


def _checkout_page(session: dict[str, Any]) -> str:
    sid = html.escape(session["id"])
    names = "".join(f"<li>{html.escape(n)}</li>" for n in session["line_items_summary"])
    amount = html.escape(_money(session["amount_total"], session["currency"]))
    options = "".join(
        f'<label><input type="radio" name="method" value="{m}"{" checked" if i == 0 else ""}> '
        f"{html.escape(_METHOD_LABELS.get(m, m))}</label><br>"
        for i, m in enumerate(session["payment_method_types"])
    )
    if session["status"] != "open":
        action = f"<p id='closed'>This checkout is {html.escape(session['status'])}.</p>"
    else:
        action = (
            f'<form method="post" action="/checkout/{sid}/pay"><fieldset><legend>Pay with'
            f"</legend>{options}</fieldset><button type='submit' id='pay'>Pay {amount}</button>"
            f'</form><p><a href="/checkout/{sid}/cancel">Cancel and go back</a></p>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Fake Stripe Checkout</title><style>{_STYLE}</style></head><body>"
        '<p class="banner">Fake Stripe Checkout (test mode: no money moves)</p>'
        f'<ul>{names}</ul><p class="amount" id="amount">{amount}</p>{action}</body></html>'
    )


@dataclass
class RunningFake:
    state: FakeState
    httpd: _Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        """The API base, what STRIPE_API_BASE is set to."""
        return self.state.root

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def start_in_thread(state: FakeState, *, host: str = "127.0.0.1", port: int = 0) -> RunningFake:
    httpd = _Server((host, port), state)
    state.root = f"http://{host}:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.name = f"fake-stripe:{httpd.server_address[1]}"
    thread.start()
    return RunningFake(state, httpd, thread)
