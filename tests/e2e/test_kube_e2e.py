"""mcsdns between a real kube-apiserver and a stock CoreDNS, as users run it:
``--source kube`` as the least-privilege service account of manifests/rbac.yaml,
CoreDNS forwarding clusterset.local to it."""

from __future__ import annotations

import copy

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.e2e import peers
from tests.e2e.cluster import apply, delete, load_objects, load_test_zone, start_mcsdns
from tests.e2e.test_coredns_forward import FORWARDED
from tests.helpers import DATA, addresses, ask, expected_lines, section_lines, shape, wait_for


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("case", FORWARDED, ids=str)
def test_schema_table_from_the_api_through_coredns(stack, case, transport):
    """The whole table, objects created through the API instead of read from files."""
    response = stack.ask(case.qname, case.qtype, transport)
    assert dns.rcode.to_text(response.rcode()) == case.rcode
    assert section_lines(response.answer) == expected_lines(case.answer)
    assert section_lines(response.authority) == expected_lines(case.authority)
    assert section_lines(response.additional) == expected_lines(case.additional)
    assert shape(response) == shape(ask(stack.server.port, case.qname, case.qtype, transport))


def test_create_update_delete_follow(stack):
    name = "e2e-live.shop.svc.clusterset.local."
    obj = {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
           "metadata": {"name": "e2e-live", "namespace": "shop"},
           "spec": {"type": "ClusterSetIP", "ips": ["10.77.0.1"], "ports": [{"port": 80, "protocol": "TCP"}]}}
    apply(stack.api, obj)
    wait_for(lambda: addresses(stack.ask(name)) == ["10.77.0.1"], what="created import answers")
    changed = copy.deepcopy(obj)
    changed["spec"]["ips"] = ["10.77.0.2"]
    apply(stack.api, changed)
    wait_for(lambda: addresses(stack.ask(name)) == ["10.77.0.2"], what="updated import answers")
    delete(stack.api, obj)
    wait_for(lambda: stack.ask(name).rcode() == dns.rcode.NXDOMAIN, what="deleted import is gone")


def test_headless_endpoints_follow_readiness(stack):
    name = "db.data.svc.clusterset.local."
    before = addresses(stack.ask(name))
    slice_ = next(o for o in load_objects(DATA / "zone") if o["metadata"]["name"] == "db-east-v4")
    flipped = copy.deepcopy(slice_)
    for endpoint in flipped["endpoints"]:
        endpoint["conditions"] = {"ready": False}
    apply(stack.api, flipped)
    wait_for(lambda: addresses(stack.ask(name)) == ["10.2.0.21", "10.2.0.22"], what="east endpoints leave")
    apply(stack.api, slice_)
    wait_for(lambda: addresses(stack.ask(name)) == before, what="east endpoints return")


def test_apiserver_restart(stack):
    """Answers continue while the API is down; the zone converges after it returns."""
    name = "web.shop.svc.clusterset.local."
    stack.api.kill()
    for _ in range(5):
        assert addresses(stack.ask(name)) == ["10.42.0.10"]
    wait_for(lambda: "outage" in stack.server.http("/readyz")[1], timeout=30, what="readyz reports the outage")
    assert stack.server.http("/readyz")[0] == 200  # still serving the last good zone
    stack.api.start()
    web = next(o for o in load_objects(DATA / "zone") if o["metadata"]["name"] == "web")
    moved = copy.deepcopy(web)
    moved["spec"]["ips"] = ["10.42.0.99"]
    apply(stack.api, moved)
    try:
        wait_for(lambda: addresses(stack.ask(name)) == ["10.42.0.99"], timeout=60, what="zone converges")
        wait_for(lambda: "outage" not in stack.server.http("/readyz")[1], timeout=30, what="outage cleared")
    finally:
        apply(stack.api, web)
        wait_for(lambda: addresses(stack.ask(name)) == ["10.42.0.10"], timeout=30)


def test_local_first_failover_through_the_api(peer_paths, stack, tmp_path):
    """A second mcsdns with --cluster-id east --local-first: the lighthouse-style
    'cart' answers with east's service IP until east has no ready endpoint."""
    server = start_mcsdns(stack.api, tmp_path, "--cluster-id", "east", "--local-first").wait_ready(timeout=60)
    name = "cart.shop.svc.clusterset.local."
    east = next(o for o in load_objects(DATA / "zone") if o["metadata"]["name"] == "cart-5xq2v")  # lighthouse, east
    try:
        def direct():
            return addresses(ask(server.port, name, "A", "udp"))

        wait_for(lambda: direct() == ["10.101.0.7"], what="local first")
        down = copy.deepcopy(east)
        down["endpoints"][0]["conditions"] = {"ready": False}
        apply(stack.api, down)
        wait_for(lambda: direct() == ["10.102.0.7"], what="failed over to west")
        apply(stack.api, east)
        wait_for(lambda: direct() == ["10.101.0.7"], what="back to local")
    finally:
        apply(stack.api, east)
        server.stop()


def test_not_ready_until_the_crds_exist(peer_paths, tmp_path):
    """CRD missing at start: SERVFAIL and /readyz 503, then ready by itself once installed."""
    with peers.KubeAPIServer(peer_paths) as api:
        server = start_mcsdns(api, tmp_path)
        try:
            wait_for(lambda: server.http("/readyz")[0] == 503, what="serving, not ready")
            query = dns.message.make_query("web.shop.svc.clusterset.local.", "A")
            assert dns.query.udp(query, "127.0.0.1", port=server.port, timeout=3).rcode() == dns.rcode.SERVFAIL
            api.install_crds(peer_paths)
            load_test_zone(api)
            server.wait_ready(timeout=90)
            assert addresses(dns.query.udp(query, "127.0.0.1", port=server.port, timeout=3)) == ["10.42.0.10"]
        finally:
            server.stop()
