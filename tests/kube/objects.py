"""API objects as ``kubectl get -o json`` shows them, and the producer fixtures.

Each fixture is the objects one producer writes into a consumer cluster, plus
noise every cluster has (ordinary Services and their in-tree EndpointSlices),
and the answers the zone must give for it.
"""

from __future__ import annotations

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

LIGHTHOUSE = [
    service_import("shop", "cart"),
    mcs_slice("shop", "cart-east", "cart", "east", ["10.101.0.7"]),
    mcs_slice("shop", "cart-west", "cart", "west", ["10.102.0.7"]),
]
LIGHTHOUSE_ANSWERS = {
    (name("cart.shop"), "A"): ("NOERROR", ["10.101.0.7", "10.102.0.7"]),
}
