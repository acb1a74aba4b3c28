"""`--source kube` at scale: a big clusterset in the real kube-apiserver, then
time from mcsdns's process start to /readyz, its memory, and spot checks.

    python bench/kubescale.py [--services 20000] [--endpoints 200000]
                              [--workdir DIR] [--checks 200] [--runs 1]

Starts the e2e harness's kube-apiserver (embedded etcd; tests/e2e/peers.py),
creates the objects bench/zonegen.py generates (ServiceImports, EndpointSlices
of 100 endpoints) with many concurrent POSTs on persistent connections (not
part of the figure), then runs ``mcsdns serve --source kube`` as its
least-privilege service account and polls /readyz. Prints seconds to ready,
peak RSS (VmHWM) and RSS once ready, then spot-checks names over TCP against
the engine built in this process from the same objects. ``--workdir`` keeps
the apiserver's data: a second run with the same sizes skips the creation.
Not a test: it prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

import dns.message
import dns.query

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mcsdns.engine.respond import Responder  # noqa: E402
from mcsdns.model.convert import convert  # noqa: E402
from mcsdns.model.events import Replace  # noqa: E402
from mcsdns.model.records import Kind  # noqa: E402
from mcsdns.zone.settings import ZoneSettings  # noqa: E402
from mcsdns.zone.store import ZoneStore  # noqa: E402
from tests.e2e import peers  # noqa: E402
from tests.e2e.cluster import RBAC, apply_manifest, object_path  # noqa: E402
from tests.helpers import Server, shape  # noqa: E402
from scale import spot_check  # noqa: E402
from zonegen import NAMESPACES, objects  # noqa: E402

THREADS = 24


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def create_all(api: peers.KubeAPIServer, items) -> tuple[int, float]:
    """POST every object on THREADS persistent connections; 409 (exists) is fine."""
    work: queue.Queue = queue.Queue(maxsize=THREADS * 64)
    errors: list[str] = []
    counts = [0]
    context = ssl.create_default_context(cafile=str(api.ca_path))
    headers = {"Authorization": f"Bearer {api.admin_token}", "Content-Type": "application/json",
               "Accept": "application/json"}

    def worker() -> None:
        connection = http.client.HTTPSConnection("127.0.0.1", api.port, context=context, timeout=60)
        while (obj := work.get()) is not None:
            body = json.dumps(obj)
            for attempt in range(5):
                try:
                    connection.request("POST", object_path(obj, named=False), body, headers)
                    response = connection.getresponse()
                    data = response.read()
                    if response.status in (200, 201, 409):
                        counts[0] += 1
                    elif response.status == 429 or response.status >= 500:
                        time.sleep(0.2 * (attempt + 1))
                        continue
                    else:
                        errors.append(f"{response.status}: {data[:200]!r}")
                    break
                except (OSError, http.client.HTTPException):
                    connection.close()
                    connection = http.client.HTTPSConnection("127.0.0.1", api.port, context=context, timeout=60)
        connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    for n, obj in enumerate(items, 1):
        work.put(obj)
        if n % 20000 == 0:
            print(f"  {n} objects sent, {n / (time.perf_counter() - started):.0f}/s", file=sys.stderr)
    for _ in threads:
        work.put(None)
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{len(errors)} objects refused, e.g. {errors[:3]}")
    return counts[0], time.perf_counter() - started


def count(api: peers.KubeAPIServer, path: str) -> int:
    """Objects at a list path (from the list's remainingItemCount, one small page)."""
    page = api.request("GET", f"{path}?limit=1")
    return len(page.get("items") or []) + int(page["metadata"].get("remainingItemCount") or 0)


def list_all(api: peers.KubeAPIServer, path: str, kind: str = "") -> list[dict]:
    found, token = [], ""
    while True:
        page = api.request("GET", f"{path}?limit=5000" + (f"&continue={token}" if token else ""), timeout=600)
        found += [{"kind": kind, "apiVersion": page.get("apiVersion", ""), **item} for item in page["items"]]
        if not (token := page["metadata"].get("continue")):
            return found


def engine_store(items) -> ZoneStore:
    records = [r for r in map(convert, items) if r is not None and not hasattr(r, "reason")]
    store = ZoneStore(ZoneSettings(), 1)
    store.apply([Replace(kind, tuple(r for r in records if r.kind == kind)) for kind in Kind])
    return store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=20_000)
    parser.add_argument("--endpoints", type=int, default=200_000)
    parser.add_argument("--workdir", type=Path, help="keep (or reuse) the apiserver's data here")
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1, help="start mcsdns this many times")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    paths = peers.build()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mcsdns-kubescale-"))
    generated = lambda: objects(args.services, args.endpoints, 0.1, ["cluster-0", "cluster-1"])  # noqa: E731
    with peers.KubeAPIServer(paths, workdir=workdir / "apiserver", start_timeout=300) as api:
        api.install_crds(paths)
        imports = count(api, "/apis/multicluster.x-k8s.io/v1beta1/serviceimports")
        if imports < args.services:
            for n in range(NAMESPACES):
                api.ensure_namespace(f"ns-{n}")
            created, seconds = create_all(api, generated())
            print(f"created {created} objects in {seconds:.0f} s ({created / seconds:.0f}/s)")
        slices = count(api, "/apis/discovery.k8s.io/v1/endpointslices")
        # A freshly started apiserver fills its watch cache of a CRD on the first
        # list (20k imports: ~40 s here): a running cluster's is long warm.
        warm = time.perf_counter()
        listed = [item for path, kind in (("/apis/multicluster.x-k8s.io/v1beta1/serviceimports", "ServiceImport"),
                                          ("/apis/discovery.k8s.io/v1/endpointslices", "EndpointSlice"))
                  for item in list_all(api, path, kind)]
        print(f"apiserver warm-up (one full list of each) took {time.perf_counter() - warm:.1f} s")
        print(f"apiserver holds {count(api, '/apis/multicluster.x-k8s.io/v1beta1/serviceimports')} "
              f"ServiceImports, {slices} EndpointSlices")
        # The engine, from what the apiserver holds now (a churn run may have changed it since creation).
        store = engine_store(listed) if args.checks else None
        del listed
        apply_manifest(api, RBAC)  # mcsdns as its least-privilege service account, as deployed
        kubeconfig = api.service_account_kubeconfig("mcsdns", "mcsdns", workdir / "mcsdns.kubeconfig")
        for run in range(args.runs):
            started = time.perf_counter()
            server = Server("kube", "--kubeconfig", str(kubeconfig), "--log-level", "warning")
            try:
                server.wait_ready(timeout=args.timeout)
                seconds = time.perf_counter() - started
                pid = server.process.pid
                peak, now = status_kib(pid, "VmHWM") / 1024, status_kib(pid, "VmRSS") / 1024
                print(f"run {run + 1}: {args.services} imports + {args.endpoints} endpoints via --source kube: "
                      f"ready in {seconds:.1f} s, peak RSS {peak:.0f} MiB, RSS when ready {now:.0f} MiB")
                if store is not None and run == 0:
                    wrong = spot_check(store, server.port, args.services, args.checks, timeout=10)
                    print(f"spot checks against the engine: {args.checks - wrong}/{args.checks} equal")
            finally:
                server.stop()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
