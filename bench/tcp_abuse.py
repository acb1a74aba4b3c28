"""TCP under a crowd of idle connections: what each costs the server, and
whether a newcomer still gets its answer.

    python bench/tcp_abuse.py [--connections 1024] [--slowloris 0]
    python bench/tcp_abuse.py --dnsperf 4


Starts the server with its defaults (cap 1024 connections), opens
``--connections`` idle ones (or, with ``--slowloris N``, N that send one byte
of a frame and stall), then times a UDP query and a new TCP client's query
over them, and reads the server's RSS before and after from /proc. With
``--dnsperf SECONDS``, instead: dnsperf over TCP (``-m tcp -c 4 -q 100``, the
mix of bench/live.py) and the server's CPU per answered query, the cost of the
TCP path for well-behaved clients. Not a test: it prints numbers for
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.live import MIX, cpu_seconds  # noqa: E402
from tests.helpers import DATA, Server  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def timed(ask) -> str:
    started = time.perf_counter()
    try:
        answer = ask()
        return f"{(time.perf_counter() - started) * 1e3:.1f} ms ({len(answer.answer[0])} record)"
    except Exception as error:  # a timeout or a reset is the figure here
        return f"failed after {(time.perf_counter() - started) * 1e3:.0f} ms: {type(error).__name__}"


def tcp_dnsperf(server: Server, seconds: int) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as queries:
        queries.write("\n".join(MIX * 100) + "\n")
        queries.flush()
        before = cpu_seconds(server.process.pid)
        out = subprocess.run(
            ["dnsperf", "-m", "tcp", "-s", "127.0.0.1", "-p", str(server.port), "-d", queries.name,
             "-l", str(seconds), "-c", "4", "-q", "100"], capture_output=True, text=True, timeout=seconds + 30,
        ).stdout
        used = cpu_seconds(server.process.pid) - before
    completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    lost = re.search(r"Queries lost:\s+(\d+)", out).group(1)
    print(f"# dnsperf over TCP, -c 4 -q 100, {seconds}s")
    print(f"queries/s {qps:,.0f}  completed {completed:,}  lost {lost}  "
          f"server CPU per answered query {used / max(completed, 1) * 1e6:.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1024)
    parser.add_argument("--slowloris", type=int, default=0, help="this many send one byte and stall instead")
    parser.add_argument("--dnsperf", type=int, default=0, metavar="SECONDS", help="measure TCP throughput instead")
    args = parser.parse_args()
    server = Server(DATA / "zone", "--log-level", "warning").wait_ready()
    if args.dnsperf:
        try:
            return tcp_dnsperf(server, args.dnsperf)
        finally:
            server.stop()
    crowd = []
    try:
        before = rss_kib(server.process.pid)
        count = args.slowloris or args.connections
        for _ in range(count):
            sock = socket.create_connection((server.host, server.port), timeout=5)
            if args.slowloris:
                sock.sendall(b"\x00")
            crowd.append(sock)
        time.sleep(0.5)
        after = rss_kib(server.process.pid)
        query = dns.message.make_query("web.shop.svc.clusterset.local.", "A")
        udp = timed(lambda: dns.query.udp(query, server.host, port=server.port, timeout=2))
        tcp = timed(lambda: dns.query.tcp(query, server.host, port=server.port, timeout=5))
        kind = "slowloris (1 byte, then nothing)" if args.slowloris else "idle"
        print(f"# {count} {kind} TCP connections held against the default cap of 1024")
        print(f"server RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB "
              f"({(after - before) / max(count, 1):.1f} KiB a connection)")
        print(f"UDP query: {udp}")
        print(f"new TCP client: {tcp}")
    finally:
        for sock in crowd:
            sock.close()
        server.stop()


if __name__ == "__main__":
    main()
