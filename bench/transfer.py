"""Zone transfer costs, the engine alone: AXFR of a zone of N services, and an
IXFR after one service changed, each from query bytes to the list of messages.

    python bench/transfer.py [--services 10000] [--rounds 3]

The AXFR packs every service's names (they are packed lazily otherwise, see
zone.entry), so its first run costs more than later ones of the same snapshot;
both are printed. The IXFR touches only the changed service. Not a test: it
prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import platform
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
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
