"""The MCS DNS schema as a table: one row a question, the whole expected response
in zone-file text (names relative to clusterset.local.), run against the engine
alone and against the live server over UDP and over TCP.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.flags
import dns.message
import dns.rcode
import pytest

from tests.helpers import expected_lines, section_lines

NEG = "@ 5 IN SOA ns.dns hostmaster 0 7200 1800 86400 5"  # RFC 2308: min(SOA TTL, minimum)


@dataclass(frozen=True)
class Case:
    qname: str
    qtype: str
    rcode: str = "NOERROR"
    answer: tuple[str, ...] = ()
    authority: tuple[str, ...] = ()
    additional: tuple[str, ...] = ()
    qclass: str = "IN"

    def __str__(self) -> str:
        return f"{self.qname}/{self.qtype}"


def nodata(qname: str, qtype: str) -> Case:
    return Case(qname, qtype, "NOERROR", authority=(NEG,))


def nxdomain(qname: str, qtype: str = "A") -> Case:
    return Case(qname, qtype, "NXDOMAIN", authority=(NEG,))


def refused(qname: str, qtype: str = "A", qclass: str = "IN") -> Case:
    return Case(qname, qtype, "REFUSED", qclass=qclass)


WEB_A = "web.shop.svc 5 IN A 10.42.0.10"
DB_EAST = ("db-0.east.db.data.svc 5 IN A 10.1.0.11", "db-1.east.db.data.svc 5 IN A 10.1.0.12")
DB_WEST = ("db-0.west.db.data.svc 5 IN A 10.2.0.21", "db-0.west.db.data.svc 5 IN AAAA fd00:2::21",
           "10-2-0-22.west.db.data.svc 5 IN A 10.2.0.22")

MCS_WEB = "web.mcs.svc 5 IN A 10.96.30.7"
PG_IPS = ("10.244.2.11", "10.244.2.12")
PG = tuple(f"{ip.replace('.', '-')}.cluster1.pg.mcs.svc 5 IN A {ip}" for ip in PG_IPS)
AWS_NODES = ("nodes-0.c1.nodes.aws.svc 5 IN A 10.10.1.31", "nodes-0.c2.nodes.aws.svc 5 IN A 10.20.1.31")
LH_CACHE = ("redis-0.east.cache.lh.svc 5 IN A 10.1.5.10", "redis-1.east.cache.lh.svc 5 IN A 10.1.5.11")
LEDGER = "ledger.kar.svc 5 IN A 10.96.33.3"

CASES = [
    # apex and schema version (MCS DNS spec 2.2)
    Case("clusterset.local.", "SOA", answer=(NEG,)),
    Case("clusterset.local.", "NS", answer=("@ 5 IN NS ns.dns",)),
    Case("dns-version.clusterset.local.", "TXT", answer=('dns-version 5 IN TXT "1.0.0"',)),
    nodata("dns-version.clusterset.local.", "A"),
    nodata("clusterset.local.", "A"),
    # empty non-terminals are NODATA, never NXDOMAIN (RFC 8020)
    nodata("svc.clusterset.local.", "A"),
    nodata("shop.svc.clusterset.local.", "A"),
    nodata("data.svc.clusterset.local.", "SRV"),
    nxdomain("nowhere.svc.clusterset.local."),
    nxdomain("nope.shop.svc.clusterset.local."),
    nxdomain("other.clusterset.local."),
    # ClusterSetIP (2.3)
    Case("web.shop.svc.clusterset.local.", "A", answer=(WEB_A,)),
    nodata("web.shop.svc.clusterset.local.", "AAAA"),
    nodata("web.shop.svc.clusterset.local.", "TXT"),
    Case("api.shop.svc.clusterset.local.", "A", answer=("api.shop.svc 5 IN A 10.42.0.20",)),
    Case("api.shop.svc.clusterset.local.", "AAAA", answer=("api.shop.svc 5 IN AAAA fd00:42::20",)),
    Case("_http._tcp.web.shop.svc.clusterset.local.", "SRV",
         answer=("_http._tcp.web.shop.svc 5 IN SRV 0 100 80 web.shop.svc",), additional=(WEB_A,)),
    Case("_dns._udp.api.shop.svc.clusterset.local.", "SRV",
         answer=("_dns._udp.api.shop.svc 5 IN SRV 0 100 53 api.shop.svc",),
         additional=("api.shop.svc 5 IN A 10.42.0.20", "api.shop.svc 5 IN AAAA fd00:42::20")),
    nxdomain("_dns._tcp.api.shop.svc.clusterset.local.", "SRV"),
    nodata("_tcp.web.shop.svc.clusterset.local.", "SRV"),
    nodata("_http._tcp.web.shop.svc.clusterset.local.", "A"),
    Case("web.shop.svc.clusterset.local.", "SRV",  # bare name: every port, unnamed included
         answer=("web.shop.svc 5 IN SRV 0 50 80 web.shop.svc", "web.shop.svc 5 IN SRV 0 50 9090 web.shop.svc"),
         additional=(WEB_A,)),
    nxdomain("east.web.shop.svc.clusterset.local."),  # 2.3.4: no per-cluster name for ClusterSetIP
    nxdomain("pending.shop.svc.clusterset.local."),  # no IP and no port yet: no records, no name
    # producers that leave spec.ips empty
    Case("orders.shop.svc.clusterset.local.", "A", answer=("orders.shop.svc 5 IN A 10.96.5.5",)),
    Case("cart.shop.svc.clusterset.local.", "A",
         answer=("cart.shop.svc 5 IN A 10.101.0.7", "cart.shop.svc 5 IN A 10.102.0.7")),
    # Headless (2.4): ready endpoints of every cluster
    Case("db.data.svc.clusterset.local.", "A",
         answer=tuple(line.replace(line.split()[0], "db.data.svc") for line in DB_EAST + DB_WEST if " A " in line)),
    Case("db.data.svc.clusterset.local.", "AAAA", answer=("db.data.svc 5 IN AAAA fd00:2::21",)),
    Case("db-0.east.db.data.svc.clusterset.local.", "A", answer=(DB_EAST[0],)),
    Case("db-0.west.db.data.svc.clusterset.local.", "AAAA", answer=(DB_WEST[1],)),
    Case("10-2-0-22.west.db.data.svc.clusterset.local.", "A", answer=(DB_WEST[2],)),
    nxdomain("db-2.east.db.data.svc.clusterset.local."),  # not ready
    nodata("east.db.data.svc.clusterset.local.", "A"),  # reserved, and an empty non-terminal
    nxdomain("north.db.data.svc.clusterset.local."),
    Case("_postgres._tcp.db.data.svc.clusterset.local.", "SRV",
         answer=tuple(f"_postgres._tcp.db.data.svc 5 IN SRV 0 25 5432 {host}.db.data.svc"
                      for host in ("db-0.east", "db-1.east", "db-0.west", "10-2-0-22.west")),
         additional=DB_EAST + DB_WEST),
    Case("db.data.svc.clusterset.local.", "SRV",
         answer=tuple(f"db.data.svc 5 IN SRV 0 25 5432 {host}.db.data.svc"
                      for host in ("db-0.east", "db-1.east", "db-0.west", "10-2-0-22.west")),
         additional=DB_EAST + DB_WEST),
    nxdomain("empty.data.svc.clusterset.local."),  # no ready endpoint
    # a cluster id of two labels
    Case("redis-0.c1.prod.cache.data.svc.clusterset.local.", "A",
         answer=("redis-0.c1.prod.cache.data.svc 5 IN A 10.3.0.5",)),
    nodata("c1.prod.cache.data.svc.clusterset.local.", "A"),
    nodata("prod.cache.data.svc.clusterset.local.", "A"),
    # What each producer really writes (tests/data/zone/20-, 50- to 53-*.yaml cite the code).
    # mcs-api reference / Cilium: spec.ips from the derived Service; slices carry target ports.
    Case("web.mcs.svc.clusterset.local.", "A", answer=(MCS_WEB,)),
    Case("_http._tcp.web.mcs.svc.clusterset.local.", "SRV",
         answer=("_http._tcp.web.mcs.svc 5 IN SRV 0 100 80 web.mcs.svc",), additional=(MCS_WEB,)),
    nodata("fresh.mcs.svc.clusterset.local.", "A"),  # IP not written yet: pod IPs never stand in
    nodata("_http._tcp.fresh.mcs.svc.clusterset.local.", "SRV"),  # an SRV target must resolve
    nodata("fresh.mcs.svc.clusterset.local.", "SRV"),
    # headless: each endpoint with its own slice's port (import 5432; a rollout numbers it two ways)
    Case("pg.mcs.svc.clusterset.local.", "A", answer=tuple(f"pg.mcs.svc 5 IN A {ip}" for ip in PG_IPS)),
    Case("_pg._tcp.pg.mcs.svc.clusterset.local.", "SRV",
         answer=("_pg._tcp.pg.mcs.svc 5 IN SRV 0 50 15432 10-244-2-11.cluster1.pg.mcs.svc",
                 "_pg._tcp.pg.mcs.svc 5 IN SRV 0 50 15433 10-244-2-12.cluster1.pg.mcs.svc"), additional=PG),
    Case("pg.mcs.svc.clusterset.local.", "SRV",
         answer=("pg.mcs.svc 5 IN SRV 0 50 15432 10-244-2-11.cluster1.pg.mcs.svc",
                 "pg.mcs.svc 5 IN SRV 0 50 15433 10-244-2-12.cluster1.pg.mcs.svc"), additional=PG),
    # AWS: one ClusterIP per cluster in spec.ips; a headless import with ips [None, None] and an unnamed port
    Case("api.aws.svc.clusterset.local.", "A",
         answer=("api.aws.svc 5 IN A 10.96.31.1", "api.aws.svc 5 IN A 10.96.31.2")),
    Case("nodes.aws.svc.clusterset.local.", "A",
         answer=("nodes.aws.svc 5 IN A 10.10.1.31", "nodes.aws.svc 5 IN A 10.20.1.31")),
    Case("nodes.aws.svc.clusterset.local.", "SRV",
         answer=("nodes.aws.svc 5 IN SRV 0 50 7000 nodes-0.c1.nodes.aws.svc",
                 "nodes.aws.svc 5 IN SRV 0 50 7001 nodes-0.c2.nodes.aws.svc"), additional=AWS_NODES),
    Case("nodes-0.c2.nodes.aws.svc.clusterset.local.", "A", answer=(AWS_NODES[1],)),
    # lighthouse: per-cluster service IPs; headless import with no ports; bookkeeping objects skipped
    Case("_http._tcp.cart.shop.svc.clusterset.local.", "SRV",
         answer=("_http._tcp.cart.shop.svc 5 IN SRV 0 100 80 cart.shop.svc",),
         additional=("cart.shop.svc 5 IN A 10.101.0.7", "cart.shop.svc 5 IN A 10.102.0.7")),
    Case("cache.lh.svc.clusterset.local.", "A",
         answer=("cache.lh.svc 5 IN A 10.1.5.10", "cache.lh.svc 5 IN A 10.1.5.11")),
    Case("_redis._tcp.cache.lh.svc.clusterset.local.", "SRV",
         answer=("_redis._tcp.cache.lh.svc 5 IN SRV 0 50 6379 redis-0.east.cache.lh.svc",
                 "_redis._tcp.cache.lh.svc 5 IN SRV 0 50 6380 redis-1.east.cache.lh.svc"), additional=LH_CACHE),
    nxdomain("cart-shop-east.submariner-operator.svc.clusterset.local."),  # a cluster's local import
    nxdomain("cart-shop.submariner-k8s-broker.svc.clusterset.local."),  # the broker's aggregate
    Case("cart.submariner-k8s-broker.svc.clusterset.local.", "A",  # not fed by the broker's slice copy
         answer=("cart.submariner-k8s-broker.svc 5 IN A 10.96.32.9",)),
    # Karmada: a slice name past 63 characters
    Case("ledger.kar.svc.clusterset.local.", "A", answer=(LEDGER,)),
    Case("_http._tcp.ledger.kar.svc.clusterset.local.", "SRV",
         answer=("_http._tcp.ledger.kar.svc 5 IN SRV 0 100 80 ledger.kar.svc",), additional=(LEDGER,)),
    # partial badness: no cluster label, a port with no number, a bad headless ips entry
    Case("logs.data.svc.clusterset.local.", "A",
         answer=("logs.data.svc 5 IN A 10.9.0.1", "logs.data.svc 5 IN A 10.9.0.2")),
    Case("_http._tcp.logs.data.svc.clusterset.local.", "SRV",
         answer=("_http._tcp.logs.data.svc 5 IN SRV 0 100 8080 10-9-0-2.east.logs.data.svc",),
         additional=("10-9-0-2.east.logs.data.svc 5 IN A 10.9.0.2",)),
    nxdomain("_syslog._udp.logs.data.svc.clusterset.local.", "SRV"),
    # malformed objects are rejected alone; their neighbours in the List load
    nxdomain("bad.shop.svc.clusterset.local."),
    nxdomain("weird.shop.svc.clusterset.local."),
    Case("listed.shop.svc.clusterset.local.", "A", answer=("listed.shop.svc 5 IN A 10.42.0.30",)),
    # case-insensitive matching
    Case("WEB.Shop.SVC.ClusterSet.LOCAL.", "A", answer=(WEB_A,)),
    # ANY: one RRset, not all (RFC 8482)
    Case("api.shop.svc.clusterset.local.", "ANY", answer=("api.shop.svc 5 IN A 10.42.0.20",)),
    # never a resolver
    refused("example.com."),
    refused(".", "NS"),  # CoreDNS's forward health probe
    refused("local.", "SOA"),
    refused("xclusterset.local."),
    refused("web.shop.svc.clusterset.local.", "A", qclass="CH"),
    refused("clusterset.local.", "AXFR"),
]


@pytest.fixture(params=["engine", "udp", "tcp"])
def channel(request):
    if request.param == "engine":
        return request.getfixturevalue("engine"), "udp"
    return request.getfixturevalue("live_server"), request.param


@pytest.mark.parametrize("case", CASES, ids=str)
def test_answer(channel, case: Case):
    target, transport = channel
    query = dns.message.make_query(case.qname, case.qtype, case.qclass, use_edns=0, payload=1232)
    response = target.query(query, transport)
    assert dns.rcode.to_text(response.rcode()) == case.rcode
    authoritative = case.rcode != "REFUSED"
    assert bool(response.flags & dns.flags.AA) == authoritative
    assert not response.flags & dns.flags.RA
    assert not response.flags & dns.flags.TC
    assert section_lines(response.answer) == expected_lines(case.answer)
    assert section_lines(response.authority) == expected_lines(case.authority)
    assert section_lines(response.additional) == expected_lines(case.additional)
