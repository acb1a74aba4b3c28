"""Real peers for the end-to-end tests: built once per session, or skipped with
the reason printed when Go is missing (a failure on CI, where Go must exist)."""

from __future__ import annotations

import os

import pytest

from tests.e2e import peers


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
