"""``--workers N``: N answering processes on one port, and a parent that minds them.

One Python process answers on one core. With N workers the kernel spreads the
queries over N processes that each bound the DNS address with SO_REUSEPORT (by
a hash of the source address and port, so one client's flow stays with one
worker). Each worker is a whole ``mcsdns serve``: its own source (it watches
the folder or the Kubernetes API itself), its own zone, cache and counters; no
state is shared, so no lock is taken on the query path.

The parent answers no DNS. It serves the HTTP endpoints for all:

* ``/metrics``: every worker's metrics, fetched at scrape time, each sample with
  a ``worker`` label (``sum without (worker)`` gives the server's totals), plus
  ``mcsdns_workers`` and ``mcsdns_worker_restarts_total`` of its own;
* ``/readyz``: 200 when a worker answers and every worker that holds the port
  is ready (one that is not would answer its share of the flows with SERVFAIL;
  a restarted one holds it only once ready); the body has each one's line;
* ``/healthz``: 200 while it runs.

A worker that dies is started again (after ``RESTART_DELAY``) and joins the
port only once its zone is ready; its flows go to the others meanwhile. A
worker that exits with the usage code at start (a bad setting, the address
taken) stops the whole server with that code: a restart would fail alike.
So do more than ``MAX_RESTARTS`` deaths within ``RESTART_WINDOW``: the
crash loop is then Kubernetes's to see. SIGTERM or SIGINT: the parent reports
not ready, passes the signal on, waits for every worker (each drains as a
single server does) and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time

from .config import Config
from .observe import logs

log = logging.getLogger("mcsdns.workers")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
RESTART_DELAY = 1.0
MAX_RESTARTS, RESTART_WINDOW = 5, 60.0
FETCH_TIMEOUT = 2.0
WORKER_ENV = "MCSDNS_WORKER"  # in a worker's environment: "<index>:<first serial>" or "<index>:restart"


def _loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Worker:
    def __init__(self, index: int, argv: list[str]) -> None:
        self.index = index
        self.argv = argv  # the parent's own serve flags
        self.http_port = _loopback_port()
        self.process: asyncio.subprocess.Process | None = None
        self.restarted = False  # joins the port only once ready: until then it answers nothing

    async def start(self, serial: int | None) -> None:
        """``serial``: the zone's first serial (the workers started together share it); None for a restart."""
        argv = [sys.executable, "-m", "mcsdns", "serve", *self.argv,
                "--workers", "1", "--http", f"127.0.0.1:{self.http_port}"]
        self.restarted = serial is None
        env = {**os.environ, WORKER_ENV: f"{self.index}:{'restart' if serial is None else serial}"}
        self.process = await asyncio.create_subprocess_exec(*argv, env=env)

    async def get(self, path: str) -> tuple[int, bytes]:
        """(status, body) of a GET to the worker's own HTTP server; (0, reason) if it does not answer."""
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.http_port), FETCH_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as error:
            return 0, f"not answering: {error or 'timeout'}".encode()
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n".encode())
            raw = await asyncio.wait_for(reader.read(), FETCH_TIMEOUT)
            head, _, body = raw.partition(b"\r\n\r\n")
            return int(head.split(b" ", 2)[1]), body
        except (OSError, asyncio.TimeoutError, ValueError, IndexError):
            return 0, b"not answering"
        finally:
            writer.close()


class Supervisor:
    def __init__(self, config: Config, argv: list[str]) -> None:
        self.config = config
        self.workers = [Worker(index, argv) for index in range(config.workers)]
        self.restarts = 0
        self.deaths: list[float] = []
        self.stopping = False
        self.exit_code = EXIT_OK

    async def readiness(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "draining: shutting down, the workers are draining"
        answers = await asyncio.gather(*(worker.get("/readyz") for worker in self.workers))
        ready, blocking, lines = 0, 0, []
        for worker, (status, body) in zip(self.workers, answers):
            text = body.decode(errors="replace").strip()
            if status == 200:
                ready += 1
            elif worker.process is None or worker.process.returncode is not None:
                text = f"exited, starting again ({text})"
            elif worker.restarted:
                text = f"restarting, joins the port when ready ({text})"
            else:
                blocking += 1  # on the port and not ready: its share of the flows gets SERVFAIL
            lines.append(f"worker {worker.index}: {text}")
        ok = ready > 0 and not blocking
        word = "ready" if ok else "not ready"
        return ok, f"{word}: {ready} of {len(self.workers)} workers answering; {'; '.join(lines)}"

    async def metrics(self) -> bytes:
        answers = await asyncio.gather(*(worker.get("/metrics") for worker in self.workers))
        texts = [(w.index, body.decode()) for w, (status, body) in zip(self.workers, answers) if status == 200]
        own = (
            "# HELP mcsdns_workers Worker processes configured (--workers)\n# TYPE mcsdns_workers gauge\n"
            f"mcsdns_workers {len(self.workers)}\n"
            "# HELP mcsdns_worker_restarts_total Workers started again after they died\n"
            f"# TYPE mcsdns_worker_restarts_total counter\nmcsdns_worker_restarts_total {self.restarts}\n"
        )
        return (merge_metrics(texts) + own).encode()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        http = None
        if self.config.http is not None:
            http = await asyncio.start_server(self._http, *self.config.http)
        serial = int(time.time())
        for worker in self.workers:
            await worker.start(serial)
        minders = [asyncio.create_task(self._mind(worker, stop)) for worker in self.workers]
        log.info("started %d workers", len(self.workers), extra={"event": "workers", "workers": len(self.workers)})
        await stop.wait()
        self.stopping = True
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.send_signal(signal.SIGTERM)
        await asyncio.gather(*minders)
        if http is not None:
            http.close()
        return self.exit_code

    async def _mind(self, worker: Worker, stop: asyncio.Event) -> None:
        """Wait for the worker to end; start it again unless stopping or it cannot start."""
        while True:
            code = await worker.process.wait()
            if self.stopping:
                return
            if code == EXIT_USAGE:  # a bad setting or the address taken: a restart fails alike
                self._fail(EXIT_USAGE, stop)
                return
            now = time.monotonic()
            self.deaths = [t for t in self.deaths if now - t < RESTART_WINDOW] + [now]
            if len(self.deaths) > MAX_RESTARTS:
                log.error("workers died %d times in %.0fs: stopping", len(self.deaths), RESTART_WINDOW,
                          extra={"event": "crashloop"})
                self._fail(EXIT_FAILED, stop)
                return
            log.warning("worker %d (pid %d) exited with %s; starting it again in %.0fs",
                        worker.index, worker.process.pid, code, RESTART_DELAY,
                        extra={"event": "worker_died", "worker": worker.index, "code": code})
            await asyncio.sleep(RESTART_DELAY)
            if self.stopping:
                return
            self.restarts += 1
            await worker.start(None)

    def _fail(self, code: int, stop: asyncio.Event) -> None:
        if self.exit_code == EXIT_OK:
            self.exit_code = code
        stop.set()

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            status, kind, body = await self._route(path.split("?", 1)[0]) if method in ("GET", "HEAD") else (
                405, "text/plain", b"")
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[status]
            header = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                      "Connection: close\r\n\r\n")
            writer.write(header.encode() + (body if method == "GET" else b""))
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _route(self, path: str) -> tuple[int, str, bytes]:
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            ready, detail = await self.readiness()
            return (200 if ready else 503), "text/plain", detail.encode() + b"\n"
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", await self.metrics()
        return 404, "text/plain", b"not found\n"


def merge_metrics(texts: list[tuple[int, str]]) -> str:
    """Prometheus text from several workers as one exposition: each family once
    (its HELP and TYPE from the first worker that has it), every sample with a
    ``worker`` label, the samples of a family together."""
    families: dict[str, dict[str, list[str]]] = {}  # name -> {"# HELP": [line], "# TYPE": [line], "": samples}
    for index, text in texts:
        current = None
        for line in text.splitlines():
            if line.startswith(("# HELP ", "# TYPE ")):
                current = line.split(" ", 3)[2]
                family = families.setdefault(current, {"# HELP": [], "# TYPE": [], "": []})
                family[line[:6]][:] = family[line[:6]] or [line]
            elif line and not line.startswith("#") and current is not None:
                name, brace, rest = line.partition("{")
                if not brace:
                    name, _, rest = line.partition(" ")
                    rest = "} " + rest
                families[current][""].append(f'{name}{{worker="{index}"{"," if brace else ""}{rest}')
    lines = [line for family in families.values() for part in family.values() for line in part]
    return "".join(line + "\n" for line in lines)


def worker_role() -> tuple[bool, bool, int | None] | None:
    """(is a worker, joins when ready, first serial) from the environment the parent set, or None."""
    role = os.environ.get(WORKER_ENV)
    if role is None:
        return None
    serial = role.partition(":")[2]
    return True, serial == "restart", int(serial) if serial.isdigit() else None


def run(config: Config, argv: list[str]) -> int:
    logs.setup(config.log_level, config.log_format)
    return asyncio.run(Supervisor(config, argv).run())
