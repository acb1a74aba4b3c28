"""Incremental zone updates: a headless service put together from per-slice
parts, updated slice by slice, equals the same service built whole.

Three ways to the names of one service are compared after every change of a
table: the store that took the changes one by one (reusing packed slices and
endpoints), a fresh store given the final objects, and ``build.headless_names``
(the definition). They must be equal as names and as answers on the wire.
"""

from __future__ import annotations

import ipaddress

import dns.message
import pytest

from mcsdns.engine.respond import Responder
from mcsdns.model import convert as conversion
from mcsdns.model.convert import convert
from mcsdns.model.events import Delete, Replace, Upsert
from mcsdns.model.records import Kind
from mcsdns.zone.build import headless_names
from mcsdns.zone.settings import ZoneSettings
from mcsdns.zone.store import ZoneStore

NS = "ns"
SVC = "db"
NAME = f"{SVC}.{NS}.svc.clusterset.local."


def headless(name=SVC):
    return convert({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
                    "metadata": {"name": name, "namespace": NS}, "spec": {"type": "Headless"}})


def endpoint(ip, ready=True, host=None):
    found = {"addresses": ip if isinstance(ip, list) else [ip], "conditions": {"ready": ready}}
    return {**found, "hostname": host} if host else found


def piece(name, endpoints, cluster="east", family="IPv4", ports=(("http", 8080),), service=SVC):
    labels = {"multicluster.kubernetes.io/service-name": service}
    if cluster:
        labels["multicluster.kubernetes.io/source-cluster"] = cluster
    return convert({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": family,
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "ports": [{"name": n, "protocol": "TCP", "port": p} if n else {"port": p} for n, p in ports],
        "endpoints": endpoints,
    })


def many(prefix, count, base=0, **options):
    return [endpoint(f"10.{base}.{i // 250}.{i % 250 + 1}", **options) for i in range(count)]


def store_of(records, serial=1):
    store = ZoneStore(ZoneSettings(), serial - 1)  # its first publish makes it ``serial``
    store.apply([
        Replace(Kind.SERVICE_IMPORT, tuple(r for r in records if r.kind == Kind.SERVICE_IMPORT)),
        Replace(Kind.ENDPOINT_SLICE, tuple(r for r in records if r.kind == Kind.ENDPOINT_SLICE)),
        Replace(Kind.SERVICE, ()),
    ])
    return store


def names_of(store, name=SVC):
    entry = store.snapshot.services.get((NS.encode(), name.encode()))
    return None if entry is None else entry.names


def whole(store, name=SVC):
    """The definition: build.headless_names over the store's ready views."""
    entry = store.snapshot.services.get((NS.encode(), name.encode()))
    if entry is None:
        return None
    return headless_names(store.settings, entry.imported, [view.slice for view in entry.part])


QUERIES = [(NAME, "A"), (NAME, "SRV"), (f"_http._tcp.{NAME}", "SRV"), (f"_metrics._tcp.{NAME}", "SRV"),
           (f"east.{NAME}", "A"), (f"10-0-0-1.east.{NAME}", "A"), (f"web-0.east.{NAME}", "AAAA"),
           (f"10-1-0-1.west.{NAME}", "A"), (f"web-0.west.{NAME}", "A")]


def wire_answers(store):
    responder = Responder()
    return [responder.respond(dns.message.make_query(q, t, id=7).to_wire(), store.snapshot, udp=False)
            for q, t in QUERIES]


# Slice sets that a service is built from; each is built three ways.
SHAPES = {
    "one slice": [piece("a", many("a", 3))],
    "two clusters": [piece("a", many("a", 3)), piece("b", many("b", 3, base=1), cluster="west")],
    "over 50 SRV pairs (weight 1)": [piece("a", many("a", 40)), piece("b", many("b", 40, base=1))],
    "some not ready": [piece("a", many("a", 4) + [endpoint("10.0.9.9", ready=False)])],
    "hostnames": [piece("a", [endpoint("10.0.0.1", host="web-0"), endpoint("10.0.0.2", host="web-1")])],
    "dual stack, one hostname in two slices (a clash)": [
        piece("a4", [endpoint("10.0.0.1", host="web-0")]),
        piece("a6", [endpoint("fd00::1", host="web-0")], family="IPv6")],
    "one address in two slices (a clash)": [piece("a", many("a", 2)), piece("b", many("b", 3))],
    "one hostname twice in a slice (a clash)": [
        piece("a", [endpoint("10.0.0.1", host="web-0"), endpoint("10.0.0.2", host="web-0")])],
    "IPv6 without hostnames": [piece("a", [endpoint("fd00::1"), endpoint("fd00::2")], family="IPv6")],
    "no cluster label": [piece("a", many("a", 2), cluster=None), piece("b", many("b", 2, base=1))],
    "two-label cluster id": [piece("a", many("a", 2), cluster="east.eu")],
    "named, unnamed and duplicate ports": [
        piece("a", many("a", 3), ports=(("http", 80), ("web", 80), ("", 81), ("metrics", 9090)))],
    "ports differ by slice": [piece("a", many("a", 2)), piece("b", many("b", 2, base=1), ports=(("http", 8081),))],
    "no ports": [piece("a", many("a", 2), ports=())],
    "several addresses per endpoint": [piece("a", [endpoint(["10.0.0.1", "10.0.0.2"]), endpoint("10.0.0.3")])],
}


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_parts_put_together_equal_the_whole_build(shape):
    store = store_of([headless(), *SHAPES[shape]])
    assert names_of(store) == whole(store)


# (what, events) applied in turn to one store; after each, three ways agree
CHANGES = [
    ("start", []),
    ("one endpoint stops being ready", [Upsert(piece("s1", many("s1", 99, base=1) + [endpoint("10.1.9.9", False)]))]),
    ("it is ready again", [Upsert(piece("s1", many("s1", 99, base=1) + [endpoint("10.1.9.9")]))]),
    ("an address moves", [Upsert(piece("s1", many("s1", 98, base=1) + [endpoint("10.1.9.8")]))]),
    ("a slice is added", [Upsert(piece("s3", many("s3", 5, base=3), cluster="west"))]),
    ("a slice's ports change", [Upsert(piece("s3", many("s3", 5, base=3), cluster="west", ports=(("metrics", 9),)))]),
    ("a hostname appears", [Upsert(piece("s0", many("s0", 1) + [endpoint("10.0.7.7", host="web-0")]))]),
    ("its address changes", [Upsert(piece("s0", many("s0", 1) + [endpoint("10.0.7.8", host="web-0")]))]),
    ("its IPv6 twin appears (a clash)", [Upsert(piece("s6", [endpoint("fd00::7", host="web-0")], family="IPv6"))]),
    ("the twin goes", [Delete(Kind.ENDPOINT_SLICE, NS, "s6")]),
    ("a slice moves to another service", [Upsert(piece("s3", many("s3", 5, base=3), cluster="west", ports=(("metrics", 9),),
                                                     service="other"))]),
    ("a slice changes cluster", [Upsert(piece("s2", many("s2", 100, base=2), cluster="north"))]),
    ("a slice goes", [Delete(Kind.ENDPOINT_SLICE, NS, "s0")]),
    ("every endpoint of a slice stops being ready", [Upsert(piece("s1", many("s1", 99, base=1, ready=False)))]),
    ("the import goes", [Delete(Kind.SERVICE_IMPORT, NS, SVC)]),
    ("and comes back", [Upsert(headless())]),
]


def test_changes_one_by_one_equal_a_fresh_build():
    store = store_of([headless(), headless("other"), piece("s0", many("s0", 100)),
                      piece("s1", many("s1", 100, base=1)), piece("s2", many("s2", 100, base=2), cluster="west")])
    for what, events in CHANGES:
        store.apply(events)
        fresh = store_of(store.objects(), store.snapshot.serial)  # the same SOA in negative answers
        for name in (SVC, "other"):
            assert names_of(store, name) == names_of(fresh, name) == whole(store, name), (what, name)
        assert wire_answers(store) == wire_answers(fresh), what


def test_only_not_ready_changes_keep_the_serial_and_the_packed_slice():
    slices = [piece("a", many("a", 5)), piece("b", many("b", 5, base=1))]
    store = store_of([headless(), *slices])
    names_of(store)  # pack it
    serial, entry = store.snapshot.serial, store.snapshot.services[(NS.encode(), SVC.encode())]
    store.apply([Upsert(piece("a", many("a", 5) + [endpoint("10.0.5.5", ready=False)]))])
    assert store.snapshot.serial == serial and store.snapshot.services[(NS.encode(), SVC.encode())] is entry
    store.apply([Upsert(piece("a", many("a", 4)))])
    assert store.snapshot.serial == serial + 1


def test_record_count_needs_no_packing_and_matches_the_packed_names():
    store = store_of([headless(), *SHAPES["two clusters"], *SHAPES["named, unnamed and duplicate ports"]])
    entry = store.snapshot.services[(NS.encode(), SVC.encode())]
    counted = entry.records
    assert not entry.built
    assert counted == sum(len(r.tails) for node in entry.names.values() for r in node.rrsets.values())


ADDRESSES = ["10.0.0.1", "0.0.0.0", "255.255.255.255", "1.2.3.04", "01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1",
             " 1.2.3.4", "1.2.3.4\n", "١.2.3.4", "fd00::1", "::ffff:1.2.3.4", "1.2.3.-4", "", "1..2.3"]


@pytest.mark.parametrize("text", ADDRESSES)
def test_canonical_ipv4_fast_path_agrees_with_ipaddress(text):
    try:
        address = ipaddress.ip_address(text.strip())
        canonical = address.version == 4 and str(address) == text
    except ValueError:
        canonical = False
    assert conversion._is_canonical_v4(text) == canonical


def test_no_cyclic_gc_while_loading_then_frozen_and_back_on():
    import gc

    from mcsdns.heap import LoadPhase

    load = LoadPhase()
    try:
        load.begin()
        assert not gc.isenabled()
        load.end()
        assert gc.isenabled() and gc.get_freeze_count() > 0
        load.end()  # the timer's call after the first sync changes nothing
        assert gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


# Each step edits slices of a service of 8; after each, the names made from the
# previous version (HeadlessNames._step) equal a fresh build and the definition,
# and so do the answers, over TCP and UDP sizes (truncation included).
STEPS = [
    ("flap not ready", [Upsert(piece("p3", many("p3", 29, base=3) + [endpoint("10.3.9.9", False)]))]),
    ("flap ready", [Upsert(piece("p3", many("p3", 29, base=3) + [endpoint("10.3.9.9")]))]),
    ("add an endpoint", [Upsert(piece("p4", many("p4", 31, base=4)))]),
    ("remove an endpoint", [Upsert(piece("p4", many("p4", 29, base=4)))]),
    ("an address moves between slices", [Upsert(piece("p5", many("p5", 29, base=5))),
                                          Upsert(piece("p6", many("p6", 30, base=6) + [endpoint("10.5.0.30")]))]),
    ("one address in two clusters' slices (deduped)", [Upsert(piece("p7", many("p7", 30, base=7) +
                                                                    [endpoint("10.0.0.1")], cluster="west"))]),
    ("the duplicate goes", [Upsert(piece("p7", many("p7", 30, base=7), cluster="west"))]),
    ("one address in two slices of a cluster (a clash)", [Upsert(piece("p1", many("p1", 30, base=1) + [endpoint("10.2.0.1")]))]),
    ("clash gone", [Upsert(piece("p1", many("p1", 30, base=1)))]),
    ("a hostname in two slices (a clash)", [Upsert(piece("p2", many("p2", 30, base=2) + [endpoint("10.2.9.1", host="web-0")])),
                                            Upsert(piece("p0", many("p0", 30) + [endpoint("10.0.9.1", host="web-0")]))]),
    ("one of them goes", [Upsert(piece("p0", many("p0", 30)))]),
    ("dual stack twin in an IPv6 slice", [Upsert(piece("v6", [endpoint("fd00::9", host="web-1")], family="IPv6"))]),
    ("and its IPv4 half (a clash)", [Upsert(piece("p2", many("p2", 30, base=2) + [endpoint("10.2.9.1", host="web-0"),
                                                                                 endpoint("10.2.9.2", host="web-1")]))]),
    ("IPv6 slice without hostnames", [Upsert(piece("v6", [endpoint("fd00::9"), endpoint("fd00::a")], family="IPv6"))]),
    ("a slice goes", [Delete(Kind.ENDPOINT_SLICE, NS, "p5")]),
] + [(f"flap {n}", [Upsert(piece("p6", many("p6", 30 - n % 2, base=6)))]) for n in range(80)]  # past the overlay's merge


def answers_by_size(store):
    responder = Responder()
    found = []
    for q, t in QUERIES + [(f"web-0.west.{NAME}", "A"), (f"web-1.east.{NAME}", "AAAA")]:
        for udp in (False, True):
            query = dns.message.make_query(q, t, id=7, use_edns=0, payload=1232).to_wire()
            found.append(responder.respond(query, store.snapshot, udp=udp))
    return found


def test_names_made_from_the_previous_version_equal_a_fresh_build():
    store = store_of([headless(), *(piece(f"p{i}", many(f"p{i}", 30, base=i), cluster="east" if i < 6 else "west")
                                    for i in range(8))])
    for what, events in STEPS:
        before = names_of(store)  # packed: the next version is made from it
        assert before is not None
        store.apply(events)
        fresh = store_of(store.objects(), store.snapshot.serial)
        assert names_of(store) == names_of(fresh) == whole(store), what
        assert answers_by_size(store) == answers_by_size(fresh), what
