"""Prometheus metrics for operators: the web app's (GET /metrics, bearer token) and the worker's
(its own listener), each named here once so no two modules define the same series.

The web app runs under gunicorn with several worker processes, so its counters live in
prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, prepared by `acceso web`) and
each scrape sums every process. Registration counts are read from the database at scrape time,
so every web process answers the same numbers and they survive restarts. The worker is one
process: its own counters plus the Temporal SDK's runtime metrics, served together.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Web app (multiprocess under gunicorn).
HTTP_REQUESTS = Counter(
    "acceso_http_requests", "HTTP requests answered, by endpoint and status", ["endpoint", "status"]
)
HTTP_LATENCY = Histogram(
    "acceso_http_request_duration_seconds",
    "Time to answer an HTTP request, by endpoint",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LOGINS = Counter(
    "acceso_logins",
    "Login attempts by portal and outcome (ok, failed, locked)",
    ["portal", "outcome"],
)
RATE_LIMITED = Counter(
    "acceso_rate_limited", "Requests refused by a rate limit, by what was limited", ["limit"]
)

# Worker (one process).
ACTIVITY_OUTCOMES = Counter(
    "acceso_activity_outcomes",
    "Activity attempts by activity and outcome (ok, failed, cancelled)",
    ["activity", "outcome"],
)
EMAIL_FAILURES = Counter(
    "acceso_email_send_failures", "E-mail deliveries that failed (each is retried)", ["template"]
)

REGISTRATION_OUTCOMES = {
    "registration.email_confirmed": "confirmed",
    "registration.approved": "approved",
    "registration.denied": "denied",
    "registration.lapsed": "lapsed",
    "registration.expired": "expired",
    "registration.closed": "closed",
}
"""Audit actions that mark a registration outcome, and the outcome label each becomes."""


def count_login(portal: str, outcome: str) -> None:
    LOGINS.labels(portal=portal, outcome=outcome).inc()


def count_rate_limited(limit: str) -> None:
    """Call wherever a rate limit refuses a request; `limit` names which (e.g. "reset")."""
    RATE_LIMITED.labels(limit=limit).inc()


def count_email_failure(template: str) -> None:
    EMAIL_FAILURES.labels(template=template).inc()


def prepare_multiprocess_dir(settings, path: str | None = None) -> Path:
    """An empty PROMETHEUS_MULTIPROC_DIR for a new gunicorn master and its workers (set in this
    process's environment for them to inherit): counters restart from zero with the server, as
    Prometheus expects of a restarted target."""
    chosen = Path(path or os.environ.get(MULTIPROC_ENV) or Path(settings.data_dir) / "metrics-web")
    if chosen.exists():
        shutil.rmtree(chosen)
    chosen.mkdir(parents=True)
    if path is None:
        os.environ[MULTIPROC_ENV] = str(chosen)
    return chosen


def _process_registry() -> CollectorRegistry:
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def web_exposition(*collectors) -> bytes:
    """Every web process's counters plus the numbers the processes count in the database
    (their collectors, e.g. the registration's), as text."""
    database = CollectorRegistry()
    for collector in collectors:
        database.register(collector)
    return generate_latest(_process_registry()) + generate_latest(database)


# The worker's listener.


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"ACCESO_WORKER_METRICS_ADDRESS must be HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


def worker_runtime():
    """(runtime, url): a Temporal runtime exporting the SDK's metrics on a private loopback
    port, relayed by WorkerMetricsServer so each worker is one scrape target."""
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    port = _free_loopback_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"127.0.0.1:{port}",
                counters_total_suffix=True,
                durations_as_seconds=True,
            ),
            global_tags={"service": "acceso-worker"},
        )
    )
    return runtime, f"http://127.0.0.1:{port}/metrics"


class WorkerMetricsServer:
    """GET /metrics on ACCESO_WORKER_METRICS_ADDRESS: the worker's prometheus_client counters,
    followed by the Temporal SDK's own exposition (fetched from its private loopback port)."""

    def __init__(self, address: str, sdk_metrics_url: str | None):
        host, port = parse_address(address)
        sdk_url = sdk_metrics_url

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's hook name)
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = generate_latest(REGISTRY)
                if sdk_url:
                    try:
                        with urllib.request.urlopen(sdk_url, timeout=5) as answer:  # noqa: S310
                            body += answer.read()
                    except OSError:
                        body += b"# the Temporal SDK's metrics did not answer\n"
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> WorkerMetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
