"""DNS over TCP (RFC 7766): 2-byte length framing, several queries per
connection answered in order, an idle timeout, and a cap on connections so a
crowd of idle clients cannot exhaust the process.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Callable, Iterable
from time import perf_counter

from ..engine.tally import tally_of
from .stats import TransportStats
from .udp import Handler, family_label

Transfer = Callable[[bytes, str], "Iterable[bytes] | None"]  # (query, peer address) -> messages, None if no transfer

log = logging.getLogger(__name__)

LENGTH = struct.Struct("!H")


class TcpServer:
    def __init__(
        self, handler: Handler, idle_timeout: float, max_connections: int, host: str = "0.0.0.0",
        transfer: Transfer | None = None,
    ) -> None:
        self.handler = handler
        self.transfer = transfer  # AXFR/IXFR: several messages for one query (transport.transfer)
        self.stats = TransportStats("tcp", family_label(host))
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._server: asyncio.base_events.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)

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
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass  # idle, closed by the client, or reset: all normal ends
        finally:
            self._open.discard(writer)
            writer.close()

    async def _send_all(self, writer: asyncio.StreamWriter, messages: Iterable[bytes], started: float) -> bool:
        """A transfer: each message as it is packed, yielding to the loop in between
        (a large zone takes seconds to pack); counted as one request, by its first."""
        first = None
        for reply in messages:
            first = first or reply
            writer.write(LENGTH.pack(len(reply)) + reply)
            await asyncio.wait_for(writer.drain(), self.idle_timeout)
            await asyncio.sleep(0)
        if first is not None:
            self.stats.tallies[tally_of(first, False)] += 1
            self.stats.timed(1, perf_counter() - started)
        return first is not None

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one framed query; False ends the connection."""
        (size,) = LENGTH.unpack(await asyncio.wait_for(reader.readexactly(2), self.idle_timeout))
        message = await asyncio.wait_for(reader.readexactly(size), self.idle_timeout)
        started = perf_counter()
        if self.transfer is not None:
            messages = self.transfer(message, writer.get_extra_info("peername")[0])
            if messages is not None:
                return await self._send_all(writer, messages, started)
        try:
            response, tally = self.handler(message, False)
        except Exception:
            log.exception("no answer to a %d-byte TCP query", size)
            self.stats.dropped += 1
            return False
        if response is None:
            self.stats.dropped += 1
            return size > 0
        writer.write(LENGTH.pack(len(response)) + response)
        await asyncio.wait_for(writer.drain(), self.idle_timeout)
        self.stats.tallies[tally] += 1
        self.stats.timed(1, perf_counter() - started)
        return True
