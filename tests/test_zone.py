"""The zone store: readiness, incremental updates, the serial, and conversion at the edge."""

from __future__ import annotations

import dnslib
import dns.message
import dns.rcode
import pytest

from mcsdns.engine.respond import Responder
from mcsdns.model.convert import convert
from mcsdns.model.events import Delete, Outage, Recovered, Replace, Upsert
from mcsdns.model.records import Kind, Port, Rejected
from mcsdns.zone import rrset
from mcsdns.zone.settings import ZoneSettings
from mcsdns.zone.store import ZoneStore


def service_import(name, ips=("10.0.0.1",), namespace="ns", kind="ClusterSetIP", **spec):
    obj = {
        "apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": {"type": kind, "ips": list(ips), **spec},
    }
    return convert(obj)


def rcode_of(store, name, qtype="A"):
    wire = Responder().respond(dns.message.make_query(name, qtype).to_wire(), store.snapshot)
    return dns.rcode.to_text(dns.message.from_wire(wire).rcode())


def synced_store(*records) -> ZoneStore:
    store = ZoneStore(ZoneSettings(), 41)
    store.apply([Replace(Kind.SERVICE_IMPORT, records), Replace(Kind.ENDPOINT_SLICE, ()), Replace(Kind.SERVICE, ())])
    return store


def test_servfail_until_every_kind_listed():
    store = ZoneStore(ZoneSettings(), 41)
    name = "a.ns.svc.clusterset.local."
    assert rcode_of(store, name) == "SERVFAIL"
    store.apply([Replace(Kind.SERVICE_IMPORT, (service_import("a"),)), Replace(Kind.ENDPOINT_SLICE, ())])
    assert rcode_of(store, name) == "SERVFAIL" and not store.ready
    assert rcode_of(store, ".", "NS") == "REFUSED"  # refusing needs no zone
    store.apply([Replace(Kind.SERVICE, ())])
    assert store.ready and rcode_of(store, name) == "NOERROR"


def test_outage_keeps_the_zone():
    store = synced_store(service_import("a"))
    before = store.snapshot
    store.apply([Outage("watch failed")])
    assert store.outage == "watch failed" and store.snapshot is before
    assert rcode_of(store, "a.ns.svc.clusterset.local.") == "NOERROR"
    store.apply([Recovered()])
    assert store.outage is None


def test_update_touches_only_its_service():
    store = synced_store(service_import("a"), service_import("b"))
    old_b = store.snapshot.services[(b"ns", b"b")]
    store.apply([Upsert(service_import("a", ips=("10.0.0.9",)))])
    assert store.snapshot.services[(b"ns", b"b")] is old_b


# (events after a synced store holding a and b, whether the serial moves)
SERIAL_CASES = [
    ("same object again", [Upsert(service_import("a"))], False),
    ("a field DNS ignores", [Upsert(service_import("a", sessionAffinity="ClientIP"))], False),
    ("new address", [Upsert(service_import("a", ips=("10.0.0.2",)))], True),
    ("delete", [Delete(Kind.SERVICE_IMPORT, "ns", "a")], True),
    ("delete of nothing", [Delete(Kind.SERVICE_IMPORT, "ns", "zzz")], False),
    ("relist, same set", [Replace(Kind.SERVICE_IMPORT, (service_import("a"), service_import("b")))], False),
    ("relist without b", [Replace(Kind.SERVICE_IMPORT, (service_import("a"),))], True),
    ("two changes, one step", [Upsert(service_import("a", ips=("10.0.0.3",))), Upsert(service_import("c"))], True),
    ("slice of a ClusterSetIP with ips", [Upsert(convert({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": "a-x", "namespace": "ns", "labels": {
            "multicluster.kubernetes.io/service-name": "a", "multicluster.kubernetes.io/source-cluster": "x"}},
        "endpoints": [{"addresses": ["10.9.9.9"]}]}))], False),
]


@pytest.mark.parametrize("what,events,moves", SERIAL_CASES, ids=[c[0] for c in SERIAL_CASES])
def test_serial_moves_only_when_an_answer_changes(what, events, moves):
    store = synced_store(service_import("a"), service_import("b"))
    before = store.snapshot.serial
    store.apply(events)
    assert store.snapshot.serial == (before + 1 if moves else before)


def test_serial_wraps_per_rfc1982():
    store = ZoneStore(ZoneSettings(), 2**32 - 1)
    store.apply([Replace(Kind.SERVICE_IMPORT, (service_import("a"),))])
    assert store.snapshot.serial == 0


REJECTS = [
    ({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport", "metadata": {"name": "x"}}, "spec.type", "spec.type"),
    ({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport", "metadata": {"name": "Bad_Name"},
      "spec": {"type": "Headless"}}, "not an RFC 1123 subdomain", "metadata.name"),
    ({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport", "metadata": {"name": "two.labels"},
      "spec": {"type": "Headless"}}, "not a DNS label", "metadata.name"),
    ({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport", "metadata": {"name": "x"},
      "spec": {"type": "ClusterSetIP", "ips": "10.0.0.1"}}, "spec.ips must be a list", "spec.ips"),
    ({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport", "metadata": {"name": "x"},
      "spec": {"type": "ClusterSetIP", "ports": [{"port": 70000}]}}, "from 1 to 65535", "spec.ports.port"),
    ({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport", "metadata": {"name": "x"},
      "spec": {"type": "ClusterSetIP", "ports": [{"port": 80, "protocol": "ICMP"}]}}, "TCP, UDP or SCTP", "spec.ports.protocol"),
    ({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
      "metadata": {"name": "s", "labels": {"multicluster.kubernetes.io/service-name": "x",
                                           "multicluster.kubernetes.io/source-cluster": "a.b.c"}}}, "two labels", "multicluster.kubernetes.io/source-cluster"),
    ({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
      "metadata": {"name": "s", "labels": {"multicluster.kubernetes.io/service-name": "x",
                                           "multicluster.kubernetes.io/source-cluster": "a"}},
      "endpoints": [{"addresses": ["fd00::1"]}]}, "not an IPv4 address", "endpoints.addresses"),
    ("just a string", "not a mapping", "object"),
    ({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
      "metadata": {"name": "x" * 254, "labels": {"multicluster.kubernetes.io/service-name": "x",
                                                 "multicluster.kubernetes.io/source-cluster": "a"}}},
     "not an RFC 1123 subdomain", "metadata.name"),
    ({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport", "metadata": {"name": "s" * 64},
      "spec": {"type": "Headless"}}, "not a DNS label", "metadata.name"),  # it becomes a DNS label
    ({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport", "metadata": {"name": "x"},
      "spec": {"type": "ClusterSetIP", "ips": ["None"]}}, "not an IP address", "spec.ips"),  # a VIP must be one
]


@pytest.mark.parametrize("obj,reason,field", REJECTS, ids=[r[1] for r in REJECTS])
def test_malformed_objects_rejected_with_a_reason(obj, reason, field):
    """The reason is for people; the field, free of values and indices, for metric labels."""
    result = convert(obj)
    assert isinstance(result, Rejected) and reason in result.reason
    assert result.field == field


IGNORED = [
    {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4", "metadata": {"name": "plain"}},
    {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "FQDN", "metadata": {
        "name": "f", "labels": {"multicluster.kubernetes.io/service-name": "x",
                                "multicluster.kubernetes.io/source-cluster": "a"}}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
    {"apiVersion": "other.example/v1", "kind": "ServiceImport", "metadata": {"name": "c"}},
    # Submariner lighthouse bookkeeping (lighthouse coredns/resolver/service_import.go ignoreServiceImport,
    # controller.go isOnBroker): a cluster's local import, the broker's aggregate, a broker copy of a slice.
    {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport", "metadata": {
        "name": "web-shop-east", "namespace": "submariner-operator",
        "labels": {"multicluster.kubernetes.io/service-name": "web"}}, "spec": {"type": "ClusterSetIP"}},
    {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport", "metadata": {
        "name": "web-shop", "namespace": "submariner-k8s-broker",
        "annotations": {"multicluster.kubernetes.io/service-name": "web"}}, "spec": {"type": "ClusterSetIP"}},
    {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4", "metadata": {
        "name": "web-x1", "namespace": "submariner-k8s-broker", "labels": {
            "lighthouse.submariner.io/sourceNamespace": "shop", "multicluster.kubernetes.io/service-name": "web",
            "multicluster.kubernetes.io/source-cluster": "east"}}},
]


@pytest.mark.parametrize("obj", IGNORED, ids=lambda o: f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}")
def test_objects_of_no_concern_are_ignored(obj):
    assert convert(obj) is None


def test_slice_names_may_hold_dots():
    result = convert({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                      "metadata": {"name": "db.east-1", "namespace": "ns", "labels": {
                          "multicluster.kubernetes.io/service-name": "db",
                          "multicluster.kubernetes.io/source-cluster": "east"}},
                      "endpoints": [{"addresses": ["10.0.0.1"]}]})
    assert not isinstance(result, Rejected) and result.name == "db.east-1"


def _slice(labels=None, ports=None, name="s"):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name, "namespace": "ns", "labels": labels or {
                "multicluster.kubernetes.io/service-name": "x", "multicluster.kubernetes.io/source-cluster": "a"}},
            "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": ports or []}


# (object, what the record keeps, the fields of its notes): kept, less the bad part.
PARTIAL = [
    (_slice({"multicluster.kubernetes.io/service-name": "x"}), {"cluster": ""},
     ["multicluster.kubernetes.io/source-cluster"]),
    (_slice(ports=[{"name": "syslog", "protocol": "UDP"}, {"name": "http", "port": 80}]),
     {"ports": (Port("http", "tcp", 80),)}, ["ports.port"]),
    (_slice(ports=[{"name": "x", "port": 80, "protocol": "ICMP"}]), {"ports": ()}, ["ports.protocol"]),
    ({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport", "metadata": {"name": "x"},
      "spec": {"type": "Headless", "ips": ["10.0.0.1", "bogus"]}}, {"ips": ()}, ["spec.ips"]),
    # AWS copies the derived Service's clusterIP "None" into a headless import: a placeholder, no note.
    ({"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport", "metadata": {"name": "x"},
      "spec": {"type": "Headless", "ips": ["None", "None"]}}, {"ips": (), "headless": True}, []),
    # Karmada's imported-<cluster>-<slice> names pass 63 characters; the cluster id stays a label.
    ({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
      "metadata": {"name": "imported-member-eu-central-1-production-ledger-7d9f8c6b5d-x7k2p" + "-y" * 90,
                   "namespace": "ns", "labels": {"kubernetes.io/service-name": "derived-ledger"}},
      "endpoints": [{"addresses": ["10.0.0.1"]}]}, {"cluster": "member-eu-central-1-production"}, []),
    # Lighthouse ClusterSetIP slices hold the cluster's service IP.
    (_slice({"multicluster.kubernetes.io/service-name": "x", "multicluster.kubernetes.io/source-cluster": "a",
             "endpointslice.kubernetes.io/managed-by": "lighthouse-agent.submariner.io",
             "lighthouse.submariner.io/sourceNamespace": "ns", "lighthouse.submariner.io/is-headless": "false"}),
     {"service_ip": True}, []),
]


@pytest.mark.parametrize("obj,kept,fields", PARTIAL, ids=[f"{p[0]['kind']}-{','.join(p[1])}-{i}" for i, p in enumerate(PARTIAL)])
def test_partial_badness_stays_partial(obj, kept, fields):
    record = convert(obj)
    assert not isinstance(record, Rejected) and record is not None
    for attribute, value in kept.items():
        assert getattr(record, attribute) == value
    assert [note.field for note in record.notes] == fields
    assert all(note.partial and "ignored part of" in str(note) for note in record.notes)


PACKED = [
    ("A", lambda: rrset.address_tail("10.1.2.3", 5), lambda: rrset.tail(rrset.A, 5, dnslib.A("10.1.2.3"))),
    ("A ttl 0", lambda: rrset.address_tail("0.0.0.0", 0), lambda: rrset.tail(rrset.A, 0, dnslib.A("0.0.0.0"))),
    ("AAAA", lambda: rrset.address_tail("fd00::1", 5), lambda: rrset.tail(rrset.AAAA, 5, dnslib.AAAA("fd00::1"))),
    ("AAAA long", lambda: rrset.address_tail("2001:db8:1:2:3:4:5:6", 2**31 - 1),
     lambda: rrset.tail(rrset.AAAA, 2**31 - 1, dnslib.AAAA("2001:db8:1:2:3:4:5:6"))),
    ("SRV", lambda: rrset.srv_tail(5, 50, 8080, rrset.labels_of("web-0.east.web.shop.svc.clusterset.local")),
     lambda: rrset.tail(rrset.SRV, 5, dnslib.SRV(0, 50, 8080, "web-0.east.web.shop.svc.clusterset.local."))),
    ("SRV max", lambda: rrset.srv_tail(86400, 100, 65535, rrset.labels_of(("a" * 63 + ".") * 3 + "local")),
     lambda: rrset.tail(rrset.SRV, 86400, dnslib.SRV(0, 100, 65535, ("a" * 63 + ".") * 3 + "local."))),
]


@pytest.mark.parametrize("ours,theirs", [case[1:] for case in PACKED], ids=[case[0] for case in PACKED])
def test_hand_packed_records_equal_dnslib(ours, theirs):
    """A, AAAA and SRV are packed with struct for speed; dnslib is the reference."""
    assert ours() == theirs()
