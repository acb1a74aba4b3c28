"""The apex NS names a server that exists: with --ns-address (the manifests pass
the pod IP), ns.dns.<zone> answers A/AAAA and an NS answer carries them as glue,
so a secondary or a zone validator can reach it. Without the flag that name has
no records (NXDOMAIN): the zone is meant to be forwarded to, and a forwarder
never reads NS."""

from __future__ import annotations

import dns.message
import dns.rcode
import pytest

from mcsdns.engine.respond import Responder
from mcsdns.zone.settings import ZoneSettings
from tests.conftest import EngineChannel, load_store
from tests.helpers import DATA, Server, expected_lines, run_cli, section_lines
from tests.test_answers import NEG

NS = "@ 5 IN NS ns.dns"
GLUE = ("ns.dns 5 IN A 10.0.0.53", "ns.dns 5 IN AAAA fd00::53")

# (qname, qtype, rcode, answer, additional)
WITH_FLAG = [
    ("clusterset.local.", "NS", "NOERROR", (NS,), GLUE),
    ("ns.dns.clusterset.local.", "A", "NOERROR", GLUE[:1], ()),
    ("ns.dns.clusterset.local.", "AAAA", "NOERROR", GLUE[1:], ()),
    ("NS.DNS.clusterset.local.", "A", "NOERROR", GLUE[:1], ()),
    ("ns.dns.clusterset.local.", "TXT", "NOERROR", (), ()),  # NODATA
    ("dns.clusterset.local.", "A", "NOERROR", (), ()),  # empty non-terminal (RFC 8020)
    ("x.ns.dns.clusterset.local.", "A", "NXDOMAIN", (), ()),
]
WITHOUT_FLAG = [
    ("clusterset.local.", "NS", "NOERROR", (NS,), ()),
    ("ns.dns.clusterset.local.", "A", "NXDOMAIN", (), ()),
]


@pytest.fixture(scope="module")
def served():
    server = Server(DATA / "zone", env={"MCSDNS_NS_ADDRESS": "10.0.0.53, fd00::53"}).wait_ready()
    yield server
    server.stop()


def _check(target, transport, qname, qtype, rcode, answer, additional):
    response = target.query(dns.message.make_query(qname, qtype, use_edns=0, payload=1232), transport)
    assert dns.rcode.to_text(response.rcode()) == rcode
    assert section_lines(response.answer) == expected_lines(answer)
    assert section_lines(response.additional) == expected_lines(additional)
    if not answer:
        assert section_lines(response.authority) == expected_lines((NEG,))


@pytest.mark.parametrize("transport", ["engine", "udp", "tcp"])
@pytest.mark.parametrize("case", WITH_FLAG, ids=lambda c: f"{c[0]}/{c[1]}")
def test_nameserver_has_an_address(served, transport, case):
    if transport == "engine":
        store = load_store(DATA / "zone", ZoneSettings(ns_addresses=("10.0.0.53", "fd00::53")))
        target, transport = EngineChannel(store, Responder()), "udp"
    else:
        target = served
    _check(target, transport, *case)


@pytest.mark.parametrize("case", WITHOUT_FLAG, ids=lambda c: f"{c[0]}/{c[1]}")
def test_without_the_flag(engine, case):
    _check(engine, "udp", *case)


def test_soa_mname_is_the_nameserver(engine):
    response = engine.query(dns.message.make_query("clusterset.local.", "SOA"))
    assert response.answer[0][0].mname.to_text() == "ns.dns.clusterset.local."


@pytest.mark.parametrize("value", ["nope", "10.0.0.1,300.1.1.1"])
def test_bad_ns_address_is_one_line(value):
    result = run_cli("serve", "--source", str(DATA / "zone"), "--ns-address", value)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--ns-address" in result.stderr and "not an IP address" in result.stderr
