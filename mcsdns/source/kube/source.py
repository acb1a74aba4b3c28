"""The Kubernetes API as a source of zone events (``--source kube``).

One ``Watcher`` per feed (see ``feeds`` for what each producer needs)
lists and watches; this module turns what they see into the events the zone
takes (``Replace`` per (re)list, ``Upsert``/``Delete`` per watch event,
``Outage``/``Recovered``) and keeps the operator informed: every distinct
failure is logged once at WARNING with what to do about it, and once at INFO
when it clears, however often we retry in between.

The zone never empties on an outage: we only ever send ``Outage``, and the
store keeps answering from what it has. It is ready once every kind we watch
has listed once (``required``), which is the store's job.

Threads: blocking requests run on worker threads (``api``); everything
here, and every ``emit``, runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from asyncio_throttle import Throttler

from ...model.events import Event, Outage, Recovered
from ...model.records import Kind, Rejected, Service, ServiceImport
from .api import KubeApi
from .connect import connect
from .faults import Problem
from .feeds import Feed, feeds_for
from .view import Intake, KindView
from .watch import Change, Pacing, Watcher
from ..stats import SourceStats

log = logging.getLogger(__name__)


class KubeSource:
    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        producer: str = "auto",
        on_reject: Callable[[Rejected], None] | None = None,
        watch_timeout: int = 300,
        read_timeout: float = 90.0,
        connect_timeout: float = 10.0,
        page_size: int = 5000,  # 100k imports: 200 pages of 500 took 27 s, 20 of 5000 took 16 s (bench/RESULTS.md)
        backoff: tuple[float, float] = (0.5, 30.0),
        relist_limit: tuple[int, float] = (4, 10.0),
        reconnect_limit: tuple[int, float] = (10, 1.0),
        probe_after: float = 15.0,
        probe_timeout: float = 10.0,
    ) -> None:
        """``read_timeout`` bounds the silence of a watch: the API server sends a
        BOOKMARK about once a minute, so a watch quiet for longer is presumed
        hung and resumed. A server silent for ``probe_after`` must answer a
        one-object list within ``probe_timeout``, or it is hung: an outage.
        ``relist_limit``/``reconnect_limit`` are (requests, per seconds) for all
        feeds together; ``backoff`` is (first, ceiling)."""
        self.feeds: tuple[Feed, ...] = feeds_for(producer)
        self.required: frozenset[Kind] = frozenset(feed.kind for feed in self.feeds)
        self.producer = producer
        self._config = (kubeconfig, context)
        self._timeouts = (connect_timeout, read_timeout)
        self._on_reject = on_reject or (lambda rejected: None)
        # Shared by every feed, and kept across runs: the pace survives a restart of run().
        self._pacing = Pacing(
            Throttler(*relist_limit), Throttler(*reconnect_limit), backoff, watch_timeout, page_size,
            (probe_after, probe_timeout),
        )
        self._client = None
        self.stats = SourceStats()  # kept across runs, read by the metrics

    def check(self) -> None:
        """Load the client configuration; SourceError (one line) if it is unusable."""
        self._client = connect(*self._config)

    async def run(self, emit: Callable[[list[Event]], None]) -> None:
        if self._client is None:
            self.check()
        api = KubeApi(self._client, *self._timeouts)
        session = Session(self.feeds, emit, self._on_reject)
        log.info("watching %s at %s (producer %s)", ", ".join(f.name for f in self.feeds), api.host, self.producer)
        await asyncio.gather(*(Watcher(feed, api, session, self._pacing, self.stats).run() for feed in self.feeds))


class Session:
    """What the watchers of one run have seen; implements their ``Sink``."""

    def __init__(self, feeds, emit: Callable[[list[Event]], None], on_reject) -> None:
        self._emit = emit
        kinds = {feed.kind for feed in feeds}
        self.views = {kind: KindView(kind, [f.name for f in feeds if f.kind == kind]) for kind in kinds}
        self.intakes = {feed.name: Intake(feed, on_reject) for feed in feeds}
        self.health = Health()
        self._synced = False

    def page(self, feed: Feed, objects: list[dict], version: str) -> list:
        """One page of a list, converted as it arrives: (key, record or None) pairs."""
        intake, api_version = self.intakes[feed.name], feed.resource.api_version(version)
        return [pair for pair in (intake.record(obj, api_version) for obj in objects) if pair[0] is not None]

    def listed(self, feed: Feed, kept: list, version: str) -> None:
        intake = self.intakes[feed.name]
        records = {key: record for key, record in kept if record is not None}
        intake.relisted({key for key, _ in kept})
        self._send(self.views[feed.kind].replace(feed.name, records))
        if not self._synced and all(view.complete for view in self.views.values()):
            self._synced = True
            log.info("first full sync: %s", self.summary())

    def changed(self, feed: Feed, changes: list[Change]) -> None:
        intake, view, events = self.intakes[feed.name], self.views[feed.kind], []
        fallback = feed.resource.api_version(feed.resource.versions[0])  # watch objects carry their own
        for kind, obj in changes:
            key, record = (intake.key(obj), None) if kind == "DELETED" else intake.record(obj, fallback)
            if key is None:
                continue
            if kind == "DELETED":
                intake.forget(key)
            events += view.put(feed.name, record) if record is not None else view.drop(feed.name, key)
        self._send(events)

    def healthy(self, feed: Feed) -> None:
        self._send(self.health.healthy(feed))

    def failed(self, feed: Feed, problem: Problem) -> None:
        self._send(self.health.failed(feed, problem))

    def summary(self) -> str:
        """What the producers in this cluster look like, for the operator."""
        imports = [r for r in self._records(Kind.SERVICE_IMPORT) if isinstance(r, ServiceImport)]
        derived = {(r.namespace, r.name) for r in self._records(Kind.SERVICE) if isinstance(r, Service)}
        with_ips = sum(1 for r in imports if r.ips)
        karmada = sum(1 for r in imports if not r.ips and (r.namespace, f"derived-{r.name}") in derived)
        slices = len(self._records(Kind.ENDPOINT_SLICE))
        return (
            f"{len(imports)} ServiceImports ({with_ips} with spec.ips, {karmada} answered by Karmada "
            f"derived Services), {slices} EndpointSlices, {len(derived)} derived Services"
        )

    def _records(self, kind: Kind):
        view = self.views.get(kind)
        return view.records() if view else []

    def _send(self, events: list[Event]) -> None:
        if events:
            self._emit(events)


class Health:
    """Which feeds are failing and why; Outage/Recovered when that changes.

    Logging is per distinct problem text, not per feed or retry: an API server
    that is down is one WARNING however many feeds notice, and a missing RBAC
    rule is one WARNING per rule, naming it.
    """

    def __init__(self) -> None:
        self.problems: dict[str, Problem] = {}
        self._reported: str | None = None

    def failed(self, feed: Feed, problem: Problem) -> list[Event]:
        if problem not in self.problems.values():
            log.warning("%s: %s (retrying)", feed.name, problem)
        else:
            log.debug("%s: still %s", feed.name, problem)
        self.problems[feed.name] = problem
        return self._changes()

    def healthy(self, feed: Feed) -> list[Event]:
        old = self.problems.pop(feed.name, None)
        if old is not None and old not in self.problems.values():
            log.info("resolved: %s", old)
        return self._changes()

    def _changes(self) -> list[Event]:
        reason = "; ".join(dict.fromkeys(str(p) for p in self.problems.values())) or None
        if reason == self._reported:
            return []
        self._reported = reason
        if reason is None:
            log.info("the Kubernetes API is back; the zone follows it again")
            return [Recovered()]
        return [Outage(reason)]
