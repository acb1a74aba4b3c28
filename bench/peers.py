"""mcsdns side by side with NSD, Knot and CoreDNS, same questions, same machine.

    python bench/peers.py [--seconds 5] [--clients 4] [--mode udp|tcp] [--workers N]
                          [--mcsdns batch,plain] [--no-coredns] [--rounds R]

Each server answers the same small zone (written from what mcsdns answers for
the test data) on loopback with ``--workers`` workers (mcsdns ``--workers``,
NSD ``server-count``, Knot ``udp-workers``/``tcp-workers``), under the same
dnsperf load (``-m udp`` or ``tcp``: with TCP dnsperf pipelines its queries on
``--clients`` persistent connections; a mix of hits, AAAA, an SRV with glue, a
headless name, NXDOMAIN). ``--mcsdns`` names the mcsdns variants measured:
``batch`` (recvmmsg/sendmmsg, the default) and ``plain`` (``--udp-batch
false``: a recvfrom and a sendto per query), both with the default response
rate limiting (on; loopback, where dnsperf runs, exempt), and ``batch-norrl``,
``plain-norrl`` with it off (``--rrl-rate 0``), as NSD and Knot run here. Prints queries/s, lost queries,
average latency and each server's own CPU time per answered query (user +
system, for its whole process tree, read from /proc), and its ratios to NSD and
Knot. ``--rounds`` repeats the whole line-up, servers interleaved, so a noisy
moment of a shared machine hits each alike. NSD and Knot come from Debian
(``apt-get install nsd knot``); CoreDNS from tests/e2e/peers/build.sh. A server
that is not installed is skipped with the reason (NSD and Knot are started by
tests/peerdns.py). Not a test: it prints numbers
for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.live import MIX, dnsperf  # noqa: E402
from tests.helpers import DATA, Server, free_port  # noqa: E402
from tests.peerdns import PEERS, ZONE, PeerUnavailable, serving, zone_text  # noqa: E402


def coredns(workdir: Path, zonefile: Path, port: int, workers: int = 1) -> list[str]:
    try:
        from tests.e2e import peers

        binary = peers.build().coredns
    except Exception as error:  # Go missing or the build failed: say so, go on
        raise PeerUnavailable(f"CoreDNS unavailable: {error}") from error
    corefile = workdir / "Corefile"
    corefile.write_text(f"{ZONE}:{port} {{\n    bind 127.0.0.1\n    file {zonefile}\n}}\n")
    return [str(binary), "-conf", str(corefile)]


def measure(name: str, make, workdir: Path, zonefile: Path, args, queries: Path) -> tuple | str:
    port = free_port()
    try:
        with serving(name, make(workdir, zonefile, port, args.workers), port) as process:
            return run_load(process.pid, port, args, queries)
    except PeerUnavailable as missing:
        return str(missing)


def tree(pid: int) -> list[int]:
    """A process and its descendants (NSD answers from a forked child, mcsdns --workers from children)."""
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            children.setdefault(int(status.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(status.parent.name))
        except (OSError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def tree_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process tree."""
    user = system = 0.0
    for member in tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) / os.sysconf("SC_CLK_TCK")
        system += int(fields[12]) / os.sysconf("SC_CLK_TCK")
    return user, system


# perf stat software events and syscall tracepoints (no hardware counters in this VM): what the kernel is asked per query
PERF_EVENTS = {"syscalls": "raw_syscalls:sys_enter", "epoll": "syscalls:sys_enter_epoll_wait",
               "epoll_p": "syscalls:sys_enter_epoll_pwait", "recvmmsg": "syscalls:sys_enter_recvmmsg",
               "recvmsg": "syscalls:sys_enter_recvmsg", "recvfrom": "syscalls:sys_enter_recvfrom",
               "switches": "context-switches", "migrations": "cpu-migrations"}


def perf_stat(pids: list[int]) -> subprocess.Popen:
    return subprocess.Popen(["perf", "stat", "-x", ",", "-e", ",".join(PERF_EVENTS.values()),
                             "-p", ",".join(map(str, pids))], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def perf_counts(process: subprocess.Popen) -> dict[str, float]:
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=10)
    names = {event: name for name, event in PERF_EVENTS.items()}
    counts = {}
    for line in err.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2] in names and fields[0].replace(".", "").isdigit():
            counts[names[fields[2]]] = float(fields[0])
    return counts


def switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of every thread of a process tree."""
    counts = [0, 0]
    for member in tree(pid):
        for status in Path(f"/proc/{member}/task").glob("*/status"):
            try:
                for line in status.read_text().splitlines():
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        counts[line.startswith("non")] += int(line.split()[1])
            except OSError:
                continue
    return counts[0], counts[1]


def run_load(pid: int, port: int, args, queries: Path) -> tuple:
    """(queries/s, lost, avg latency ms, us CPU/query, us user/query, us system/query, perf counts per query)."""
    pids = tree(pid)
    perf = perf_stat(pids) if args.perf else None
    before, switched = tree_cpu(pid), switches(pid)
    summary = dnsperf(port, args.seconds, args.clients, queries, "-m", args.mode)
    after = tree_cpu(pid)
    done = max(summary["completed"], 1)
    counts = {name: count / done for name, count in perf_counts(perf).items()} if perf else {}
    if perf:
        counts["voluntary"], counts["involuntary"] = ((a - b) / done for a, b in zip(switches(pid), switched))
    user, system = ((a - b) / done * 1e6 for a, b in zip(after, before))
    return summary["qps"], summary["lost"], summary["latency"] * 1e3, user + system, user, system, counts


def mcsdns(variant: str, args, queries: Path, zonefile: Path) -> tuple | str:
    flags = {"batch": ["--udp-batch", "true"], "plain": ["--udp-batch", "false"],  # RRL on, loopback exempt
             "batch-norrl": ["--udp-batch", "true", "--rrl-rate", "0"],  # as NSD and Knot here: RRL off
             "plain-norrl": ["--udp-batch", "false", "--rrl-rate", "0"]}[variant]
    server = Server(DATA / "zone", "--log-level", "warning", "--poll-interval", "1", "--workers", str(args.workers),
                    "--ns-address", "127.0.0.1", *flags).wait_ready()
    try:
        if not zonefile.exists():
            zonefile.write_text(zone_text(server.port, MIX))
        return run_load(server.process.pid, server.port, args, queries)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--mode", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--mcsdns", default="batch,batch-norrl,plain",
                        help="variants: batch, plain, batch-norrl, plain-norrl")
    parser.add_argument("--no-coredns", action="store_true")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--perf", action="store_true",
                        help="also count, per answered query, system calls, wakeups and context switches (perf stat)")
    args = parser.parse_args()
    rows: list[tuple[int, str, tuple | str]] = []
    peers = list(PEERS.items()) + ([] if args.no_coredns else [("CoreDNS", coredns)])
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        queries = workdir / "queries.txt"
        queries.write_text("\n".join(MIX * 100) + "\n")
        zonefile = workdir / "clusterset.local.zone"
        for round_ in range(1, args.rounds + 1):
            for variant in args.mcsdns.split(","):
                rows.append((round_, f"mcsdns {variant}", mcsdns(variant, args, queries, zonefile)))
            for name, make in peers:
                rows.append((round_, name, measure(name, make, workdir, zonefile, args, queries)))
    print(f"# {args.mode.upper()}, dnsperf -m {args.mode} -c {args.clients} -q 200 -T 1 for {args.seconds}s each, "
          f"{args.workers} worker(s) per server, {len(MIX)} questions; load average {os.getloadavg()[0]:.1f}")
    print(f"{'round':>5} {'server':<13} {'queries/s':>10} {'lost':>5} {'latency ms':>10} {'us CPU/q':>9} "
          f"{'user':>5} {'sys':>5} {'CPU vs NSD':>10} {'q/s vs NSD':>10} {'q/s vs Knot':>11}")
    for round_ in range(1, args.rounds + 1):
        line = {name: result for r, name, result in rows if r == round_}
        nsd_, knot_ = line.get("NSD"), line.get("Knot")
        for name, result in line.items():
            if isinstance(result, str):
                print(f"{round_:>5} {name:<13} skipped: {result}")
                continue
            rate, lost, latency, micros, user, system, counts = result
            vs = [f"{micros / nsd_[3]:.2f}x" if isinstance(nsd_, tuple) else "-",
                  f"{rate / nsd_[0]:.2f}x" if isinstance(nsd_, tuple) else "-",
                  f"{rate / knot_[0]:.2f}x" if isinstance(knot_, tuple) else "-"]
            print(f"{round_:>5} {name:<13} {rate:>10,.0f} {lost:>5.0f} {latency:>10.2f} {micros:>9.2f} "
                  f"{user:>5.2f} {system:>5.2f} {vs[0]:>10} {vs[1]:>10} {vs[2]:>11}")
            if counts:
                receives = counts.get("recvmmsg", 0) + counts.get("recvmsg", 0) + counts.get("recvfrom", 0)
                print(f"{'':>5} {'':<13} per query: {counts.get('syscalls', 0):.3f} system calls, "
                      f"{counts.get('epoll', 0) + counts.get('epoll_p', 0):.4f} epoll waits, "
                      f"{receives:.4f} receive calls ({1 / receives if receives else 0:.1f} queries each), "
                      f"{counts.get('switches', 0):.4f} context switches ({counts.get('voluntary', 0):.4f} voluntary, "
                      f"{counts.get('involuntary', 0):.4f} not), {counts.get('migrations', 0):.4f} migrations")


if __name__ == "__main__":
    main()
