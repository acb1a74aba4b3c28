"""TCP under abuse, on a live server with small limits set by flags: a crowd of
idle connections and a crowd of slowloris clients (one byte a second) never
stop UDP answering nor a new TCP client getting its answer; the longest-idle
connection is the one closed to make room (RFC 7766 6.2.3); a client that does
not read its answers is cut off; pipelining still answers everything in order.
Every close is counted by reason."""

from __future__ import annotations

import socket
import struct
import threading
import time

import dns.message
import pytest

from tests.helpers import DATA, Server, read_frame, wait_for
from tests.test_metrics import sample, scrape

CAP = 8
READ_TIMEOUT = 0.5
WEB = "web.shop.svc.clusterset.local."
BIG = "big.data.svc.clusterset.local."  # 100 A records: a 1.6 kB answer


@pytest.fixture(scope="module")
def server():
    running = Server(
        DATA / "zone", "--log-level", "warning", "--tcp-max-connections", str(CAP), "--tcp-idle-timeout", "5",
        "--tcp-read-timeout", str(READ_TIMEOUT), "--tcp-write-timeout", "0.5", "--tcp-max-in-flight", "4",
        "--tcp-max-buffered", "4096",
    ).wait_ready()
    yield running
    running.stop()


@pytest.fixture
def quiet(server):
    """Each test starts with no connection open, and sees the closes it caused."""
    wait_for(lambda: scrape(server)[sample("mcsdns_tcp_connections")] == 0, timeout=10, what="no TCP connection")
    before = scrape(server)

    def closed() -> dict[str, float]:
        after = scrape(server)
        return {
            dict(labels)["reason"]: value - before.get((name, labels), 0)
            for (name, labels), value in after.items()
            if name == "mcsdns_tcp_connections_closed_total" and value - before.get((name, labels), 0)
        }

    return closed


def frame(name: str, qtype: str = "A", ident: int = 1) -> bytes:
    wire = dns.message.make_query(name, qtype, id=ident).to_wire()
    return struct.pack("!H", len(wire)) + wire


def closed_by_server(sock: socket.socket, timeout: float = 3.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def still_served(server: Server) -> None:
    """UDP answers, and a new TCP client gets its answer."""
    query = dns.message.make_query(WEB, "A")
    assert server.query(query, "udp", timeout=1).answer
    assert server.query(query, "tcp", timeout=2).answer


def connect(server: Server) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=3)


def test_a_crowd_of_idle_connections_is_evicted_oldest_first(server, quiet):
    crowd = [connect(server) for _ in range(3 * CAP)]  # three caps' worth, none saying a word
    try:
        still_served(server)  # UDP, and TCP for a newcomer, over the crowd
        assert all(closed_by_server(sock, 1) for sock in crowd[: 2 * CAP + 1])  # the oldest made room
        assert not closed_by_server(crowd[-1], 0.2)  # the newest still open
        assert quiet() == {"evicted": 2 * CAP + 1, "client": 1}  # the TCP query made room too; it closed itself
    finally:
        for sock in crowd:
            sock.close()


def test_the_connection_idle_longest_is_the_one_closed(server, quiet):
    held = [connect(server) for _ in range(CAP)]
    try:
        wait_for(lambda: scrape(server)[sample("mcsdns_tcp_connections")] == CAP, what="all accepted")
        held[0].sendall(frame(WEB))  # the first to connect asks: now the second is idle longest
        assert read_frame(held[0])
        with connect(server) as newcomer:
            newcomer.sendall(frame(WEB))
            assert read_frame(newcomer)
            closed = [i for i, sock in enumerate(held) if closed_by_server(sock, 2 if i == 1 else 0.05)]
            assert closed == [1], quiet()
            held[0].sendall(frame(WEB))
            assert read_frame(held[0])  # kept its place
        assert quiet().get("evicted") == 1
    finally:
        for sock in held:
            sock.close()


def test_slowloris_is_cut_at_the_read_timeout(server, quiet):
    with connect(server) as sock:
        sock.sendall(b"\x00")  # the first byte of a length, then nothing for a second
        started = time.monotonic()
        assert closed_by_server(sock, 3)
        assert READ_TIMEOUT * 0.8 < time.monotonic() - started < READ_TIMEOUT + 1.5
    assert quiet() == {"read_timeout": 1}


def slowloris(server: Server, stop: threading.Event) -> None:
    """Keep a connection dribbling one byte a second (a frame that never ends); reconnect when cut."""
    while not stop.is_set():
        try:
            with connect(server) as sock:
                sock.sendall(b"\x00\x40")
                while not stop.is_set():
                    sock.sendall(b"\x00")
                    stop.wait(1.0)
        except OSError:
            continue


def test_a_crowd_of_slowloris_does_not_stop_answers(server, quiet):
    stop = threading.Event()
    crowd = [threading.Thread(target=slowloris, args=(server, stop)) for _ in range(CAP)]
    for thread in crowd:
        thread.start()
    try:
        time.sleep(0.3)
        for _ in range(5):
            still_served(server)
            time.sleep(0.3)
    finally:
        stop.set()
        for thread in crowd:
            thread.join()
    closes = quiet()
    assert closes.get("read_timeout", 0) + closes.get("evicted", 0) >= CAP, closes


# (what, queries sent, in how many writes): a client that reads none of its answers is cut off.
NOT_READING = [
    ("sends far ahead", 3000, 1, "limit"),
    ("keeps sending, slowly", 3000, 300, "write_timeout"),
]


@pytest.mark.parametrize(("what", "count", "writes", "reason"), NOT_READING, ids=[n[0] for n in NOT_READING])
def test_a_client_that_does_not_read_is_cut_off(server, quiet, what, count, writes, reason):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up soon
        sock.connect((server.host, server.port))
        queries = frame(BIG) * count
        step = len(queries) // writes
        try:
            for start in range(0, len(queries), step):
                sock.sendall(queries[start : start + step])
                still_served(server) if start == 0 else time.sleep(0.005)
        except OSError:
            pass  # cut off while still sending: that is the point
        wait_for(lambda: quiet().get(reason), timeout=5, what=f"a close for {reason}, not {quiet()}")
    still_served(server)
    assert set(quiet()) <= {reason, "client"}, quiet()


def test_pipelined_queries_past_every_limit_are_answered_in_order(server, quiet):
    count = 300  # past the turn (32), the in-flight cap (4) and the buffer cap (4096 bytes) many times
    with connect(server) as sock:
        queries = b"".join(frame(BIG if i % 3 == 0 else WEB, ident=i) for i in range(count))
        sending = threading.Thread(target=sock.sendall, args=(queries,))  # RFC 7766 clients read as they send
        sending.start()
        answers = [dns.message.from_wire(read_frame(sock)) for _ in range(count)]
        sending.join()
    assert [answer.id for answer in answers] == list(range(count))
    assert all(len(answer.answer[0]) == (100 if i % 3 == 0 else 1) for i, answer in enumerate(answers))
    assert quiet() == {"client": 1}
