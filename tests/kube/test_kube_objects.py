"""Objects as they change: malformed ones, deletions, changes DNS cannot see."""

from __future__ import annotations

import copy
import logging

import pytest

from mcsdns.model.events import Delete, Replace, Upsert
from mcsdns.model.records import Kind

from . import objects as o
from .harness import harness, run

GOOD = {**o.STANDARD_ANSWERS}


def _bad_ip(obj):
    obj["spec"]["ips"] = ["10.0.0.300"]


def _bad_type(obj):
    obj["spec"]["type"] = "LoadBalancer"


def _bad_address(obj):
    obj["endpoints"][0]["addresses"] = ["not-an-ip"]


def _bad_hostname(obj):
    obj["endpoints"][0]["hostname"] = "Not_A_Label"


def _spec_not_mapping(obj):
    obj["spec"] = ["oops"]


# (object to spoil, how, the name that must go away, what convert() says)
MALFORMED = [
    (o.service_import("bad", "ip", ips=["10.9.0.1"]), _bad_ip, "ip.bad", "is not an IP address"),
    (o.service_import("bad", "kind", ips=["10.9.0.2"]), _bad_type, "kind.bad", "spec.type must be"),
    (o.service_import("bad", "spec", ips=["10.9.0.3"]), _spec_not_mapping, "spec.bad", "spec must be a mapping"),
]
SLICE_BAD = [
    (_bad_address, "is not an IP address"),
    (_bad_hostname, "is not a DNS label"),  # a slice without its cluster label is kept: test_kube_producers
]


def spoiled(obj, how):
    bad = copy.deepcopy(obj)
    how(bad)
    return bad


@pytest.mark.parametrize("obj, how, qname, reason", MALFORMED, ids=[m[1].__name__ for m in MALFORMED])
@pytest.mark.parametrize("arrives", ["in-list", "by-watch"])
def test_malformed_import(fake, kubeconfig, caplog, obj, how, qname, reason, arrives):
    """A bad object is rejected once (log + on_reject), counts as absent, and
    never disturbs the rest of the zone, whether listed or watched, relisted or not."""
    bad = spoiled(obj, how)
    fake.put(*o.STANDARD, *([bad] if arrives == "in-list" else []))
    fake.start()

    async def scenario():
        async with harness(kubeconfig) as h:
            await h.answers(GOOD)
            async with h.steady(GOOD):
                if arrives == "by-watch":
                    fake.put(bad)
                await h.until(lambda: len(h.rejected) == 1, "the rejection")
                # Force a relist: the same bad object must not be reported again.
                fake.mute_watches()
                fake.compact()
                fake.drop_watches()
                await h.until(lambda: fake.lists("serviceimports") == 2, "a relist")
                await h.until(lambda: h.count(Replace) == 4, "the relist's Replace")
            assert h.ask(o.name(qname)) == ("NXDOMAIN", [])
            assert [r.reason for r in h.rejected if reason in r.reason] and len(h.rejected) == 1
            logged = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert sum("rejected ServiceImport" in r.getMessage() for r in logged) == 1
            # Fixed: it appears; spoiled again: it goes away at once.
            fake.put(obj)
            await h.answers({(o.name(qname), "A"): ("NOERROR", obj["spec"]["ips"])})
            fake.put(spoiled(obj, how))
            await h.answers({(o.name(qname), "A"): ("NXDOMAIN", [])})
            assert len(h.rejected) == 2  # reported again: it is a new rejection after a good version

    run(scenario())


@pytest.mark.parametrize("how, reason", SLICE_BAD, ids=[m[0].__name__ for m in SLICE_BAD])
def test_malformed_slice(fake, kubeconfig, how, reason):
    fake.put(*o.STANDARD)
    fake.start()
    db_c2 = o.STANDARD[4]

    async def scenario():
        async with harness(kubeconfig) as h:
            await h.answers(GOOD)
            fake.put(spoiled(db_c2, how))
            await h.answers({(o.name("db.demo"), "A"): ("NOERROR", ["10.1.0.1"])})
            assert len(h.rejected) == 1 and reason in h.rejected[0].reason
            assert h.answers_are({(o.name("web.demo"), "A"): GOOD[(o.name("web.demo"), "A")]})

    run(scenario())


LINES = [
    "this is not json",
    '{"type": "SOMETHING_NEW", "object": {"metadata": {"name": "x"}}}',
    '{"no": "type"}',
    '{"type": "ADDED", "object": "not an object"}',
    "[1, 2, 3]",
]


def test_malformed_watch_lines_are_skipped(fake, kubeconfig, caplog):
    fake.put(*o.STANDARD)
    fake.start()
    api = o.service_import("demo", "api", ips=["10.42.0.9"])

    async def scenario():
        async with harness(kubeconfig) as h:
            await h.answers(GOOD)
            await h.until(lambda: fake.open_watches("serviceimports") == 1, "the watch")
            for line in LINES:
                fake.inject("serviceimports", line)
            fake.put(api)
            await h.answers({**GOOD, (o.name("api.demo"), "A"): ("NOERROR", ["10.42.0.9"])})
            assert fake.lists("serviceimports") == 1  # skipped, not a reason to relist
        messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert sum("unknown type 'SOMETHING_NEW'" in m for m in messages) == 1
        assert sum("not an event" in m for m in messages) == 1  # once per watcher, then DEBUG

    run(scenario())


def test_deletions_are_immediate(fake, kubeconfig):
    fake.put(*o.STANDARD)
    fake.start()
    web, web_c1, db, db_c1, db_c2 = o.STANDARD

    async def scenario():
        async with harness(kubeconfig) as h:
            await h.answers(GOOD)
            fake.delete(db_c2)
            await h.answers({(o.name("db.demo"), "A"): ("NOERROR", ["10.1.0.1"]),
                             (o.name("10-2-0-1.c2.db.demo"), "A"): ("NXDOMAIN", [])})
            fake.delete(web)
            await h.answers({(o.name("web.demo"), "A"): ("NXDOMAIN", [])})
            assert h.events(Delete) == [Delete(Kind.ENDPOINT_SLICE, "demo", "db-c2"),
                                        Delete(Kind.SERVICE_IMPORT, "demo", "web")]

    run(scenario())


def test_invisible_changes_touch_nothing(fake, kubeconfig):
    """Status-only updates and bookmarks emit no event; the serial does not move."""
    fake.put(*o.STANDARD)
    fake.start()
    web = o.STANDARD[0]

    async def scenario():
        async with harness(kubeconfig) as h:
            await h.answers(GOOD)
            batches, serial = len(h.batches), h.store.snapshot.serial
            fake.put({**web, "status": {"clusters": [{"cluster": "c1"}]}})  # new resourceVersion, same DNS
            fake.bookmark()
            marker = o.service_import("demo", "marker", ips=["10.42.0.77"])
            fake.put(marker)  # something visible after it, to know the stream got this far
            await h.answers({(o.name("marker.demo"), "A"): ("NOERROR", ["10.42.0.77"])})
            assert len(h.batches) == batches + 1
            assert [e.record.name for e in h.events(Upsert)] == ["marker"]
            assert h.store.snapshot.serial == serial + 1

    run(scenario())
