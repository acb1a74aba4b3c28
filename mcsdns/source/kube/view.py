"""API objects in, zone events out: conversion at the edge and one view per kind.

No I/O here. A kind can be fed by more than one watch (in auto mode the
multi-cluster and the Karmada EndpointSlices are two label selectors, and a
selector cannot say "either"), while ``Replace`` speaks for the whole kind.
So each ``KindView`` keeps what every feed of its kind last said and:

  * emits nothing until every feed has listed once, then one ``Replace`` of
    the union (the store marks the kind listed only when it is complete);
  * on a feed's relist, ``Replace`` with that feed's fresh set plus the
    others' current sets, so a relist of one never deletes another's objects;
  * on a feed's delete, ``Delete`` only if no other feed still holds the key;
  * drops an upsert equal to what the feed already holds (a reconnect or a
    status-only update emits nothing at all).

The view holds references to the records the store holds too; objects that
never become records (other Services, rejected objects) are not kept.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from ...model.convert import convert
from ...model.events import Delete, Event, Replace, Upsert
from ...model.records import Kind, Record, Rejected, key_of
from .feeds import Feed

log = logging.getLogger(__name__)
Key = tuple[Kind, str, str]


class KindView:
    def __init__(self, kind: Kind, feeds: Iterable[str]) -> None:
        self.kind = kind
        self._parts: dict[str, dict[Key, Record]] = {feed: {} for feed in feeds}
        self._listed: set[str] = set()

    @property
    def complete(self) -> bool:
        return len(self._listed) == len(self._parts)

    def replace(self, feed: str, records: dict[Key, Record]) -> list[Event]:
        self._parts[feed] = records
        self._listed.add(feed)
        if not self.complete:
            return []
        union: dict[Key, Record] = {}
        for part in self._parts.values():
            union.update(part)
        return [Replace(self.kind, tuple(union.values()))]

    def put(self, feed: str, record: Record) -> list[Event]:
        part, key = self._parts[feed], key_of(record)
        if part.get(key) == record:
            return []
        part[key] = record
        return [Upsert(record)] if self.complete else []

    def drop(self, feed: str, key: Key) -> list[Event]:
        if self._parts[feed].pop(key, None) is None:
            return []
        if not self.complete:
            return []
        survivor = next((part[key] for part in self._parts.values() if key in part), None)
        return [Upsert(survivor)] if survivor is not None else [Delete(*key)]

    def records(self) -> list[Record]:
        union: dict[Key, Record] = {}
        for part in self._parts.values():
            union.update(part)
        return list(union.values())


class Intake:
    """Turns one feed's raw objects into records, and reports each rejection once.

    A rejected object counts as absent: the zone answers only what the API
    says validly, and a watch update and a relist agree on that. It is logged
    and reported to ``on_reject`` once per object and reason, not on every
    relist or reconnect; so is each part left out of an object that is kept
    (``Rejected.partial``).
    """

    def __init__(self, feed: Feed, on_reject: Callable[[Rejected], None]) -> None:
        self.feed = feed
        self._on_reject = on_reject
        self._rejected: dict[Key, frozenset[str]] = {}  # reasons last reported

    def key(self, obj: Any) -> Key | None:
        """The zone key of an object, or None when it is none of our business."""
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if not isinstance(meta, dict) or not self.feed.wants(str(meta.get("name") or "")):
            return None
        return (self.feed.kind, str(meta.get("namespace") or "default").lower(), str(meta.get("name") or "?").lower())

    def record(self, obj: Any, api_version: str) -> tuple[Key | None, Record | None]:
        """(key, record) for an object; record None when it converts to nothing
        or is rejected; key None when the feed ignores the object altogether."""
        key = self.key(obj)
        if key is None:
            return None, None
        # List items carry no apiVersion/kind (only the list does); convert needs both.
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", self.feed.kind.value)
        converted = convert(obj)
        if isinstance(converted, Rejected):
            self._report(key, (converted,))
            return key, None
        # An object kept less a part (a port without a number...) is reported the same way.
        self._report(key, converted.notes if converted is not None else ())
        return key, converted

    def forget(self, key: Key) -> None:
        self._rejected.pop(key, None)

    def relisted(self, keys: set[Key]) -> None:
        """Forget rejections of objects the relist no longer has."""
        self._rejected = {key: reason for key, reason in self._rejected.items() if key in keys}

    def _report(self, key: Key, problems: tuple[Rejected, ...]) -> None:
        """Log and report each problem of an object not reported for it last time."""
        known = self._rejected.get(key, frozenset())
        for problem in problems:
            if problem.reason not in known:
                log.warning("%s", problem)
                self._on_reject(problem)
        if problems:
            self._rejected[key] = frozenset(problem.reason for problem in problems)
        else:
            self._rejected.pop(key, None)
