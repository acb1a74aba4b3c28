"""The response cache in front of the engine: same bytes as the engine, IDs
patched, emptied by a new snapshot and by its bound."""

from __future__ import annotations

import dns.message

from mcsdns.engine.cache import ResponseCache
from mcsdns.engine.respond import Responder
from mcsdns.model.convert import convert
from mcsdns.model.events import Upsert
from tests.conftest import load_store
from tests.helpers import DATA

QUESTIONS = [
    ("web.shop.svc.clusterset.local.", "A", 0),
    ("web.shop.svc.clusterset.local.", "A", False),
    ("nope.shop.svc.clusterset.local.", "A", 0),
    ("big.data.svc.clusterset.local.", "A", 0),
    ("example.com.", "A", 0),
]


def wire(name, qtype, edns, ident):
    query = dns.message.make_query(name, qtype, use_edns=edns)
    query.id = ident
    return query.to_wire()


def test_cached_answers_equal_fresh_ones_with_their_own_id():
    store = load_store(DATA / "zone")
    engine, cache = Responder(), ResponseCache(Responder())
    for ident in (1, 2, 3):
        for name, qtype, edns in QUESTIONS:
            for udp in (True, False):
                message = wire(name, qtype, edns, ident)
                assert cache.respond(message, store.snapshot, udp) == engine.respond(message, store.snapshot, udp)


def test_new_snapshot_empties_the_cache():
    store = load_store(DATA / "zone")
    cache = ResponseCache(Responder())
    message = wire("web.shop.svc.clusterset.local.", "A", 0, 7)
    before = dns.message.from_wire(cache.respond(message, store.snapshot))
    store.apply([Upsert(convert({
        "apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
        "metadata": {"name": "web", "namespace": "shop"}, "spec": {"type": "ClusterSetIP", "ips": ["10.42.9.9"]}}))])
    after = dns.message.from_wire(cache.respond(message, store.snapshot))
    assert before.answer[0][0].address == "10.42.0.10" and after.answer[0][0].address == "10.42.9.9"


def test_bounded():
    store = load_store(DATA / "zone")
    cache = ResponseCache(Responder(), max_entries=10)
    for index in range(25):
        cache.respond(wire(f"n{index}.shop.svc.clusterset.local.", "A", 0, 1), store.snapshot)
        assert len(cache) <= 10


def test_bounded_in_bytes():
    store = load_store(DATA / "zone")
    cache = ResponseCache(Responder(), max_bytes=4000)
    for index in range(20):  # 1.6 kB answers over TCP
        query = dns.message.make_query("big.data.svc.clusterset.local.", "A", use_edns=0, payload=1232 + index)
        cache.respond(query.to_wire(), store.snapshot, udp=False)
        assert cache._bytes <= 4000 and len(cache) <= 2


def test_udp_hits_belong_to_the_snapshot_asked_for():
    """The dict the UDP loop reads: the engine's bytes less the ID, emptied by a new snapshot."""
    store = load_store(DATA / "zone")
    engine, cache = Responder(), ResponseCache(Responder())
    message = wire("web.shop.svc.clusterset.local.", "A", 0, 7)
    hits = cache.udp_hits(store.snapshot)
    assert hits.get(message[2:]) is None
    cache.answer(message, store.snapshot, True)
    assert message[:2] + hits[message[2:]][0] == engine.respond(message, store.snapshot, True)
    store.apply([Upsert(convert({
        "apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
        "metadata": {"name": "web", "namespace": "shop"}, "spec": {"type": "ClusterSetIP", "ips": ["10.42.9.9"]}}))])
    assert cache.udp_hits(store.snapshot) is hits and not hits
    cache.answer(message, store.snapshot, True)
    assert message[:2] + hits[message[2:]][0] == engine.respond(message, store.snapshot, True)


def test_carried_entries_equal_the_engine_after_every_change():
    """Random changes, each followed by the whole answer table through the cache
    with carry (as the app does) and through the engine alone on the new
    snapshot: the same bytes every time, and answers of untouched services
    really are kept (hits, not rebuilt)."""
    import random

    from mcsdns.model.events import Delete
    from mcsdns.model.records import EndpointSlice
    from tests.test_answers import CASES

    store = load_store(DATA / "zone")
    engine, cache = Responder(), ResponseCache(Responder())
    messages = [dns.message.make_query(c.qname, c.qtype, c.qclass, use_edns=0).to_wire() for c in CASES]
    messages += [dns.message.make_query(c.qname, c.qtype, c.qclass).to_wire() for c in CASES]
    objects, rng, kept = store.objects(), random.Random(8), 0
    for step in range(40):
        for message in messages:
            for udp in (True, False):
                assert cache.respond(message, store.snapshot, udp) == engine.respond(message, store.snapshot, udp), step
        record = rng.choice(objects)
        if rng.random() < 0.4:
            event = Delete(record.kind, record.namespace, record.name)
        elif isinstance(record, EndpointSlice) and record.endpoints:
            flipped = tuple(type(e)(e.addresses, e.hostname, not e.ready) for e in record.endpoints)
            event = Upsert(type(record)(**{**{f: getattr(record, f) for f in record.__slots__}, "endpoints": flipped}))
        else:
            event = Upsert(record)
        old = store.snapshot
        store.apply([event])
        if store.snapshot is not old:
            before = len(cache)
            cache.carry(old, store.snapshot, store.changed)
            kept += len(cache) * (before > 0)
    assert kept > 0, "carry kept no entry: the test would not see a stale one"
