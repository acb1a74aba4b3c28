"""How long a burst of watch events holds up the event loop that answers queries.

    python bench/kube_burst.py [--services 50] [--endpoints 100] [--rounds 3]

The tests' fake API server (tests/kube/fakeapi.py, in a child process so its
threads do not compete for our GIL) holding
``services`` headless services of two EndpointSlices of ``endpoints`` each, a
KubeSource watching it into a ZoneStore, and a ticker coroutine that wakes
every millisecond on the same loop, as query handling would. Then ``rounds``
times every slice's endpoints all flip readiness (odd: they end not ready),
written at once, so the watches deliver them as one burst. Printed, for the source as it is ("chunked":
zone updates of ~10 ms with a turn for the loop between) and as it was
("whole": every batch that arrived applied in one go, no turn between batches):
the worst and p99 ticker lateness, and the time until the zone shows the last
flip. Not a test: numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcsdns.source.kube import watch  # noqa: E402
from tests.kube import objects as o  # noqa: E402
from tests.kube.fakeapi import FakeApi  # noqa: E402
from tests.kube.harness import harness  # noqa: E402


def slice_of(service: int, part: int, endpoints: int, ready: bool) -> dict:
    labels = {"multicluster.kubernetes.io/service-name": f"s{service}",
              "multicluster.kubernetes.io/source-cluster": f"c{part}"}
    ips = [f"10.{100 + service}.{part}.{host}" for host in range(1, endpoints + 1)]
    return o.endpoint_slice("bench", f"s{service}-{part}", labels, [(ip, None, ready) for ip in ips])


async def _whole(self, changes) -> None:
    """The handing before chunking: the whole batch in one zone update, no turn."""
    if changes:
        self.sink.changed(self.feed, changes)


def serve(args, port, go) -> None:
    """The child: the fake API loaded, then the burst when told."""
    fake = FakeApi()
    fake.put(*(o.service_import("bench", f"s{s}", headless=True) for s in range(args.services)))
    fake.put(*(slice_of(s, p, args.endpoints, True) for s in range(args.services) for p in range(2)))
    fake.start()
    port.put(fake.port)
    go.wait()
    fake.put(*flips(args))
    time.sleep(3600)


def flips(args) -> list[dict]:
    return [slice_of(service, part, args.endpoints, ready=round % 2 == 1)
            for round in range(args.rounds) for service in range(args.services) for part in range(2)]


async def burst(go, kubeconfig: str, args) -> tuple[list[float], float]:
    async with harness(kubeconfig, page_size=500) as h:
        await h.until(lambda: h.store.ready, "the first sync", timeout=60)
        late: list[float] = []
        running = True

        async def tick() -> None:
            while running:
                began = time.perf_counter()
                await asyncio.sleep(0.001)
                late.append(time.perf_counter() - began - 0.001)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.2)
        began = time.perf_counter()
        go.set()
        last = o.name(f"s{args.services - 1}.bench")  # its slices are the burst's last two writes
        await h.until(lambda: h.ask(last)[0] == "NXDOMAIN", "the last flip", timeout=120)
        took = time.perf_counter() - began
        running = False
        await ticker
        return sorted(late), took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.rounds % 2 == 0:
        parser.error("--rounds must be odd (the burst must end with every endpoint not ready)")
    chunked = watch.Watcher._hand
    for label, hand in (("chunked", chunked), ("whole", _whole)):
        watch.Watcher._hand = hand
        port, go = multiprocessing.Queue(), multiprocessing.Event()
        child = multiprocessing.Process(target=serve, args=(args, port, go), daemon=True)
        child.start()
        try:
            fake = FakeApi()
            fake.port = port.get(timeout=60)  # only to write a kubeconfig for it
            kubeconfig = str(fake.kubeconfig(Path(f"/tmp/kube-burst-{label}.kubeconfig")))
            late, took = asyncio.run(burst(go, kubeconfig, args))
        finally:
            child.kill()
            child.join()
        p99 = late[int(len(late) * 0.99)]
        print(f"{label:8} {args.rounds * 2 * args.services} flips of {args.endpoints}-endpoint slices: loop late by at most "
              f"{1e3 * late[-1]:.0f} ms (p99 {1e3 * p99:.1f} ms); last flip answered after {took:.2f}s")
    watch.Watcher._hand = chunked


if __name__ == "__main__":
    main()
