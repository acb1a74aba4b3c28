"""A TLS-terminating proxy in front of kube-apiserver that misbehaves on demand.

mcsdns is given a kubeconfig that points at the proxy; the proxy presents the
apiserver's own serving certificate (127.0.0.1, signed by the cluster CA, so
the kubeconfig's CA and token stay as they are) and forwards each request to
the real apiserver over a second TLS connection. What it does with a request,
and with the responses already flowing, is the mode, switched at any time::

    PASS   forward
    HANG   accept and read, answer nothing; open streams fall silent (held
           data flows again when the mode changes: the server "came back")
    SLOW   every byte of every response arrives ``delay`` seconds late
    ERROR  answer 500 with a Status body; open connections are cut on entry
    DROP   forward, but cut every open watch stream every ``drop_every`` s

One request per connection: the proxy rewrites ``Connection`` to ``close``, so
request boundaries are connection boundaries and no HTTP parsing is needed
beyond the request head. The proxy runs its own event loop on a daemon
thread; ``set()`` is called from the test's thread.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import threading
from collections import Counter
from enum import Enum
from pathlib import Path

import yaml

from tests.e2e.peers import KubeAPIServer

HEAD_LIMIT = 64 * 1024
CHUNK = 64 * 1024
_CONNECTION = re.compile(rb"^(connection|keep-alive):[^\r\n]*\r\n", re.IGNORECASE | re.MULTILINE)
_LENGTH = re.compile(rb"^content-length:\s*(\d+)\r\n", re.IGNORECASE | re.MULTILINE)
_WATCH = re.compile(rb"^[A-Z]+ [^ ]*[?&]watch=(true|1)(&| )")


class Mode(Enum):
    PASS = "pass"
    HANG = "hang"
    SLOW = "slow"
    ERROR = "error"
    DROP = "drop"


class FaultProxy:
    def __init__(self, api: KubeAPIServer, delay: float = 3.0, drop_every: float = 2.0) -> None:
        self.api = api
        self.delay = delay
        self.drop_every = drop_every
        self.mode = Mode.PASS
        self.port: int | None = None
        self.counts: Counter[str] = Counter()  # requests, watches, held, errors, cut
        pki = api.data_dir / "pki"
        self._server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_tls.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
        self._client_tls = ssl.create_default_context(cafile=str(api.ca_path))
        self._loop = asyncio.new_event_loop()
        self._flowing: asyncio.Event | None = None
        # Every client connection -> (is a watch, its upstream writer once connected).
        self._open: dict[asyncio.StreamWriter, list] = {}
        self._serving: set[asyncio.Task] = set()
        self._closing = False
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy", daemon=True)

    # -- the test's side ----------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> "FaultProxy":
        self._thread.start()
        self._call(self._start())
        return self

    def set(self, mode: Mode) -> None:
        self._call(self._switch(mode))

    def close(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def kubeconfig(self, through: Path, path: Path) -> Path:
        """A copy of the kubeconfig ``through`` (same user, same CA) that points at the proxy."""
        config = yaml.safe_load(through.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = self.url
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    # -- the loop's side ------------------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._listener = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._server_tls, limit=HEAD_LIMIT)
        self.port = self._listener.sockets[0].getsockname()[1]
        self._dropper = asyncio.create_task(self._drop_watches())

    async def _switch(self, mode: Mode) -> None:
        self.mode = mode
        if mode is Mode.ERROR:
            self._cut(watches_only=False)
        if mode is Mode.HANG:
            self._flowing.clear()
        else:
            self._flowing.set()

    async def _close(self) -> None:
        self._closing = True
        self._listener.close()
        self._dropper.cancel()
        self._flowing.set()
        self._cut(watches_only=False)
        await asyncio.wait([self._dropper, *self._serving], timeout=5)

    def _cut(self, watches_only: bool) -> None:
        for writer, (watch, upstream) in list(self._open.items()):
            if watch or not watches_only:
                self.counts["cut"] += 1
                for end in (writer, upstream):
                    if end is not None:
                        end.transport.abort()

    async def _drop_watches(self) -> None:
        while True:
            await asyncio.sleep(self.drop_every)
            if self.mode is Mode.DROP:
                self._cut(watches_only=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        self._serving.add(asyncio.current_task())
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            body = await reader.readexactly(int(length.group(1))) if length else b""
            watch = bool(_WATCH.match(head))
            self.counts["requests"] += 1
            self.counts["watches"] += watch
            if not self._flowing.is_set():
                self.counts["held"] += 1
            await self._flowing.wait()
            if self._closing:
                return
            if self.mode is Mode.ERROR:
                self.counts["errors"] += 1
                writer.write(_internal_error())
                await writer.drain()
                return
            self._open[writer] = [watch, None]
            upstream = await asyncio.open_connection("127.0.0.1", self.api.port, ssl=self._client_tls, limit=CHUNK)
            self._open[writer][1] = upstream[1]
            if self._closing:
                return
            upstream[1].write(_connection_close(head) + body)
            await upstream[1].drain()
            await self._relay(upstream[0], writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
            pass  # a client or a cut connection went away: nothing to tell anyone
        finally:
            self._serving.discard(asyncio.current_task())
            self._open.pop(writer, None)
            for end in (writer, upstream[1] if upstream else None):
                if end is not None:
                    end.transport.abort()

    async def _relay(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Upstream to client, through a delay line: each chunk is stamped on arrival
        and written when the mode lets it (``delay`` after the stamp while SLOW,
        not at all while HANG)."""
        line: asyncio.Queue = asyncio.Queue()

        async def read() -> None:
            chunk = b""
            try:
                while chunk := await source.read(CHUNK):
                    line.put_nowait((self._loop.time(), chunk))
            finally:
                line.put_nowait((self._loop.time(), b""))  # the end, also of a broken upstream

        reading = asyncio.create_task(read())
        try:
            while True:
                stamp, chunk = await line.get()
                await self._flowing.wait()
                if self.mode is Mode.SLOW:
                    await asyncio.sleep(max(0.0, stamp + self.delay - self._loop.time()))
                await self._flowing.wait()
                if not chunk:
                    return
                sink.write(chunk)
                await sink.drain()
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)


def _connection_close(head: bytes) -> bytes:
    """The request head with ``Connection: close``: one request per connection."""
    return _CONNECTION.sub(b"", head)[:-2] + b"Connection: close\r\n\r\n"


def _internal_error() -> bytes:
    body = json.dumps({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "fault injected by the test proxy", "reason": "InternalError", "code": 500,
    }).encode()
    head = (
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body
