"""What counting for the metrics costs a query, in-process.

    python bench/metrics.py [--rounds 2000] [--burst 200]

Two measurements, each comparing the same query path with and without counting:

* ``cache``: the response cache alone on cache hits: ``respond`` with nothing
  counted; ``answer`` and the tally increment the UDP loop does per query; and
  the same plus a clock read and a duration bucket per query (the design not
  taken: the loop reads the clock once per wakeup instead).
* ``udp``: a real UDP socket on loopback drained by the server's loop: a client
  sends ``--burst`` queries, then the loop answers them all; only the thread CPU
  time of the drain is measured. Loops: ``bare`` (recv, cache, send, nothing
  counted), ``prometheus`` (the loop as it was: a prometheus-client counter per
  response), ``tally`` (``transport.udp.UdpServer`` as it is now) and
  ``tally + clock per query`` (the design not taken).

The rest of the live cost (syscall wakeups, the event loop) is in bench/live.py.
Not a test: it prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import platform
import socket
import sys
import time
from bisect import bisect_left
from pathlib import Path
from time import perf_counter

import dns.message
from prometheus_client import CollectorRegistry, Counter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcsdns.engine.cache import ResponseCache  # noqa: E402
from mcsdns.engine.respond import Responder  # noqa: E402
from mcsdns.source.files import FolderSource  # noqa: E402
from mcsdns.transport.stats import DURATION_BOUNDS, TransportStats  # noqa: E402
from mcsdns.transport.udp import MAX_DATAGRAM, UdpServer  # noqa: E402
from mcsdns.zone.settings import ZoneSettings  # noqa: E402
from mcsdns.zone.store import ZoneStore  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "zone"
QUERIES = [
    ("web.shop.svc.clusterset.local.", "A"),
    ("nope.shop.svc.clusterset.local.", "A"),
    ("_http._tcp.web.shop.svc.clusterset.local.", "SRV"),
    ("db.data.svc.clusterset.local.", "A"),
]


def zone() -> ZoneStore:
    logging.disable(logging.WARNING)  # the test data's rejected objects
    source = FolderSource(str(DATA))
    store = ZoneStore(ZoneSettings(), 1, source.required)
    store.apply(source.scan())
    return store


def wires() -> list[bytes]:
    return [dns.message.make_query(name, qtype, use_edns=0).to_wire() for name, qtype in QUERIES]


class BaselineCache:
    """The response cache as it was before tallies (its hit path), for the baseline."""

    def __init__(self, responder: Responder) -> None:
        self.responder, self._entries, self._snapshot = responder, {}, None

    def respond(self, message: bytes, snapshot, udp: bool = True) -> bytes | None:
        if snapshot is not self._snapshot:
            self._entries.clear()
            self._snapshot = snapshot
        key = (message[2:], udp)
        cached = self._entries.get(key)
        if cached is not None:
            return message[:2] + cached[2:]
        response = self.responder.respond(message, snapshot, udp)
        if response is not None:
            self._entries[key] = response
        return response


# ---- the cache alone ------------------------------------------------------------


def cache_rows(store: ZoneStore, rounds: int) -> list[tuple[str, float]]:
    cache, baseline, snapshot, messages = ResponseCache(Responder()), BaselineCache(Responder()), store.snapshot, wires()
    for message in messages:
        cache.respond(message, snapshot)  # warm: every later call is a hit
        baseline.respond(message, snapshot)

    def plain() -> None:
        respond = baseline.respond
        for _ in range(rounds):
            for message in messages:
                respond(message, snapshot)

    def tallied() -> None:
        answer, tallies = cache.answer, TransportStats("udp", 1).tallies
        for _ in range(rounds):
            for message in messages:
                response, tally = answer(message, snapshot, True)
                tallies[tally] += 1

    def clocked() -> None:
        answer, stats = cache.answer, TransportStats("udp", 1)
        tallies, durations, bounds, spent = stats.tallies, stats.durations, DURATION_BOUNDS, 0.0
        started = perf_counter()
        for _ in range(rounds):
            for message in messages:
                response, tally = answer(message, snapshot, True)
                tallies[tally] += 1
                now = perf_counter()
                durations[bisect_left(bounds, now - started)] += 1
                spent += now - started
                started = now
        stats.duration_sum += spent

    count = rounds * len(messages)
    runs = {"before: respond, no tally": plain, "answer + tally (as now)": tallied, "+ clock per query": clocked}
    best = {name: min(_cpu(run) for _ in range(5)) for name, run in runs.items()}
    return [(name, seconds / count * 1e6) for name, seconds in best.items()]


# ---- a real socket drained by the server's loop ---------------------------------


class PrometheusCounting:
    """The counting as it was before: prometheus-client children bound once."""

    def __init__(self) -> None:
        registry = CollectorRegistry()
        responses = Counter("responses", "", ["transport", "rcode"], registry=registry)
        self.truncated = Counter("truncated", "", registry=registry)
        self.dropped = Counter("dropped", "", ["transport"], registry=registry).labels("udp")
        self.children = {code: responses.labels("udp", str(code)) for code in range(16)}

    def response(self, message: bytes) -> None:
        self.children[message[3] & 0xF].inc()
        if message[2] & 0x02:
            self.truncated.inc()


def drain_bare(sock: socket.socket, handler) -> None:
    recvfrom, sendto = sock.recvfrom, sock.sendto
    for _ in range(256):
        try:
            message, peer = recvfrom(MAX_DATAGRAM)
        except BlockingIOError:
            return
        response = handler(message, True)
        if response is not None:
            sendto(response, peer)


def drain_prometheus(sock: socket.socket, handler, counting: PrometheusCounting) -> None:
    recvfrom, sendto = sock.recvfrom, sock.sendto
    for _ in range(256):
        try:
            message, peer = recvfrom(MAX_DATAGRAM)
        except BlockingIOError:
            return
        response = handler(message, True)
        if response is None:
            counting.dropped.inc()
            continue
        sendto(response, peer)
        counting.response(response)


def drain_clocked(sock: socket.socket, handler, stats: TransportStats) -> None:
    recvfrom, sendto = sock.recvfrom, sock.sendto
    tallies, durations, bounds, spent = stats.tallies, stats.durations, DURATION_BOUNDS, 0.0
    started = perf_counter()
    for _ in range(256):
        try:
            message, peer = recvfrom(MAX_DATAGRAM)
        except BlockingIOError:
            break
        response, tally = handler(message, True)
        if response is None:
            stats.dropped += 1
            continue
        sendto(response, peer)
        tallies[tally] += 1
        now = perf_counter()
        durations[bisect_left(bounds, now - started)] += 1
        spent += now - started
        started = now
    stats.duration_sum += spent


def udp_rows(store: ZoneStore, rounds: int, burst: int) -> list[tuple[str, float]]:
    cache, baseline, messages = ResponseCache(Responder()), BaselineCache(Responder()), wires()
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    client.connect(server.getsockname())

    def plain(message: bytes, udp: bool) -> bytes | None:
        return baseline.respond(message, store.snapshot, udp)

    def tallied(message: bytes, udp: bool):
        return cache.answer(message, store.snapshot, udp)

    counting = PrometheusCounting()
    tally_server = UdpServer(server, tallied)
    loops = {
        "bare (nothing counted)": lambda: drain_bare(server, plain),
        "prometheus (as before)": lambda: drain_prometheus(server, plain, counting),
        "tally (as now)": tally_server._drain,
        "tally + clock per query": lambda: drain_clocked(server, tallied, TransportStats("udp", 1)),
    }
    batch = [messages[i % len(messages)] for i in range(burst)]
    spent = dict.fromkeys(loops, 0.0)
    for _ in range(rounds):  # interleaved, so that a noisy moment hits every loop alike
        for name, drain in loops.items():
            for message in batch:
                client.send(message)
            started = time.thread_time()
            drain()
            spent[name] += time.thread_time() - started
            for _ in range(burst):
                client.recv(MAX_DATAGRAM)
    rows = [(name, seconds / (rounds * burst) * 1e6) for name, seconds in spent.items()]
    server.close()
    client.close()
    return rows


def _cpu(run) -> float:
    started = time.thread_time()
    run()
    return time.thread_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()
    store = zone()
    print(f"# counting cost, python {platform.python_version()}, {platform.machine()}")
    print(f"{'path':<8} {'loop':<28} {'us CPU/query':>13}")
    for name, micros in cache_rows(store, args.rounds * 50):
        print(f"{'cache':<8} {name:<28} {micros:>13.3f}")
    for name, micros in udp_rows(store, args.rounds, args.burst):
        print(f"{'udp':<8} {name:<28} {micros:>13.3f}")


if __name__ == "__main__":
    main()
