"""manifests/coredns/Corefile.reverse beside a `.:53` block whose kubernetes
plugin watches the same real apiserver for cluster.local and the reverse
zones: this cluster's PTRs (its Service IPs) still come from the kubernetes
plugin, the clusterset's from mcsdns, and an address in the forwarded ranges
that nobody publishes is NXDOMAIN from mcsdns's reverse zone."""

from __future__ import annotations

import dns.rcode
import dns.reversename

from tests.e2e import peers
from tests.e2e.cluster import start_mcsdns
from tests.helpers import ROOT

STANZA = ROOT / "manifests" / "coredns" / "Corefile.reverse"
RANGES = {"10.42.0.0/16": "42.10.in-addr.arpa", "10.1.0.0/16": "1.10.in-addr.arpa", "10.2.0.0/16": "2.10.in-addr.arpa"}


def ptr_names(coredns: peers.CoreDNS, ip: str) -> tuple[str, list[str], list[str]]:
    response = coredns.query(dns.reversename.from_address(ip).to_text(), "PTR", timeout=5)
    answer = sorted(rd.to_text() for rrset in response.answer for rd in rrset)
    return dns.rcode.to_text(response.rcode()), answer, [rrset.name.to_text() for rrset in response.authority]


def test_reverse_stanza_keeps_cluster_ptrs(stack, peer_paths, tmp_path):
    server = start_mcsdns(stack.api, tmp_path, "--reverse-zone", ",".join(RANGES)).wait_ready(timeout=60)
    try:
        stanza = STANZA.read_text()
        assert "CLUSTERSET_REVERSE_ZONES:53 {" in stanza and "forward . MCSDNS_CLUSTER_IP" in stanza
        block = (
            stanza.replace("CLUSTERSET_REVERSE_ZONES:53", " ".join(f"{zone}:{{port}}" for zone in RANGES.values()))
            .replace("MCSDNS_CLUSTER_IP", f"127.0.0.1:{server.port}")
        )
        corefile = block + f"""
.:{{port}} {{
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {stack.api.kubeconfig_path}
    }}
}}
"""
        local = dns.reversename.from_address("10.96.0.1").to_text()  # Service default/kubernetes
        with peers.CoreDNS(corefile, peer_paths, probe=(local, "PTR"), probe_rcode="NOERROR") as coredns:
            assert ptr_names(coredns, "10.96.0.1") == ("NOERROR", ["kubernetes.default.svc.cluster.local."], [])
            assert ptr_names(coredns, "10.42.0.10") == ("NOERROR", ["web.shop.svc.clusterset.local."], [])
            assert ptr_names(coredns, "10.1.0.11") == ("NOERROR", ["db-0.east.db.data.svc.clusterset.local."], [])
            assert ptr_names(coredns, "10.2.0.22") == (
                "NOERROR", ["10-2-0-22.west.db.data.svc.clusterset.local."], [])
            assert ptr_names(coredns, "10.1.0.200") == ("NXDOMAIN", [], ["1.10.in-addr.arpa."])
    finally:
        server.stop()
