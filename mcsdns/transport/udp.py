"""DNS over UDP: a non-blocking socket drained in a loop on each wakeup.

asyncio's datagram endpoint hands over one datagram per wakeup and tops out
near 45k queries/s here; reading until the socket is empty (bounded, so TCP
and HTTP still get their turn) costs a few microseconds a query instead.

Counting stays off the metrics library: one ``tallies[tally] += 1`` per answer
(the tally comes with the response, see ``engine.tally``), and two clock reads
per wakeup, not per query: a clock read costs as much as a cached answer. So a
UDP request's duration is the mean over the queries answered in its wakeup
(one, when the server is not busy): the histogram's count and sum are exact,
its buckets hold those means.

Response rate limiting (``rrl.py``) is one call per answer, when it is on; what
it drops or truncates is counted there, not as a response sent.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from time import perf_counter
from typing import Callable

from . import batch as batching
from .stats import TransportStats

log = logging.getLogger(__name__)

Handler = Callable[[bytes, bool], "tuple[bytes | None, int]"]  # (message, over_udp) -> (response, tally)
Limiter = Callable[[bytes, bytes, tuple], "bytes | None"]  # (message, response, peer) -> what to send
MAX_DATAGRAM = 65535
BURST = 256  # datagrams per wakeup before yielding to the loop
RECEIVE_BUFFER = 4 * 2**20


def bind_udp(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """``reuse_port``: share the port with the other workers (SO_REUSEPORT: the
    kernel spreads flows over the sockets by a hash of the source address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        _grow_receive_buffer(sock)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _grow_receive_buffer(sock: socket.socket) -> None:
    """Room for a burst: with the default buffer (208 KiB) the kernel drops what
    arrives while we are busy (dnsperf's opening 800 queries lost 7 here).
    SO_RCVBUFFORCE passes net.core.rmem_max where we may (CAP_NET_ADMIN), as NSD
    does; otherwise the kernel caps the size, and we log a warning."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), RECEIVE_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # Linux reports twice the size
    if granted < RECEIVE_BUFFER:
        log.warning("UDP receive buffer is %d KiB, not the %d KiB asked for: bursts may be dropped; "
                    "raise the sysctl net.core.rmem_max", granted // 1024, RECEIVE_BUFFER // 1024)


def family_label(host: str) -> int:
    """CoreDNS's ``family`` label: 1 for IPv4, 2 for IPv6."""
    return 2 if ":" in host else 1


Hits = Callable[[], "dict[bytes, tuple[bytes, int]]"]  # () -> the cache's UDP entries now (ResponseCache.udp_hits)


def _no_hits() -> dict:
    return {}


class UdpServer:
    """``hits``, when given, is asked once per wakeup for the response cache's UDP
    entries, and a hit is answered from them without calling ``handler``.
    ``batch`` reads and answers with recvmmsg/sendmmsg (``batch.py``) where the
    system has them; ``rrl`` sees every answer in both loops."""

    def __init__(
        self, sock: socket.socket, handler: Handler, hits: Hits | None = None, batch: bool = False,
        rrl: Limiter | None = None,
    ) -> None:
        self.sock = sock
        self.handler = handler
        self.hits = hits or _no_hits
        self.rrl = rrl  # response rate limiting (see rrl.py); None when off
        self.stats = TransportStats("udp", 2 if sock.family == socket.AF_INET6 else 1)
        self.batched = batch and batching.available()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        reader = (batching.BatchDrain(self.sock, self.handler, self.hits, self.stats, self.rrl)
                  if self.batched else self._drain)
        self._loop.add_reader(self.sock.fileno(), reader)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _drain(self) -> None:
        recvfrom, sendto, handler, rrl = self.sock.recvfrom, self.sock.sendto, self.handler, self.rrl
        hits = self.hits().get  # the zone cannot change during this call: it changes on this thread
        stats = self.stats
        tallies, received, skipped = stats.tallies, BURST, 0
        started = perf_counter()
        for index in range(BURST):
            try:
                message, peer = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                received = index
                break
            except OSError as error:  # e.g. ICMP port unreachable reported on the socket
                log.debug("udp receive: %s", error)
                skipped += 1
                continue
            try:
                hit = hits(message[2:])
                if hit is not None:  # answered from the cache: no call into it
                    response, tally = message[:2] + hit[0], hit[1]
                else:
                    response, tally = handler(message, True)
                    if response is None:
                        stats.dropped += 1
                        skipped += 1
                        continue
                if rrl is not None and (sent := rrl(message, response, peer)) is not response:
                    if sent is not None:  # a TC=1 slip; it and drops are counted by the limiter
                        sendto(sent, peer)
                    skipped += 1
                    continue
                sendto(response, peer)
            except OSError as error:  # full buffer or vanished peer: UDP may drop
                log.debug("udp send to %s: %s", peer, error)
                skipped += 1
                continue
            except Exception:  # a bug must cost one answer, never the server
                log.exception("no answer to a %d-byte query from %s", len(message), peer)
                stats.dropped += 1
                skipped += 1
                continue
            tallies[tally] += 1
        stats.timed(received - skipped, perf_counter() - started)
