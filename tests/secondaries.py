"""NSD and Knot (the Debian packages) as secondaries of a running mcsdns.

Each runs in the foreground from a temporary config and zone directory,
listens on a loopback port of its own, takes NOTIFY from mcsdns and transfers
the zone from it::

    with Nsd(workdir, primary=("127.0.0.1", port)) as nsd:
        nsd.wait_serial(zone, serial)
        nsd.query(message)

Nothing here needs root: neither server is told to change user or chroot,
and every file they write is under the work directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query

from tests.helpers import free_port

Address = tuple[str, int]


class SecondaryFailed(AssertionError):
    """A secondary did not start or did not follow; the text ends with its log."""


class Secondary:
    name = "secondary"
    binary = ""

    def __init__(
        self, workdir: Path, primary: Address, zone: str, key: tuple[str, str, str] | None = None,
        source: str = "127.0.0.1",
    ):
        self.dir = workdir / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.primary, self.zone, self.key = primary, zone.rstrip("."), key  # key: (name, algorithm, base64)
        self.source = source  # the address it transfers from: tells the secondaries apart in the primary's log
        self.port = free_port()
        self.logfile = self.dir / f"{self.name}.log"
        self.process: subprocess.Popen | None = None

    @classmethod
    def available(cls) -> bool:
        return shutil.which(cls.binary) is not None or Path("/usr/sbin", cls.binary).exists()

    def command(self) -> list[str]:
        raise NotImplementedError

    def __enter__(self) -> "Secondary":
        output = open(self.dir / "stdout.log", "w")
        self.process = subprocess.Popen(
            self.command(), cwd=self.dir, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        output.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SecondaryFailed(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            try:
                self.query(dns.message.make_query("version.bind.", "TXT", "CH"), timeout=0.3)
                return self
            except Exception:
                time.sleep(0.1)
        raise SecondaryFailed(f"{self.name} did not answer on port {self.port}:\n{self.log()}")

    def __exit__(self, *_) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def query(self, message: dns.message.Message, timeout: float = 2.0) -> dns.message.Message:
        return dns.query.udp(message, "127.0.0.1", port=self.port, timeout=timeout)

    def serial(self) -> int | None:
        try:
            response = self.query(dns.message.make_query(self.zone + ".", "SOA"), timeout=0.5)
        except Exception:
            return None
        return response.answer[0][0].serial if response.answer else None

    def wait_serial(self, serial: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.serial() == serial:
                return
            time.sleep(0.1)
        raise SecondaryFailed(f"{self.name} has serial {self.serial()}, not {serial}, after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        text = ""
        for path in (self.logfile, self.dir / "stdout.log"):
            if path.exists():
                text += path.read_text(errors="replace")
        return text[-6000:]


class Nsd(Secondary):
    name = "nsd"
    binary = "nsd"

    def command(self) -> list[str]:
        d, (host, port) = self.dir, self.primary
        key = f"\nkey:\n  name: {self.key[0]}\n  algorithm: {self.key[1]}\n  secret: \"{self.key[2]}\"\n" if self.key else ""
        use = self.key[0] if self.key else "NOKEY"
        (d / "nsd.conf").write_text(f"""
server:
  ip-address: 127.0.0.1@{self.port}
  port: {self.port}
  username: ""
  chroot: ""
  zonesdir: "{d}"
  database: ""
  pidfile: "{d}/nsd.pid"
  xfrdfile: "{d}/xfrd.state"
  xfrdir: "{d}"
  zonelistfile: "{d}/zone.list"
  logfile: "{self.logfile}"
  verbosity: 2
  server-count: 1
  xfrd-reload-timeout: 0
remote-control:
  control-enable: no
{key}
zone:
  name: {self.zone}
  zonefile: "{d}/{self.zone}.zone"
  allow-notify: {host} {use}
  request-xfr: {host}@{port} {use}
  outgoing-interface: {self.source}
""")
        return ["nsd", "-d", "-c", str(d / "nsd.conf")]

    def transfers(self) -> str:
        return self.log()


class Knot(Secondary):
    name = "knot"
    binary = "knotd"

    def command(self) -> list[str]:
        d, (host, port) = self.dir, self.primary
        (d / "db").mkdir(exist_ok=True)
        key = f"key:\n  - id: {self.key[0]}\n    algorithm: {self.key[1]}\n    secret: {self.key[2]}\n" if self.key else ""
        use = f"\n    key: {self.key[0]}" if self.key else ""
        (d / "knot.conf").write_text(f"""
server:
  rundir: "{d}"
  listen: 127.0.0.1@{self.port}
log:
  - target: "{self.logfile}"
    any: info
database:
  storage: "{d}/db"
control:
  listen: "{d}/knot.sock"
{key}
remote:
  - id: primary
    address: {host}@{port}{use}
    via: {self.source}
acl:
  - id: from_primary
    address: {host}
    action: notify{use}
zone:
  - domain: {self.zone}
    storage: "{d}"
    file: "{self.zone}.zone"
    master: primary
    acl: from_primary
    zonefile-sync: -1
    zonefile-load: none
    journal-content: changes
    semantic-checks: off
""")
        return ["knotd", "-c", str(d / "knot.conf")]
