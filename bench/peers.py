"""mcsdns side by side with NSD, Knot and CoreDNS, same questions, same machine.

    python bench/peers.py [--seconds 5] [--clients 4]

Each server answers the same small zone (written from what mcsdns answers for
the test data) on loopback with one worker thread, under the same dnsperf load
(UDP, a mix of hits, a miss, an SRV and a headless name). Prints queries/s and
each server's own CPU time per answered query, read from /proc, and the ratio
to mcsdns. NSD and Knot come from Debian (``apt-get install nsd knot``);
CoreDNS from tests/e2e/peers/build.sh. A server that is not installed is
skipped with the reason. Not a test: it prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.live import MIX, cpu_seconds, dnsperf  # noqa: E402
from tests.helpers import DATA, Server, free_port  # noqa: E402

ZONE = "clusterset.local."


def zone_text(port: int) -> str:
    """The zone as mcsdns answers it, in master-file form, for the other servers."""
    lines = [f"$ORIGIN {ZONE}", "$TTL 5",
             "@ IN SOA ns.dns hostmaster 1 7200 1800 86400 5", "@ IN NS ns.dns", "ns.dns IN A 127.0.0.1"]
    for item in MIX:
        name, qtype = item.split()
        response = dns.query.udp(dns.message.make_query(name + ".", qtype), "127.0.0.1", port=port, timeout=2)
        for section in (response.answer, response.additional):
            lines += [line for rrset in section for line in rrset.to_text().splitlines()]
    return "\n".join(dict.fromkeys(lines)) + "\n"


def nsd(workdir: Path, zonefile: Path, port: int) -> list[str] | str:
    if not shutil.which("nsd"):
        return "nsd is not installed (apt-get install nsd)"
    conf = workdir / "nsd.conf"
    conf.write_text(f"""server:
    ip-address: 127.0.0.1@{port}
    server-count: 1
    zonesdir: "{workdir}"
    pidfile: "{workdir}/nsd.pid"
    xfrdfile: "{workdir}/xfrd.state"
    zonelistfile: "{workdir}/zone.list"
    username: ""
    verbosity: 0
    rrl-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: {ZONE}
    zonefile: {zonefile}
""")
    return ["nsd", "-d", "-c", str(conf)]


def knot(workdir: Path, zonefile: Path, port: int) -> list[str] | str:
    if not shutil.which("knotd"):
        return "knotd is not installed (apt-get install knot)"
    conf = workdir / "knot.conf"
    conf.write_text(f"""server:
    listen: 127.0.0.1@{port}
    rundir: "{workdir}"
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{workdir}/db"
zone:
  - domain: {ZONE}
    file: "{zonefile}"
""")
    return ["knotd", "-c", str(conf)]


def coredns(workdir: Path, zonefile: Path, port: int) -> list[str] | str:
    try:
        from tests.e2e import peers

        binary = peers.build().coredns
    except Exception as error:  # Go missing or the build failed: say so, go on
        return f"CoreDNS unavailable: {error}"
    corefile = workdir / "Corefile"
    corefile.write_text(f"{ZONE}:{port} {{\n    bind 127.0.0.1\n    file {zonefile}\n}}\n")
    return [str(binary), "-conf", str(corefile)]


def answering(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            dns.query.udp(dns.message.make_query("web.shop.svc." + ZONE, "A"), "127.0.0.1", port=port, timeout=0.3)
            return True
        except Exception:
            time.sleep(0.1)
    return False


def measure(name: str, argv: list[str], port: int, args, queries: Path) -> tuple[float, float] | str:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if not answering(port):
            return f"{name} did not answer: {process.stderr.read(500) if process.poll() is not None else 'timeout'}"
        return run_load(process.pid, port, args, queries)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


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
        server = Server(DATA / "zone", "--log-level", "warning").wait_ready()
        try:
            zonefile = workdir / "clusterset.local.zone"
            zonefile.write_text(zone_text(server.port))
            results["mcsdns"] = run_load(server.process.pid, server.port, args, queries)
        finally:
            server.stop()
        for name, make in (("NSD", nsd), ("Knot", knot), ("CoreDNS", coredns)):
            port = free_port()
            argv = make(workdir, zonefile, port)
            results[name] = argv if isinstance(argv, str) else measure(name, argv, port, args, queries)
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
