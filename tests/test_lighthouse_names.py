"""--lighthouse-names: Submariner lighthouse's per-cluster names
``<cluster>.<svc>.<ns>.svc.<zone>`` for users migrating from it, off by default
(the MCS specification reserves them); over UDP and TCP from a live server."""

from __future__ import annotations

import dns.message
import dns.rcode
import pytest

from tests.helpers import DATA, Server, addresses

# (name, with the flag: rcode and addresses, without it: rcode)
CASES = [
    ("east.cart.shop.svc.clusterset.local.", "NOERROR", ["10.101.0.7"], "NXDOMAIN"),  # lighthouse service-IP slice
    ("west.cart.shop.svc.clusterset.local.", "NOERROR", ["10.102.0.7"], "NXDOMAIN"),
    ("east.db.data.svc.clusterset.local.", "NOERROR", ["10.1.0.11", "10.1.0.12"], "NOERROR"),  # headless: was an ENT
    ("c1.prod.cache.data.svc.clusterset.local.", "NOERROR", ["10.3.0.5"], "NOERROR"),  # two-label cluster id
    ("north.cart.shop.svc.clusterset.local.", "NXDOMAIN", [], "NXDOMAIN"),  # no such cluster
    ("cart.shop.svc.clusterset.local.", "NOERROR", ["10.101.0.7", "10.102.0.7"], "NOERROR"),  # unchanged
]


@pytest.fixture(scope="module")
def servers():
    on, off = Server(DATA / "zone", "--lighthouse-names").wait_ready(), Server(DATA / "zone").wait_ready()
    yield on, off
    on.stop()
    off.stop()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("name,rcode,expected,default", CASES, ids=[c[0] for c in CASES])
def test_per_cluster_names(servers, transport, name, rcode, expected, default):
    on, off = servers
    answer = on.query(dns.message.make_query(name, "A"), transport)
    assert dns.rcode.to_text(answer.rcode()) == rcode
    assert addresses(answer) == expected
    assert dns.rcode.to_text(off.query(dns.message.make_query(name, "A"), transport).rcode()) == default
    if default == "NOERROR" and name.split(".")[0] in ("east", "c1"):
        assert not off.query(dns.message.make_query(name, "A"), transport).answer  # reserved: no addresses by default
