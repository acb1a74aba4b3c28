"""The pure parts, as tables: merging feeds of one kind, outage bookkeeping,
and failures turned into problems with a fix in the text."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError, ReadTimeoutError

from mcsdns.model.events import Delete, Outage, Recovered, Replace, Upsert
from mcsdns.model.records import Kind, ServiceImport
from mcsdns.source.kube import Health
from mcsdns.source.kube.faults import Fault, NotServed, Unreadable, classify
from mcsdns.source.kube.feeds import DERIVED_SERVICES, ENDPOINT_SLICES, IMPORTS, MCS_SLICES, SERVICE_IMPORTS
from mcsdns.source.kube.view import KindView


def imp(name: str, ip: str = "10.0.0.1") -> ServiceImport:
    return ServiceImport("ns", name, False, (ip,), ())


def key(name: str):
    return (Kind.SERVICE_IMPORT, "ns", name)


# Steps on a view fed by feeds "a" and "b": (method, feed, argument, events expected)
STEPS = [
    ("put", "a", imp("x"), []),  # nothing until every feed listed
    ("replace", "a", {key("x"): imp("x")}, []),
    ("replace", "b", {key("y"): imp("y")}, [Replace(Kind.SERVICE_IMPORT, (imp("x"), imp("y")))]),
    ("put", "a", imp("x"), []),  # the same again: nothing (reconnects, status-only updates)
    ("put", "a", imp("x", "10.0.0.2"), [Upsert(imp("x", "10.0.0.2"))]),
    # b now holds x too; it says so (the store drops an Upsert equal to what it has)
    ("put", "b", imp("x", "10.0.0.2"), [Upsert(imp("x", "10.0.0.2"))]),
    ("drop", "a", key("x"), [Upsert(imp("x", "10.0.0.2"))]),  # b still has it: not deleted
    ("drop", "b", key("x"), [Delete(Kind.SERVICE_IMPORT, "ns", "x")]),
    ("drop", "b", key("x"), []),  # unknown: nothing
    # a relists: b's objects stay in the Replace, so a relist of one never deletes the other's
    ("replace", "a", {key("z"): imp("z")}, [Replace(Kind.SERVICE_IMPORT, (imp("z"), imp("y")))]),
]


def test_kind_view_merges_feeds():
    view = KindView(Kind.SERVICE_IMPORT, ["a", "b"])
    for number, (method, feed, argument, expected) in enumerate(STEPS):
        assert getattr(view, method)(feed, argument) == expected, f"step {number}: {method} {feed}"


def test_health_reports_changes_once(caplog):
    caplog.set_level(logging.DEBUG, logger="mcsdns")
    health = Health()
    down = classify(MaxRetryError(None, "/", NewConnectionError(None, "[Errno 111] Connection refused")),
                    SERVICE_IMPORTS, "https://api")
    assert health.healthy(IMPORTS) == []  # healthy from the start: nothing to say
    assert health.failed(IMPORTS, down) == [Outage(str(down))]
    assert health.failed(IMPORTS, down) == []  # the same again
    assert health.failed(MCS_SLICES, down) == []  # the same problem from another feed
    assert health.healthy(IMPORTS) == []  # one feed still down
    assert health.healthy(MCS_SLICES) == [Recovered()]
    assert health.healthy(MCS_SLICES) == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Connection refused" in warnings[0].getMessage()
    assert "0x" not in warnings[0].getMessage()  # no object addresses: stable across retries


def test_health_outage_text_follows_the_problems():
    health = Health()
    a = classify(ApiException(status=403, reason="Forbidden"), SERVICE_IMPORTS, "h")
    b = classify(ApiException(status=403, reason="Forbidden"), ENDPOINT_SLICES, "h")
    assert health.failed(IMPORTS, a) == [Outage(str(a))]
    assert health.failed(MCS_SLICES, b) == [Outage(f"{a}; {b}")]
    assert health.healthy(IMPORTS) == [Outage(str(b))]
    assert health.healthy(MCS_SLICES) == [Recovered()]


STATUS = '{"kind":"Status","code":%d,"message":"%s"}'
# (error, resource, fault, fragments of the text)
CLASSIFY = [
    (ApiException(status=410, reason="Gone"), SERVICE_IMPORTS, Fault.GONE, ["410 Gone", "too old"]),
    (ApiException(status=403, reason="Forbidden"), ENDPOINT_SLICES, Fault.FORBIDDEN,
     ['resources: ["endpointslices"]', 'apiGroups: ["discovery.k8s.io"]', '"get", "list", "watch"']),
    (ApiException(status=401, reason="Unauthorized"), SERVICE_IMPORTS, Fault.UNAUTHORIZED, ["credentials"]),
    (ApiException(status=404, reason="Not Found"), SERVICE_IMPORTS, Fault.MISSING, ["install the mcs-api CRDs"]),
    (ApiException(status=404, reason="Not Found"), ENDPOINT_SLICES, Fault.MISSING, ["discovery.k8s.io/v1"]),
    (NotServed("serviceimports"), SERVICE_IMPORTS, Fault.MISSING, ["v1beta1 or v1alpha1"]),
    (ApiException(status=500, reason="Internal"), DERIVED_SERVICES.resource, Fault.SERVER, ["500"]),
    (ApiException(status=0, reason="SSLError\ncertificate verify failed"), SERVICE_IMPORTS, Fault.UNREACHABLE,
     ["cannot reach", "SSLError"]),
    (MaxRetryError(None, "/", NewConnectionError(None, "<C object at 0x7f00>: [Errno 111] Connection refused")),
     SERVICE_IMPORTS, Fault.UNREACHABLE, ["[Errno 111] Connection refused"]),
    (ReadTimeoutError(None, "/", "Read timed out."), SERVICE_IMPORTS, Fault.BROKEN, ["read timed out"]),
    (ProtocolError("Response ended prematurely"), SERVICE_IMPORTS, Fault.BROKEN, ["ended prematurely"]),
    (Unreadable("not JSON"), SERVICE_IMPORTS, Fault.MALFORMED, ["not JSON"]),
]


@pytest.mark.parametrize(
    "error, resource, fault, fragments", CLASSIFY, ids=[f"{c[2].value}-{i}" for i, c in enumerate(CLASSIFY)]
)
def test_classify(error, resource, fault, fragments):
    problem = classify(error, resource, "https://api")
    assert problem.fault == fault
    for fragment in fragments:
        assert fragment in problem.text
    assert "\n" not in problem.text and "0x" not in problem.text
    assert problem.outage == (fault not in (Fault.GONE, Fault.BROKEN))


def test_classify_reads_the_status_message():
    error = ApiException(status=403, reason="Forbidden")
    message = 'serviceimports is forbidden: User \\"system:serviceaccount:mcsdns:mcsdns\\" cannot list'
    error.body = STATUS % (403, message)
    assert "system:serviceaccount:mcsdns:mcsdns" in classify(error, SERVICE_IMPORTS, "h").text


def test_classify_lets_bugs_through():
    with pytest.raises(KeyError):
        classify(KeyError("bug"), SERVICE_IMPORTS, "h")


class _Sink:
    """Records what a Watcher hands over, and how long each handing costs."""

    def __init__(self, cost: float) -> None:
        self.cost, self.chunks = cost, []

    def changed(self, feed, changes) -> None:
        self.chunks.append([(kind, obj["metadata"]["name"]) for kind, obj in changes])
        time.sleep(self.cost * len(changes))


def _change(kind: str, name: str) -> tuple[str, dict]:
    return kind, {"metadata": {"name": name, "namespace": "demo", "resourceVersion": "1"}}


@pytest.mark.parametrize("cost, most", [(0.004, 3), (0.00001, 256)])
def test_a_burst_is_handed_in_chunks_of_the_budget_with_turns_between(cost, most):
    """Dear changes go a few at a time, cheap ones by hundreds; the loop gets a turn
    after each chunk; of an object changed twice in the batch, only its last change."""
    from mcsdns.source.kube.watch import MAX_CHUNK, Pacing, Watcher

    sink = _Sink(cost)
    pacing = Pacing(None, None, (0.1, 1.0), 60, 500)
    watcher = Watcher(IMPORTS, api=None, sink=sink, pacing=pacing)
    burst = [_change("MODIFIED", f"s{n}") for n in range(300)] + [_change("DELETED", "s0")]

    async def scenario() -> int:
        turns = 0

        async def count() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        counter = asyncio.create_task(count())
        await watcher._hand(burst)
        counter.cancel()
        return turns

    turns = asyncio.run(scenario())
    handed = [change for chunk in sink.chunks for change in chunk]
    assert handed == [("MODIFIED", f"s{n}") for n in range(1, 300)] + [("DELETED", "s0")]
    assert max(len(chunk) for chunk in sink.chunks[1:]) <= min(most, MAX_CHUNK)
    assert turns >= len(sink.chunks)  # the loop ran between every two chunks
