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


def service_import(ips):
    return {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
            "metadata": {"name": "web", "namespace": "shop"}, "spec": {"type": "ClusterSetIP", "ips": ips}}


def mcs_slice(cluster, ip, ready):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"web-{cluster}", "namespace": "shop", "labels": {
                "multicluster.kubernetes.io/service-name": "web",
                "multicluster.kubernetes.io/source-cluster": cluster}},
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}}]}


def karmada_slice(cluster, ip, ready):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"imported-{cluster}-web-abcde", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "derived-web"}},
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}}]}


DERIVED = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "derived-web", "namespace": "shop"},
           "spec": {"clusterIP": "10.96.0.9"}}

# (producer, local ready?, objects, policy on?, expected answer)
CASES = [
    ("standard", True, [service_import(["10.42.0.1"]), mcs_slice("east", "10.1.0.1", True),
                        mcs_slice("west", "10.2.0.1", True)], False, ["10.42.0.1"]),
    ("standard", True, [service_import(["10.42.0.1"]), mcs_slice("east", "10.1.0.1", True),
                        mcs_slice("west", "10.2.0.1", True)], True, ["10.1.0.1"]),
    ("standard", False, [service_import(["10.42.0.1"]), mcs_slice("east", "10.1.0.1", False),
                         mcs_slice("west", "10.2.0.1", True)], True, ["10.42.0.1"]),
    ("standard", False, [service_import(["10.42.0.1"]), mcs_slice("west", "10.2.0.1", True)], True, ["10.42.0.1"]),
    ("lighthouse", True, [service_import([]), mcs_slice("east", "10.101.0.7", True),
                          mcs_slice("west", "10.102.0.7", True)], True, ["10.101.0.7"]),
    ("lighthouse", False, [service_import([]), mcs_slice("east", "10.101.0.7", False),
                           mcs_slice("west", "10.102.0.7", True)], True, ["10.102.0.7"]),
    ("lighthouse", True, [service_import([]), mcs_slice("east", "10.101.0.7", True),
                          mcs_slice("west", "10.102.0.7", True)], False, ["10.101.0.7", "10.102.0.7"]),
    ("karmada", True, [service_import([]), DERIVED, karmada_slice("east", "10.11.0.5", True),
                       karmada_slice("west", "10.12.0.5", True)], True, ["10.11.0.5"]),
    ("karmada", False, [service_import([]), DERIVED, karmada_slice("east", "10.11.0.5", False),
                        karmada_slice("west", "10.12.0.5", True)], True, ["10.96.0.9"]),
]


@pytest.mark.parametrize("producer,local_ready,objects,policy,expected", CASES,
                         ids=[f"{c[0]}-local{'up' if c[1] else 'down'}-policy{'on' if c[3] else 'off'}" for c in CASES])
def test_local_first(producer, local_ready, objects, policy, expected):
    store = ZoneStore(ZoneSettings(local_cluster="east" if policy else None), 1)
    records = [convert(obj) for obj in objects]
    store.apply([Replace(kind, tuple(r for r in records if r.kind == kind)) for kind in Kind])
    wire = Responder().respond(dns.message.make_query(NAME, "A").to_wire(), store.snapshot)
    answer = dns.message.from_wire(wire).answer
    assert sorted(rd.address for rrset in answer for rd in rrset) == expected


def test_failover_and_back_while_serving(tmp_path):
    import yaml

    path = tmp_path / "web.yaml"

    def write(local_ready: bool) -> None:
        objects = [service_import(["10.42.0.1"]), mcs_slice("east", "10.1.0.1", local_ready),
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
