"""DNS over TCP (RFC 7766): 2-byte length framing, several queries per
connection answered in order, an idle timeout, and a cap on connections so a
crowd of idle clients cannot exhaust the process.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter

from .frames import answer_frames
from .stats import TransportStats
from .udp import Handler, family_label

log = logging.getLogger(__name__)

READ_SIZE = 65536
HIGH_WATER = 256 * 1024  # bytes of answers unsent before waiting for the client to read them


class TcpServer:
    def __init__(self, handler: Handler, idle_timeout: float, max_connections: int, host: str = "0.0.0.0") -> None:
        self.handler = handler
        self.stats = TransportStats("tcp", family_label(host))
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._server: asyncio.base_events.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int, reuse_port: bool = False) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True, reuse_port=reuse_port)

    async def close(self, grace: float = 1.0) -> None:
        """Stop accepting, give open connections ``grace`` seconds, then cut them."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._open):
            writer.close()
        try:
            await asyncio.wait_for(self._server.wait_closed(), grace)
        except asyncio.TimeoutError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._open) >= self.max_connections:
            self.stats.refused += 1
            writer.close()
            return
        self._open.add(writer)
        partial, since = b"", 0.0  # the first bytes of a frame still arriving, and since when
        loop = asyncio.get_running_loop()
        try:
            while partial is not None:
                # Idle this long ends the connection; so does a frame that takes as long to arrive.
                deadline = (since if partial else loop.time()) + self.idle_timeout
                rest, completed = await self._answer_read(reader, writer, partial, deadline)
                if completed or not partial:
                    since = loop.time()  # what remains began in this read
                partial = rest
        except (asyncio.TimeoutError, ConnectionError):
            pass  # idle, or reset: normal ends
        finally:
            self._open.discard(writer)
            writer.close()

    async def _answer_read(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, partial: bytes, deadline: float
    ) -> tuple[bytes | None, bool]:
        """Read what has arrived and answer every complete frame in it, in order, in
        one write. Returns the bytes of a frame still incomplete (None ends the
        connection), and whether a frame was completed."""
        async with asyncio.timeout_at(deadline):
            data = await reader.read(READ_SIZE)
        if not data:
            return None, False  # closed by the client
        data = partial + data if partial else data
        started = perf_counter()
        out, used, end = answer_frames(data, self.handler, self.stats)
        if out:
            writer.write(b"".join(out))
            self.stats.timed(len(out) // 2, perf_counter() - started)
            if writer.transport.get_write_buffer_size() > HIGH_WATER:
                async with asyncio.timeout(self.idle_timeout):
                    await writer.drain()
        return (None if end else data[used:]), used > len(partial)
