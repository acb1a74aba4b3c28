"""Coverage-guided fuzzing of ``Responder.respond`` for a bounded time.

    pip install -e '.[fuzz]'          # atheris
    python bench/fuzz.py [--seconds 600] [--hypothesis]

With atheris (libFuzzer for Python), the engine and zone modules are
instrumented for coverage and mutated from a seed corpus: the ISC compliance
queries (tests/ednscomp.py) and queries for each name of the test zone. Every
input goes through the engine over UDP and over TCP and must keep the
properties of tests/dnsfuzz.py (``check``); a broken property or an exception
is a crash, which atheris reports with the input and stops on. Where atheris
does not install (or with --hypothesis), the same properties run under
hypothesis for the same time instead. Prints inputs run, crashes (0: the run
would have stopped otherwise), and how many well-formed queries were answered.
Not a test: it prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import dnsfuzz  # noqa: E402  (no mcsdns import: atheris instruments those below)

STATS = {"inputs": 0, "well-formed answered": 0}


def seeds() -> list[bytes]:
    from tests import ednscomp

    found = [ednscomp.query(check, 0x1000 + index, now=int(time.time())) for index, check in enumerate(ednscomp.CHECKS)]
    for index, name in enumerate(dnsfuzz.NAMES):
        wire = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".") if label) + b"\x00"
        for qtype in (1, 28, 33, 255):
            found.append(dnsfuzz.header(index, 0x0100) + wire + qtype.to_bytes(2, "big") + b"\x00\x01")
            found.append(dnsfuzz.header(index, 0, ar=1) + wire + qtype.to_bytes(2, "big") + b"\x00\x01"
                         + dnsfuzz.opt_record(1232, do=True))
    return found


def report(started: float, engine: str) -> None:
    print(f"# {engine}, {time.monotonic() - started:.0f}s over Responder.respond via the response cache (UDP and TCP), test zone")
    print(f"inputs: {STATS['inputs']:,}")
    print("crashes: 0")
    print(f"well-formed queries: {STATS['well-formed answered']:,}, every one answered with its question")
    sys.stdout.flush()


def one_input(respond, snapshot, data: bytes) -> None:
    STATS["inputs"] += 1
    well = False
    for udp in (True, False):
        well = dnsfuzz.check(data, respond(data, snapshot, udp), udp)  # AssertionError: a crash
    STATS["well-formed answered"] += well


def load():
    """The engine as the transports call it: through the response cache, which tallies each response."""
    from mcsdns.engine.cache import ResponseCache
    from mcsdns.engine.respond import Responder
    from tests.conftest import load_store
    from tests.helpers import DATA

    cache = ResponseCache(Responder(), max_entries=1000)

    def respond(message: bytes, snapshot, udp: bool) -> bytes | None:
        return cache.answer(message, snapshot, udp)[0]

    return respond, load_store(DATA / "zone").snapshot


def with_atheris(seconds: int) -> None:
    import atheris

    with atheris.instrument_imports(include=["mcsdns"]):
        import mcsdns.engine.cache  # noqa: F401
        import mcsdns.engine.respond  # noqa: F401
        import mcsdns.engine.tally  # noqa: F401
        import mcsdns.engine.wire  # noqa: F401
        import mcsdns.engine.lookup  # noqa: F401
        import mcsdns.zone.snapshot  # noqa: F401
    respond, snapshot = load()
    corpus = Path(tempfile.mkdtemp(prefix="mcsdns-fuzz-"))
    for index, seed in enumerate(seeds()):
        (corpus / f"seed-{index}").write_bytes(seed)
    started = time.monotonic()

    def test_one_input(data: bytes) -> None:
        one_input(respond, snapshot, data)
        if time.monotonic() - started > seconds:  # our own deadline, so the counts get printed
            report(started, "atheris")
            os._exit(0)

    # libFuzzer's own limit is a backstop a little later than ours.
    atheris.Setup([sys.argv[0], f"-max_total_time={seconds + 30}", "-max_len=2048", "-rss_limit_mb=2048",
                   str(corpus)], test_one_input)
    atheris.Fuzz()


def with_hypothesis(seconds: int) -> None:
    from hypothesis import HealthCheck, given, settings

    respond, snapshot = load()
    started = time.monotonic()

    @settings(max_examples=2000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(dnsfuzz.messages)
    def batch(message: bytes) -> None:
        one_input(respond, snapshot, message)

    for seed in seeds():
        one_input(respond, snapshot, seed)
    while time.monotonic() - started < seconds:
        batch()  # a fresh random batch each time; a broken property raises with its input
    report(started, "hypothesis")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--hypothesis", action="store_true", help="use hypothesis even if atheris is installed")
    args = parser.parse_args()
    try:
        if args.hypothesis:
            raise ImportError("--hypothesis")
        import atheris  # noqa: F401
    except ImportError:
        with_hypothesis(args.seconds)
        return
    with_atheris(args.seconds)


if __name__ == "__main__":
    main()
