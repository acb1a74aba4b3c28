"""Generate a large clusterset as a folder of Kubernetes JSON (or YAML) lists.

    python bench/zonegen.py OUT [--services 100000] [--endpoints 1000000]
                                [--headless-share 0.1] [--clusters 2] [--format json|yaml]

Deterministic: the same arguments give the same files. ``--services``
ServiceImports in 100 namespaces; a ``--headless-share`` of them are Headless
and share ``--endpoints`` ready endpoints evenly, one EndpointSlice per
(service, cluster) of at most 100 endpoints (the EndpointSlice controller's
default), with a named port; every other import is ClusterSetIP with
``spec.ips`` and two ports, as mcs-api, Cilium and AWS write them. Files hold
5,000 objects each, as ``kind: List`` (what ``kubectl get -o json`` writes).

The output feeds the scale loaders (``bench/scale.py``) and the folder source.
Not a test: it writes files and prints what it wrote.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PER_FILE = 5000
PER_SLICE = 100  # kube-controller-manager --max-endpoints-per-slice default
NAMESPACES = 100


def service_import(i: int, headless: bool) -> dict:
    spec: dict = {"type": "Headless" if headless else "ClusterSetIP",
                  "ports": [{"name": "http", "protocol": "TCP", "port": 80},
                            {"name": "metrics", "protocol": "TCP", "port": 9090}]}
    if not headless:
        spec["ips"] = [f"10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}"]
    return {
        "apiVersion": "multicluster.x-k8s.io/v1beta1",
        "kind": "ServiceImport",
        "metadata": {"name": f"svc-{i}", "namespace": f"ns-{i % NAMESPACES}",
                     "annotations": {"generated-by": "bench/zonegen.py"}},
        "spec": spec,
        "status": {"clusters": [{"cluster": "east"}, {"cluster": "west"}]},
    }


def endpoint_slices(i: int, endpoints: int, clusters: list[str], counter: list[int]) -> list[dict]:
    """Slices of one headless service: ``endpoints`` spread over the clusters."""
    out = []
    for c, cluster in enumerate(clusters):
        share = endpoints // len(clusters) + (1 if c < endpoints % len(clusters) else 0)
        for first in range(0, share, PER_SLICE):
            batch = []
            for _ in range(min(PER_SLICE, share - first)):
                n = counter[0]
                counter[0] += 1
                batch.append({"addresses": [f"172.{16 + n // 65536 % 16}.{n // 256 % 256}.{n % 256}"],
                              "conditions": {"ready": True}})
            out.append({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"svc-{i}-{cluster}-{first // PER_SLICE}",
                    "namespace": f"ns-{i % NAMESPACES}",
                    "labels": {"multicluster.kubernetes.io/service-name": f"svc-{i}",
                               "multicluster.kubernetes.io/source-cluster": cluster,
                               "endpointslice.kubernetes.io/managed-by": "bench-zonegen"},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
                "endpoints": batch,
            })
    return out


def objects(services: int, endpoints: int, headless_share: float, clusters: list[str]):
    headless = max(1, round(services * headless_share)) if endpoints else 0
    step = services / headless if headless else 0
    chosen = {int(k * step) for k in range(headless)}
    per_service, extra = divmod(endpoints, headless) if headless else (0, 0)
    counter, k = [0], 0
    for i in range(services):
        is_headless = i in chosen
        yield service_import(i, is_headless)
        if is_headless:
            yield from endpoint_slices(i, per_service + (1 if k < extra else 0), clusters, counter)
            k += 1


def write(out: Path, items, fmt: str) -> tuple[int, int]:
    out.mkdir(parents=True, exist_ok=True)
    files = count = 0
    batch: list[dict] = []

    def flush() -> None:
        nonlocal files
        document = {"apiVersion": "v1", "kind": "List", "items": batch}
        path = out / f"zone-{files:04d}.{fmt}"
        if fmt == "json":
            path.write_text(json.dumps(document, separators=(",", ":")))
        else:
            import yaml

            dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: minutes faster at 1M endpoints
            path.write_text(yaml.dump(document, Dumper=dumper, sort_keys=False))
        files += 1

    for item in items:
        batch.append(item)
        count += 1
        if len(batch) == PER_FILE:
            flush()
            batch = []
    if batch:
        flush()
    return files, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--services", type=int, default=100_000)
    parser.add_argument("--endpoints", type=int, default=1_000_000)
    parser.add_argument("--headless-share", type=float, default=0.1)
    parser.add_argument("--clusters", type=int, default=2)
    parser.add_argument("--format", choices=("json", "yaml"), default="json")
    args = parser.parse_args()
    clusters = [f"cluster-{c}" for c in range(args.clusters)]
    files, count = write(args.out, objects(args.services, args.endpoints, args.headless_share, clusters), args.format)
    print(f"wrote {count} objects in {files} files to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
