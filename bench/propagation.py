"""How long from an API write until the answer through CoreDNS changes.

    python bench/propagation.py [--rounds 50] [--churn 100]

Builds (or reuses) the real peers, starts kube-apiserver, mcsdns --source kube
as its least-privilege service account, and CoreDNS forwarding clusterset.local
to it; then, per round, creates a ServiceImport, changes its IP, and deletes
it, timing each from the moment the API server acknowledged the write to the
first answer through CoreDNS that shows it (polled every 2 ms, alternating
with a query straight to mcsdns, so a slow round shows on which side of
CoreDNS its time went). Prints p50 and p99 per operation, and the slowest
rounds with both times. ``--churn N``: meanwhile a headless service of 5,000
endpoints in 50 EndpointSlices flaps one endpoint N times a second (JSON
patches on other connections). Not a test: it prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e import peers  # noqa: E402
from tests.e2e.cluster import apply, delete, start_mcsdns  # noqa: E402
from tests.helpers import addresses  # noqa: E402
from tests.e2e.conftest import coredns_forwarding  # noqa: E402

NAME = "bench.shop.svc.clusterset.local."


def service_import(ip: str) -> dict:
    return {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
            "metadata": {"name": "bench", "namespace": "shop"},
            "spec": {"type": "ClusterSetIP", "ips": [ip], "ports": [{"port": 80, "protocol": "TCP"}]}}


def time_until(port: int, direct: int, check, limit: float = 30.0) -> tuple[float, float]:
    """(seconds until CoreDNS shows the change, until mcsdns itself did)."""
    started = time.perf_counter()
    query = dns.message.make_query(NAME, "A")
    seen: float | None = None
    while True:
        if seen is None and check(dns.query.udp(query, "127.0.0.1", port=direct, timeout=2)):
            seen = time.perf_counter() - started
        if check(dns.query.udp(query, "127.0.0.1", port=port, timeout=2)):
            now = time.perf_counter() - started
            return now, now if seen is None else seen
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"no change after {limit}s")
        time.sleep(0.002)


FLIPPED: dict[str, bool] = {}  # slice -> the ready value last written to its first endpoint


def churn(api: peers.KubeAPIServer, rate: float, stop: threading.Event, counts: list[int], offset: int) -> None:
    """Flip one endpoint's ready condition in one of 50 slices, ``rate`` times a second."""
    context = ssl.create_default_context(cafile=str(api.ca_path))
    headers = {"Authorization": f"Bearer {api.admin_token}", "Content-Type": "application/json-patch+json"}
    connection = http.client.HTTPSConnection("127.0.0.1", api.port, context=context)
    started, n = time.perf_counter(), 0
    while not stop.is_set():
        time.sleep(max(0.0, started + n / rate - time.perf_counter()))
        n += 1
        name = f"flap-{(n * 4 + offset) % 50}"
        FLIPPED[name] = not FLIPPED.get(name, True)  # a flip every time: a no-op patch sends no event
        body = json.dumps([{"op": "replace", "path": "/endpoints/0/conditions/ready", "value": FLIPPED[name]}])
        connection.request("PATCH", f"/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices/{name}",
                           body, headers)
        response = connection.getresponse()
        response.read()
        counts[0] += 1


class Arrivals:
    """A watch of our own on ServiceImports: when the API server delivered each
    event (as it does to mcsdns's watch), to split a slow round into the API
    server's delivery and what came after it."""

    def __init__(self, api: peers.KubeAPIServer) -> None:
        self.seen: dict[tuple[str, str], float] = {}  # (event type, first IP) -> when it arrived
        version = api.request("GET", "/apis/multicluster.x-k8s.io/v1beta1/serviceimports?limit=1")["metadata"]
        context = ssl.create_default_context(cafile=str(api.ca_path))
        self.connection = http.client.HTTPSConnection("127.0.0.1", api.port, context=context)
        self.connection.request("GET", "/apis/multicluster.x-k8s.io/v1beta1/namespaces/shop/serviceimports?watch=1"
                                f"&resourceVersion={version['resourceVersion']}",
                                headers={"Authorization": f"Bearer {api.admin_token}"})
        self.response = self.connection.getresponse()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.response:
                event = json.loads(line)
                ips = (event["object"].get("spec") or {}).get("ips") or [""]
                self.seen.setdefault((event["type"], ips[0]), time.perf_counter())
        except (OSError, ValueError, http.client.HTTPException):
            pass

    def after(self, kind: str, ip: str, acked: float) -> float | None:
        arrived = self.seen.get((kind, ip))
        return None if arrived is None else arrived - acked


def flapping_service(api: peers.KubeAPIServer) -> None:
    apply(api, {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
                "metadata": {"name": "flap", "namespace": "shop"},
                "spec": {"type": "Headless", "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}})
    for k in range(50):
        apply(api, {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                    "metadata": {"name": f"flap-{k}", "namespace": "shop",
                                 "labels": {"multicluster.kubernetes.io/service-name": "flap",
                                            "multicluster.kubernetes.io/source-cluster": "east"}},
                    "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
                    "endpoints": [{"addresses": [f"10.77.{k}.{i + 1}"], "conditions": {"ready": True}}
                                  for i in range(100)]})


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--churn", type=float, default=0.0, help="EndpointSlice writes a second meanwhile")
    args = parser.parse_args()
    paths = peers.build()
    timings: dict[str, list[tuple[float, float, float | None]]] = {"create": [], "update": [], "delete": []}
    stop, writes = threading.Event(), [0]
    with tempfile.TemporaryDirectory() as workdir, peers.KubeAPIServer(paths) as api:
        api.install_crds(paths)
        api.ensure_namespace("shop")
        if args.churn:
            flapping_service(api)
        server = start_mcsdns(api, Path(workdir), "--log-level", "warning").wait_ready(timeout=60)
        writers = [threading.Thread(target=churn, args=(api, args.churn / 4, stop, writes, k), daemon=True)
                   for k in range(4)]
        try:
            with coredns_forwarding(paths, server.port) as coredns:
                for writer in writers if args.churn else ():
                    writer.start()
                started = time.perf_counter()
                arrivals = Arrivals(api)
                for round_ in range(args.rounds):
                    ip, moved = f"10.88.{round_ % 250}.1", f"10.88.{round_ % 250}.2"
                    steps = [("create", "ADDED", ip, lambda: apply(api, service_import(ip)), lambda r: addresses(r) == [ip]),
                             ("update", "MODIFIED", moved, lambda: apply(api, service_import(moved)),
                              lambda r: addresses(r) == [moved]),
                             ("delete", "DELETED", moved, lambda: delete(api, service_import(moved)),
                              lambda r: r.rcode() == dns.rcode.NXDOMAIN)]
                    for operation, kind, key, write, check in steps:
                        write()
                        acked = time.perf_counter()
                        through, direct = time_until(coredns.port, server.port, check)
                        timings[operation].append((through, direct, arrivals.after(kind, key, acked)))
                    arrivals.seen.clear()
                rate = writes[0] / (time.perf_counter() - started)
        finally:
            stop.set()
            server.stop()
    churned = f", under {rate:.0f} EndpointSlice writes/s" if args.churn else ""
    print(f"# API write acknowledged -> answer through CoreDNS changed, {args.rounds} rounds{churned}, ms")
    print(f"{'operation':<10} {'p50':>8} {'p99':>8} {'max':>8} {'mean':>8}   {'mcsdns p50':>10} {'p99':>8}")
    for operation, samples in timings.items():
        millis = [s[0] * 1000 for s in samples]
        direct = [s[1] * 1000 for s in samples]
        print(f"{operation:<10} {percentile(millis, 0.5):>8.1f} {percentile(millis, 0.99):>8.1f} "
              f"{max(millis):>8.1f} {statistics.mean(millis):>8.1f}   {percentile(direct, 0.5):>10.1f} "
              f"{percentile(direct, 0.99):>8.1f}")
    slow = sorted(((s, op, n) for op, samples in timings.items() for n, s in enumerate(samples)), reverse=True)
    print("slowest rounds, ms: through CoreDNS / straight from mcsdns / the API server's watch delivered it")
    for (total, direct, arrived), op, n in slow[:8]:
        delivered = "?" if arrived is None else f"{arrived * 1000:.1f}"
        print(f"  {op} #{n + 1}: {total * 1000:.1f} / {direct * 1000:.1f} / {delivered}")


if __name__ == "__main__":
    main()
