"""Through a stock CoreDNS that forwards clusterset.local to mcsdns, every answer
of the schema table is exactly what mcsdns gives directly, over UDP and TCP,
and an answer too big for UDP comes back truncated, then whole over TCP."""

from __future__ import annotations

import time
import urllib.request

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.e2e.conftest import coredns_forwarding
from tests.helpers import DATA, Server, ask, free_port, shape
from tests.test_answers import CASES

# Questions outside clusterset.local never reach mcsdns through the forward stanza.
FORWARDED = [case for case in CASES if case.rcode != "REFUSED" and case.qtype != "AXFR"]


@pytest.fixture(scope="module")
def stack(peer_paths):
    server = Server(DATA / "zone").wait_ready()
    coredns = coredns_forwarding(peer_paths, server.port)
    with coredns:
        yield server, coredns
    server.stop()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("case", FORWARDED, ids=str)
def test_same_answer_through_coredns(stack, case, transport):
    server, coredns = stack
    direct = ask(server.port, case.qname, case.qtype, transport)
    forwarded = ask(coredns.port, case.qname, case.qtype, transport)
    assert shape(forwarded) == shape(direct)


def test_truncated_then_tcp_through_coredns(stack):
    server, coredns = stack
    name = "big.data.svc.clusterset.local."
    truncated = ask(coredns.port, name, "A", "udp")
    assert truncated.flags & dns.flags.TC and not truncated.answer
    whole = ask(coredns.port, name, "A", "tcp")
    assert len(whole.answer[0]) == 100
    assert shape(whole) == shape(ask(server.port, name, "A", "tcp"))


def test_forward_health_checks_pass(peer_paths):
    """After a failed query CoreDNS probes the upstream with `. IN NS` until it
    answers; a probe without an answer is a failure. REFUSED, at once, passes:
    once mcsdns is up the failures stop."""
    from tests.e2e import peers

    port, metrics_port = free_port(), peers.free_port()
    corefile = f"""
clusterset.local:{{port}} {{
    prometheus 127.0.0.1:{metrics_port}
    forward . 127.0.0.1:{port} {{
        health_check 0.1s
    }}
}}
"""

    def failures() -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        counts = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("coredns_proxy_healthcheck_failures_total")]
        return sum(counts)

    with peers.CoreDNS(corefile, peer_paths, probe=(".", "SOA")) as coredns:
        down = ask(coredns.port, "web.shop.svc.clusterset.local.", "A", "udp")  # nobody there yet
        assert down.rcode() == dns.rcode.SERVFAIL
        time.sleep(1.0)
        assert failures() > 0  # probing, and failing
        server = Server(DATA / "zone", port=port).wait_ready()
        try:
            time.sleep(1.5)  # a probe in flight may still time out (1 s)
            settled = failures()
            time.sleep(2.5)  # a silent upstream would fail twice more here
            assert failures() == settled
            assert ask(coredns.port, "web.shop.svc.clusterset.local.", "A", "udp").answer
        finally:
            server.stop()
