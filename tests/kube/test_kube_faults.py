"""Every fault the API can throw at the source, asserted through the zone: it keeps
answering from the last good state, reports an outage, and catches up by itself."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mcsdns.model.events import Outage, Recovered, Replace

from . import objects as o
from .harness import harness, run

WEB = {(o.name("web.demo"), "A"): ("NOERROR", ["10.42.0.1"])}
API = o.service_import("demo", "api", ips=["10.42.0.9"])
API_ANSWER = {(o.name("api.demo"), "A"): ("NOERROR", ["10.42.0.9"])}
NOT_READY = {(o.name("web.demo"), "A"): ("SERVFAIL", [])}


def warnings(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


def test_api_down_at_start(fake, kubeconfig, debug_logs):
    fake.put(*o.STANDARD)

    async def scenario():
        async with harness(kubeconfig) as h:
            await h.until(lambda: h.outage is not None, "an outage to be reported")
            assert "cannot reach the API server" in h.outage and fake.url in h.outage
            await asyncio.sleep(0.5)  # several retries
            assert h.answers_are(NOT_READY)  # SERVFAIL until the first full sync
            fake.start()
            await h.answers(o.STANDARD_ANSWERS)
            await h.until(lambda: h.outage is None, "the outage to clear")
            assert h.count(Recovered) == 1
        retries = [r for r in debug_logs.records if "still cannot reach" in r.getMessage()]
        assert retries, "expected retries while the API was down"
        assert len(warnings(debug_logs, "cannot reach the API server")) == 1  # logged once, not per retry or feed

    run(scenario())


def test_api_restart_resumes_without_relisting(fake, kubeconfig):
    """Down mid-run: the zone keeps the last good state; back up, watches resume
    from their resourceVersion (no relist) and pick up what changed meanwhile."""
    fake.put(*o.STANDARD)
    fake.start()

    async def scenario():
        async with harness(kubeconfig) as h:
            await h.answers(o.STANDARD_ANSWERS)
            lists = fake.lists("serviceimports")
            async with h.steady(o.STANDARD_ANSWERS):
                fake.stop()
                await h.until(lambda: h.outage is not None, "an outage to be reported")
                fake.put(API)  # written while we cannot see it
            fake.start()
            await h.answers({**o.STANDARD_ANSWERS, **API_ANSWER})
            await h.until(lambda: h.outage is None, "the outage to clear")
            assert fake.lists("serviceimports") == lists  # a reconnect is not a relist
            assert h.count(Replace) == 2  # the two initial lists, nothing since

    run(scenario())


def test_watch_dropped_mid_stream(fake, kubeconfig):
    fake.put(*o.STANDARD)
    fake.start()

    async def scenario():
        async with harness(kubeconfig) as h:
            await h.answers(o.STANDARD_ANSWERS)
            await h.until(lambda: fake.open_watches() == 2, "both watches to open")
            async with h.steady(o.STANDARD_ANSWERS):
                fake.drop_watches()
                fake.put(API)
                await h.answers(API_ANSWER)
            assert h.count(Outage) == 0  # a drop that resumes at once is no outage
            assert h.count(Replace) == 2
            assert fake.lists("serviceimports") == 1

    run(scenario())


def test_watch_hung_silently_is_resumed(fake, kubeconfig):
    """A watch that stays open and says nothing is given up after the read timeout."""
    fake.put(*o.STANDARD)
    fake.start()

    async def scenario():
        async with harness(kubeconfig, read_timeout=0.5) as h:
            await h.answers(o.STANDARD_ANSWERS)
            await h.until(lambda: fake.open_watches() == 2, "both watches to open")
            fake.mute_watches()
            fake.put(API)
            await h.answers(API_ANSWER, timeout=5)
            assert h.count(Outage) == 0 and h.count(Replace) == 2

    run(scenario())


def test_api_hung_is_an_outage(fake, kubeconfig):
    """The server accepts and reads but never answers: its watches fall silent
    (no error to see), so after ``probe_after`` a one-object list must answer;
    it does not, so it is an outage, reported, while the last good zone is
    served; released, the held requests answer and the zone catches up."""
    fake.put(*o.STANDARD)
    fake.start()

    async def scenario():
        async with harness(kubeconfig, probe_after=0.3, probe_timeout=0.3) as h:
            await h.answers(o.STANDARD_ANSWERS)
            await h.until(lambda: fake.open_watches() == 2, "both watches to open")
            async with h.steady(o.STANDARD_ANSWERS):
                fake.hang()
                fake.put(API)  # written while it cannot tell us
                await h.until(lambda: h.outage is not None, "an outage to be reported", timeout=5)
                assert "did not answer within 0.3s" in h.outage and fake.url in h.outage
                errors = h.source.stats.errors
                assert sum(n for (_, reason), n in errors.items() if reason == "unreachable") >= 1, errors
            fake.hang(False)
            await h.answers(API_ANSWER)
            await h.until(lambda: h.outage is None, "the outage to clear")
            assert h.count(Replace) == 2  # resumed from the resourceVersion: no relist

    run(scenario())


def test_quiet_watch_of_a_live_server_is_no_outage(fake, kubeconfig):
    """Probes of a server that answers them leave a quiet watch alone."""
    fake.put(*o.STANDARD)
    fake.start()

    async def scenario():
        async with harness(kubeconfig, probe_after=0.1, probe_timeout=1.0) as h:
            await h.answers(o.STANDARD_ANSWERS)
            await h.until(lambda: len([r for r in fake.calls("serviceimports") if r.params.get("limit") == "1"]) >= 3,
                          "several probes")
            assert h.count(Outage) == 0
            assert len(fake.calls("serviceimports", watch=True)) == 1  # the same watch throughout

    run(scenario())


@pytest.mark.parametrize("how", ["status-410", "error-event-on-connect", "error-event-mid-stream"])
def test_gone_relists(fake, kubeconfig, how):
    """410 Gone, however it comes, means relist: Replace drops what vanished meanwhile."""
    fake.put(*o.STANDARD)
    fake.start()
    db_c2 = o.STANDARD[4]
    after = {**o.STANDARD_ANSWERS, **API_ANSWER, (o.name("db.demo"), "A"): ("NOERROR", ["10.1.0.1"])}
    del after[(o.name("10-2-0-1.c2.db.demo"), "A")]

    async def scenario():
        async with harness(kubeconfig) as h:
            await h.answers(o.STANDARD_ANSWERS)
            await h.until(lambda: fake.open_watches() == 2, "both watches to open")
            lists = fake.lists("serviceimports")
            fake.mute_watches()  # so the changes can only arrive by relisting
            fake.put(API)
            fake.delete(db_c2)
            if how == "error-event-mid-stream":
                fake.expire_watches()
            else:
                fake.gone_as = "status" if how == "status-410" else "event"
                fake.compact()
                fake.drop_watches()
            await h.answers(after)
            assert fake.lists("serviceimports") == lists + 1
            assert h.count(Replace) == 4  # both kinds relisted
            assert h.count(Outage) == 0  # 410 is routine, not an outage

    run(scenario())


RBAC = [
    ("serviceimports", "standard", '{apiGroups: ["multicluster.x-k8s.io"], resources: ["serviceimports"]'),
    ("endpointslices", "standard", '{apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"]'),
    ("services", "karmada", '{apiGroups: [""], resources: ["services"]'),
]


@pytest.mark.parametrize("resource, producer, rule", RBAC)
def test_forbidden_at_start(fake, kubeconfig, debug_logs, resource, producer, rule):
    fake.put(*o.STANDARD)
    fake.denied.add(resource)
    fake.start()

    async def scenario():
        async with harness(kubeconfig, producer) as h:
            await h.until(lambda: len(fake.calls(resource)) >= 3, "several attempts")
            assert not h.store.ready
            assert h.outage is not None and rule in h.outage and "manifests/rbac.yaml" in h.outage
            assert len(warnings(debug_logs, "not allowed to list/watch")) == 1  # once, not per retry
            fake.denied.clear()
            await h.until(lambda: h.store.ready and h.outage is None, "recovery once allowed")
            await h.answers(WEB)
        resolved = [r for r in debug_logs.records if r.levelno == logging.INFO and "resolved:" in r.getMessage()]
        assert len(resolved) == 1

    run(scenario())


def test_forbidden_mid_run_keeps_the_zone(fake, kubeconfig):
    fake.put(*o.STANDARD)
    fake.start()

    async def scenario():
        async with harness(kubeconfig) as h:
            await h.answers(o.STANDARD_ANSWERS)
            async with h.steady(o.STANDARD_ANSWERS):
                fake.denied.add("endpointslices")
                fake.drop_watches()
                await h.until(lambda: h.outage is not None and "endpointslices" in h.outage, "an RBAC outage")
                await asyncio.sleep(0.3)
            fake.denied.clear()
            fake.put(API)
            await h.answers(API_ANSWER)
            await h.until(lambda: h.outage is None, "the outage to clear")

    run(scenario())


def test_crd_missing_then_installed(fake, kubeconfig, debug_logs):
    """No ServiceImport CRD: one clear line; installing v1alpha1 later is found by discovery."""
    fake.put(*o.STANDARD)
    fake.mcs_versions = []
    fake.start()

    async def scenario():
        async with harness(kubeconfig) as h:
            await h.until(lambda: h.outage is not None, "an outage to be reported")
            assert "install the mcs-api CRDs" in h.outage and "kubectl apply -f" in h.outage
            await h.until(lambda: len([r for r in fake.requests if r.path == "/apis"]) >= 3, "rediscovery")
            assert not h.store.ready
            fake.mcs_versions = ["v1alpha1"]
            await h.answers(o.STANDARD_ANSWERS)
            await h.until(lambda: h.outage is None, "the outage to clear")
            assert {r.path for r in fake.calls("serviceimports")} == {
                "/apis/multicluster.x-k8s.io/v1alpha1/serviceimports"
            }
        assert len(warnings(debug_logs, "install the mcs-api CRDs")) == 1

    run(scenario())


@pytest.mark.parametrize(
    "served, used", [(["v1beta1", "v1alpha1"], "v1beta1"), (["v1alpha1"], "v1alpha1"), (["v1beta1"], "v1beta1")]
)
def test_version_discovery(fake, kubeconfig, served, used):
    fake.put(*o.STANDARD)
    fake.mcs_versions = served
    fake.start()

    async def scenario():
        async with harness(kubeconfig) as h:
            await h.answers(o.STANDARD_ANSWERS)
            await h.until(lambda: fake.calls("serviceimports", watch=True), "the watch")
            assert {r.path.split("/")[3] for r in fake.calls("serviceimports")} == {used}

    run(scenario())


def test_crd_version_removed_mid_run(fake, kubeconfig):
    """The CRD drops v1beta1 (a downgrade, or a re-install): 404, rediscover, v1alpha1."""
    fake.put(*o.STANDARD)
    fake.start()

    async def scenario():
        async with harness(kubeconfig) as h:
            await h.answers(o.STANDARD_ANSWERS)
            async with h.steady(o.STANDARD_ANSWERS):
                fake.mcs_versions = ["v1alpha1"]
                fake.drop_watches()
                await h.until(
                    lambda: any("/v1alpha1/" in r.path and r.watch for r in fake.calls("serviceimports")),
                    "a watch on v1alpha1",
                )
            fake.put(API)
            await h.answers(API_ANSWER)

    run(scenario())
