"""One feed, for ever: list, then watch from the list's resourceVersion.

The loop kopf and client-go's reflector use (API concepts, "Efficient detection
of changes"): a list (paged, one consistent snapshot) gives every object and a
resourceVersion; a watch from that version gives every change after it. Then:

  * the server ends the watch (``timeoutSeconds``) -> watch again from the last
    version seen (events and BOOKMARKs move it): no relist, no zone update;
  * 410 Gone, as the HTTP status or as an ERROR event whose Status has code
    410 -> the version was compacted away: relist;
  * the stream breaks, or stays silent past the read timeout (a watch that
    hangs with no error is a known failure of every client) -> resume from
    the last version;
  * nothing at all from the server for ``probe_after`` seconds (a quiet watch,
    or a request not answered) -> a one-object list must be answered within
    ``probe_timeout``; if not, the server is hung: an outage, reported, and
    the watch given up. A server that accepts connections and never answers
    is not seen otherwise: a quiet watch looks the same, and the read timeout
    (kept long, as BOOKMARKs come about once a minute) only resumes it;
  * any other failure -> report it, back off with jitter, retry; a 404 also
    forgets the discovered version, so a CRD installed or upgraded later is found.

Relists and reconnects are paced by shared ``Throttler``s, and backoff grows
exponentially with jitter, so replicas restarted together, or an API server
coming back, do not meet a synchronised storm.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Protocol

from asyncio_throttle import Throttler
from urllib3.exceptions import ReadTimeoutError

from .api import KubeApi, LineStream, blocking
from .faults import Fault, Problem, Unreadable, classify, from_status
from .feeds import Feed
from ..stats import WATCH_EVENT_TYPES, SourceStats

log = logging.getLogger(__name__)
Change = tuple[str, dict]  # ("ADDED" | "MODIFIED" | "DELETED", object)
CHANGES = ("ADDED", "MODIFIED", "DELETED")
MAX_DOUBLINGS = 20
UPDATE_BUDGET = 0.01  # seconds of zone work at most (about) before queries waiting get their turn
MAX_CHUNK = 256  # changes per zone update, at most
# Seconds: a watch that stayed open this long was healthy, whatever ended it, and
# backoff starts over. client-go's reflector draws the line at one second too
# ("very short watch"). At 5 s, watches cut every 2 s (a flaky load balancer)
# backed quiet feeds off towards the 30 s ceiling: changes showed 10-13 s late.
SETTLED = 1.0


class Sink(Protocol):
    """Where a watcher reports; called on the event loop thread only."""

    def page(self, feed: Feed, objects: list[dict], version: str) -> list: ...

    def listed(self, feed: Feed, kept: list, version: str) -> None: ...

    def changed(self, feed: Feed, changes: list[Change]) -> None: ...

    def healthy(self, feed: Feed) -> None: ...

    def failed(self, feed: Feed, problem: Problem) -> None: ...


@dataclass(frozen=True)
class Pacing:
    relists: Throttler
    reconnects: Throttler
    backoff: tuple[float, float]  # first delay, ceiling (seconds)
    watch_timeout: int  # server-side timeoutSeconds, at least; up to twice that
    page_size: int
    probe: tuple[float, float] = (15.0, 10.0)  # after this long with no word from the server, a probe; its timeout


class Watcher:
    def __init__(self, feed: Feed, api: KubeApi, sink: Sink, pacing: Pacing, stats: SourceStats | None = None) -> None:
        self.feed = feed
        self.api = api
        self.sink = sink
        self.pacing = pacing
        self.stats = stats or SourceStats()
        self.resource = feed.resource.plural  # the metrics label
        self.stats.expect(self.resource, feed.name)
        self.version: str | None = None  # API version, from discovery
        self.resource_version: str | None = None  # None: relist next
        self.attempt = 0
        self.heard = time.monotonic()  # when the server last showed it is alive
        self._chunk = 1  # changes per zone update: what fits UPDATE_BUDGET, as the last ones cost
        self._noted: set[str] = set()

    async def run(self) -> None:
        while True:
            problem = await self._cycle()
            if problem is not None:
                await self._recover(problem)

    async def _cycle(self) -> Problem | None:
        """One list (if due) and watch, given up early if the server stops answering."""
        work = asyncio.ensure_future(self._list_and_watch())
        watchdog = asyncio.ensure_future(self._watchdog())
        try:
            await asyncio.wait((work, watchdog), return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                problem = watchdog.result()
                self._count(problem, "timeout")
                return problem
            return work.result()
        finally:
            for task in (work, watchdog):
                task.cancel()
            await asyncio.gather(work, watchdog, return_exceptions=True)

    async def _list_and_watch(self) -> Problem | None:
        try:
            if self.resource_version is None:
                await self._relist()
            return await self._watch()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            problem = classify(error, self.feed.resource, self.api.host)
            self._count(problem, "timeout" if isinstance(error, ReadTimeoutError) else None)
            return problem

    async def _watchdog(self) -> Problem:
        """Returns only when the server, silent for ``probe_after``, fails a probe."""
        after, timeout = self.pacing.probe
        while True:
            await asyncio.sleep(max(0.0, self.heard + after - time.monotonic()))
            if time.monotonic() - self.heard < after:
                continue  # heard from it meanwhile
            problem = await self._probe(timeout)
            if problem is not None:
                return problem
            self.heard = time.monotonic()

    async def _probe(self, timeout: float) -> Problem | None:
        """Whether the server answers a one-object list in time; a Problem if not.
        Only a server that does not answer, or answers 5xx, fails: a 403 or 404
        is an answer, and the list or watch meets it on its own."""
        version = self.version or self.feed.resource.versions[0]
        try:
            await asyncio.wait_for(blocking(self.api.probe, self.feed, version, timeout), timeout)
        except asyncio.TimeoutError:
            return Problem(Fault.UNREACHABLE, f"the API server at {self.api.host} accepted a request but did not "
                                              f"answer within {timeout:g}s (hung?)")
        except Exception as error:
            problem = classify(error, self.feed.resource, self.api.host)
            return problem if problem.fault in (Fault.UNREACHABLE, Fault.SERVER) else None
        return None

    def _count(self, problem: Problem, reason: str | None = None) -> None:
        self.stats.errors[(self.resource, problem.fault.value)] += 1
        reason = reason or {Fault.GONE: "expired", Fault.BROKEN: "broken"}.get(problem.fault, "error")
        self.stats.restarts[(self.resource, reason)] += 1

    async def _recover(self, problem: Problem) -> None:
        match problem.fault:
            case Fault.GONE:
                log.info("%s: relisting: %s", self.feed.name, problem)
                self.resource_version = None
                return  # relists are paced by their throttler
            case Fault.BROKEN:
                log.debug("%s: resuming from %s: %s", self.feed.name, self.resource_version, problem)
            case Fault.MISSING:
                self.version = self.resource_version = None
                self.sink.failed(self.feed, problem)
            case _:
                self.sink.failed(self.feed, problem)
        await self._backoff()

    async def _backoff(self) -> None:
        first, ceiling = self.pacing.backoff
        delay = min(ceiling, first * 2 ** min(self.attempt, MAX_DOUBLINGS))
        self.attempt += 1
        # "Equal jitter": at least half the delay (never hammer), the rest random (spread replicas).
        await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))

    async def _relist(self) -> None:
        await self.pacing.relists.acquire()
        if self.version is None:
            self.version = await blocking(self.api.discover, self.feed.resource)
        objects, token = [], None
        while True:
            page = await blocking(self.api.list_page, self.feed, self.version, self.pacing.page_size, token)
            items, meta = page.get("items"), page.get("metadata")
            if not isinstance(items or [], list) or not isinstance(meta, dict):
                raise Unreadable(f"a {self.feed.resource.plural} list without items or metadata")
            # Keep only ours, page by page, in the form the sink keeps (records,
            # not JSON: a list of a million endpoints never sits in memory as dicts).
            objects.extend(self.sink.page(self.feed, [i for i in items or [] if _wanted(self.feed, i)], self.version))
            token = meta.get("continue")
            self.heard = time.monotonic()
            if not token:
                break
        if not meta.get("resourceVersion"):
            raise Unreadable(f"a {self.feed.resource.plural} list without a resourceVersion")
        self.sink.healthy(self.feed)
        self.sink.listed(self.feed, objects, self.version)
        self.stats.in_sync(self.resource, self.feed.name)
        self.resource_version = str(meta["resourceVersion"])
        self.attempt = 0

    async def _watch(self) -> Problem | None:
        await self.pacing.reconnects.acquire()
        timeout = random.randint(self.pacing.watch_timeout, 2 * self.pacing.watch_timeout)  # as client-go
        response = await blocking(
            self.api.watch, self.feed, self.version, self.resource_version, timeout, on_abandon=_close
        )
        self.heard = time.monotonic()
        self.sink.healthy(self.feed)
        stream, opened = LineStream(response, self.feed.name), time.monotonic()
        try:
            async for lines in stream.batches():
                self.heard = time.monotonic()
                before = self.resource_version
                changes, problem = self._decode(lines)  # moves resource_version to the batch's end
                reached, self.resource_version = self.resource_version, before
                await self._hand(changes)
                self.resource_version = reached  # only now: a resume must not skip changes never handed
                if problem is not None:
                    self._count(problem)
                    return problem
                self.attempt = 0
        finally:
            stream.close()
            if time.monotonic() - opened >= SETTLED:
                self.attempt = 0  # a quiet watch timing out is no reason to slow down
        self.stats.in_sync(self.resource, self.feed.name)
        self.stats.restarts[(self.resource, "closed")] += 1
        return None  # the server ended the watch: resume from the last version

    async def _hand(self, changes: list[Change]) -> None:
        """A batch of changes to the sink: the last change of each object only,
        in chunks of about ``UPDATE_BUDGET`` of work, with a turn for the event
        loop after each. Queries are answered on the same loop, and a change can
        be dear (a 100-endpoint slice costs ~10 ms to convert and rebuild its
        service on a quiet machine), so a burst applied whole holds every answer
        up. Splitting between objects is safe: each change is a whole object at
        one resourceVersion; skipping an object's earlier changes in the same
        batch only skips states already gone."""
        latest: dict[tuple[str, str], Change] = {}
        for kind, obj in changes:
            latest.pop(identity := _identity(obj), None)  # in the order of their last changes
            latest[identity] = (kind, obj)
        pending = list(latest.values())
        while pending:
            chunk, pending = pending[: self._chunk], pending[self._chunk :]
            began = time.perf_counter()
            self.sink.changed(self.feed, chunk)
            each = (time.perf_counter() - began) / len(chunk)
            self._chunk = max(1, min(MAX_CHUNK, int(UPDATE_BUDGET / each))) if each > 0 else MAX_CHUNK
            await asyncio.sleep(0)  # also after the last: the next batch may be queued already

    def _decode(self, lines: list[str]) -> tuple[list[Change], Problem | None]:
        changes: list[Change] = []
        for line in lines:
            event = _event(line)
            if event is not None and event[0] in WATCH_EVENT_TYPES:
                self.stats.events[(self.resource, event[0])] += 1
                if event[0] != "ERROR":
                    self.stats.in_sync(self.resource, self.feed.name)
            match event:
                case (str() as kind, dict() as obj) if kind in CHANGES:
                    changes.append((kind, obj))
                    self._advance(obj)
                case ("BOOKMARK", dict() as obj):
                    self._advance(obj)
                case ("ERROR", status):
                    return changes, self._error(status)
                case (str() as kind, _) if kind not in (*CHANGES, "BOOKMARK"):
                    self._note(f"type {kind}", f"skipping a watch event of unknown type {kind!r}")
                case _:
                    self._note("malformed", f"skipping a watch line that is not an event: {line[:200]!r}")
        return changes, None

    def _advance(self, obj: dict) -> None:
        meta = obj.get("metadata")
        if isinstance(meta, dict) and meta.get("resourceVersion"):
            self.resource_version = str(meta["resourceVersion"])

    def _error(self, status: Any) -> Problem:
        """An ERROR event carries a metav1.Status (API concepts, "Watch" and 410 Gone)."""
        if not isinstance(status, dict):
            status = {}
        code = status.get("code") if isinstance(status.get("code"), int) else None
        message = str(status.get("message") or status.get("reason") or "watch error")
        return from_status(code, message, self.feed.resource)

    def _note(self, what: str, message: str) -> None:
        """Log a strange stream once per watcher at WARNING, then at DEBUG."""
        level = logging.DEBUG if what in self._noted else logging.WARNING
        self._noted.add(what)
        log.log(level, "%s: %s", self.feed.name, message)


def _event(line: str) -> tuple[Any, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or "type" not in event or "object" not in event:
        return None
    return event["type"], event["object"]


def _identity(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return ("", str(id(obj)))  # unreadable: kept apart, the view rejects it
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _wanted(feed: Feed, item: Any) -> bool:
    meta = item.get("metadata") if isinstance(item, dict) else None
    return not isinstance(meta, dict) or feed.wants(str(meta.get("name") or ""))


def _close(response) -> None:
    response.close()  # never read: the connection must not go back to the pool
    response.release_conn()
