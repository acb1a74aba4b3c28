"""We are a poor amplifier: over UDP, for every name and type of the examples
zone, the answer stays under a bound times the question; ANY gets one RRset
(RFC 8482), never the whole name; outside the zone, REFUSED no bigger than the
question. bench/amplification.py measures bigger zones and floods.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import pytest

from tests import amplify
from tests.conftest import load_store
from tests.helpers import ROOT, Server

EXAMPLES = ROOT / "examples" / "clusterset.yaml"
# Measured (bench/amplification.py): 8.8 with EDNS (db.data SRV and its glue,
# 501 bytes for a 57-byte question), 10.7 without (the same 490 bytes for 46).
# The bounds leave room for small changes, not for answering ANY with the
# whole name or for answers past the UDP size the query allows.
BOUNDS = {"no EDNS": 12.0, "EDNS 512": 10.0, "EDNS 1232": 10.0, "EDNS 4096": 10.0}


@pytest.fixture(scope="module")
def examples_server():
    server = Server(EXAMPLES, "--log-level", "warning").wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def probes(examples_server):
    names = amplify.zone_names(load_store(EXAMPLES).snapshot)
    return amplify.walk(names, examples_server.host, examples_server.port)


def test_the_walk_covers_the_zone(probes):
    """Every kind of answer was asked, so the bound below means something."""
    assert {probe.rcode for probe in probes} >= {0, 3}  # answers, NODATA, NXDOMAIN
    assert len({probe.name for probe in probes}) > 15
    assert any(probe.response > 400 for probe in probes)


@pytest.mark.parametrize("variant", list(amplify.VARIANTS))
def test_worst_ratio_stays_under_the_bound(probes, variant):
    worst = amplify.worst(probes, variant)
    assert worst.ratio < BOUNDS[variant], worst
    limit = amplify.VARIANTS[variant] or 512
    assert all(probe.response <= max(512, min(limit, 1232)) for probe in probes if probe.variant == variant)


def test_any_is_one_rrset_and_no_bigger_than_the_biggest_type(examples_server, probes):
    by_name: dict[tuple[str, str], list[amplify.Probe]] = {}
    for probe in probes:
        by_name.setdefault((probe.name, probe.variant), []).append(probe)
    for (name, variant), group in by_name.items():
        any_probe = next(probe for probe in group if probe.qtype == "ANY")
        assert any_probe.response <= max(probe.response for probe in group if probe.qtype != "ANY"), any_probe
    for name in {probe.name for probe in probes}:
        response = examples_server.query(dns.message.make_query(name, "ANY", use_edns=0, payload=1232))
        assert len(response.answer) <= 1, (name, response.answer)


# (name, type, class): never ours, always REFUSED
OUTSIDE = [
    ("example.com.", "A", "IN"),
    (".", "NS", "IN"),
    ("local.", "ANY", "IN"),
    ("xclusterset.local.", "A", "IN"),
    ("clusterset.local.example.", "ANY", "IN"),
    ("web.shop.svc.clusterset.local.", "TXT", "CH"),
    ("version.bind.", "TXT", "CH"),
]


@pytest.mark.parametrize("name,qtype,qclass", OUTSIDE, ids=[f"{n} {t} {c}" for n, t, c in OUTSIDE])
@pytest.mark.parametrize("edns", [False, True], ids=["plain", "edns"])
def test_refused_outside_the_zone_and_no_bigger_than_the_question(examples_server, name, qtype, qclass, edns):
    query = dns.message.make_query(name, qtype, qclass, use_edns=0 if edns else None, payload=4096)
    wire = query.to_wire()
    response = examples_server.raw_udp(wire, timeout=2)
    assert response is not None and len(response) <= len(wire)
    parsed = dns.message.from_wire(response)
    assert parsed.rcode() == dns.rcode.REFUSED and not parsed.flags & dns.flags.AA
    assert not parsed.answer and not parsed.authority
