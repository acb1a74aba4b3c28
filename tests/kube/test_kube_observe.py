"""What the Kubernetes source shows an operator: /readyz reasons and the source
metrics of a live server against the fake API, and the reasons a watch restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Server, wait_for
from tests.test_metrics import sample, scrape

from . import objects as o
from .harness import harness, run

API = o.service_import("demo", "api", ips=["10.42.0.9"])
RESOURCES = ("serviceimports", "endpointslices")


@pytest.fixture
def kube_server(fake, kubeconfig):
    servers = []

    def start(*extra: str) -> Server:
        servers.append(Server("kube", "--kubeconfig", kubeconfig, "--producer", "standard", *extra))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def readyz_when(server: Server, status: int, text: str) -> str:
    def check():
        got = server.http("/readyz")
        return got[0] == status and text in got[1] and got[1]

    return wait_for(check, timeout=20, what=f"/readyz {status} with {text!r}").strip()


def test_readyz_reasons_follow_the_source(fake, kube_server):
    fake.put(*o.STANDARD)
    fake.denied = {"serviceimports"}
    fake.start()
    server = kube_server("--log-format", "json")
    body = readyz_when(server, 503, "sync of serviceimports; source outage: ")  # once the slices have listed
    assert body.startswith("not ready: waiting for the first full sync of serviceimports; source outage: ")
    assert "not allowed to list/watch serviceimports" in body  # which resource, and why
    metrics = scrape(server)
    assert metrics[sample("mcsdns_ready")] == 0 and metrics[sample("mcsdns_source_outage")] == 1
    assert metrics[sample("mcsdns_source_errors_total", resource="serviceimports", reason="forbidden")] >= 1
    assert sample("mcsdns_source_seconds_since_sync", resource="endpointslices") in metrics
    assert sample("mcsdns_source_seconds_since_sync", resource="serviceimports") not in metrics  # never synced

    fake.denied = set()
    body = readyz_when(server, 200, "ready")
    assert body.startswith("ready, serial ") and "outage" not in body

    fake.stop()
    body = readyz_when(server, 200, "outage")  # still serving the last good zone
    assert "source outage: cannot reach the API server" in body
    assert scrape(server)[sample("mcsdns_source_outage")] == 1

    fake.start()
    body = readyz_when(server, 200, "ready, serial")
    wait_for(lambda: "outage" not in server.http("/readyz")[1], timeout=20, what="the outage to clear")
    metrics = scrape(server)
    assert metrics[sample("mcsdns_source_outage")] == 0 and metrics[sample("mcsdns_ready")] == 1
    unreachable = [metrics.get(sample("mcsdns_source_errors_total", resource=r, reason="unreachable"), 0) for r in RESOURCES]
    assert sum(unreachable) >= 1  # whichever watch tried to reconnect first
    assert server.stop() == 0
    events = [json.loads(line).get("event") for line in Path(server.log.name).read_text().splitlines()]
    # the outage before the first sync, then the sync, and the API going away and back
    assert [e for e in events if e in ("outage", "recovered", "synced")] == [
        "outage", "recovered", "synced", "outage", "recovered"
    ]


def counter(server: Server, name: str, **labels: str) -> float:
    return scrape(server).get(sample(name, **labels), 0.0)


def test_watch_events_restarts_and_sync(fake, kube_server):
    fake.put(*o.STANDARD)
    fake.start()
    server = kube_server().wait_ready()
    wait_for(lambda: fake.open_watches() == 2, what="both watches open")
    metrics = scrape(server)
    for resource in RESOURCES:
        assert 0 <= metrics[sample("mcsdns_source_seconds_since_sync", resource=resource)] < 5

    events = "mcsdns_source_watch_events_total"
    added = counter(server, events, resource="serviceimports", type="ADDED")
    fake.put(API)
    wait_for(lambda: counter(server, events, resource="serviceimports", type="ADDED") == added + 1, what="ADDED")
    assert counter(server, events, resource="endpointslices", type="ADDED") == 0  # the slices did not change

    fake.bookmark()
    for resource in RESOURCES:
        wait_for(lambda: counter(server, events, resource=resource, type="BOOKMARK") == 1, what=f"{resource} BOOKMARK")

    fake.expire_watches()
    for resource in RESOURCES:
        wait_for(lambda: counter(server, events, resource=resource, type="ERROR") == 1, what=f"{resource} ERROR")
        wait_for(
            lambda: counter(server, "mcsdns_source_watch_restarts_total", resource=resource, reason="expired") == 1,
            what=f"{resource} restart after 410",
        )
        assert counter(server, "mcsdns_source_errors_total", resource=resource, reason="gone") == 1

    wait_for(lambda: fake.open_watches() == 2, what="both watches open again")
    fake.drop_watches()
    for resource in RESOURCES:
        wait_for(
            lambda: counter(server, "mcsdns_source_watch_restarts_total", resource=resource, reason="broken") >= 1,
            what=f"{resource} restart after a cut stream",
        )
    assert counter(server, "mcsdns_source_outage") == 0  # none of this is an outage


@pytest.mark.parametrize(
    "reason,overrides,fault",
    [("closed", {"watch_timeout": 1}, None), ("timeout", {"read_timeout": 0.5}, "mute")],
)
def test_watch_restart_reasons(fake, kubeconfig, reason, overrides, fault):
    """The server ending a watch (timeoutSeconds) is "closed" and leaves the
    resource in sync; a watch silent past the read timeout is "timeout"."""
    fake.put(*o.STANDARD)
    fake.start()

    async def scenario():
        async with harness(kubeconfig, **overrides) as h:
            stats = h.source.stats
            await h.answers(o.STANDARD_ANSWERS)
            await h.until(lambda: fake.open_watches() == 2, "both watches to open")
            listed = dict(stats.synced["serviceimports"])
            if fault == "mute":
                fake.mute_watches()
            await h.until(lambda: stats.restarts[("serviceimports", reason)] >= 1, f"a {reason} restart", timeout=6)
            assert set(stats.seconds_since_sync()) == set(RESOURCES)
            others = {key for key, count in stats.restarts.items() if count and key[1] != reason}
            assert not others, others
            if reason == "closed":
                assert not stats.errors  # a normal end is not an error
                assert stats.synced["serviceimports"]["serviceimports"] > listed["serviceimports"]  # in sync again

    run(scenario())
