"""PTR names for the addresses we publish, several zones at once, and the
reverse zones we may be made the authority for: a table of questions asked of
live servers over UDP and TCP, and the incremental reverse index held equal to
one built from scratch."""

from __future__ import annotations

import random

import dns.flags
import dns.message
import dns.rcode
import dns.reversename
import pytest

from mcsdns.model.events import Delete, Upsert
from mcsdns.model.records import EndpointSlice, Kind
from mcsdns.zone.settings import ZoneSettings
from mcsdns.zone.store import ZoneStore
from tests.conftest import load_store
from tests.helpers import DATA, ROOT, Server, run_cli, section_lines, wait_for

EXAMPLES = ROOT / "examples" / "clusterset.yaml"
SOA_RDATA = "ns.dns.clusterset.local. hostmaster.clusterset.local. 0 7200 1800 86400 5"


def ptr(ip: str) -> str:
    return dns.reversename.from_address(ip).to_text()


def soa_at(owner: str) -> str:
    return f"{owner} 5 IN SOA {SOA_RDATA}"


def ptrs(ip: str, *names: str) -> list[str]:
    return [f"{ptr(ip)} 5 IN PTR {name}" for name in names]


@pytest.fixture(scope="module")
def servers():
    plain = Server(EXAMPLES).wait_ready()
    authority = Server(
        EXAMPLES, "--zone", "clusterset.local,mcs.example.com", "--reverse-zone", "10.0.0.0/8,fd00::/8",
        "--ns-address", "10.0.0.53",
    ).wait_ready()
    off = Server(EXAMPLES, "--ptr", "false").wait_ready()
    yield {"plain": plain, "authority": authority, "off": off}
    for server in (plain, authority, off):
        server.stop()


# (server, name, type, rcode, answer, authority)
CASES = [
    ("plain", ptr("10.42.0.10"), "PTR", "NOERROR", ptrs("10.42.0.10", "web.shop.svc.clusterset.local."), []),
    ("plain", ptr("10.1.0.11"), "PTR", "NOERROR", ptrs("10.1.0.11", "db-0.east.db.data.svc.clusterset.local."), []),
    ("plain", ptr("10.2.0.22"), "PTR", "NOERROR",
     ptrs("10.2.0.22", "10-2-0-22.west.db.data.svc.clusterset.local."), []),
    ("plain", ptr("fd00:2::21"), "PTR", "NOERROR", ptrs("fd00:2::21", "db-0.west.db.data.svc.clusterset.local."), []),
    ("plain", ptr("fd00:42::20"), "ANY", "NOERROR", ptrs("fd00:42::20", "api.shop.svc.clusterset.local."), []),
    ("plain", ptr("10.42.0.10"), "A", "NOERROR", [], [soa_at(ptr("10.42.0.10"))]),  # an owned name is its own apex
    ("plain", ptr("10.1.0.13"), "PTR", "REFUSED", [], []),  # a not-ready endpoint is not published
    ("plain", ptr("192.0.2.1"), "PTR", "REFUSED", [], []),
    ("plain", "42.10.in-addr.arpa.", "PTR", "REFUSED", [], []),
    ("authority", ptr("10.42.0.10"), "PTR", "NOERROR",
     ptrs("10.42.0.10", "web.shop.svc.clusterset.local.", "web.shop.svc.mcs.example.com."), []),
    ("authority", ptr("10.0.0.53"), "PTR", "NOERROR",
     ptrs("10.0.0.53", "ns.dns.clusterset.local.", "ns.dns.mcs.example.com."), []),
    ("authority", ptr("10.99.0.1"), "PTR", "NXDOMAIN", [], [soa_at("10.in-addr.arpa.")]),
    ("authority", ptr("fd00:99::1"), "PTR", "NXDOMAIN", [], [soa_at("d.f.ip6.arpa.")]),
    ("authority", "42.10.in-addr.arpa.", "PTR", "NOERROR", [], [soa_at("10.in-addr.arpa.")]),  # RFC 8020
    ("authority", "10.in-addr.arpa.", "SOA", "NOERROR", [soa_at("10.in-addr.arpa.")], []),
    ("authority", "10.in-addr.arpa.", "NS", "NOERROR", ["10.in-addr.arpa. 5 IN NS ns.dns.clusterset.local."], []),
    ("authority", ptr("192.0.2.1"), "PTR", "REFUSED", [], []),  # outside every reverse zone we hold
    ("authority", "web.shop.svc.mcs.example.com.", "A", "NOERROR", ["web.shop.svc.mcs.example.com. 5 IN A 10.42.0.10"], []),
    ("authority", "mcs.example.com.", "SOA", "NOERROR",
     ["mcs.example.com. 5 IN SOA ns.dns.mcs.example.com. hostmaster.mcs.example.com. 0 7200 1800 86400 5"], []),
    ("authority", "nope.shop.svc.mcs.example.com.", "A", "NXDOMAIN", [],
     ["mcs.example.com. 5 IN SOA ns.dns.mcs.example.com. hostmaster.mcs.example.com. 0 7200 1800 86400 5"]),
    ("off", ptr("10.42.0.10"), "PTR", "REFUSED", [], []),
]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}:{c[1]}/{c[2]}" for c in CASES])
def test_reverse_and_zones(servers, case, transport):
    which, name, qtype, rcode, answer, authority = case
    response = servers[which].query(dns.message.make_query(name, qtype, use_edns=0), transport)
    assert dns.rcode.to_text(response.rcode()) == rcode
    assert bool(response.flags & dns.flags.AA) == (rcode != "REFUSED")
    assert section_lines(response.answer) == sorted(answer)
    assert section_lines(response.authority) == sorted(authority)


def test_ptr_follows_readiness(zone_copy):
    """An endpoint that stops being ready takes its PTR with it, at once."""
    server = Server(zone_copy).wait_ready()
    try:
        name = ptr("10.1.0.11")
        ask = lambda: server.query(dns.message.make_query(name, "PTR"))  # noqa: E731
        assert dns.rcode.to_text(ask().rcode()) == "NOERROR"
        path = zone_copy / "10-examples.yaml"
        text = path.read_text()
        assert "10.1.0.11" in text
        path.write_text(text.replace("10.1.0.11", "10.1.0.111"))
        wait_for(lambda: ask().rcode() == dns.rcode.REFUSED, what="the old address loses its PTR")
        fresh = server.query(dns.message.make_query(ptr("10.1.0.111"), "PTR"))
        assert [rd.to_text() for rrset in fresh.answer for rd in rrset] == ["db-0.east.db.data.svc.clusterset.local."]
    finally:
        server.stop()


def test_incremental_index_equals_a_fresh_build():
    """Random deletes, re-adds and readiness flips, applied one by one: the
    reverse index always equals the one a new store builds from the same objects."""
    settings = ZoneSettings(ns_addresses=("10.0.0.53",))
    store = load_store(DATA / "zone", settings)
    objects = store.objects()
    rng = random.Random(1645)
    for step in range(60):
        record = rng.choice(objects)
        roll = rng.random()
        if roll < 0.3:
            event = Delete(record.kind, record.namespace, record.name)
        elif roll < 0.6 and isinstance(record, EndpointSlice) and record.endpoints:
            flipped = tuple(type(e)(e.addresses, e.hostname, not e.ready) for e in record.endpoints)
            event = Upsert(type(record)(**{**{f: getattr(record, f) for f in record.__slots__}, "endpoints": flipped}))
        else:
            event = Upsert(record)
        store.apply([event])
        fresh = ZoneStore(settings, 1, frozenset(Kind))
        fresh.apply([Upsert(item) for item in store.objects()])
        assert dict(store.snapshot.reverse.items()) == dict(fresh.snapshot.reverse.items()), f"step {step}: {event}"
        ptrs = lambda snapshot: {a: snapshot.owners(a) for a in snapshot.reverse.keys()}  # noqa: E731
        assert ptrs(store.snapshot) == ptrs(fresh.snapshot), f"step {step}: {event}"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--reverse-zone", "10.0.0.0/12"], "octet"),
        (["--reverse-zone", "fc00::/6"], "nibble"),
        (["--reverse-zone", "example.com"], "is not a reverse zone"),
        (["--reverse-zone", "300.in-addr.arpa"], "is not a reverse zone"),
        (["--zone", "a.example,a.example"], "names a zone twice"),
        (["--ptr", "maybe"], "--ptr"),
    ],
)
def test_bad_reverse_settings_are_one_line(args, message):
    done = run_cli("serve", "--source", str(EXAMPLES), *args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
