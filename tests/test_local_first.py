"""Local-first with failover: a ClusterSetIP name answers with this cluster's
ready backends while it has any, and with the clusterset-wide answer otherwise,
for each producer; flipped live through the folder source too."""

from __future__ import annotations

import dns.message
import pytest

from mcsdns.engine.respond import Responder
from mcsdns.model.convert import convert
from mcsdns.model.events import Replace
from mcsdns.model.records import Kind
from mcsdns.zone.settings import ZoneSettings
from mcsdns.zone.store import ZoneStore
from tests.helpers import Server, addresses, wait_for

NAME = "web.shop.svc.clusterset.local."


def service_import(ips, ports=(("http", 80),)):
    return {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": "ClusterSetIP", "ips": ips,
                     "ports": [{"name": n, "protocol": "TCP", "port": p} for n, p in ports]}}


def mcs_slice(cluster, ip, ready, port=8080, name=None):
    """A standard producer's slice: pod IPs and the target port they listen on."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name or f"web-{cluster}", "namespace": "shop", "labels": {
                "multicluster.kubernetes.io/service-name": "web",
                "multicluster.kubernetes.io/source-cluster": cluster}},
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}}],
            "ports": [{"name": "http", "protocol": "TCP", "port": port}]}


def lighthouse_slice(cluster, ip, ready, port=80):
    """Lighthouse's ClusterSetIP slice: the cluster's service IP and the service's
    ports (submariner-io/lighthouse pkg/agent/controller/service_endpoint_slices.go)."""
    obj = mcs_slice(cluster, ip, ready, port, name=f"web-{cluster}x")
    obj["metadata"]["labels"].update({
        "endpointslice.kubernetes.io/managed-by": "lighthouse-agent.submariner.io",
        "lighthouse.submariner.io/sourceNamespace": "shop", "lighthouse.submariner.io/is-headless": "false"})
    return obj


def karmada_slice(cluster, ip, ready):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"imported-{cluster}-web-abcde", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "derived-web"}},
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}}],
            "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]}


DERIVED = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "derived-web", "namespace": "shop"},
           "spec": {"clusterIP": "10.96.0.9"}}
VIP = service_import(["10.42.0.1"])
ROLLOUT = [mcs_slice("east", "10.1.0.1", True, 8080, "web-east-a"), mcs_slice("east", "10.1.0.2", True, 8081, "web-east-b")]

# (case, objects, policy on?, A answer, SRV ports at _http._tcp): an address and
# the port of one answer always belong together (service IP + service port, or
# pod IP + the port the pods' slice gives).
CASES = [
    ("standard-off", [VIP, mcs_slice("east", "10.1.0.1", True), mcs_slice("west", "10.2.0.1", True)], False,
     ["10.42.0.1"], [80]),
    ("standard-local", [VIP, mcs_slice("east", "10.1.0.1", True), mcs_slice("west", "10.2.0.1", True)], True,
     ["10.1.0.1"], [8080]),
    ("standard-local-down", [VIP, mcs_slice("east", "10.1.0.1", False), mcs_slice("west", "10.2.0.1", True)], True,
     ["10.42.0.1"], [80]),
    ("standard-no-local", [VIP, mcs_slice("west", "10.2.0.1", True)], True, ["10.42.0.1"], [80]),
    # mid-rollout the local pods number the port two ways: no single pairing, so the clusterset answer
    ("standard-local-rollout", [VIP, *ROLLOUT], True, ["10.42.0.1"], [80]),
    # ... unless the pods with the other number are not ready
    ("standard-rollout-one-ready", [VIP, ROLLOUT[0], {**ROLLOUT[1], "endpoints": [
        {"addresses": ["10.1.0.2"], "conditions": {"ready": False}}]}], True, ["10.1.0.1"], [8080]),
    # the import has a port the local slices do not serve: the clusterset answer
    ("standard-local-lacks-a-port", [service_import(["10.42.0.1"], (("http", 80), ("admin", 9000))),
                                     mcs_slice("east", "10.1.0.1", True)], True, ["10.42.0.1"], [80]),
    ("lighthouse-local", [service_import([]), lighthouse_slice("east", "10.101.0.7", True),
                          lighthouse_slice("west", "10.102.0.7", True)], True, ["10.101.0.7"], [80]),
    ("lighthouse-local-down", [service_import([]), lighthouse_slice("east", "10.101.0.7", False),
                               lighthouse_slice("west", "10.102.0.7", True)], True, ["10.102.0.7"], [80]),
    ("lighthouse-off", [service_import([]), lighthouse_slice("east", "10.101.0.7", True),
                        lighthouse_slice("west", "10.102.0.7", True)], False, ["10.101.0.7", "10.102.0.7"], [80]),
    # pod IPs of a non-lighthouse producer never stand in for a clusterset IP
    # (and with no address there is no SRV either: its target would not resolve)
    ("standard-no-ips-yet", [service_import([]), mcs_slice("east", "10.1.0.1", True)], False, [], []),
    ("standard-no-ips-yet-local", [service_import([]), mcs_slice("east", "10.1.0.1", True)], True,
     ["10.1.0.1"], [8080]),
    ("karmada-local", [service_import([]), DERIVED, karmada_slice("east", "10.11.0.5", True),
                       karmada_slice("west", "10.12.0.5", True)], True, ["10.11.0.5"], [8080]),
    ("karmada-local-down", [service_import([]), DERIVED, karmada_slice("east", "10.11.0.5", False),
                            karmada_slice("west", "10.12.0.5", True)], True, ["10.96.0.9"], [80]),
]


def ask(store, qname, qtype):
    wire = Responder().respond(dns.message.make_query(qname, qtype).to_wire(), store.snapshot)
    return dns.message.from_wire(wire).answer


@pytest.mark.parametrize("case,objects,policy,expected,srv_ports", CASES, ids=[c[0] for c in CASES])
def test_local_first(case, objects, policy, expected, srv_ports):
    store = ZoneStore(ZoneSettings(local_cluster="east" if policy else None), 1)
    records = [convert(obj) for obj in objects]
    store.apply([Replace(kind, tuple(r for r in records if r.kind == kind)) for kind in Kind])
    assert sorted(rd.address for rrset in ask(store, NAME, "A") for rd in rrset) == expected
    srv = ask(store, "_http._tcp." + NAME, "SRV")
    assert sorted(rd.port for rrset in srv for rd in rrset) == srv_ports
    assert {rd.target.to_text() for rrset in srv for rd in rrset} == ({NAME} if srv_ports else set())


def test_failover_and_back_while_serving(tmp_path):
    import yaml

    path = tmp_path / "web.yaml"

    def write(local_ready: bool) -> None:
        objects = [VIP, mcs_slice("east", "10.1.0.1", local_ready),
                   mcs_slice("west", "10.2.0.1", True)]
        path.write_text(yaml.safe_dump_all(objects))

    def until(expected: list[str]) -> None:
        wait_for(lambda: addresses(server.query(dns.message.make_query(NAME, "A"))) == expected,
                 timeout=5, what=f"answer {expected}")

    write(True)
    server = Server(tmp_path, "--cluster-id", "east", "--local-first").wait_ready()
    try:
        until(["10.1.0.1"])
        write(False)
        until(["10.42.0.1"])
        write(True)
        until(["10.1.0.1"])
    finally:
        server.stop()
