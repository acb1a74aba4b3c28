"""A burst of queries larger than the kernel's default socket buffer is answered
whole: dnsperf's opening burst (4 clients x 200 queries) used to lose 7 of them
to the server socket's receive buffer (RcvbufErrors in /proc/net/snmp)."""

from __future__ import annotations

import socket
import time

import dns.message
import pytest

from tests.helpers import DATA, Server

BURST = 3000


@pytest.fixture(scope="module")
def server():
    running = Server(DATA / "zone", "--log-level", "warning").wait_ready()
    yield running
    running.stop()


def test_a_burst_beyond_the_default_buffer_is_answered_whole(server):
    wires = [dns.message.make_query("web.shop.svc.clusterset.local.", "A", id=i).to_wire() for i in range(BURST)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 2**20)  # our side must not drop either
        sock.connect((server.host, server.port))
        for wire in wires:  # as fast as we can, reading nothing back yet
            sock.send(wire)
        answered, deadline = set(), time.monotonic() + 10
        sock.settimeout(1.0)
        while len(answered) < BURST and time.monotonic() < deadline:
            try:
                answered.add(int.from_bytes(sock.recv(4096)[:2], "big"))
            except socket.timeout:
                break
    assert len(answered) == BURST, f"{BURST - len(answered)} of {BURST} queries got no answer"
