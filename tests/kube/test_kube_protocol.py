"""How the source talks to the API server: request parameters, paging, pacing,
backoff, and that it leaves nothing behind when cancelled."""

from __future__ import annotations

import asyncio
import threading
import time

from . import objects as o
from .harness import harness, run


def test_list_then_watch_parameters(fake, kubeconfig):
    """Paged list; watch from the list's resourceVersion with bookmarks, a
    server-side timeout (jittered between t and 2t, as client-go) and selectors."""
    fake.put(*o.STANDARD, *[o.service_import("demo", f"extra{i}", ips=[f"10.50.0.{i}"]) for i in range(5)])
    fake.start()

    async def scenario():
        async with harness(kubeconfig, page_size=2, watch_timeout=7) as h:
            await h.answers({**o.STANDARD_ANSWERS, (o.name("extra4.demo"), "A"): ("NOERROR", ["10.50.0.4"])})
            await h.until(lambda: fake.calls("serviceimports", watch=True), "the watch")
            pages = fake.calls("serviceimports", watch=False)
            assert len(pages) == 4 and all(p.params["limit"] == "2" for p in pages)  # 7 imports, 2 a page
            listed_rv = pages[0].params.get("resourceVersion")
            assert listed_rv is None  # a list from the latest state, not the watch cache's past
            watch = fake.calls("serviceimports", watch=True)[0].params
            assert watch["allowWatchBookmarks"] == "true"
            assert 7 <= int(watch["timeoutSeconds"]) <= 14
            assert watch["resourceVersion"] == str(fake.rv)  # nothing changed since the list

    run(scenario())


def test_watch_resumes_from_the_last_version_seen(fake, kubeconfig):
    """After events and a bookmark, a reconnect asks for the newest version seen, and
    a server-side timeout ending the watch is answered by a new watch, not a relist."""
    fake.put(*o.STANDARD)
    fake.start()

    async def scenario():
        async with harness(kubeconfig, watch_timeout=1) as h:
            await h.answers(o.STANDARD_ANSWERS)
            fake.put(o.service_import("demo", "api", ips=["10.42.0.9"]))
            await h.answers({(o.name("api.demo"), "A"): ("NOERROR", ["10.42.0.9"])})
            fake.put(o.mcs_slice("other", "x-c1", "x", "c1", ["10.9.9.9"]))  # moves the version only
            fake.bookmark()
            rv = fake.rv
            await h.until(lambda: len(fake.calls("serviceimports", watch=True)) >= 2, "the server to end the watch")
            again = fake.calls("serviceimports", watch=True)[1].params
            assert again["resourceVersion"] == str(rv)
            assert fake.lists("serviceimports") == 1

    run(scenario(), timeout=30)


def test_backoff_grows_with_jitter(fake, kubeconfig):
    """Retries of a persistent failure slow down (exponential, capped)."""
    fake.denied.add("serviceimports")
    fake.start()

    async def scenario():
        async with harness(kubeconfig, backoff=(0.05, 0.4)):
            await asyncio.sleep(2.0)

    run(scenario())
    attempts = len(fake.calls("serviceimports"))
    # Delays of 0.05, 0.1, 0.2, 0.4, 0.4 ... s, each between half and all of it:
    # 7 to 13 attempts in 2 s (hundreds without backoff).
    assert 5 <= attempts <= 14, attempts


def test_relists_are_paced(fake, kubeconfig):
    """An API server refusing every watch as too old makes us relist; the throttler
    keeps that to relist_limit however fast the server answers."""
    fake.put(*o.STANDARD)
    fake.always_gone = True
    fake.start()

    async def scenario():
        async with harness(kubeconfig, relist_limit=(3, 1.0)) as h:
            await h.until(lambda: h.store.ready, "the zone to be ready")
            await asyncio.sleep(2.0)

    run(scenario())
    lists = fake.lists("serviceimports") + fake.lists("endpointslices")
    assert 4 <= lists <= 3 * 4, lists  # at most 3 a second for both feeds together, over ~2.x seconds


def test_cancel_leaves_no_threads(fake, kubeconfig):
    fake.put(*o.STANDARD)
    fake.start()

    async def scenario():
        h = harness(kubeconfig, read_timeout=60.0)
        async with h:
            await h.answers(o.STANDARD_ANSWERS)
            await h.until(lambda: fake.open_watches() == 2, "both watches to open")
            assert _ours()
        started = time.monotonic()
        # asyncio.run must not wait for a thread stuck in a read (it joins the default executor).
        return started

    started = run(scenario())
    assert time.monotonic() - started < 2.0
    deadline = time.monotonic() + 3
    while _ours() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _ours(), _ours()


def test_emit_only_on_the_loop_thread(fake, kubeconfig):
    """The harness asserts the thread in every emit; make sure it ran many times."""
    fake.put(*o.STANDARD)
    fake.start()

    async def scenario():
        async with harness(kubeconfig) as h:
            await h.answers(o.STANDARD_ANSWERS)
            for i in range(20):
                fake.put(o.service_import("demo", f"n{i}", ips=[f"10.60.0.{i}"]))
            await h.answers({(o.name("n19.demo"), "A"): ("NOERROR", ["10.60.0.19"])})
            assert len(h.batches) >= 3

    run(scenario())


def _ours() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("mcsdns-")]

