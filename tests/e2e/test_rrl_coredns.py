"""Rate limiting behind a stock CoreDNS, which forwards every pod's question
from its own address: a busy cluster looks like one heavy client. Stub
resolvers ask CoreDNS over UDP and retry over TCP on TC=1, as glibc and musl
do. Not exempt, CoreDNS is limited: the slipped TC=1 answers come back whole
over TCP, the dropped ones are lost (the client waits for its retry). Exempt
(what the README tells operators to do), nothing is lost; with slip 1, every
limited answer is a TC=1 and nothing is lost either, at the cost of TCP."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import dns.exception
import dns.message
import dns.query
import pytest

from tests.e2e.conftest import coredns_forwarding
from tests.helpers import DATA, Server

NAME = "web.shop.svc.clusterset.local."
QUERIES, CLIENTS = 240, 8

# (what, mcsdns flags, check on the outcomes: udp / tcp (after TC=1) / lost)
CASES = [
    ("CoreDNS not exempt", ["--rrl-exempt", "none"], lambda n: n["lost"] > 0 and n["tcp"] > 0),
    ("CoreDNS exempt", ["--rrl-exempt", "127.0.0.1"], lambda n: n == Counter(udp=QUERIES)),
    ("not exempt, slip 1", ["--rrl-exempt", "none", "--rrl-slip", "1"], lambda n: n["tcp"] > 0 and not n["lost"]),
]


def stub_resolver(port: int) -> str:
    query = dns.message.make_query(NAME, "A")
    try:
        response, over_tcp = dns.query.udp_with_fallback(query, "127.0.0.1", port=port, timeout=0.5)
    except dns.exception.Timeout:
        return "lost"
    assert response.answer
    return "tcp" if over_tcp else "udp"


@pytest.mark.parametrize(("what", "flags", "expected"), CASES, ids=[case[0] for case in CASES])
def test_coredns_behind_rate_limiting(peer_paths, what, flags, expected):
    server = Server(DATA / "zone", "--log-level", "warning", "--rrl-rate", "20", *flags).wait_ready()
    try:
        with coredns_forwarding(peer_paths, server.port) as coredns:  # no cache: every query forwarded
            with ThreadPoolExecutor(CLIENTS) as pool:
                outcomes = Counter(pool.map(lambda _: stub_resolver(coredns.port), range(QUERIES)))
    finally:
        server.stop()
    assert expected(outcomes), (what, outcomes)
