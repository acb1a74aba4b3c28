"""What response rate limiting costs a query: the limiter's call alone, then the
live server under dnsperf with RRL off, on for an exempt source, and on with
every response accounted (never limited).

    python bench/rrl.py [--seconds 3] [--rounds 3] [--no-live]

The call alone: ns per call for an exempt source, an answer accounted in its
bucket, an NXDOMAIN, a response over the limit (dropped, slipped), and a
source never seen before (a flood of spoofed addresses). Live:
dnsperf as in bench/live.py; the configurations are run in turn, ``--rounds``
times, and the median server CPU per answered query is printed with the
difference to "off". Not a test: it prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import timeit
from pathlib import Path

import dns.message

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.live import MIX, cpu_seconds, dnsperf  # noqa: E402
from mcsdns.engine.cache import ResponseCache  # noqa: E402
from mcsdns.engine.respond import Responder  # noqa: E402
from mcsdns.transport.rrl import RateLimiter  # noqa: E402
from tests.conftest import load_store  # noqa: E402
from tests.helpers import DATA, Server  # noqa: E402

LIVE = {
    "off": ["--rrl-rate", "0"],
    "exempt source": [],  # the defaults: loopback is exempt
    "accounted": ["--rrl-exempt", "none", "--rrl-rate", "10000000"],  # every answer in a bucket, none limited
}


def call_costs(number: int) -> list[tuple[str, float]]:
    store = load_store(DATA / "zone")
    cache = ResponseCache(Responder())
    answer = cache.answer(dns.message.make_query(MIX[0].split()[0] + ".", "A", use_edns=0).to_wire(), store.snapshot)[0]
    nxdomain = cache.answer(dns.message.make_query("nope.shop.svc.clusterset.local.", "A").to_wire(), store.snapshot)[0]
    cases = [
        ("exempt source", RateLimiter(10**9, exempt=("127.0.0.0/8",)), answer, ("127.0.0.1", 5353)),
        ("answer, accounted", RateLimiter(10**9), answer, ("10.1.2.3", 5353)),
        ("NXDOMAIN, accounted", RateLimiter(10**9), nxdomain, ("10.1.2.3", 5353)),
        ("over the limit, slip 0 (drop)", RateLimiter(1, slip=0), answer, ("10.1.2.3", 5353)),
        ("over the limit, slip 1 (TC=1)", RateLimiter(1, slip=1), answer, ("10.1.2.3", 5353)),
    ]
    empty = min(timeit.repeat(lambda: None, number=number, repeat=5))
    out = []
    for label, limiter, response, peer in cases:
        limiter(b"", response, peer)  # learn the source, make the bucket
        best = min(timeit.repeat(lambda: limiter(b"", response, peer), number=number, repeat=5))
        out.append((label, (best - empty) / number * 1e9))
    # A flood of spoofed sources: every query from an address not seen before.
    spoofed = [(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 5353) for i in range(number)]
    limiter = RateLimiter(10**9)
    started = timeit.default_timer()
    for peer in spoofed:
        limiter(b"", answer, peer)
    out.append(("a new source each time", (timeit.default_timer() - started) / number * 1e9))
    return out


def live(seconds: int, rounds: int, clients: int) -> dict[str, list[float]]:
    per_query: dict[str, list[float]] = {name: [] for name in LIVE}
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as queries:
        queries.write("\n".join(MIX * 100) + "\n")
        queries.flush()
        for _ in range(rounds):
            for name, flags in LIVE.items():
                server = Server(DATA / "zone", "--log-level", "warning", *flags).wait_ready()
                try:
                    before = cpu_seconds(server.process.pid)
                    summary = dnsperf(server.port, seconds, clients, Path(queries.name))
                    used = cpu_seconds(server.process.pid) - before
                finally:
                    server.stop()
                per_query[name].append(used / max(summary["completed"], 1) * 1e6)
    return per_query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--no-live", action="store_true")
    args = parser.parse_args()
    print("# the limiter's call alone (best of 5), ns per call")
    for label, nanos in call_costs(args.number):
        print(f"{label:<32} {nanos:7.0f}")
    if args.no_live:
        return
    print(f"# live server, dnsperf -c {args.clients} for {args.seconds}s x {args.rounds} rounds; "
          "median server CPU per answered query")
    results = live(args.seconds, args.rounds, args.clients)
    base = statistics.median(results["off"])
    for name, values in results.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:<16} {median:6.2f} us  ({median - base:+.2f} us vs off; runs {runs})")


if __name__ == "__main__":
    main()
