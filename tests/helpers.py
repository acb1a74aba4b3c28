"""What the tests share: a live server in a subprocess, and answers as zone-file text."""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
ZONE = "clusterset.local."


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def ipv6_loopback() -> bool:
    """Whether this machine can bind ::1 (some containers have no IPv6 at all)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def readyz_ok(http_port: int) -> bool:
    """Whether /readyz on that loopback port answers 200 right now."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


class Server:
    """``python -m mcsdns serve`` in a subprocess, the way users and scripts run it."""

    def __init__(
        self, source: str | Path, *extra: str, host: str = "127.0.0.1", port: int | None = None, env: dict | None = None
    ):
        self.host = host
        self.port = port or free_port(host)
        self.http_port = free_port()
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"mcsdns-test-{self.port}.log", "w+")
        listen = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.args = [
            sys.executable, "-m", "mcsdns", "serve", "--source", str(source), "--listen", listen,
            "--http", f"127.0.0.1:{self.http_port}", "--poll-interval", "0.1", *extra,
        ]
        self.process = subprocess.Popen(
            self.args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )

    def wait_ready(self, timeout: float = 15.0) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.output()}")
            if self.http("/readyz")[0] == 200:
                return self
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.output()}")

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return 0, ""

    def query(self, message: dns.message.Message, transport: str = "udp", timeout: float = 3.0) -> dns.message.Message:
        if transport == "udp":
            return dns.query.udp(message, self.host, port=self.port, timeout=timeout, ignore_trailing=True)
        return dns.query.tcp(message, self.host, port=self.port, timeout=timeout)

    def raw_udp(self, payload: bytes, timeout: float = 1.0) -> bytes | None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(payload, (self.host, self.port))
            try:
                return sock.recv(65535)
            except socket.timeout:
                return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text()[-4000:]


def run_cli(*args: str, env: dict | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mcsdns", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


# ---- answers as zone-file text ------------------------------------------------

_SERIAL = re.compile(r"(IN SOA \S+ \S+ )\d+")


def canonical(line: str, origin: str = ZONE) -> str:
    """One RR in zone-file text, names relative to ``origin`` allowed, in one spelling.

    The SOA serial is masked: it starts at the clock; tests of the serial read it.
    """
    owner, ttl, rdclass, rdtype, *rdata = line.split()
    base = dns.name.from_text(origin)
    name = dns.name.from_text(owner, base)
    rd = dns.rdata.from_text(rdclass, rdtype, " ".join(rdata), origin=base, relativize=False)
    return _SERIAL.sub(r"\g<1>0", f"{name.to_text().lower()} {ttl} {rdclass} {rdtype} {rd.to_text().lower()}")


def section_lines(section) -> list[str]:
    lines = []
    for rrset in section:
        for rd in rrset:
            text = f"{rrset.name.to_text().lower()} {rrset.ttl} {dns.rdataclass.to_text(rrset.rdclass)} "
            text += f"{dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text().lower()}"
            lines.append(_SERIAL.sub(r"\g<1>0", text))
    return sorted(lines)


def expected_lines(lines: list[str] | tuple[str, ...], origin: str = ZONE) -> list[str]:
    return sorted(canonical(line, origin) for line in lines)


def ask(port: int, name: str, qtype: str, transport: str, payload: int = 1232) -> dns.message.Message:
    query = dns.message.make_query(name, qtype, use_edns=0, payload=payload)
    send = dns.query.udp if transport == "udp" else dns.query.tcp
    return send(query, "127.0.0.1", port=port, timeout=3)


def shape(response: dns.message.Message) -> tuple:
    return (
        dns.rcode.to_text(response.rcode()),
        bool(response.flags & dns.flags.AA),
        bool(response.flags & dns.flags.TC),
        section_lines(response.answer),
        section_lines(response.authority),
        section_lines(response.additional),
    )


def addresses(response: dns.message.Message) -> list[str]:
    """The A/AAAA addresses of an answer, sorted."""
    return sorted(rd.address for rrset in response.answer for rd in rrset if hasattr(rd, "address"))


def wait_for(condition, timeout: float = 20.0, step: float = 0.05, what: str = ""):
    """Poll ``condition`` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {what or condition}")
        time.sleep(step)


def zone_answers_match(text: str, server: Server) -> int:
    """Ask ``server`` for every RRset of a zone file (but the SOA, whose serial
    starts at each process's clock), alternating UDP and TCP; assert each answer
    holds exactly that RRset. Returns how many were checked."""
    parsed = dns.zone.from_text(text, origin=ZONE, relativize=False, check_origin=True)
    checked = 0
    for name, node in parsed.nodes.items():
        for rdataset in node.rdatasets:
            if rdataset.rdtype == dns.rdatatype.SOA:
                continue
            query = dns.message.make_query(name, rdataset.rdtype, use_edns=0, payload=1232)
            answer = server.query(query, "tcp" if checked % 2 else "udp")
            if answer.flags & dns.flags.TC:
                answer = server.query(query, "tcp")
            found = answer.find_rrset(answer.answer, name, rdataset.rdclass, rdataset.rdtype)
            assert sorted(map(str, found)) == sorted(map(str, rdataset)), f"{name} {rdataset.rdtype!r}"
            assert found.ttl == rdataset.ttl
            checked += 1
    return checked


def write_atomically(path: Path, text: str) -> None:
    """Replace a watched file in one step, as editors and kubectl-style tools do:
    a poll must never read it half written (write_text truncates, then writes)."""
    temporary = path.with_name(path.name + ".tmp")  # a suffix the folder source ignores
    temporary.write_text(text)
    os.replace(temporary, path)


def read_exactly(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from a TCP socket; ConnectionError if it closes first."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> bytes:
    """One DNS message off a TCP stream (RFC 1035 4.2.2: a 2-byte length first)."""
    size = struct.unpack("!H", read_exactly(sock, 2))[0]
    return read_exactly(sock, size)
