"""Zone transfer costs, the engine alone: AXFR of a zone of N services, and an
IXFR after one service changed, each from query bytes to the list of messages.

    python bench/transfer.py [--services 10000] [--rounds 3]
    python bench/transfer.py --live [--services 20000]   # a live server, UDP queries during an AXFR

The AXFR packs every service's names (they are packed lazily otherwise, see
zone.entry), so its first run costs more than later ones of the same snapshot;
both are printed. The IXFR touches only the changed service. ``--live`` serves
a bench/zonegen.py folder and asks a UDP question every 10 ms while a client
takes the whole zone over TCP: the slowest of those answers shows how long the
transfer holds the event loop at a time. Not a test: it prints numbers for
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import platform
import socket
import struct
import sys
import time
from pathlib import Path

import dns.message
import dns.rrset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine import zone  # noqa: E402
from mcsdns.engine.transfer import Policy, transfer  # noqa: E402
from mcsdns.model.convert import convert  # noqa: E402
from mcsdns.model.events import Upsert  # noqa: E402
from mcsdns.zone.history import History  # noqa: E402

ZONE = "clusterset.local."
POLICY = Policy((ipaddress.ip_network("127.0.0.0/8"),))


def timed(run) -> tuple[float, object]:
    """Seconds to pack every message (they are packed as the transport reads them)."""
    started = time.perf_counter()
    result = run()
    result.messages = list(result.messages)
    return time.perf_counter() - started, result


def live(services: int) -> None:
    import subprocess
    import tempfile
    import threading

    import dns.query

    from tests.helpers import Server

    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "bench/zonegen.py", folder, "--services", str(services),
                        "--endpoints", str(services * 5)], check=True, capture_output=True)
        server = Server(folder, "--transfer-allow", "127.0.0.1").wait_ready(timeout=300)
        try:
            question = dns.message.make_query("dns-version." + ZONE, "TXT")
            axfr = dns.message.make_query(ZONE, "AXFR").to_wire()
            took: dict[str, float] = {}


            def take() -> None:
                """A raw client (dnspython's parsing would be the slow end): read
                framed messages until one ends with the closing SOA."""
                started, size, soa = time.perf_counter(), 0, None
                with socket.create_connection((server.host, server.port)) as sock:
                    sock.sendall(struct.pack("!H", len(axfr)) + axfr)
                    stream = sock.makefile("rb")
                    while True:
                        (length,) = struct.unpack("!H", stream.read(2))
                        message = stream.read(length)
                        size += length
                        if soa is None:  # the first record: the SOA the last message ends with
                            start = len(axfr)
                            soa = message[start : start + 12 + struct.unpack_from("!H", message, start + 10)[0]]
                        elif message.endswith(soa):
                            break
                took["megabytes"], took["seconds"] = size / 1e6, time.perf_counter() - started

            for attempt in ("first (packs every name)", "second (names packed)"):
                transfer_thread = threading.Thread(target=take)
                transfer_thread.start()
                slowest, count = 0.0, 0
                while transfer_thread.is_alive():
                    started = time.perf_counter()
                    dns.query.udp(question, server.host, port=server.port, timeout=30)
                    slowest, count = max(slowest, time.perf_counter() - started), count + 1
                    time.sleep(0.01)
                transfer_thread.join()
                print(f"live AXFR of {services} services, {attempt}: {took['megabytes']:.1f} MB in {took['seconds']:.1f} s; "
                      f"{count} UDP queries meanwhile, the slowest answered in {slowest * 1000:.0f} ms")
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--live", action="store_true")
    args = parser.parse_args()
    if args.live:
        return live(args.services)
    store = zone(args.services)
    history = History(store.snapshot)
    histories = {store.snapshot.origin: history}.get
    axfr = dns.message.make_query(ZONE, "AXFR").to_wire()
    first, result = timed(lambda: transfer(axfr, "127.0.0.1", histories, POLICY, 0))
    again = min(timed(lambda: transfer(axfr, "127.0.0.1", histories, POLICY, 0))[0] for _ in range(args.rounds))
    size = sum(map(len, result.messages))
    print(f"python {platform.python_version()}, {args.services} generated services + test data")
    print(f"AXFR first: {first * 1000:.0f} ms, again: {again * 1000:.0f} ms; "
          f"{result.records} records, {len(result.messages)} messages, {size / 1e6:.1f} MB")
    old = store.snapshot.serial
    store.apply([Upsert(convert({
        "apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
        "metadata": {"name": "gen-7", "namespace": "ns-7"},
        "spec": {"type": "ClusterSetIP", "ips": ["10.250.0.7"], "ports": [{"name": "http", "port": 80}]},
    }))])
    history.add(store.snapshot, store.changed)
    query = dns.message.make_query(ZONE, "IXFR")
    query.authority.append(dns.rrset.from_text(ZONE, 0, "IN", "SOA", f". . {old} 0 0 0 0"))
    wire = query.to_wire()
    best = min(timed(lambda: transfer(wire, "127.0.0.1", histories, POLICY, 0))[0] for _ in range(args.rounds))
    result = timed(lambda: transfer(wire, "127.0.0.1", histories, POLICY, 0))[1]
    print(f"IXFR one service changed: {best * 1e6:.0f} us, {result.kind}, {result.records} records")


if __name__ == "__main__":
    main()
