"""API objects as ``kubectl get -o json`` shows them, and the producer fixtures.

Each fixture is the objects one producer writes into a consumer cluster, plus
noise every cluster has (ordinary Services and their in-tree EndpointSlices),
and the answers the zone must give for it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ZONE_DATA = Path(__file__).resolve().parent.parent / "data" / "zone"
MCS = "multicluster.x-k8s.io/v1beta1"
IN_TREE = {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}


def service_import(namespace, name, ips=(), headless=False, ports=(("http", 80),), version=MCS, **extra):
    spec = {
        "type": "Headless" if headless else "ClusterSetIP",
        "ports": [{"name": n, "protocol": "TCP", "port": p} for n, p in ports],
    }
    if ips:
        spec["ips"] = list(ips)
    return {"apiVersion": version, "kind": "ServiceImport", "metadata": {"name": name, "namespace": namespace},
            "spec": spec, **extra}


def endpoint_slice(namespace, name, labels, endpoints, family="IPv4", ports=(("http", 80),)):
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "addressType": family,
        "endpoints": [_endpoint(e) for e in endpoints],
        "ports": [{"name": n, "protocol": "TCP", "port": p} for n, p in ports],
    }


def _endpoint(spec):
    """'10.0.0.1', or ('10.0.0.1', 'hostname'), or ('10.0.0.1', None, False) for not ready."""
    address, hostname, ready = (spec, None, True) if isinstance(spec, str) else (*spec, True)[:3]
    endpoint = {"addresses": [address], "conditions": {"ready": ready}}
    if hostname:
        endpoint["hostname"] = hostname
    return endpoint


def mcs_slice(namespace, name, service, cluster, endpoints, **kw):
    labels = {"multicluster.kubernetes.io/service-name": service, "multicluster.kubernetes.io/source-cluster": cluster}
    return endpoint_slice(namespace, name, labels, endpoints, **kw)


def karmada_slice(namespace, service, cluster, suffix, endpoints, **kw):
    labels = {
        "kubernetes.io/service-name": f"derived-{service}",
        "work.karmada.io/namespace": f"karmada-es-{cluster}",
        "work.karmada.io/name": f"{service}-work",
    }
    return endpoint_slice(namespace, f"imported-{cluster}-{service}-{suffix}", labels, endpoints, **kw)


def service(namespace, name, cluster_ip):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                 "ports": [{"name": "http", "protocol": "TCP", "port": 80}]},
    }


def name(text: str) -> str:
    return f"{text}.svc.clusterset.local."


# Every cluster has Services and in-tree slices; none of it may reach the zone.
NOISE = [
    service("shop", "frontend", "10.96.0.1"),
    endpoint_slice("shop", "frontend-x1", {"kubernetes.io/service-name": "frontend", **IN_TREE}, ["10.244.0.9"]),
    service("default", "kubernetes", "10.96.0.2"),
]

STANDARD = [
    service_import("demo", "web", ips=["10.42.0.1"]),
    mcs_slice("demo", "web-c1", "web", "c1", ["10.1.1.1"]),
    service_import("demo", "db", headless=True, ports=(("pg", 5432),)),
    mcs_slice("demo", "db-c1", "db", "c1", [("10.1.0.1", "db-0")], ports=(("pg", 5432),)),
    mcs_slice("demo", "db-c2", "db", "c2", ["10.2.0.1", ("10.2.0.9", None, False)], ports=(("pg", 5432),)),
]
STANDARD_ANSWERS = {
    (name("web.demo"), "A"): ("NOERROR", ["10.42.0.1"]),
    (name("db.demo"), "A"): ("NOERROR", ["10.1.0.1", "10.2.0.1"]),
    (name("db-0.c1.db.demo"), "A"): ("NOERROR", ["10.1.0.1"]),
    (name("10-2-0-1.c2.db.demo"), "A"): ("NOERROR", ["10.2.0.1"]),
    (name("10-2-0-9.c2.db.demo"), "A"): ("NXDOMAIN", []),
}

KARMADA = [
    service_import("shop", "orders"),
    service("shop", "derived-orders", "10.96.5.5"),
    karmada_slice("shop", "orders", "member1", "x7k2p", ["10.11.0.5"]),
    service_import("shop", "feed", headless=True),
    karmada_slice("shop", "feed", "member2", "q9z", [("10.12.0.7", "feed-0")]),
]
KARMADA_ANSWERS = {
    (name("orders.shop"), "A"): ("NOERROR", ["10.96.5.5"]),
    (name("feed.shop"), "A"): ("NOERROR", ["10.12.0.7"]),
    (name("feed-0.member2.feed.shop"), "A"): ("NOERROR", ["10.12.0.7"]),
    (name("frontend.shop"), "A"): ("NXDOMAIN", []),
}



def producer_file(name: str, only: tuple[str, ...] = ()) -> list[dict]:
    """The objects of one producer fixture in tests/data/zone (each file cites the
    producer code whose output it copies), optionally only those named."""
    docs = [d for d in yaml.safe_load_all((ZONE_DATA / name).read_text()) if d]
    return [d for d in docs if not only or d["metadata"]["name"] in only]


# Karmada with a slice name past 63 characters (53-karmada.yaml).
KARMADA_LONG = producer_file("53-karmada.yaml")
KARMADA_LONG_ANSWERS = {
    (name("ledger.kar"), "A"): ("NOERROR", ["10.96.33.3"]),
    (name("_http._tcp.ledger.kar"), "SRV"): ("NOERROR", ["0 100 80 ledger.kar.svc.clusterset.local."]),
}

# Submariner lighthouse, bookkeeping objects included (20-producers.yaml, 52-lighthouse.yaml).
LIGHTHOUSE = producer_file("20-producers.yaml", ("cart", "cart-5xq2v", "cart-k8n4d")) + producer_file("52-lighthouse.yaml")
LIGHTHOUSE_ANSWERS = {
    (name("cart.shop"), "A"): ("NOERROR", ["10.101.0.7", "10.102.0.7"]),
    (name("_http._tcp.cart.shop"), "SRV"): ("NOERROR", ["0 100 80 cart.shop.svc.clusterset.local."]),
    (name("cache.lh"), "A"): ("NOERROR", ["10.1.5.10", "10.1.5.11"]),
    (name("_redis._tcp.cache.lh"), "SRV"): ("NOERROR", [
        "0 50 6379 redis-0.east.cache.lh.svc.clusterset.local.",
        "0 50 6380 redis-1.east.cache.lh.svc.clusterset.local."]),
    (name("cart-shop-east.submariner-operator"), "A"): ("NXDOMAIN", []),
    (name("cart-shop.submariner-k8s-broker"), "A"): ("NXDOMAIN", []),
    (name("cart.submariner-k8s-broker"), "A"): ("NOERROR", ["10.96.32.9"]),
}

# The mcs-api reference controllers / Cilium (50-mcs-api-cilium.yaml).
MCS_API = producer_file("50-mcs-api-cilium.yaml")
MCS_API_ANSWERS = {
    (name("web.mcs"), "A"): ("NOERROR", ["10.96.30.7"]),
    (name("_http._tcp.web.mcs"), "SRV"): ("NOERROR", ["0 100 80 web.mcs.svc.clusterset.local."]),
    (name("fresh.mcs"), "A"): ("NOERROR", []),  # no clusterset IP yet: pod IPs never stand in
    (name("pg.mcs"), "A"): ("NOERROR", ["10.244.2.11", "10.244.2.12"]),
    (name("_pg._tcp.pg.mcs"), "SRV"): ("NOERROR", [
        "0 50 15432 10-244-2-11.cluster1.pg.mcs.svc.clusterset.local.",
        "0 50 15433 10-244-2-12.cluster1.pg.mcs.svc.clusterset.local."]),
}

# AWS Cloud Map MCS controller (51-aws.yaml).
AWS = producer_file("51-aws.yaml")
AWS_ANSWERS = {
    (name("api.aws"), "A"): ("NOERROR", ["10.96.31.1", "10.96.31.2"]),
    (name("nodes.aws"), "A"): ("NOERROR", ["10.10.1.31", "10.20.1.31"]),  # ips: [None, None]
    (name("nodes.aws"), "SRV"): ("NOERROR", [
        "0 50 7000 nodes-0.c1.nodes.aws.svc.clusterset.local.",
        "0 50 7001 nodes-0.c2.nodes.aws.svc.clusterset.local."]),
}
