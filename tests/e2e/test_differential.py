"""The same objects served by stock CoreDNS's own ``kubernetes ... { multicluster
clusterset.local }`` and by mcsdns: every question of the schema table is
asked of both. Every difference must be one listed here, with the reason we
differ (README.md, "Where we differ from CoreDNS"); a new difference, or one
that went away, fails the test so the list stays true.
"""

from __future__ import annotations

import dns.exception
import dns.rcode
import dns.reversename
import pytest

from tests.e2e import peers
from tests.e2e.cluster import start_mcsdns
from tests.e2e.test_coredns_forward import FORWARDED
from tests.helpers import ask, expected_lines, section_lines, shape


@pytest.fixture(scope="module")
def multicluster_coredns(peer_paths, stack):
    corefile = f"""
.:{{port}} {{
    kubernetes cluster.local clusterset.local {{
        kubeconfig {stack.api.kubeconfig_path}
        multicluster clusterset.local
    }}
}}
"""
    with peers.CoreDNS(corefile, peer_paths, probe=("web.shop.svc.clusterset.local.", "A"), probe_rcode="NOERROR") as coredns:
        yield coredns


# "qname/qtype" -> why mcsdns answers otherwise (see README.md)
ENT = "empty non-terminal: NODATA (RFC 8020); CoreDNS says NXDOMAIN"
WEIGHT = "SRV weight 100/n (the weights of one answer add up to ~100); CoreDNS uses 100/(n+1)"
KNOWN: dict[str, str] = {
    "clusterset.local./NS": "we answer the apex NS (its target resolves with --ns-address); CoreDNS gives NODATA",
    "dns-version.clusterset.local./TXT": 'schema 1.0.0 with the zone TTL (--dns-version); CoreDNS "1.1.0", TTL 28800',
    "dns-version.clusterset.local./A": "the name exists (it has a TXT): NODATA; CoreDNS says NXDOMAIN",
    "_tcp.web.shop.svc.clusterset.local./SRV": ENT,
    "east.db.data.svc.clusterset.local./A": ENT,
    "_dns._udp.api.shop.svc.clusterset.local./SRV": WEIGHT,
    "_postgres._tcp.db.data.svc.clusterset.local./SRV": WEIGHT,
    "db.data.svc.clusterset.local./SRV": WEIGHT,
    "_http._tcp.web.shop.svc.clusterset.local./A": "the SRV name has no address (NODATA); CoreDNS answers the service IP there",
    "orders.shop.svc.clusterset.local./A": "Karmada: spec.ips empty, we answer Service derived-orders' ClusterIP",
    "cart.shop.svc.clusterset.local./A": "lighthouse style: spec.ips empty, we answer each cluster's service IP",
    "redis-0.c1.prod.cache.data.svc.clusterset.local./A": "two-label cluster ids (<name>.<registry>); CoreDNS has none",
    "c1.prod.cache.data.svc.clusterset.local./A": "two-label cluster id, and an empty non-terminal (RFC 8020)",
    "prod.cache.data.svc.clusterset.local./A": "two-label cluster id, and an empty non-terminal (RFC 8020)",
    "listed.shop.svc.clusterset.local./A": "an import with no ports still has its A record (spec 2.3.1); CoreDNS drops it",
    "ledger.kar.svc.clusterset.local./A": "Karmada: spec.ips empty, we answer Service derived-ledger's ClusterIP",
    "_http._tcp.ledger.kar.svc.clusterset.local./SRV": "Karmada: the SRV of an address CoreDNS does not have",
    "_http._tcp.cart.shop.svc.clusterset.local./SRV": "lighthouse: the SRV of the service IPs CoreDNS does not have",
    "cart-shop-east.submariner-operator.svc.clusterset.local./A":
        "lighthouse's per-cluster local import is bookkeeping (its resolver skips it); CoreDNS serves it",
    "cart-shop.submariner-k8s-broker.svc.clusterset.local./A":
        "lighthouse's broker copy is bookkeeping: NXDOMAIN; CoreDNS serves the name (NODATA)",
    "_http._tcp.logs.data.svc.clusterset.local./SRV":
        "a slice with a port lacking its number: we keep the others; CoreDNS gives no answer at all",
    "_syslog._udp.logs.data.svc.clusterset.local./SRV":
        "that port has no number, so no SRV record: NXDOMAIN; CoreDNS NODATA",
    "api.shop.svc.clusterset.local./ANY": "ANY gets one RRset (RFC 8482); CoreDNS gives NODATA",
}


def _shape(port: int, case) -> tuple:
    """The response's shape, or ("no answer",) when none comes in time."""
    try:
        return shape(ask(port, case.qname, case.qtype, "tcp"))
    except dns.exception.Timeout:
        return ("no answer",)


def differences(stack, coredns) -> dict[str, tuple]:
    found = {}
    for case in FORWARDED:
        ours = _shape(stack.server.port, case)
        theirs = _shape(coredns.port, case)
        if ours != theirs:
            found[str(case)] = (ours, theirs)
    return found


def test_every_difference_is_known(stack, multicluster_coredns):
    found = differences(stack, multicluster_coredns)
    report = "\n".join(f"{key}:\n  mcsdns  {ours}\n  coredns {theirs}" for key, (ours, theirs) in found.items())
    print(report)
    assert sorted(found) == sorted(KNOWN), report


def test_the_apex_ns_names_a_server_that_exists(peer_paths, stack, multicluster_coredns, tmp_path):
    """With --ns-address (the manifests pass the pod IP) the NS target resolves,
    glue included. CoreDNS gives NODATA for both here: it answers ns.dns.<zone>
    with the addresses of its own Service's endpoints, and outside a pod it has none."""
    server = start_mcsdns(stack.api, tmp_path, "--ns-address", "127.0.0.1").wait_ready(timeout=60)
    try:
        ns = ask(server.port, "clusterset.local.", "NS", "tcp")
        assert section_lines(ns.answer) == expected_lines(["@ 5 IN NS ns.dns"])
        assert section_lines(ns.additional) == expected_lines(["ns.dns 5 IN A 127.0.0.1"])
        target = ask(server.port, "ns.dns.clusterset.local.", "A", "tcp")
        assert section_lines(target.answer) == expected_lines(["ns.dns 5 IN A 127.0.0.1"])
        theirs = ask(multicluster_coredns.port, "ns.dns.clusterset.local.", "A", "tcp")
        assert dns.rcode.to_text(theirs.rcode()) == "NOERROR" and not theirs.answer
    finally:
        server.stop()


# Reverse names: CoreDNS's multicluster plugin has none (SERVFAIL there: no plugin owns in-addr.arpa);
# mcsdns answers one PTR per published address (README.md, "Reverse names").
REVERSE = [
    ("10.42.0.10", "web.shop.svc.clusterset.local."),
    ("10.1.0.11", "db-0.east.db.data.svc.clusterset.local."),
    ("10.2.0.22", "10-2-0-22.west.db.data.svc.clusterset.local."),
]


@pytest.mark.parametrize("address,name", REVERSE)
def test_reverse_names_only_we_answer(stack, multicluster_coredns, address, name):
    qname = dns.reversename.from_address(address).to_text()
    ours = ask(stack.server.port, qname, "PTR", "tcp")
    assert [rd.to_text() for rrset in ours.answer for rd in rrset] == [name]
    theirs = _shape(multicluster_coredns.port, type("Q", (), {"qname": qname, "qtype": "PTR"})())
    assert theirs == ("SERVFAIL", False, False, [], [], []), theirs  # no plugin of that block owns in-addr.arpa
