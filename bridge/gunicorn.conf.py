"""Production gunicorn configuration: `gunicorn -c bridge/gunicorn.conf.py bridge.wsgi`.

Every setting is read from the environment with a default sized for a small (2-core)
host; see docs/performance.md for the measurements behind the defaults. A malformed value
(e.g. GUNICORN_WORKERS=lots) stops gunicorn at start-up.

- Worker class gthread: threads overlap the Redis/PostgreSQL round trips, and unlike the
  sync worker it keeps client connections alive (SolusIO calls GetTokenPricing on every
  page render; a new TCP connection per call would cost more than the answer).
- One worker per CPU with two threads each: a worker runs Python on one core at a time
  (the GIL); two threads overlap a request's Redis or PostgreSQL round trip with another
  request, and few threads per worker keep the GIL hand-offs around those round trips
  cheap (four threads gave a longer p99, four workers on two cores more CPU per request:
  docs/performance.md).
- One listening socket shared by the workers (reuse_port off). With a burst of new
  keep-alive connections whichever worker wakes first accepts most of them (16 clients
  were seen split 16/0 and 14/2 over two workers, halving throughput until they
  reconnect). GUNICORN_REUSE_PORT=1 gives every worker its own SO_REUSEPORT socket and
  the kernel spreads connections by hash, far more evenly; but a worker that exits
  (max_requests, HUP, a timeout) then resets the connections queued on its socket:
  measured, every recycle under load cost client errors. Only turn it on with
  GUNICORN_MAX_REQUESTS=0 (and, on Linux >= 5.14, the sysctl net.ipv4.tcp_migrate_req=1).
- The access log is off (GUNICORN_ACCESSLOG=- writes it to stdout): at thousands of
  pricing calls a second it is the most expensive thing the server would do.
- Workers restart after GUNICORN_MAX_REQUESTS requests (plus up to 10 % jitter, so that
  they do not all restart at once), which bounds any slow memory growth. A worker keeps up
  to PRICING_LOCAL_CACHE_SIZE pricing answers in memory and a new one copies them from
  Redis first (about a second of CPU for 100,000), so recycles must be rare: a million
  requests is over four minutes for a worker saturated at the measured ~3,300 req/s, and
  hours at ordinary load.
"""

import os
from typing import Any


def _env_str(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, not {raw!r}") from None
    if value < 0:
        raise SystemExit(f"{name} must not be negative, not {raw!r}")
    return value


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"{name} must be a boolean (1/0, true/false), not {raw!r}")


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours taskset/cpusets
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --- Socket ------------------------------------------------------------------------------
# In a container the port is published by Docker, so listen on every interface.
bind = [b.strip() for b in _env_str("GUNICORN_BIND", "0.0.0.0:8000").split(",") if b.strip()]
backlog = _env_int("GUNICORN_BACKLOG", 2048)
reuse_port = _env_bool("GUNICORN_REUSE_PORT", False)

# --- Workers -----------------------------------------------------------------------------
worker_class = "gthread"
# GUNICORN_WORKERS, else the conventional WEB_CONCURRENCY, else one per CPU. In a container
# limited by a CPU quota (compose `cpus:`) the CPU count is the host's: set it explicitly.
workers = _env_int("GUNICORN_WORKERS", _env_int("WEB_CONCURRENCY", _cpu_count())) or 1
threads = _env_int("GUNICORN_THREADS", 2) or 1
# Open connections per worker (kept-alive ones included) before it stops accepting.
worker_connections = _env_int("GUNICORN_WORKER_CONNECTIONS", 1000)
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 1_000_000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", max_requests // 10)
preload_app = _env_bool("GUNICORN_PRELOAD", False)

# --- Timeouts (seconds) ------------------------------------------------------------------
# How long an idle client connection stays open. SolusIO (or a proxy in front of the
# bridge) reuses it; longer than the usual 1-5 s costs one idle socket per client.
keepalive = _env_int("GUNICORN_KEEPALIVE", 5)
# A worker silent this long is killed; no request of the bridge should come close.
timeout = _env_int("GUNICORN_TIMEOUT", 30)
# On SIGTERM (docker stop) in-flight requests get this long; keep it below the container
# stop timeout (docker compose's default stop_grace_period is 10 s).
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 8)
# The heartbeat file lives in RAM: on a disk-backed /tmp, fchmod can stall a worker.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

# --- Proxy -------------------------------------------------------------------------------
# Addresses allowed to set X-Forwarded-* (a reverse proxy in front of the bridge).
forwarded_allow_ips = _env_str("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# --- Logging -----------------------------------------------------------------------------
accesslog = _env_str("GUNICORN_ACCESSLOG", "") or None
errorlog = "-"
loglevel = _env_str("GUNICORN_LOGLEVEL", "info")
# The control socket (gunicornc) is off unless a path is given: with the default path
# every gunicorn on the host would share, and take over, the same socket.
_control_socket = _env_str("GUNICORN_CONTROL_SOCKET", "")
if _control_socket:
    control_socket = _control_socket
else:
    control_socket_disable = True

proc_name = "solusio-billing-bridge"


def post_worker_init(worker: object) -> None:
    """Fill the worker's in-memory pricing answers from Redis, in the background."""
    from pricing.services import start_prefill_local_answers

    start_prefill_local_answers()


def child_exit(server: object, worker: Any) -> None:
    """Drop an exited worker's live metric gauges (PROMETHEUS_MULTIPROC_DIR); its counters
    stay in the directory, so totals do not drop when a worker is recycled."""
    from bridge.metrics import mark_process_dead

    mark_process_dead(worker.pid)
