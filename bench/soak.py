"""A bounded soak: the live server under steady load while its zone changes, every
sampled answer checked against the engine.

    python bench/soak.py [--seconds 1800] [--share 0.8 | --rate QPS] [--sample-rate 200]
                         [--change-every 0.25] [--warmup 120]

Serves a copy of the test zone plus a few ``soak`` services from a folder
(``--source PATH``), measures capacity with a short dnsperf run at full speed
(10 s, with the churn and the sampler below already running: capacity as the
soak will find it), then runs dnsperf at ``--share`` of it (or at ``--rate``)
for ``--seconds`` while, side by side:

- the churn rewrites the folder every ``--change-every`` seconds (an endpoint
  flaps ready/not ready, an import is created, deleted or given a new IP), one
  atomic file operation at a time, and waits until the server's SOA serial
  shows the change before making the next one;
- the sampler asks questions of its own over UDP and TCP (a new connection
  each) and compares every answer byte for byte with what the engine returns
  for the same query bytes on a mirror of the zone: the same folder loaded the
  same way into a store whose serial starts where the server's did;
- the monitor reads the server's RSS and open file descriptors every second.

The sampled answers and the changes counted include the capacity run's; the
RSS after warm-up and the dnsperf figures are the soak's alone.

Why the check is sound while the zone moves: the churn waits for each change
to be seen, so the server's serial and the mirror's agree version by version.
A query sent after version ``c`` was seen (the server cannot go back) and
answered before version ``w + 1`` was written (the server cannot see the
future) must equal the engine's answer on one of versions ``c..w``; anything
else is a wrong answer. Not a test (tests/test_soak.py runs a short one): it
prints numbers for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import socket
import statistics
import struct
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import dns.message

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.live import cpu_seconds, dnsperf  # noqa: E402
from mcsdns.app import App  # noqa: E402
from mcsdns.cli import config_from  # noqa: E402
from mcsdns.source.files import FolderSource  # noqa: E402
from mcsdns.zone.store import ZoneStore  # noqa: E402
from tests.helpers import DATA, Server  # noqa: E402

NAMESPACE = "soak"
ENDPOINTS = 6  # of the flapping headless service
IMPORTS = 4  # ClusterSetIP imports created, moved and deleted
KEEP = 256  # zone versions the mirror remembers: far more than a query's timeout spans
TIMEOUT = 2.0  # a sampled query unanswered for this long is lost
SEEN_LIMIT = 30.0  # a change the server has not shown after this long fails the run
CLIENTS = 4  # dnsperf -c, as bench/live.py
# dnsperf -q under a rate limit: enough queries in flight that latency (a few ms
# with the machine busy) never caps the rate below the one asked for.
OUTSTANDING = 1000

# Questions for dnsperf and the sampler: the test zone's fixed names and the
# soak names that change (hits, misses, NODATA, SRV with glue, per-endpoint names).
QUESTIONS = [
    ("web.shop", "A"), ("api.shop", "AAAA"), ("db.data", "A"), ("_http._tcp.web.shop", "SRV"),
    ("nope.shop", "A"), ("db-0.east.db.data", "A"), ("", "SOA"), ("", "NS"),
    ("flap.soak", "A"), ("_web._tcp.flap.soak", "SRV"), ("flap-0.east.flap.soak", "A"),
    ("flap-3.east.flap.soak", "A"), ("soak", "A"),
    *[(f"churn-{i}.soak", "A") for i in range(IMPORTS)],
    ("_http._tcp.churn-1.soak", "SRV"), ("churn-2.soak", "AAAA"),
]


def qname(relative: str) -> str:
    return f"{relative}.svc.clusterset.local." if relative else "clusterset.local."


# ---- the zone that changes --------------------------------------------------

def _import(name: str, spec: dict) -> dict:
    return {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


def _flap_slice(ready: list[bool]) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "flap-east", "namespace": NAMESPACE,
                         "labels": {"multicluster.kubernetes.io/service-name": "flap",
                                    "multicluster.kubernetes.io/source-cluster": "east"}},
            "addressType": "IPv4", "ports": [{"name": "web", "protocol": "TCP", "port": 8080}],
            "endpoints": [{"addresses": [f"10.77.1.{j + 1}"], "hostname": f"flap-{j}",
                           "conditions": {"ready": up}} for j, up in enumerate(ready)]}


class Churn:
    """Changes the folder one atomic file operation at a time, each one visible in DNS."""

    def __init__(self, folder: Path, seed: int = 9) -> None:
        self.folder = folder
        self.random = random.Random(seed)
        self.ready = [True] * ENDPOINTS
        self.ips: dict[int, str | None] = {i: None for i in range(IMPORTS)}
        self.applied: dict[str, int] = {"flap": 0, "create": 0, "delete": 0, "move": 0}

    def seed_files(self) -> None:
        flap = _import("flap", {"type": "Headless", "ports": [{"name": "web", "protocol": "TCP", "port": 8080}]})
        self._write("soak-flap-import.json", flap)
        self._write("soak-flap-east.json", _flap_slice(self.ready))
        for i in range(0, IMPORTS, 2):  # half of them exist at the start
            self._set_ip(i, f"10.77.2.{i + 1}")

    def change(self) -> str:
        """Make one change; returns its kind."""
        roll = self.random.random()
        i = self.random.randrange(IMPORTS)
        if roll < 0.5:
            j = self.random.randrange(ENDPOINTS)
            self.ready[j] = not self.ready[j]
            self._write("soak-flap-east.json", _flap_slice(self.ready))
            kind = "flap"
        elif self.ips[i] is None:
            self._set_ip(i, f"10.77.2.{i + 1}")
            kind = "create"
        elif roll < 0.8:
            (self.folder / f"soak-churn-{i}.json").unlink()
            self.ips[i] = None
            kind = "delete"
        else:
            moved = "10.77.3" if self.ips[i].startswith("10.77.2") else "10.77.2"
            self._set_ip(i, f"{moved}.{i + 1}")
            kind = "move"
        self.applied[kind] += 1
        return kind

    def _set_ip(self, i: int, ip: str) -> None:
        spec = {"type": "ClusterSetIP", "ips": [ip], "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}
        self._write(f"soak-churn-{i}.json", _import(f"churn-{i}", spec))
        self.ips[i] = ip

    def _write(self, name: str, obj: dict) -> None:
        # Written beside, then renamed: the server reads the old file or the new one,
        # never half of one (the .tmp suffix is not one the folder source reads).
        temporary = self.folder / f".{name}.tmp"
        temporary.write_text(json.dumps(obj))
        os.replace(temporary, self.folder / name)


# ---- what the server must answer -------------------------------------------

class Mirror:
    """The engine on each version of the zone the churn made, numbered from 0.

    Built from the server's own flags (``App`` builds the settings and engine in
    its constructor and does no I/O there), loaded by its own FolderSource from
    the same folder, with a store whose serial starts one below the server's
    first: the first full load bumps both by one, and every change after that
    by one more, so a version's serial is the server's.
    """

    def __init__(self, server_args: list[str], first_serial: int) -> None:
        app = App(config_from(server_args, {}))
        self.source = FolderSource(app.config.source)
        self.store = ZoneStore(app.store.settings, first_serial - 1, self.source.required)
        self.engine = app.responder.responder  # the engine itself, not the cache in front of it
        self.versions: deque = deque(maxlen=KEEP)  # (index, snapshot)
        self.written = -1  # the newest version on disk
        self.record()
        self.seen = self.written  # the newest version the server is known to serve: the caller checks

    @property
    def serial(self) -> int:
        return self.store.snapshot.serial

    def record(self) -> int:
        """After a change was written: load it; returns the serial it must have."""
        events = self.source.scan()
        if events is not None:
            self.store.apply(events)
        self.written += 1
        self.versions.append((self.written, self.store.snapshot))
        return self.serial

    def match(self, query: bytes, response: bytes, udp: bool, low: int, high: int) -> int | None:
        """The newest version in low..high whose engine answer is ``response``, byte for byte."""
        for index, snapshot in reversed(self.versions):
            if low <= index <= high and self.engine.respond(query, snapshot, udp) == response:
                return index
        return None

    def remembers(self, index: int) -> bool:
        return bool(self.versions) and self.versions[0][0] <= index


# ---- over the wire ---------------------------------------------------------

async def ask_udp(sock: socket.socket, wire: bytes) -> bytes | None:
    """One query on a connected UDP socket; answers to earlier, lost queries are
    skipped (by ID and question: an ID alone is reused one time in 65,536)."""
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, wire)
    echo = wire.index(b"\0", 12) + 5  # ID .. end of the question (QNAME, QTYPE, QCLASS), flags aside
    deadline = loop.time() + TIMEOUT
    while (left := deadline - loop.time()) > 0:
        try:
            response = await asyncio.wait_for(loop.sock_recv(sock, 65535), left)
        except asyncio.TimeoutError:
            return None
        if response[:2] == wire[:2] and response[12:echo] == wire[12:echo]:
            return response
    return None


async def ask_tcp(port: int, wire: bytes) -> bytes | None:
    """One query on a new TCP connection (RFC 7766 framing), closed after."""
    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(struct.pack("!H", len(wire)) + wire)
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            return await reader.readexactly(size)
        finally:
            writer.close()
            await writer.wait_closed()

    try:
        return await asyncio.wait_for(exchange(), TIMEOUT)
    except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError):
        return None


def udp_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect(("127.0.0.1", port))
    return sock


# ---- the run ---------------------------------------------------------------

@dataclass
class Sampled:
    sent: int = 0
    answered: int = 0
    lost: int = 0
    wrong: int = 0
    unverifiable: int = 0  # older than the mirror remembers (never expected)
    versions: set = field(default_factory=set)  # zone versions answers matched
    examples: list = field(default_factory=list)  # the first wrong answers, as text


@dataclass
class Result:
    seconds: float
    capacity: float | None
    rate: int
    load: dict
    sampled: Sampled
    changes: dict
    seen: int
    seen_ms: list
    rss_kib: list  # (seconds since start, KiB)
    warmup: float
    fds_start: int
    fds_end: int
    cpu_share: float
    load_average: list
    problems: list = field(default_factory=list)

    @property
    def applied(self) -> int:
        return sum(self.changes.values())

    @property
    def rss_warm(self) -> int:
        after = [kib for at, kib in self.rss_kib if at >= self.warmup]
        return after[0] if after else self.rss_kib[-1][1]

    @property
    def rss_end(self) -> int:
        return self.rss_kib[-1][1]

    @property
    def rss_peak(self) -> int:
        return max(kib for at, kib in self.rss_kib if at >= self.warmup)

    @property
    def rss_growth(self) -> float:
        return self.rss_end / self.rss_warm - 1

    def rss_along(self, points: int = 8) -> str:
        """RSS at even steps after warm-up: whether a growth levels off or keeps on."""
        after = [(at, kib) for at, kib in self.rss_kib if at >= self.warmup]
        picked = [after[round(k * (len(after) - 1) / (points - 1))] for k in range(points)]
        return "  ".join(f"{at:.0f}s {kib / 1024:.1f}" for at, kib in picked)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Soak:
    """One server, its mirror and the churn, run in phases (the capacity run, the
    soak); the sampled answers and the changes add up over the phases."""

    def __init__(self, server: Server, mirror: Mirror, churn: Churn) -> None:
        self.server, self.mirror, self.churn = server, mirror, churn
        self.sampled = Sampled()
        self.seen = 0
        self.seen_ms: list[float] = []
        self.rss: list[tuple[float, int]] = []
        self.problems: list[str] = []
        self.load_average: list[float] = []  # 1-minute load average of the machine, each second
        self.cpu_share = 0.0  # of one core, used by the server in the last phase
        self.random = random.Random(90)
        self.done = False

    async def sample(self, rate: float, tcp: bool) -> None:
        """Ask and check at ``rate`` queries a second until done."""
        sock = None if tcp else udp_socket(self.server.port)
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        try:
            while not self.done:
                name, rdtype = self.random.choice(QUESTIONS)
                query = dns.message.make_query(qname(name), rdtype, use_edns=self.random.choice((None, 0)))
                wire = query.to_wire()
                low = self.mirror.seen
                self.sampled.sent += 1
                response = await (ask_tcp(self.server.port, wire) if tcp else ask_udp(sock, wire))
                self.check(wire, response, not tcp, low, self.mirror.written)
                next_at += 1 / rate
                await asyncio.sleep(max(0.0, next_at - loop.time()))
        finally:
            if sock is not None:
                sock.close()

    def check(self, wire: bytes, response: bytes | None, udp: bool, low: int, high: int) -> None:
        if response is None:
            self.sampled.lost += 1
            return
        self.sampled.answered += 1
        if not self.mirror.remembers(low):
            self.sampled.unverifiable += 1
            return
        index = self.mirror.match(wire, response, udp, low, high)
        if index is not None:
            self.sampled.versions.add(index)
            return
        self.sampled.wrong += 1
        if len(self.sampled.examples) < 5:
            question = dns.message.from_wire(wire).question[0]
            got = dns.message.from_wire(response, ignore_trailing=True)
            self.sampled.examples.append(f"{question} over {'udp' if udp else 'tcp'}, versions {low}..{high}: "
                                         f"got {got.to_text()!r}")

    async def change(self, every: float) -> None:
        """One change every ``every`` seconds, each waited for until the server shows it."""
        probe = udp_socket(self.server.port)
        loop = asyncio.get_running_loop()
        try:
            while not self.done:
                await asyncio.sleep(every)
                before = self.mirror.serial
                self.churn.change()
                serial = self.mirror.record()
                if serial == before:
                    self.problems.append(f"change {self.mirror.written} was not visible in DNS")
                started = loop.time()
                while (got := await self.server_serial(probe)) != serial:
                    if got is not None and (got - serial) % 2**32 < 2**31:
                        self.problems.append(f"server serial {got} ahead of the mirror's {serial}")
                        return
                    if loop.time() - started > SEEN_LIMIT:
                        self.problems.append(f"change {self.mirror.written} not seen after {SEEN_LIMIT:.0f}s")
                        return
                    await asyncio.sleep(0.005)
                self.mirror.seen = self.mirror.written
                self.seen += 1
                self.seen_ms.append((loop.time() - started) * 1000)
        finally:
            probe.close()

    @staticmethod
    async def server_serial(probe: socket.socket) -> int | None:
        response = await ask_udp(probe, dns.message.make_query("clusterset.local.", "SOA").to_wire())
        if response is None:
            return None
        answer = dns.message.from_wire(response).answer
        return answer[0][0].serial if answer else None

    async def monitor(self) -> None:
        started = time.monotonic()
        while not self.done:
            self.rss.append((time.monotonic() - started, rss_kib(self.server.process.pid)))
            self.load_average.append(os.getloadavg()[0])  # the machine is shared: how busy it was
            await asyncio.sleep(1.0)

    async def run(self, seconds: float, rate: int | None, sample_rate: float, change_every: float,
                  queries: Path) -> dict:
        """One phase: dnsperf at ``rate`` (None: as fast as it goes) with the churn,
        the sampler and the monitor beside it; returns dnsperf's summary."""
        self.done, self.rss, self.load_average = False, [], []
        cpu = cpu_seconds(self.server.process.pid)
        limit = ("-Q", str(rate)) if rate else ()
        load = asyncio.create_task(asyncio.to_thread(
            dnsperf, self.server.port, int(seconds), CLIENTS, queries, *limit,
            outstanding=OUTSTANDING if rate else 200))
        workers = [asyncio.create_task(self.sample(sample_rate / 5, tcp=k == 4)) for k in range(5)]
        others = [asyncio.create_task(self.change(change_every)), asyncio.create_task(self.monitor())]
        await asyncio.sleep(seconds)
        self.rss.append((seconds, rss_kib(self.server.process.pid)))  # the end, before the drain
        self.cpu_share = (cpu_seconds(self.server.process.pid) - cpu) / seconds
        self.done = True
        await asyncio.gather(*workers, *others)
        return await load


def settle_fds(pid: int, start: int, limit: float = 12.0) -> int:
    """Open fds once closed TCP connections are gone: their close can lag a little,
    and one the sampler gave up on is closed by the server's idle timeout (10 s)."""
    deadline = time.monotonic() + limit
    while (count := open_fds(pid)) > start and time.monotonic() < deadline:
        time.sleep(0.1)
    return count


def soak(seconds: float, rate: int | None = None, share: float = 0.8, capacity_seconds: int = 10,
         sample_rate: float = 200, change_every: float = 0.25, warmup: float | None = None) -> Result:
    """Run one soak; ``rate`` fixed, or ``share`` of the capacity measured first."""
    warmup = min(120.0, seconds / 4) if warmup is None else warmup
    with tempfile.TemporaryDirectory() as workdir:
        folder = Path(workdir) / "zone"
        folder.mkdir()
        for path in DATA.joinpath("zone").iterdir():
            folder.joinpath(path.name).write_bytes(path.read_bytes())
        churn = Churn(folder)
        churn.seed_files()
        queries = Path(workdir) / "queries.txt"
        queries.write_text("".join(f"{qname(name)} {rdtype}\n" for name, rdtype in QUESTIONS))
        server = Server(folder, "--log-level", "warning").wait_ready()
        try:
            first = asyncio.run(_first_serial(server.port))
            mirror = Mirror(server.args[3:], first)
            if mirror.serial != first:
                raise RuntimeError(f"mirror serial {mirror.serial} is not the server's {first}")
            fds_start = open_fds(server.process.pid)
            run = Soak(server, mirror, churn)
            capacity = None
            if rate is None:
                # Capacity as the soak will find it: the churn and the sampler run beside it.
                capacity = asyncio.run(run.run(capacity_seconds, None, sample_rate, change_every, queries))["qps"]
                rate = int(capacity * share)
            load = asyncio.run(run.run(seconds, rate, sample_rate, change_every, queries))
            fds_end = settle_fds(server.process.pid, fds_start)
        finally:
            code = server.stop()
        if code != 0:
            run.problems.append(f"server exited with {code}:\n{server.output()}")
    return Result(seconds, capacity, rate, load, run.sampled, churn.applied, run.seen, run.seen_ms,
                  run.rss, warmup, fds_start, fds_end, run.cpu_share, run.load_average, run.problems)


async def _first_serial(port: int) -> int:
    probe = udp_socket(port)
    try:
        serial = await Soak.server_serial(probe)
    finally:
        probe.close()
    if serial is None:
        raise RuntimeError("the server did not answer SOA")
    return serial



def report(result: Result) -> str:
    load, s = result.load, result.sampled
    capacity = f"capacity {result.capacity:,.0f} q/s, " if result.capacity else ""
    ms = sorted(result.seen_ms) or [0.0]
    busy = result.load_average or [0.0]
    lines = [
        f"# soak {result.seconds:.0f}s: {capacity}dnsperf -Q {result.rate:,} (-c {CLIENTS})",
        f"load     sent {load['sent']:,.0f}  answered {load['completed']:,.0f}  lost {load['lost']:,.0f}  "
        f"{load['qps']:,.0f} q/s  avg latency {load['latency'] * 1e3:.2f} ms",
        f"sampled  sent {s.sent:,}  answered {s.answered:,}  lost {s.lost:,}  wrong {s.wrong}  "
        f"unverifiable {s.unverifiable}  zone versions matched {len(s.versions):,}",
        f"changes  applied {result.applied:,} ({', '.join(f'{k} {v}' for k, v in result.changes.items())})  "
        f"seen {result.seen:,}  write->serial p50 {statistics.median(ms):.0f} ms  max {ms[-1]:.0f} ms",
        f"RSS      warm-up ({result.warmup:.0f}s) {result.rss_warm / 1024:.1f} MiB  end {result.rss_end / 1024:.1f} MiB"
        f"  peak {result.rss_peak / 1024:.1f} MiB  growth {result.rss_growth * 100:+.2f}%",
        f"RSS      along the way (MiB): {result.rss_along()}",
        f"fds      start {result.fds_start}  end {result.fds_end}",
        f"machine  server CPU {result.cpu_share * 100:.0f}% of a core; load average (1 min) mean "
        f"{statistics.mean(busy):.1f}, max {max(busy):.1f}, on {os.cpu_count()} cores",
    ]
    lines += [f"WRONG    {example}" for example in s.examples]
    lines += [f"PROBLEM  {problem}" for problem in result.problems]
    return "\n".join(lines)


def main() -> int:
    # The mirror loads the test zone's deliberately bad objects and would warn of
    # each, as the server does in its own log: only errors here.
    logging.getLogger("mcsdns").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1800)
    parser.add_argument("--rate", type=int, help="dnsperf queries/s (default: --share of measured capacity)")
    parser.add_argument("--share", type=float, default=0.8)
    parser.add_argument("--sample-rate", type=float, default=200)
    parser.add_argument("--change-every", type=float, default=0.25)
    parser.add_argument("--warmup", type=float)
    args = parser.parse_args()
    result = soak(args.seconds, args.rate, args.share, sample_rate=args.sample_rate,
                  change_every=args.change_every, warmup=args.warmup)
    print(report(result))
    s = result.sampled
    failed = s.wrong or s.unverifiable or result.problems or result.rss_growth >= 0.05
    return 1 if failed or result.fds_end > result.fds_start else 0


if __name__ == "__main__":
    raise SystemExit(main())
