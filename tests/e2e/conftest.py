"""Real peers for the end-to-end tests: built once per session, or skipped with
the reason printed when Go is missing (a failure on CI, where Go must exist)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import dns.message
import pytest

from tests.e2e import peers
from tests.e2e.cluster import load_test_zone, start_mcsdns
from tests.helpers import Server, ask


@pytest.fixture(scope="session")
def peer_paths() -> peers.Paths:
    try:
        return peers.build()
    except peers.PeersUnavailable as missing:
        if os.environ.get("CI"):
            pytest.fail(f"end-to-end peers unavailable on CI: {missing.reason}")
        pytest.skip(f"end-to-end peers unavailable: {missing.reason}")


def coredns_forwarding(paths: peers.Paths, mcsdns_port: int, normal_block: str = "") -> peers.CoreDNS:
    """CoreDNS as a user would configure it: the zone forwarded to mcsdns beside
    the cluster's normal server block."""
    corefile = f"""
clusterset.local:{{port}} {{
    forward . 127.0.0.1:{mcsdns_port}
}}
.:{{port}} {{
    errors
    {normal_block or 'template ANY ANY { rcode NXDOMAIN }'}
}}
"""
    return peers.CoreDNS(corefile, paths, probe=("web.shop.svc.clusterset.local.", "A"))


@dataclass
class Stack:
    api: peers.KubeAPIServer
    server: Server
    coredns: peers.CoreDNS

    def ask(self, name: str, qtype: str = "A", transport: str = "udp") -> dns.message.Message:
        return ask(self.coredns.port, name, qtype, transport)


@pytest.fixture(scope="session")
def stack(peer_paths, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("kube-e2e")
    with peers.KubeAPIServer(peer_paths) as api:
        api.install_crds(peer_paths)
        refused = load_test_zone(api)
        assert set(refused) <= {"bad", "weird"}, refused  # the CRD schema may refuse our malformed ones
        server = start_mcsdns(api, workdir).wait_ready(timeout=60)
        try:
            normal = f"kubernetes cluster.local {{\n        kubeconfig {api.kubeconfig_path}\n    }}"
            with coredns_forwarding(peer_paths, server.port, normal_block=normal) as coredns:
                yield Stack(api, server, coredns)
        finally:
            server.stop()
