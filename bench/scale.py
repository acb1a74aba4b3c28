"""Time from process start to a ready zone, and the memory it takes, at scale.

    python bench/scale.py [--services 100000] [--endpoints 1000000] [--format json|yaml]
                          [--keep DIR] [--checks 200]

Generates a clusterset with bench/zonegen.py (or reuses ``--keep DIR`` when it
is already there), starts ``python -m mcsdns serve --source DIR`` and polls
``/readyz`` until it says ready; prints seconds to ready, peak RSS (VmHWM) and
the RSS once ready. Then spot-checks ``--checks`` names over UDP against the
engine itself, built in this process from the same folder (a headless name's
full answer needs TCP, so the checks go over TCP). Not a test: it prints
numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mcsdns.engine.respond import Responder  # noqa: E402
from mcsdns.source.files import FolderSource  # noqa: E402
from mcsdns.zone.settings import ZoneSettings  # noqa: E402
from mcsdns.zone.store import ZoneStore  # noqa: E402
from zonegen import NAMESPACES  # noqa: E402
from tests.helpers import free_port, readyz_ok, shape  # noqa: E402


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def serve(folder: Path, timeout: float) -> tuple[subprocess.Popen, int, float]:
    port, http_port = free_port(), free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "mcsdns", "serve", "--source", str(folder), "--listen", f"127.0.0.1:{port}",
         "--http", f"127.0.0.1:{http_port}", "--poll-interval", "3600"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    while not readyz_ok(http_port):
        if process.poll() is not None or time.perf_counter() - started > timeout:
            process.kill()
            raise SystemExit(f"not ready after {time.perf_counter() - started:.0f}s (exit {process.poll()})")
        time.sleep(0.05)
    return process, port, time.perf_counter() - started


def folder_store(folder: Path) -> ZoneStore:
    source = FolderSource(str(folder))
    store = ZoneStore(ZoneSettings(), 1, source.required)
    store.apply(source.scan())
    return store


def spot_check(store: ZoneStore, port: int, services: int, checks: int, timeout: float = 5) -> int:
    """How many of ``checks`` random zonegen questions the live server (over TCP)
    answers otherwise than the engine on ``store``; also used by bench/kubescale.py."""
    responder, rng, wrong = Responder(), random.Random(1), 0
    for _ in range(checks):
        i = rng.randrange(services)
        name, qtype = rng.choice([
            (f"svc-{i}.ns-{i % NAMESPACES}.svc.clusterset.local.", "A"),
            (f"_http._tcp.svc-{i}.ns-{i % NAMESPACES}.svc.clusterset.local.", "SRV"),
            (f"svc-{i}.ns-{i % NAMESPACES}.svc.clusterset.local.", "SRV"),
            (f"nope-{i}.ns-{i % NAMESPACES}.svc.clusterset.local.", "A"),
        ])
        query = dns.message.make_query(name, qtype)
        live = dns.query.tcp(query, "127.0.0.1", port=port, timeout=timeout)
        engine = dns.message.from_wire(responder.respond(query.to_wire(), store.snapshot, udp=False))
        wrong += shape(live) != shape(engine)
    return wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100_000)
    parser.add_argument("--endpoints", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("json", "yaml"), default="json")
    parser.add_argument("--keep", type=Path, help="generate into (or reuse) this folder")
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="mcsdns-scale-"))
    if not any(folder.glob(f"*.{args.format}")):
        subprocess.run([sys.executable, str(ROOT / "bench" / "zonegen.py"), str(folder), "--services",
                        str(args.services), "--endpoints", str(args.endpoints), "--format", args.format], check=True)
    size = sum(path.stat().st_size for path in folder.iterdir()) / 2**20
    process, port, seconds = serve(folder, args.timeout)
    try:
        peak, now = status_kib(process.pid, "VmHWM") / 1024, status_kib(process.pid, "VmRSS") / 1024
        print(f"{args.services} imports + {args.endpoints} endpoints ({args.format}, {size:.0f} MiB): "
              f"ready in {seconds:.1f} s, peak RSS {peak:.0f} MiB, RSS when ready {now:.0f} MiB")
        if args.checks:
            wrong = spot_check(folder_store(folder), port, args.services, args.checks)
            print(f"spot checks against the engine: {args.checks - wrong}/{args.checks} equal")
    finally:
        process.terminate()
        process.wait(10)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
