"""What a source has seen, in plain counters it owns; the metrics collector reads
them at scrape time (sources do not know about metrics).

``resource`` is the API resource (serviceimports, endpointslices, services) or
``files`` for the folder source. A resource fed by several watches (auto mode
watches two kinds of EndpointSlices) is in sync as of its least recent feed.
"""

from __future__ import annotations

import time
from collections import Counter

WATCH_EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR")
# Why a list+watch loop went round again: the server ended the watch (closed), it
# stayed silent past the read timeout or did not answer a probe (timeout), the
# stream broke (broken), the resourceVersion expired (expired, 410), or anything
# else (error).
RESTART_REASONS = ("closed", "timeout", "broken", "expired", "error")


class SourceStats:
    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.synced: dict[str, dict[str, float]] = {}  # resource -> feed -> when last known in sync
        self.feeds: dict[str, set[str]] = {}  # resource -> every feed that must sync
        self.events: Counter[tuple[str, str]] = Counter()  # (resource, type)
        self.restarts: Counter[tuple[str, str]] = Counter()  # (resource, reason)
        self.errors: Counter[tuple[str, str]] = Counter()  # (resource, reason)

    def expect(self, resource: str, feed: str | None = None) -> None:
        self.feeds.setdefault(resource, set()).add(feed or resource)

    def in_sync(self, resource: str, feed: str | None = None) -> None:
        self.expect(resource, feed)
        self.synced.setdefault(resource, {})[feed or resource] = self.clock()

    def seconds_since_sync(self) -> dict[str, float]:
        """Per resource whose every feed has synced once: seconds since the least recent."""
        now, ages = self.clock(), {}
        for resource, feeds in self.feeds.items():
            times = self.synced.get(resource, {})
            if feeds <= times.keys():
                ages[resource] = now - min(times[feed] for feed in feeds)
        return ages
