"""The live server under dnsperf over UDP on loopback, bounded in time.

    python bench/live.py [--seconds 5] [--clients 4]

Starts ``python -m mcsdns serve`` on the test zone, runs dnsperf (Debian package
``dnsperf``) with a mix of hits, misses and SRV questions, and prints what
dnsperf measured plus the server's own CPU time per answered query, read from
/proc before and after. Not a test: it prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import DATA, Server  # noqa: E402

MIX = [
    "web.shop.svc.clusterset.local A",
    "api.shop.svc.clusterset.local AAAA",
    "db.data.svc.clusterset.local A",
    "_http._tcp.web.shop.svc.clusterset.local SRV",
    "nope.shop.svc.clusterset.local A",
    "db-0.east.db.data.svc.clusterset.local A",
    "web.shop.svc.clusterset.local AAAA",  # NODATA
]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dnsperf(
    port: int, seconds: int, clients: int, queries: Path, *extra: str, outstanding: int = 200
) -> dict[str, float]:
    """Run dnsperf (bounded by -l; ``extra`` options such as ``-Q`` appended) and read
    its summary: sent, completed, lost, qps, latency (s)."""
    result = subprocess.run(
        ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(seconds),
         "-c", str(clients), "-T", "1", "-q", str(outstanding), *extra],
        capture_output=True, text=True, timeout=seconds + 30,
    )
    fields = {"sent": r"Queries sent:\s+(\d+)", "completed": r"Queries completed:\s+(\d+)",
              "lost": r"Queries lost:\s+(\d+)",
              "qps": r"Queries per second:\s+([\d.]+)", "latency": r"Average Latency \(s\):\s+([\d.]+)"}
    return {name: float(re.search(pattern, result.stdout).group(1)) for name, pattern in fields.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    server = Server(DATA / "zone", "--log-level", "warning").wait_ready()
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as queries:
            queries.write("\n".join(MIX * 100) + "\n")
            queries.flush()
            before = cpu_seconds(server.process.pid)
            summary = dnsperf(server.port, args.seconds, args.clients, Path(queries.name))
            used = cpu_seconds(server.process.pid) - before
    finally:
        server.stop()
    completed = int(summary["completed"])
    print(f"# live server, UDP, dnsperf -c {args.clients} -q 200 for {args.seconds}s, mix of {len(MIX)} questions")
    print(f"queries/s {summary['qps']:,.0f}  completed {completed:,}  lost {summary['lost']:.0f}  "
          f"avg latency {summary['latency'] * 1e3:.2f} ms")
    print(f"server CPU per answered query: {used / max(completed, 1) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
