"""TCP reads answer every complete frame at once: frames split across reads,
many frames in one read, and the idle timeout still applies to a frame that
never completes, but not to a steady pipelined stream."""

from __future__ import annotations

import socket
import struct
import time

import dns.message
import pytest

from tests.helpers import DATA, Server

WEB = "web.shop.svc.clusterset.local."


@pytest.fixture(scope="module")
def server():
    server = Server(DATA / "zone", "--tcp-idle-timeout", "0.5", "--tcp-read-timeout", "0.5").wait_ready()
    yield server
    server.stop()


def frames(count: int, first_id: int = 1) -> bytes:
    out = b""
    for index in range(count):
        query = dns.message.make_query(WEB, "A")
        query.id = first_id + index
        wire = query.to_wire()
        out += struct.pack("!H", len(wire)) + wire
    return out


def read_ids(sock: socket.socket, count: int) -> list[int]:
    data, ids = b"", []
    while len(ids) < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(ids)} answers")
        data += chunk
        while len(data) >= 2 and len(data) >= 2 + struct.unpack("!H", data[:2])[0]:
            size = struct.unpack("!H", data[:2])[0]
            ids.append(dns.message.from_wire(data[2 : 2 + size]).id)
            data = data[2 + size :]
    return ids


def test_a_steady_stream_of_split_frames_outlives_the_idle_timeout(server):
    """Every segment ends inside a frame, for three times the idle timeout."""
    stream = frames(300)
    with socket.create_connection((server.host, server.port), timeout=3) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        step, started = 37, time.monotonic()  # 37 bytes: never a frame boundary for long
        for at in range(0, len(stream), step):
            sock.sendall(stream[at : at + step])
            time.sleep(1.5 / (len(stream) / step))
        assert time.monotonic() - started > 1.0
        assert read_ids(sock, 300) == list(range(1, 301))


def test_many_frames_in_one_segment_answered_in_order(server):
    with socket.create_connection((server.host, server.port), timeout=3) as sock:
        sock.sendall(frames(1000))
        assert read_ids(sock, 1000) == list(range(1, 1001))


def test_a_frame_that_never_completes_is_cut_at_the_idle_timeout(server):
    stream = frames(1)
    with socket.create_connection((server.host, server.port), timeout=3) as sock:
        started = time.monotonic()
        try:
            for byte in stream[:-1]:  # one byte every 0.1 s: never idle 0.5 s, never whole
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sock.recv(1) == b""
        assert time.monotonic() - started < 0.5 + 1.0
