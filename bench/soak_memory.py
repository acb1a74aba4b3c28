"""Whether the zone path keeps memory per change: tracemalloc over many soak changes.

    python bench/soak_memory.py [--changes 3000]

In one process, without sockets: the churn of bench/soak.py changes a copy of
the test zone, a FolderSource loads each change into a ZoneStore, and the
response cache answers every soak question on each new snapshot. Prints the
traced memory growth over two equal rounds of changes after a warm-up: a leak
per change shows in both rounds, a one-off growth (a table resized once) only
in the first. Not a test: it prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gc
import logging
import shutil
import sys
import tempfile
import tracemalloc
from pathlib import Path

import dns.message

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.soak import QUESTIONS, Churn, Mirror, qname  # noqa: E402
from mcsdns.engine.cache import ResponseCache  # noqa: E402
from tests.helpers import DATA  # noqa: E402


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=3000)
    args = parser.parse_args()
    logging.getLogger("mcsdns").setLevel(logging.ERROR)  # the test zone's bad objects, once
    with tempfile.TemporaryDirectory() as workdir:
        folder = Path(workdir) / "zone"
        shutil.copytree(DATA / "zone", folder)
        churn = Churn(folder)
        churn.seed_files()
        mirror = Mirror(["serve", "--source", str(folder)], 1000)
        mirror.versions = type(mirror.versions)(maxlen=1)  # keep only the newest, as the server does
        cache = ResponseCache(mirror.engine)
        queries = [dns.message.make_query(qname(name), rdtype).to_wire() for name, rdtype in QUESTIONS]

        def changes(count: int) -> None:
            for _ in range(count):
                churn.change()
                mirror.record()
                for query in queries:
                    cache.answer(query, mirror.store.snapshot, True)

        changes(args.changes // 6)  # warm-up
        tracemalloc.start()
        start = traced()
        changes(args.changes)
        middle = traced()
        changes(args.changes)
        end = traced()
    print(f"# zone path, {args.changes:,} changes a round, traced memory growth")
    print(f"round 1 {(middle - start) / 1024:+,.1f} KiB   round 2 {(end - middle) / 1024:+,.1f} KiB")


if __name__ == "__main__":
    main()
