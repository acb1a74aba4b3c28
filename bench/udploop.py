"""Where a UDP query's CPU goes in the server's loops, in-process.

    python bench/udploop.py [--rounds 2000]

A client socket sends a burst of 64 cached questions to a loopback socket and
the server's loop answers them; only the loop's thread CPU time is counted
(user + system, ``time.thread_time``), as a median over rounds. Loops: the
batch loop (``transport.batch.BatchDrain``: recvmmsg/sendmmsg) and the plain
one (``UdpServer._drain``: recvfrom/sendto per datagram). Then the Python steps
the batch loop takes per query, each timed alone with ``timeit``: what is left
of a query's cost is the kernel's (the system calls and the loopback delivery).
Last, the batch loop with the kernel taken out (``--python-only``): its two
system calls replaced by stand-ins that hand it 64 queries already in its
buffers (from 127.0.0.1) and take its answers, so what is timed is the Python
it runs per query, with the limiter off and on (loopback exempt, the default).
Run it under ``valgrind --tool=callgrind`` for instruction counts:
``--python-only --rounds N`` at two N, the difference over the extra queries.
Not a test: it prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import mmap
import socket
import statistics
import struct
import sys
import time
import timeit
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.metrics import wires, zone  # noqa: E402
from mcsdns.engine.cache import ResponseCache  # noqa: E402
from mcsdns.engine.respond import Responder  # noqa: E402
from mcsdns.transport import batch as batching  # noqa: E402
from mcsdns.transport.batch import BatchDrain, available  # noqa: E402
from mcsdns.transport.rrl import RateLimiter  # noqa: E402
from mcsdns.transport.stats import TransportStats  # noqa: E402
from mcsdns.transport.udp import UdpServer  # noqa: E402

BURST = 64


def loops(rounds: int) -> dict[str, float]:
    logging.disable(logging.WARNING)
    store, cache = zone(), ResponseCache(Responder())
    handler = lambda message, udp: cache.answer(message, store.snapshot, udp)  # noqa: E731
    hits = lambda: cache.udp_hits(store.snapshot)  # noqa: E731
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    questions = wires()
    drains = {"plain (recvfrom/sendto)": UdpServer(server, handler, hits)._drain}
    if available():
        drains["batch (recvmmsg/sendmmsg)"] = BatchDrain(server, handler, hits, TransportStats("udp", 1))
    times: dict[str, list[float]] = {name: [] for name in drains}
    for _ in range(rounds):
        for name, drain in drains.items():
            for index in range(BURST):
                client.sendto(questions[index % len(questions)], server.getsockname())
            started = time.thread_time()
            drain()
            times[name].append((time.thread_time() - started) / BURST * 1e6)
            client.setblocking(False)
            for _ in range(BURST):
                client.recv(4096)
            client.setblocking(True)
    return {name: statistics.median(values) for name, values in times.items()}


def steps() -> dict[str, float]:
    """Each Python step of the batch loop on a hit, alone (us)."""
    queries, answers = mmap.mmap(-1, 1 << 16), mmap.mmap(-1, 1 << 16)
    lengths = memoryview(bytearray(64)).cast("I")
    message = wires()[0]
    queries[: len(message)] = message
    lengths[0] = len(message)
    entries = {message[2:]: (b"x" * 60, 5)}
    tallies: defaultdict[int, int] = defaultdict(int)
    pending = [0] * 64
    env = {"queries": queries, "answers": answers, "lengths": lengths, "entries": entries, "tallies": tallies,
           "pending": pending, "key": message[2:], "rest": b"x" * 60, "slots": [(0, 0, 1)], "hit": entries[message[2:]]}
    cases = {
        "slot offsets (tuple unpack)": "base, size_at, length_at = slots[0]",
        "query less its ID (mmap slice)": "queries[2 : lengths[0]]",
        "cache lookup (dict get)": "entries.get(key)",
        "unpack the entry": "rest, tally = hit",
        "answer into its slot (mmap store)": "answers[0 : len(rest)] = rest",
        "answer length (memoryview store)": "lengths[1] = 60",
        "count it (tally + pending)": "tallies[5] += 1; pending[0] = 5",
    }
    number = 200_000
    return {name: min(timeit.repeat(code, globals=env, number=number, repeat=5)) / number * 1e6
            for name, code in cases.items()}


def python_only(rounds: int, limited: bool) -> float:
    """us per query of the batch loop's Python, every query a cache hit, no system call."""
    logging.disable(logging.WARNING)
    store, cache = zone(), ResponseCache(Responder())
    handler = lambda message, udp: cache.answer(message, store.snapshot, udp)  # noqa: E731
    hits = lambda: cache.udp_hits(store.snapshot)  # noqa: E731
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        limiter = RateLimiter(10**9, exempt=("127.0.0.0/8",)) if limited else None
        drain = BatchDrain(sock, handler, hits, TransportStats("udp", 1), limiter)
        questions = wires()
        for index in range(batching.SLOTS):
            message = questions[index % len(questions)]
            handler(message, True)  # now cached
            drain._queries[index * batching.SLOT : index * batching.SLOT + len(message)] = message
            drain._sizes[index] = len(message)
            drain._names[index * 16 : index * 16 + 16] = struct.pack("=H2s4s8x", socket.AF_INET, (5300 + index).to_bytes(2, "big"),
                                                                    socket.inet_aton("127.0.0.1"))
        turns = iter(([batching.SLOTS, 0] * rounds))
        drain._receive = lambda fd, vector, size, flags, timeout: next(turns)
        drain._send = lambda fd, vector, size, flags: size
        drain()  # the limiter learns the source
        started = time.perf_counter()
        for _ in range(rounds - 1):
            drain()
        return (time.perf_counter() - started) / ((rounds - 1) * batching.SLOTS) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--python-only", action="store_true", help="only the batch loop without its system calls")
    parser.add_argument("--limiter", choices=("off", "on", "both"), default="both", help="for --python-only")
    args = parser.parse_args()
    if args.python_only or available():
        print(f"# batch loop without the kernel: {batching.SLOTS} hits a call, {args.rounds} calls, us per query")
        for limited in {"off": (False,), "on": (True,), "both": (False, True)}[args.limiter]:
            print(f"{'limiter on (source exempt)' if limited else 'limiter off':<28} "
                  f"{python_only(args.rounds, limited):6.3f} us")
        if args.python_only:
            return
    print(f"# UDP loop, {BURST} cached questions a burst, median of {args.rounds} bursts, thread CPU per query")
    for name, micros in loops(args.rounds).items():
        print(f"{name:<28} {micros:6.2f} us")
    print("# the batch loop's Python steps per query, each alone (timeit, best of 5)")
    total = 0.0
    for name, micros in steps().items():
        total += micros
        print(f"{name:<36} {micros:6.3f} us")
    print(f"{'sum':<36} {total:6.3f} us")


if __name__ == "__main__":
    main()
