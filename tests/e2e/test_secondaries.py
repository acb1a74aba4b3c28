"""Real secondaries follow mcsdns: NSD and Knot transfer the zone (AXFR first),
then, on each NOTIFY after an edit of the YAML folder, take only the change
(IXFR), with and without TSIG; at every step they answer a table of queries
exactly as mcsdns does."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.zone
import pytest

from tests.helpers import DATA, ZONE, Server, free_port
from tests.secondaries import Knot, Nsd

KEY = ("xfr-key", "hmac-sha256", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
NSD_FROM, KNOT_FROM, TEST_FROM = "127.0.0.2", "127.0.0.3", "127.0.0.4"  # each transfers from its own address
IMPORT = """
apiVersion: multicluster.x-k8s.io/v1beta1
kind: ServiceImport
metadata: {name: %s, namespace: shop}
spec: {type: ClusterSetIP, ips: ["%s"], ports: [{name: http, protocol: TCP, port: 80}]}
"""
# Asked at every step besides every name in the zone: negative answers too.
TABLE = [
    (ZONE, "SOA"), (ZONE, "NS"), ("dns-version." + ZONE, "TXT"), ("svc." + ZONE, "A"), ("shop.svc." + ZONE, "A"),
    ("web.shop.svc." + ZONE, "A"), ("web.shop.svc." + ZONE, "AAAA"), ("fresh.shop.svc." + ZONE, "A"),
    ("fresh.shop.svc." + ZONE, "SRV"), ("_http._tcp.fresh.shop.svc." + ZONE, "SRV"), ("mid.data.svc." + ZONE, "A"),
    ("10-8-0-1.east.mid.data.svc." + ZONE, "A"), ("nothing.shop.svc." + ZONE, "A"), ("db.shop.svc." + ZONE, "SRV"),
]


def edits(folder):
    """(what, change): each one visible in DNS, so each moves the serial."""
    yield "a service added", lambda: (folder / "70-fresh.yaml").write_text(IMPORT % ("fresh", "10.70.0.1"))
    yield "an address changed", lambda: (folder / "70-fresh.yaml").write_text(IMPORT % ("fresh", "10.70.0.2"))
    yield "a headless service deleted", lambda: (folder / "42-mid.yaml").unlink()
    text = (folder / "10-examples.yaml").read_text()
    yield "an existing service edited", lambda: (folder / "10-examples.yaml").write_text(text.replace("10.42.0.10", "10.42.0.11"))


def answers(port: int, name: str, qtype: str) -> tuple:
    response = dns.query.udp(dns.message.make_query(name, qtype), "127.0.0.1", port=port, timeout=2)
    lines = sorted(f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {rd}" for rrset in response.answer for rd in rrset)
    return dns.rcode.to_text(response.rcode()), lines


def questions(server: Server, signed: bool) -> list[tuple[str, str]]:
    """The table, and every (owner, type) the zone holds now (from an AXFR)."""
    tsig = {"keyring": dns.tsigkeyring.from_text({KEY[0]: (KEY[1], KEY[2])}), "keyname": KEY[0]} if signed else {}
    messages = dns.query.xfr("127.0.0.1", ZONE, port=server.port, source=TEST_FROM, relativize=False, **tsig)
    zone = dns.zone.from_xfr(messages, relativize=False)
    held = [(str(name), dns.rdatatype.to_text(rdataset.rdtype)) for name, rdataset in zone.iterate_rdatasets()]
    return TABLE + held + [(name, "A") for name, _ in held]


def same_answers(server: Server, secondaries, signed: bool = False) -> None:
    for name, qtype in questions(server, signed):
        ours = answers(server.port, name, qtype)
        for secondary in secondaries:
            assert answers(secondary.port, name, qtype) == ours, (secondary.name, name, qtype)


def serial(server: Server) -> int:
    return server.query(dns.message.make_query(ZONE, "SOA")).answer[0][0].serial


def transfers(server: Server, source: str) -> list[str]:
    """The kinds of transfer mcsdns logged to one secondary, in order."""
    return re.findall(rf"transfer to {re.escape(source)}: (\S+) ", Path(server.log.name).read_text())


@pytest.mark.parametrize("signed", [False, True], ids=["plain", "tsig"])
def test_nsd_and_knot_follow_by_ixfr(tmp_path, signed):
    if not (Nsd.available() and Knot.available()):
        pytest.fail("nsd and knotd must be installed (scripts/setup.sh installs the nsd and knot packages)")
    folder = tmp_path / "zone"
    shutil.copytree(DATA / "zone", folder)
    port = free_port()
    key = KEY if signed else None
    nsd = Nsd(tmp_path, ("127.0.0.1", port), ZONE, key, NSD_FROM)
    knot = Knot(tmp_path, ("127.0.0.1", port), ZONE, key, KNOT_FROM)
    flags = ["--transfer-allow", f"{NSD_FROM},{KNOT_FROM},{TEST_FROM}", "--notify", f"127.0.0.1:{nsd.port},127.0.0.1:{knot.port}",
             "--ns-address", "127.0.0.1"]
    if signed:
        (tmp_path / "keys").write_text(" ".join(KEY) + "\n")
        flags += ["--tsig-key-file", str(tmp_path / "keys"), "--transfer-require-tsig"]
    server = Server(folder, *flags, port=port).wait_ready()
    try:
        with nsd, knot:
            for secondary in (nsd, knot):
                secondary.wait_serial(serial(server))
            same_answers(server, (nsd, knot), signed)
            for what, change in edits(folder):
                before = serial(server)
                change()
                deadline = time.monotonic() + 5
                while serial(server) == before and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert serial(server) != before, what
                for secondary in (nsd, knot):
                    secondary.wait_serial(serial(server))  # by NOTIFY: the refresh timer is 2 hours
                same_answers(server, (nsd, knot), signed)
            steps = len(list(edits(folder)))
            for source, secondary in ((NSD_FROM, nsd), (KNOT_FROM, knot)):
                kinds = transfers(server, source)
                # the first transfer is the whole zone, then one IXFR per edit
                assert kinds[0] == "axfr" and kinds[1:].count("ixfr") == steps and "ixfr-full" not in kinds, (source, kinds)
            assert "fallback to AXFR" not in knot.log() and knot.log().count("IXFR, incoming") >= 2 * steps
            if signed:
                assert "TSIG verified with key xfr-key" in nsd.log()
    finally:
        server.stop()


def test_churn_is_coalesced_into_few_transfers(tmp_path):
    """Ten edits in about a second: the secondaries end at the last serial, with
    far fewer transfers than edits (NOTIFY waits a second and sends once)."""
    folder = tmp_path / "zone"
    shutil.copytree(DATA / "zone", folder)
    port = free_port()
    nsd = Nsd(tmp_path, ("127.0.0.1", port), ZONE, None, NSD_FROM)
    server = Server(folder, "--transfer-allow", f"{NSD_FROM},{TEST_FROM}", "--notify", f"127.0.0.1:{nsd.port}", port=port).wait_ready()
    try:
        with nsd:
            nsd.wait_serial(serial(server))
            for number in range(10):
                (folder / "70-fresh.yaml").write_text(IMPORT % ("fresh", f"10.70.0.{number + 1}"))
                time.sleep(0.12)
            time.sleep(0.3)
            nsd.wait_serial(serial(server))
            same_answers(server, (nsd,))
            kinds = transfers(server, NSD_FROM)
            assert 2 <= len(kinds) <= 4 and set(kinds[1:]) == {"ixfr"}, kinds
    finally:
        server.stop()
