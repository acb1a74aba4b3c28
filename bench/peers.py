"""mcsdns side by side with NSD, Knot and CoreDNS, same questions, same machine.

    python bench/peers.py [--seconds 5] [--clients 4]

Each server answers the same small zone (written from what mcsdns answers for
the test data) on loopback with one worker thread, under the same dnsperf load
(UDP, a mix of hits, a miss, an SRV and a headless name). Prints queries/s and
each server's own CPU time per answered query, read from /proc, and the ratio
to mcsdns. NSD and Knot come from Debian (``apt-get install nsd knot``) and
are started by tests/peerdns.py; CoreDNS from tests/e2e/peers/build.sh. A
server that is not installed is skipped with the reason. Not a test: it prints
numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.live import MIX, cpu_seconds, dnsperf  # noqa: E402
from tests.helpers import DATA, Server, free_port  # noqa: E402
from tests.peerdns import PEERS, ZONE, PeerUnavailable, serving, zone_text  # noqa: E402


def coredns(workdir: Path, zonefile: Path, port: int) -> list[str]:
    try:
        from tests.e2e import peers

        binary = peers.build().coredns
    except Exception as error:  # Go missing or the build failed: say so, go on
        raise PeerUnavailable(f"CoreDNS unavailable: {error}") from error
    corefile = workdir / "Corefile"
    corefile.write_text(f"{ZONE}:{port} {{\n    bind 127.0.0.1\n    file {zonefile}\n}}\n")
    return [str(binary), "-conf", str(corefile)]


def measure(name: str, make, workdir: Path, zonefile: Path, args, queries: Path) -> tuple[float, float] | str:
    port = free_port()
    try:
        with serving(name, make(workdir, zonefile, port), port) as process:
            return run_load(process.pid, port, args, queries)
    except PeerUnavailable as missing:
        return str(missing)


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (NSD answers from a forked child)."""
    total = cpu_seconds(pid)
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += tree_cpu(int(status.parent.name))
    return total


def run_load(pid: int, port: int, args, queries: Path) -> tuple[float, float]:
    before = tree_cpu(pid)
    summary = dnsperf(port, args.seconds, args.clients, queries)
    return summary["qps"], (tree_cpu(pid) - before) / max(summary["completed"], 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    results: dict[str, tuple[float, float] | str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        queries = workdir / "queries.txt"
        queries.write_text("\n".join(MIX * 100) + "\n")
        server = Server(DATA / "zone", "--log-level", "warning", "--ns-address", "127.0.0.1").wait_ready()
        try:
            zonefile = workdir / "clusterset.local.zone"
            zonefile.write_text(zone_text(server.port, MIX))
            results["mcsdns"] = run_load(server.process.pid, server.port, args, queries)
        finally:
            server.stop()
        for name, make in {**PEERS, "CoreDNS": coredns}.items():
            results[name] = measure(name, make, workdir, zonefile, args, queries)
    ours = results["mcsdns"][1]
    print(f"# UDP, dnsperf -c {args.clients} -q 200 for {args.seconds}s each, one worker per server, {len(MIX)} questions")
    print(f"{'server':<8} {'queries/s':>10} {'us CPU/query':>13} {'CPU vs mcsdns':>14}")
    for name, result in results.items():
        if isinstance(result, str):
            print(f"{name:<8} skipped: {result}")
            continue
        rate, micros = result
        print(f"{name:<8} {rate:>10,.0f} {micros:>13.1f} {micros / ours:>13.2f}x")


if __name__ == "__main__":
    main()
