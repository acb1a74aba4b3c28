"""/healthz, /readyz and /metrics (and, when enabled, /debug/explain) over a
few lines of HTTP/1.1.

A few fixed GET paths do not justify a web framework; each response closes the
connection, and a request that is too big or too slow is dropped.
"""

from __future__ import annotations

import asyncio
from typing import Callable
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import Metrics

MAX_REQUEST = 8192
READ_TIMEOUT = 5.0


class HealthServer:
    def __init__(
        self,
        metrics: Metrics,
        readiness: Callable[[], tuple[bool, str]],
        explain: Callable[[str, str], tuple[bool, str]] | None = None,
    ) -> None:
        self.metrics = metrics
        self.readiness = readiness  # () -> (ready, one line of detail)
        self.explain = explain  # (name, type) -> (understood, text); None: the path does not exist
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port, limit=MAX_REQUEST)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    def route(self, path: str) -> tuple[int, str, bytes]:
        match path.split("?", 1)[0]:
            case "/healthz":
                return 200, "text/plain", b"ok\n"
            case "/readyz":
                ready, detail = self.readiness()
                return (200 if ready else 503), "text/plain", detail.encode() + b"\n"
            case "/metrics":
                return 200, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)
            case "/debug/explain" if self.explain is not None:
                query = parse_qs(path.partition("?")[2])
                name, qtype = query.get("name", [""])[0], query.get("type", ["A"])[0]
                if not name:
                    return 400, "text/plain", b"usage: /debug/explain?name=NAME&type=TYPE\n"
                understood, text = self.explain(name, qtype)
                return (200 if understood else 400), "text/plain", text.encode() + b"\n"
        return 404, "text/plain", b"not found\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            status, kind, body = self.route(path) if method in ("GET", "HEAD") else (405, "text/plain", b"")
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[status]
            header = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(header.encode() + (body if method == "GET" else b""))
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            pass  # a broken or hostile request gets no answer
        finally:
            writer.close()
