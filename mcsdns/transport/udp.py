"""DNS over UDP: a non-blocking socket drained in a loop on each wakeup.

asyncio's datagram endpoint hands over one datagram per wakeup and tops out
near 45k queries/s here; reading until the socket is empty (bounded, so TCP
and HTTP still get their turn) costs a few microseconds a query instead.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Callable

from ..observe.metrics import Metrics

log = logging.getLogger(__name__)

Handler = Callable[[bytes, bool], "bytes | None"]  # (message, over_udp) -> response
MAX_DATAGRAM = 65535
BURST = 256  # datagrams per wakeup before yielding to the loop
RECEIVE_BUFFER = 4 * 2**20


def bind_udp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


class UdpServer:
    def __init__(self, sock: socket.socket, handler: Handler, metrics: Metrics) -> None:
        self.sock = sock
        self.handler = handler
        self.metrics = metrics
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._drain)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _drain(self) -> None:
        recvfrom, sendto, handler = self.sock.recvfrom, self.sock.sendto, self.handler
        for _ in range(BURST):
            try:
                message, peer = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. ICMP port unreachable reported on the socket
                log.debug("udp receive: %s", error)
                continue
            try:
                response = handler(message, True)
            except Exception:  # a bug must cost one answer, never the server
                log.exception("no answer to a %d-byte query from %s", len(message), peer)
                continue
            if response is None:
                self.metrics.dropped.labels("udp").inc()
                continue
            try:
                sendto(response, peer)
            except OSError as error:  # full buffer or vanished peer: UDP may drop
                log.debug("udp send to %s: %s", peer, error)
                continue
            self.metrics.response("udp", response)
