"""How long from an API write until the answer through CoreDNS changes.

    python bench/propagation.py [--rounds 50]

Builds (or reuses) the real peers, starts kube-apiserver, mcsdns --source kube
as its least-privilege service account, and CoreDNS forwarding clusterset.local
to it; then, per round, creates a ServiceImport, changes its IP, and deletes
it, timing each from the moment the API server acknowledged the write to the
first answer through CoreDNS that shows it (polled every 2 ms). Prints p50 and
p99 per operation. Not a test: it prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
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


def time_until(port: int, check, limit: float = 30.0) -> float:
    started = time.perf_counter()
    query = dns.message.make_query(NAME, "A")
    while True:
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=2)
        if check(response):
            return time.perf_counter() - started
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"no change after {limit}s")
        time.sleep(0.002)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    paths = peers.build()
    timings: dict[str, list[float]] = {"create": [], "update": [], "delete": []}
    with tempfile.TemporaryDirectory() as workdir, peers.KubeAPIServer(paths) as api:
        api.install_crds(paths)
        api.ensure_namespace("shop")
        server = start_mcsdns(api, Path(workdir), "--log-level", "warning").wait_ready(timeout=60)
        try:
            with coredns_forwarding(paths, server.port) as coredns:
                for round_ in range(args.rounds):
                    ip, moved = f"10.88.{round_ % 250}.1", f"10.88.{round_ % 250}.2"
                    apply(api, service_import(ip))
                    timings["create"].append(time_until(coredns.port, lambda r: addresses(r) == [ip]))
                    apply(api, service_import(moved))
                    timings["update"].append(time_until(coredns.port, lambda r: addresses(r) == [moved]))
                    delete(api, service_import(moved))
                    timings["delete"].append(
                        time_until(coredns.port, lambda r: r.rcode() == dns.rcode.NXDOMAIN))
        finally:
            server.stop()
    print(f"# API write acknowledged -> answer through CoreDNS changed, {args.rounds} rounds, ms")
    print(f"{'operation':<10} {'p50':>8} {'p99':>8} {'max':>8} {'mean':>8}")
    for operation, samples in timings.items():
        millis = [s * 1000 for s in samples]
        print(f"{operation:<10} {percentile(millis, 0.5):>8.1f} {percentile(millis, 0.99):>8.1f} "
              f"{max(millis):>8.1f} {statistics.mean(millis):>8.1f}")


if __name__ == "__main__":
    main()
