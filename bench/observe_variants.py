"""What the observability benchmarks compare: the engine's settings for each variant, and an
OTLP/HTTP collector on loopback that accepts every export and keeps only counts."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that accepts every export and keeps only a count."""

    protocol_version = "HTTP/1.1"  # keep-alive, as real collectors do
    exports = 0
    received_bytes = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Sink.exports += 1
        Sink.received_bytes += len(body)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def start_sink() -> tuple[ThreadingHTTPServer, str]:
    """A running `Sink` and its base URL (for `HEADWAY_OTLP_ENDPOINT`)."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    return sink, f"http://127.0.0.1:{sink.server_address[1]}"


def variants(otlp: str) -> dict[str, dict[str, str]]:
    """Each variant's environment: `off` (nothing attached), `metrics` (the default),
    `traces1%` and `traces` (metrics, and every hundredth or every trace sent to `otlp`)."""
    return {
        "off": {"HEADWAY_METRICS": "0"},
        "metrics": {},
        "traces1%": {"HEADWAY_OTLP_ENDPOINT": otlp, "HEADWAY_TRACE_SAMPLE_RATIO": "0.01"},
        "traces": {"HEADWAY_OTLP_ENDPOINT": otlp},
    }
