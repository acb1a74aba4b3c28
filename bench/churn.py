"""What one changed endpoint costs, against the size of its service.

    python bench/churn.py [--sizes 100,1000,5000] [--events 200]

One headless service of N ready endpoints in EndpointSlices of 100 (as the
EndpointSlice controller cuts them), in a zone with 1,000 other services;
one endpoint of one slice flaps (not ready, ready again), event after event.
Per event, in microseconds (median and p99 over ``--events``):

  convert   the API object (a dict, as a watch delivers it) -> a record
  apply     the store takes the Upsert and publishes a snapshot
  names     what the first query after the change packs: the service's names
            put together from its slices' parts (the changed slice repacked)
  respond   then answering its A and SRV over TCP (5,000 records do not fit
            in 64 KiB: TC)
  first answers  the event and those first answers after it: convert + apply
            + names + respond, what one flapping endpoint costs end to end
  whole     for comparison: the same names built whole (build.headless_names),
            which is what every change cost before per-slice parts

With ``--memory``: also what the service takes once packed and answered
(tracemalloc, KiB: its store built, its names packed, A and SRV answered).

With ``--live WORKDIR`` (the apiserver data bench/kubescale.py left there,
e.g. 100k imports + 1M endpoints): starts that apiserver and mcsdns
``--source kube``, then alternates ``--seconds`` of dnsperf over UDP with
no writes (idle) and with ``--rate`` EndpointSlice writes a second (one
endpoint of a random headless slice flips its ready condition, JSON patch),
and prints queries/s of each and their ratio.

Not a test: it prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import dns.message

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mcsdns.engine.respond import Responder  # noqa: E402
from mcsdns.model.convert import convert  # noqa: E402
from mcsdns.model.events import Replace, Upsert  # noqa: E402
from mcsdns.model.records import Kind  # noqa: E402
from mcsdns.zone.build import headless_names  # noqa: E402
from mcsdns.zone.settings import ZoneSettings  # noqa: E402
from mcsdns.zone.store import ZoneStore  # noqa: E402

PER_SLICE = 100
NAME = "big.ns.svc.clusterset.local."


def service_import(name: str, headless: bool) -> dict:
    spec = {"type": "Headless"} if headless else {"type": "ClusterSetIP", "ips": ["10.1.0.1"]}
    return {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
            "metadata": {"name": name, "namespace": "ns"}, "spec": {**spec, "ports": [{"name": "http", "port": 80}]}}


def endpoint_slice(index: int, first: int, count: int, flapped: bool = False) -> dict:
    endpoints = [{"addresses": [f"10.{2 + n // 65536}.{n // 256 % 256}.{n % 256}"], "conditions": {"ready": True}}
                 for n in range(first, first + count)]
    if flapped:
        endpoints[0]["conditions"]["ready"] = False
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"big-{index}", "namespace": "ns",
                         "labels": {"multicluster.kubernetes.io/service-name": "big",
                                    "multicluster.kubernetes.io/source-cluster": f"c{index % 2}"}},
            "ports": [{"name": "http", "protocol": "TCP", "port": 8080}], "endpoints": endpoints}


def measure(size: int, events: int) -> dict[str, list[float]]:
    store = ZoneStore(ZoneSettings(), 1)
    imports = [service_import("big", True)] + [service_import(f"other-{i}", False) for i in range(1000)]
    slices = [endpoint_slice(i, first, min(PER_SLICE, size - first)) for i, first in enumerate(range(0, size, PER_SLICE))]
    store.apply([Replace(Kind.SERVICE_IMPORT, tuple(map(convert, imports))),
                 Replace(Kind.ENDPOINT_SLICE, tuple(map(convert, slices))), Replace(Kind.SERVICE, ())])
    responder = Responder()
    queries = [dns.message.make_query(NAME, qtype).to_wire() for qtype in ("A", "SRV")]
    for query in queries:
        responder.respond(query, store.snapshot, udp=False)  # pack it once, as a query would
    timings: dict[str, list[float]] = {"convert": [], "apply": [], "names": [], "respond": [], "whole": []}
    target = len(slices) // 2
    for event in range(events):
        obj = endpoint_slice(target, target * PER_SLICE, min(PER_SLICE, size - target * PER_SLICE), event % 2 == 0)
        t0 = time.perf_counter()
        record = convert(obj)
        t1 = time.perf_counter()
        store.apply([Upsert(record)])
        t2 = time.perf_counter()
        entry = store.snapshot.services[(b"ns", b"big")]
        entry.names  # noqa: B018 (what the first query after the change packs)
        t3 = time.perf_counter()
        for query in queries:
            responder.respond(query, store.snapshot, udp=False)
        t4 = time.perf_counter()
        headless_names(store.settings, entry.imported, [view.slice for view in entry.part])
        t5 = time.perf_counter()
        for name, seconds in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            timings[name].append(seconds * 1e6)
    return timings


def footprint(size: int) -> int:
    """Bytes the big service holds once its names are packed and its A and SRV answered."""
    import tracemalloc

    slices = [endpoint_slice(i, first, min(PER_SLICE, size - first)) for i, first in enumerate(range(0, size, PER_SLICE))]
    records = [convert(service_import("big", True))] + [convert(piece) for piece in slices]
    queries = [dns.message.make_query(NAME, qtype).to_wire() for qtype in ("A", "SRV")]
    tracemalloc.start()
    store = ZoneStore(ZoneSettings(), 1)
    store.apply([Replace(Kind.SERVICE_IMPORT, tuple(records[:1])), Replace(Kind.ENDPOINT_SLICE, tuple(records[1:])),
                 Replace(Kind.SERVICE, ())])
    for query in queries:
        Responder().respond(query, store.snapshot, udp=False)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def live(args) -> int:
    import json
    import http.client
    import random
    import ssl
    import tempfile
    import threading

    from tests.e2e import peers
    from tests.e2e.cluster import RBAC, apply_manifest
    from tests.helpers import Server
    from live import cpu_seconds, dnsperf
    from kubescale import list_all

    services, headless = args.services, range(0, args.services, 10)  # zonegen's 10% headless: every 10th
    names = []
    for i in random.Random(2).sample(range(services), 100):
        zone = f"ns-{i % 100}.svc.clusterset.local"
        h = i - i % 10
        names += [f"svc-{i + (i % 10 == 0)}.{zone} A", f"_http._tcp.svc-{i + (i % 10 == 0)}.{zone} SRV",
                  f"nope-{i}.{zone} A", f"svc-{h}.ns-{h % 100}.svc.clusterset.local AAAA",
                  f"svc-{h}.ns-{h % 100}.svc.clusterset.local A"]
    paths = peers.build()
    with peers.KubeAPIServer(paths, workdir=args.live / "apiserver", start_timeout=300) as api, \
            tempfile.NamedTemporaryFile("w", suffix=".txt") as queries:
        queries.write("\n".join(names) + "\n")
        queries.flush()
        for path in ("/apis/multicluster.x-k8s.io/v1beta1/serviceimports", "/apis/discovery.k8s.io/v1/endpointslices"):
            list_all(api, path)  # warm its caches, as a running cluster's are
        apply_manifest(api, RBAC)
        kubeconfig = api.service_account_kubeconfig("mcsdns", "mcsdns", args.live / "mcsdns.kubeconfig")
        server = Server("kube", "--kubeconfig", str(kubeconfig), "--log-level", "warning").wait_ready(timeout=600)
        context = ssl.create_default_context(cafile=str(api.ca_path))
        headers = {"Authorization": f"Bearer {api.admin_token}", "Content-Type": "application/json-patch+json"}
        writes, failures, stop, ready = [0], [0], threading.Event(), {}

        def writer(offset: int, threads: int) -> None:
            rng, connection = random.Random(offset), http.client.HTTPSConnection("127.0.0.1", api.port, context=context)
            started, n = time.perf_counter(), offset
            while not stop.is_set():
                delay = started + n / args.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                i = rng.choice(headless)
                path = (f"/apis/discovery.k8s.io/v1/namespaces/ns-{i % 100}/endpointslices/"
                        f"svc-{i}-cluster-{rng.randrange(2)}-0")
                ready[path] = not ready.get(path, True)  # a flip every time: a no-op patch sends no event
                body = json.dumps([{"op": "replace", "path": "/endpoints/0/conditions/ready", "value": ready[path]}])
                connection.request("PATCH", path, body, headers)
                response = connection.getresponse()
                response.read()
                writes[0] += 1
                failures[0] += response.status != 200
                n += threads

        try:
            print(f"# {services} imports in the apiserver; dnsperf -c 4 -q 200 for {args.seconds}s per phase; "
                  f"churn: {args.rate} EndpointSlice writes/s")
            ratios = []
            pid = server.process.pid
            for round_ in range(args.rounds):
                cpu = cpu_seconds(pid)
                idle = dnsperf(server.port, args.seconds, 4, Path(queries.name))
                idle_cpu, cpu = cpu_seconds(pid) - cpu, cpu_seconds(pid)
                stop.clear()
                writes[0] = failures[0] = 0
                threads = [threading.Thread(target=writer, args=(k, 8), daemon=True) for k in range(8)]
                for thread in threads:
                    thread.start()
                before = time.perf_counter()
                churned = dnsperf(server.port, args.seconds, 4, Path(queries.name))
                rate = writes[0] / (time.perf_counter() - before)
                churn_cpu = cpu_seconds(pid) - cpu
                stop.set()
                for thread in threads:
                    thread.join()
                ratios.append(churned["qps"] / idle["qps"])
                print(f"round {round_ + 1}: idle {idle['qps']:,.0f} q/s (lost {idle['lost']:.0f}); under churn "
                      f"{churned['qps']:,.0f} q/s (lost {churned['lost']:.0f}) at {rate:.0f} writes/s "
                      f"({failures[0]} failed): {ratios[-1]:.0%} of idle; mcsdns CPU "
                      f"{idle_cpu / args.seconds:.0%} -> {churn_cpu / args.seconds:.0%} of a core, "
                      f"{idle_cpu / idle['completed'] * 1e6:.1f} -> {churn_cpu / churned['completed'] * 1e6:.1f} us/query")
        finally:
            server.stop()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--memory", action="store_true", help="also the packed service's memory (tracemalloc)")
    parser.add_argument("--live", type=Path, help="apiserver workdir of bench/kubescale.py: measure UDP under churn")
    parser.add_argument("--services", type=int, default=100_000, help="--live: imports kubescale created")
    parser.add_argument("--rate", type=float, default=100.0, help="--live: EndpointSlice writes a second")
    parser.add_argument("--seconds", type=int, default=10, help="--live: dnsperf seconds per phase")
    parser.add_argument("--rounds", type=int, default=2, help="--live: idle/churn pairs")
    args = parser.parse_args()
    if args.live:
        return live(args)
    print("# one endpoint flapping in a headless service of N endpoints (slices of 100); us per event, median / p99")
    print(f"{'N':>6} {'convert':>14} {'apply':>14} {'names':>14} {'event total':>14} {'respond':>14} "
          f"{'first answers':>14} {'whole build':>16}" + ("  memory KiB" if args.memory else ""))
    for size in map(int, args.sizes.split(",")):
        t = measure(size, args.events)
        total = [c + a + q for c, a, q in zip(t["convert"], t["apply"], t["names"])]
        answered = [e + r for e, r in zip(total, t["respond"])]
        cells = [f"{statistics.median(v):>6.0f} / {p99(v):<5.0f}"
                 for v in (t["convert"], t["apply"], t["names"], total, t["respond"], answered)]
        memory = f"  {footprint(size) / 1024:,.0f}" if args.memory else ""
        print(f"{size:>6} {' '.join(cells)} {statistics.median(t['whole']):>8.0f} / {p99(t['whole']):<6.0f}{memory}")
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
