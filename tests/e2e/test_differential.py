"""The same objects served by stock CoreDNS's own ``kubernetes ... { multicluster
clusterset.local }`` and by mcsdns: every question of the schema table is
asked of both. Every difference must be one listed here, with the reason we
differ (README.md, "Where we differ from CoreDNS"); a new difference, or one
that went away, fails the test so the list stays true.
"""

from __future__ import annotations

import pytest

from tests.e2e import peers
from tests.e2e.test_coredns_forward import FORWARDED
from tests.helpers import ask, shape


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
    "clusterset.local./NS": "we answer the apex NS; CoreDNS gives NODATA",
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
    "api.shop.svc.clusterset.local./ANY": "ANY gets one RRset (RFC 8482); CoreDNS gives NODATA",
}


def differences(stack, coredns) -> dict[str, tuple]:
    found = {}
    for case in FORWARDED:
        ours = shape(ask(stack.server.port, case.qname, case.qtype, "tcp"))
        theirs = shape(ask(coredns.port, case.qname, case.qtype, "tcp"))
        if ours != theirs:
            found[str(case)] = (ours, theirs)
    return found


def test_every_difference_is_known(stack, multicluster_coredns):
    found = differences(stack, multicluster_coredns)
    report = "\n".join(f"{key}:\n  mcsdns  {ours}\n  coredns {theirs}" for key, (ours, theirs) in found.items())
    print(report)
    assert sorted(found) == sorted(KNOWN), report
