"""DNS over TCP (RFC 7766): 2-byte length framing, many queries per connection,
and limits so that no client, or crowd of clients, can hold the server.

Each connection is an ``asyncio.Protocol`` (no task, no stream objects: an idle
connection costs ~2.6 KiB of memory, streams and a task ~6 KiB). Queries are answered as their frames
complete, in order, one at a time (the engine does not wait on anything, so a
query is never "in flight" inside the server). The limits:

- ``max_connections``: one more closes the connection idle the longest, where
  idle means no complete query since (RFC 7766 6.2.3, 10: a server under
  pressure closes idle connections rather than refuse new clients). A crowd of
  silent or dribbling connections is evicted first; a client that just asked
  keeps its place.
- idle timeout: no query for this long (RFC 7766 6.2.3).
- read timeout: a query must arrive whole this long after its first byte, so a
  client sending one byte a second (slowloris) is cut off quickly.
- ``max_in_flight`` answers or ``max_buffered`` bytes of answers left unread by
  the client: the connection is read no further until it reads them (TCP flow
  control then pushes back), and closed if it has not within the write timeout.
  Queries sent that far ahead are held up to ``max_buffered`` bytes; past that
  the connection is closed. So one connection holds at most about
  ``max_buffered`` bytes each way, plus one query and one answer.
- fairness: at most ``TURN`` queries of one connection are answered before
  the event loop (UDP, the other connections) gets a turn.

A zone transfer (``transfer``: AXFR/IXFR, see ``transport.transfer``) is
several messages for one query: a task writes them as they are packed, waiting
for the client to read whenever ``max_buffered`` bytes are unread (the write
timeout applies to each wait); the connection reads no further queries until
the transfer is done, so answers stay in order, and it is not idle meanwhile.

Every close is counted by reason (``TransportStats.closed``, one of
``CLOSE_REASONS``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass
from time import perf_counter
from typing import Callable, Iterator

from ..engine.tally import tally_of
from .stats import TransportStats
from .udp import Handler, family_label

Transfer = Callable[[bytes, str], "Iterator[bytes] | None"]  # (query, peer address) -> messages, or None

log = logging.getLogger(__name__)

TURN = 32  # queries answered from one connection before yielding to the loop
CLOSE_REASONS = ("client", "idle", "evicted", "read_timeout", "write_timeout", "limit", "error", "shutdown")


@dataclass(frozen=True)
class TcpLimits:
    """The limits of one listener, from the flags (see the module docstring)."""

    idle_timeout: float = 10.0
    max_connections: int = 1024
    read_timeout: float = 3.0
    write_timeout: float = 5.0
    max_in_flight: int = 64
    max_buffered: int = 65536


class TcpServer:
    def __init__(
        self, handler: Handler, limits: TcpLimits, host: str = "0.0.0.0", transfer: Transfer | None = None
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.transfer = transfer  # AXFR/IXFR: several messages for one query
        self.stats = TransportStats("tcp", family_label(host))
        self.open: OrderedDict[_Connection, None] = OrderedDict()  # serving; least recently asked first
        self.live: set[_Connection] = set()  # every transport not yet lost, closing ones too
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int, reuse_port: bool = False) -> None:
        """``reuse_port``: share the port with the other workers (SO_REUSEPORT)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, reuse_address=True, reuse_port=reuse_port
        )

    async def close(self, grace: float = 1.0) -> None:
        """Stop accepting, let open connections send what they owe for ``grace`` seconds, then cut them."""
        if self._server is None:
            return
        self._server.close()
        for connection in list(self.open):
            connection.close("shutdown", abort=False)
        deadline = asyncio.get_running_loop().time() + grace
        while self.live and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.live):
            connection.transport.abort()

    def admit(self, connection: "_Connection") -> None:
        """RFC 7766 6.2.3: at the cap, make room by closing the connection idle the longest."""
        self.live.add(connection)
        self.stats.connections += 1
        if len(self.open) >= self.limits.max_connections:
            next(iter(self.open)).close("evicted")
        self.open[connection] = None

    def lost(self, connection: "_Connection", reason: str) -> None:
        self.live.discard(connection)
        self.open.pop(connection, None)
        self.stats.connections -= 1
        self.stats.closed[reason] += 1


class _Connection(asyncio.Protocol):
    def __init__(self, server: TcpServer) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.asked = self.loop.time()  # last complete query (or the connect)
        self.frame_started: float | None = None  # first byte of a query not yet whole
        self.blocked_since: float | None = None  # answers left unread past a limit
        self.written = 0  # bytes of answers handed to the transport, ever
        self.ends: deque[int] = deque()  # where each unsent answer ends, in ``written`` terms
        self.reason: str | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = float("inf")
        self.resume: asyncio.Handle | None = None
        self.eof = False
        self.peer = ""
        self.transferring: asyncio.Task | None = None  # a zone transfer being written
        self.drained: asyncio.Future | None = None  # set when the client has read what a transfer wrote

    # -- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = (transport.get_extra_info("peername") or ("",))[0]
        transport.set_write_buffer_limits(high=self.limits.max_buffered)  # type: ignore[attr-defined]
        self.server.admit(self)
        self._arm(self.asked + self.limits.idle_timeout)

    def data_received(self, data: bytes) -> None:
        if self.frame_started is None:
            self.frame_started = self.loop.time()
        self.buffer += data
        self._answer()

    def pause_writing(self) -> None:  # over max_buffered bytes unread
        self._block()

    def resume_writing(self) -> None:
        if self.blocked_since is not None:
            self.blocked_since = None
            self.transport.set_write_buffer_limits(high=self.limits.max_buffered)
            if self.transferring is not None:  # the transfer carries on; queries wait for it
                if self.drained is not None and not self.drained.done():
                    self.drained.set_result(None)
            elif self.reason is None:
                self.transport.resume_reading()
                self._answer()

    def eof_received(self) -> bool:
        self.eof = True  # the client has said all: answer what is whole, then close
        self._answer()
        return True  # keep the transport open to write those answers

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reason is None:
            self.reason = "client"
        self.server.lost(self, self.reason)
        for handle in (self.timer, self.resume, self.transferring):
            if handle is not None:
                handle.cancel()

    # -- answering

    def _answer(self) -> None:
        """Answer every whole query in the buffer, up to a turn's worth, unless blocked."""
        self.resume = None
        buffer, position, answered = self.buffer, 0, 0
        while self.blocked_since is None and self.reason is None and self.transferring is None and len(buffer) - position >= 2:
            size = (buffer[position] << 8) | buffer[position + 1]
            if len(buffer) - position - 2 < size:
                break
            if answered == TURN:  # let the loop serve others; carry on next round
                self.transport.pause_reading()
                self.resume = self.loop.call_soon(self._carry_on)
                break
            message = bytes(buffer[position + 2 : position + 2 + size])
            position += 2 + size
            answered += 1
            if not self._one(message):
                break
        del buffer[:position]
        if self.reason is not None:
            return
        if position:
            self.asked = self.loop.time()
            self.server.open.move_to_end(self)
            self.frame_started = self.loop.time() if buffer else None
        if self.blocked_since is not None and len(buffer) > self.limits.max_buffered:
            self.close("limit")  # sends ever further ahead while reading nothing back
        elif self.eof and self.blocked_since is None and self.resume is None and self.transferring is None:
            self.close("client")  # polite: what we owe is sent first
        elif self.frame_started is not None:
            self._arm(self.frame_started + self.limits.read_timeout)

    def _carry_on(self) -> None:
        if self.reason is None and self.blocked_since is None:
            self.transport.resume_reading()
            self._answer()

    def _one(self, message: bytes) -> bool:
        """Answer one query; False ends the connection or blocks it."""
        stats = self.server.stats
        started = perf_counter()
        if self.server.transfer is not None:
            messages = self.server.transfer(message, self.peer)
            if messages is not None:
                self.transport.pause_reading()  # the next query waits for the transfer
                self.transferring = self.loop.create_task(self._transfer(messages, started))
                return False
        try:
            response, tally = self.server.handler(message, False)
        except Exception:
            log.exception("no answer to a %d-byte TCP query", len(message))
            stats.dropped += 1
            self.close("error")
            return False
        if response is None:
            stats.dropped += 1
            if not message:  # a zero-length frame: nothing sensible follows it
                self.close("error")
                return False
            return True
        self.transport.write(len(response).to_bytes(2, "big") + response)
        self.written += 2 + len(response)
        self.ends.append(self.written)
        stats.tallies[tally] += 1
        stats.timed(1, perf_counter() - started)
        if self._unsent() >= self.limits.max_in_flight:
            self._block()
            return False
        return self.blocked_since is None

    async def _transfer(self, messages: Iterator[bytes], started: float) -> None:
        """Write a transfer's messages as they are packed, yielding to the loop
        in between (a large zone takes seconds to pack) and waiting whenever the
        client has ``max_buffered`` bytes unread; counted as one request, by its first."""
        first = None
        try:
            for reply in messages:
                if self.reason is not None:
                    return
                first = first or reply
                self.transport.write(len(reply).to_bytes(2, "big") + reply)
                self.written += 2 + len(reply)
                if self.blocked_since is not None:  # pause_writing: over max_buffered unread
                    self.drained = self.loop.create_future()
                    try:
                        await asyncio.wait_for(self.drained, self.limits.write_timeout)
                    except asyncio.TimeoutError:
                        self.close("write_timeout")
                        return
                await asyncio.sleep(0)
        finally:
            self.transferring = self.drained = None
        if first is not None:
            self.server.stats.tallies[tally_of(first, False)] += 1
            self.server.stats.timed(1, perf_counter() - started)
        if self.reason is None:
            self.asked = self.loop.time()
            self.frame_started = self.asked if self.buffer else None  # a query that waited is not slow
            self.transport.resume_reading()
            self._answer()

    def _unsent(self) -> int:
        """Answers not yet taken by the kernel, i.e. not yet read by the client."""
        sent = self.written - self.transport.get_write_buffer_size()
        ends = self.ends
        while ends and ends[0] <= sent:
            ends.popleft()
        return len(ends)

    def _block(self) -> None:
        """Read no more until the client has read what we sent: resume_writing
        comes when the buffer is empty (a high mark of 0 pauses us at once)."""
        if self.blocked_since is not None or self.reason is not None:
            return
        self.blocked_since = self.loop.time()
        self.transport.pause_reading()
        self.transport.set_write_buffer_limits(high=0)  # calls pause_writing again: a no-op now
        self._arm(self.blocked_since + self.limits.write_timeout)

    # -- timeouts and closing

    def _arm(self, deadline: float) -> None:
        """Make sure the timer fires by ``deadline``; it works out which limit is due."""
        if deadline < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = deadline
            self.timer = self.loop.call_at(deadline, self._check)

    def _check(self) -> None:
        self.timer, self.timer_at = None, float("inf")
        if self.reason is not None:
            return
        limits, now = self.limits, self.loop.time()
        if self.transferring is not None:  # busy, not idle; the transfer times its own waits
            self._arm(now + limits.idle_timeout)
            return
        if self.blocked_since is not None:
            due, reason = self.blocked_since + limits.write_timeout, "write_timeout"
        elif self.frame_started is not None:
            due, reason = self.frame_started + limits.read_timeout, "read_timeout"
        else:
            due, reason = self.asked + limits.idle_timeout, "idle"
        if now >= due:
            self.close(reason)
        else:
            self._arm(due)

    def close(self, reason: str, abort: bool | None = None) -> None:
        """Close once, for ``reason``: politely when nothing is owed, else at once
        (a client that does not read would keep a polite close open for ever)."""
        if self.reason is not None:
            return
        self.reason = reason
        self.server.open.pop(self, None)
        if abort is None:
            abort = reason in ("evicted", "write_timeout", "limit") and self.transport.get_write_buffer_size() > 0
        if abort:
            self.transport.abort()
        else:
            self.transport.close()
            # A polite close waits until what we owe is read; a client that never reads would keep
            # it (out of ``open``, so past the cap) for ever: cut it after the write timeout.
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_later(self.limits.write_timeout, self.transport.abort)
