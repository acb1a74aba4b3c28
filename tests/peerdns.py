"""NSD and Knot (Debian's ``nsd`` and ``knot`` packages) serving a zone on a loopback port.

Two users: bench/peers.py times them beside mcsdns, and tests/test_ednscomp.py
holds mcsdns to the EDNS checks they pass. Both need the same zone the three
servers answer, so it is written from what mcsdns itself answers
(``zone_text``), and each peer is started by one context manager that waits
until it answers and always stops it (``serving``)::

    zonefile.write_text(zone_text(mcsdns_port, ["web.shop.svc.clusterset.local A"]))
    with serving("NSD", nsd_argv(workdir, zonefile, port), port):
        ...

scripts/setup.sh installs both packages; ``PeerUnavailable`` says which one is
missing. One worker each unless asked (bench/peers.py --workers) and RRL off,
so that figures compare like with like.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import dns.message
import dns.query

ZONE = "clusterset.local."


class PeerUnavailable(Exception):
    """The peer server is not installed here (scripts/setup.sh installs it)."""


def zone_text(port: int, questions: Iterable[str] = ()) -> str:
    """The zone as mcsdns on ``port`` answers it, in master-file form, for the other servers.

    The apex SOA and NS (and the NS target's address) always; then the answer
    and additional records of each "name type" question. mcsdns should be run
    with ``--ns-address`` so the NS target has the address the file needs.
    """
    asked = [f"{ZONE} SOA", f"{ZONE} NS", f"ns.dns.{ZONE} A", *questions]
    lines = [f"$ORIGIN {ZONE}"]
    for item in asked:
        name, qtype = item.split()
        query = dns.message.make_query(name.rstrip(".") + ".", qtype)
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=2)
        for section in (response.answer, response.additional):
            lines += [line for rrset in section for line in rrset.to_text().splitlines()]
    if not any(" IN A " in line and line.startswith(f"ns.dns.{ZONE}") for line in lines):
        lines.append(f"ns.dns.{ZONE} 5 IN A 127.0.0.1")  # NSD and Knot want the in-zone NS target's address
    return "\n".join(dict.fromkeys(lines)) + "\n"


def nsd_argv(workdir: Path, zonefile: Path, port: int, workers: int = 1) -> list[str]:
    if not shutil.which("nsd"):
        raise PeerUnavailable("nsd is not installed (apt-get install nsd)")
    conf = workdir / f"nsd-{port}.conf"
    conf.write_text(f"""server:
    ip-address: 127.0.0.1@{port}
    server-count: {workers}
    zonesdir: "{workdir}"
    pidfile: "{workdir}/nsd-{port}.pid"
    xfrdfile: "{workdir}/xfrd-{port}.state"
    zonelistfile: "{workdir}/zone-{port}.list"
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


def knot_argv(workdir: Path, zonefile: Path, port: int, workers: int = 1) -> list[str]:
    if not shutil.which("knotd"):
        raise PeerUnavailable("knotd is not installed (apt-get install knot)")
    conf = workdir / f"knot-{port}.conf"
    rundir = workdir / f"knot-{port}"
    rundir.mkdir(exist_ok=True)
    conf.write_text(f"""server:
    listen: 127.0.0.1@{port}
    rundir: "{rundir}"
    udp-workers: {workers}
    tcp-workers: {workers}
    background-workers: 1
database:
    storage: "{rundir}/db"
zone:
  - domain: {ZONE}
    file: "{zonefile}"
""")
    return ["knotd", "-c", str(conf)]


# (workdir, zonefile, port[, workers]) -> argv
PEERS: dict[str, Callable[..., list[str]]] = {"NSD": nsd_argv, "Knot": knot_argv}


def answering(port: int, timeout: float = 10.0, name: str = ZONE) -> bool:
    """Whether something on 127.0.0.1:port answers the zone's SOA within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            dns.query.udp(dns.message.make_query(name, "SOA"), "127.0.0.1", port=port, timeout=0.3)
            return True
        except Exception:  # not listening yet, or still loading the zone
            time.sleep(0.1)
    return False


@contextmanager
def serving(name: str, argv: list[str], port: int, timeout: float = 10.0) -> Iterator[subprocess.Popen]:
    """Run ``argv`` until the block ends; raises PeerUnavailable if it never answers."""
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty peer never blocks on it
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        if not answering(port, timeout):
            log.seek(0)
            raise PeerUnavailable(f"{name} did not answer ({process.poll()=}): {log.read()[-500:]}")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def side_by_side(workdir: Path, source: Path, questions: Iterable[str] = ()) -> Iterator[dict[str, int]]:
    """mcsdns on ``source``, and NSD and Knot on the zone it answers: {server: UDP/TCP port}.

    mcsdns runs with ``--ns-address 127.0.0.1`` so that the apex NS target has
    the address the peers' zone file carries: the three serve the same records.
    """
    from tests.helpers import Server, free_port

    server = Server(source, "--log-level", "warning", "--ns-address", "127.0.0.1").wait_ready()
    try:
        zonefile = workdir / "clusterset.local.zone"
        zonefile.write_text(zone_text(server.port, questions))
        with ExitStack() as stack:
            ports = {"mcsdns": server.port}
            for name, make in PEERS.items():
                port = free_port()
                stack.enter_context(serving(name, make(workdir, zonefile, port), port))
                ports[name] = port
            yield ports
    finally:
        server.stop()
