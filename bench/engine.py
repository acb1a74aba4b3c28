"""The engine alone: query bytes + snapshot -> response bytes, no sockets.

    python bench/engine.py [--seconds 2] [--services 1000]

Prints queries/s and microseconds of CPU per query for a hit (A), a miss
(NXDOMAIN), an SRV with glue, and a headless A, through the engine and through
the response cache that the server puts in front of it; the zone holds the test data plus
--services generated ClusterSetIP imports, so lookups run in a zone of realistic
size. Not a test: it prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import dns.message

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcsdns.engine.cache import ResponseCache  # noqa: E402
from mcsdns.engine.respond import Responder  # noqa: E402
from mcsdns.model.convert import convert  # noqa: E402
from mcsdns.model.events import Upsert  # noqa: E402
from mcsdns.source.files import FolderSource  # noqa: E402
from mcsdns.zone.settings import ZoneSettings  # noqa: E402
from mcsdns.zone.store import ZoneStore  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "zone"
QUERIES = [
    ("hit A", "web.shop.svc.clusterset.local.", "A"),
    ("miss NXDOMAIN", "nope.shop.svc.clusterset.local.", "A"),
    ("SRV + glue", "_http._tcp.web.shop.svc.clusterset.local.", "SRV"),
    ("headless A (4)", "db.data.svc.clusterset.local.", "A"),
]


def zone(services: int) -> ZoneStore:
    source = FolderSource(str(DATA))
    store = ZoneStore(ZoneSettings(), 1, source.required)
    store.apply(source.scan())
    store.apply(
        Upsert(convert({
            "apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
            "metadata": {"name": f"gen-{i}", "namespace": f"ns-{i % 50}"},
            "spec": {"type": "ClusterSetIP", "ips": [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"],
                     "ports": [{"name": "http", "port": 80}]},
        }))
        for i in range(services)
    )
    return store


def measure(respond, store: ZoneStore, wire: bytes, seconds: float) -> tuple[float, float]:
    snapshot = store.snapshot
    count, started, cpu = 0, time.perf_counter(), time.process_time()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            respond(wire, snapshot)
        count += 1000
    return count / (time.perf_counter() - started), (time.process_time() - cpu) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--services", type=int, default=1000)
    args = parser.parse_args()
    store = zone(args.services)
    print(f"# engine alone, {len(store.snapshot.services)} services, python {platform.python_version()}, "
          f"{platform.machine()}, {args.seconds:g}s per row")
    print(f"{'query':<16} {'path':<8} {'queries/s':>10} {'us CPU/query':>13}")
    for label, name, qtype in QUERIES:
        wire = dns.message.make_query(name, qtype, use_edns=0).to_wire()
        for path, respond in (("engine", Responder().respond), ("cached", ResponseCache(Responder()).respond)):
            rate, micros = measure(respond, store, wire, args.seconds)
            print(f"{label:<16} {path:<8} {rate:>10,.0f} {micros:>13.2f}")


if __name__ == "__main__":
    main()
