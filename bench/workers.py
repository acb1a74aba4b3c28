"""What ``--workers N`` costs at start, and what one watcher feeding N would save.

    python bench/workers.py [--services 10000] [--endpoints 100000] [--workers 1,2] [--keep DIR]

Generates a clusterset (bench/zonegen.py) and, for each worker count, starts
``mcsdns serve --workers N`` on it and reports the time from process start to
``/readyz`` 200 and the resident memory of the whole process tree (the parent
and each worker). Then, in-process, the alternative design: one process reads
the source and ships its events to the workers. It times reading and
converting the folder (what each worker does itself now, and what one watcher
would do once), pickling the events (the watcher, once per worker) and
unpickling them (each worker), and applying them to a zone (each worker, in
both designs). Not a test: it prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers import tree  # noqa: E402
from mcsdns.source.files import FolderSource  # noqa: E402
from mcsdns.zone.settings import ZoneSettings  # noqa: E402
from mcsdns.zone.store import ZoneStore  # noqa: E402
from tests.helpers import Server  # noqa: E402


def rss_mib(pid: int) -> list[float]:
    sizes = []
    for member in tree(pid):
        try:
            line = next(l for l in Path(f"/proc/{member}/status").read_text().splitlines() if l.startswith("VmRSS"))
            sizes.append(int(line.split()[1]) / 1024)
        except (OSError, StopIteration):
            continue
    return sizes


def start(folder: Path, workers: int) -> tuple[float, list[float]]:
    started = time.monotonic()
    server = Server(folder, "--log-level", "warning", "--poll-interval", "1", "--workers", str(workers))
    try:
        server.wait_ready(timeout=600)
        ready = time.monotonic() - started
        return ready, rss_mib(server.process.pid)
    finally:
        server.stop()


def feeding(folder: Path) -> dict[str, float]:
    logging.disable(logging.WARNING)
    source = FolderSource(str(folder))
    started = time.perf_counter()
    events = source.scan()
    read = time.perf_counter() - started
    started = time.perf_counter()
    blob = pickle.dumps(events, protocol=pickle.HIGHEST_PROTOCOL)
    dump = time.perf_counter() - started
    started = time.perf_counter()
    events = pickle.loads(blob)
    load = time.perf_counter() - started
    store = ZoneStore(ZoneSettings(), 1, source.required)
    started = time.perf_counter()
    store.apply(events)
    build = time.perf_counter() - started
    return {"read + convert": read, "pickle": dump, "unpickle": load, "build zone": build, "MiB": len(blob) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp) / "zone"
        if not folder.exists():
            subprocess.run([sys.executable, str(ROOT / "bench" / "zonegen.py"), str(folder), "--services",
                            str(args.services), "--endpoints", str(args.endpoints)], check=True, capture_output=True)
        print(f"# {args.services} services, {args.endpoints} endpoints (bench/zonegen.py)")
        print(f"{'workers':>7} {'ready s':>8} {'RSS MiB total':>14}  per process (parent first)")
        for count in (int(n) for n in args.workers.split(",")):
            ready, sizes = start(folder, count)
            print(f"{count:>7} {ready:>8.1f} {sum(sizes):>14.0f}  {', '.join(f'{s:.0f}' for s in sizes)}")
        costs = feeding(folder)
        print("# one watcher feeding the workers instead, per step (s), events pickled "
              f"{costs.pop('MiB'):.0f} MiB")
        print("  ".join(f"{name} {seconds:.2f}" for name, seconds in costs.items()))


if __name__ == "__main__":
    main()
