"""The only writer of the zone: applies source events, publishes snapshots.

Each batch of events touches a set of services; only those are rebuilt, and a
rebuilt service that equals the old one changes nothing (no new snapshot, no
serial bump: status-only updates stay invisible). The serial follows RFC 1982
arithmetic and moves once per batch that DNS can see.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable, Iterable

from ..model.convert import KARMADA_DERIVED
from ..model.events import Delete, Event, Outage, Recovered, Replace, Upsert
from ..model.records import EndpointSlice, Kind, Record, Service, ServiceImport, key_of
from .entry import build_service
from .headless import SliceView
from .reverse import change
from .settings import ZoneSettings
from .snapshot import Snapshot, apex_names, empty_snapshot

log = logging.getLogger(__name__)

Key = tuple[Kind, str, str]
ServiceKey = tuple[str, str]  # (namespace, service name)


class ZoneStore:
    def __init__(
        self,
        settings: ZoneSettings,
        initial_serial: int,
        required: frozenset[Kind] = frozenset(Kind),
        on_publish: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self.settings = settings
        self.required = required
        self.outage: str | None = None
        self._objects: dict[Key, Record] = {}
        self._slices: dict[ServiceKey, set[Key]] = {}
        self._views: dict[Key, SliceView] = {}  # each slice as DNS sees it, packed on first use
        self._listed: set[Kind] = set()
        self._on_publish = on_publish
        self.changed: frozenset[tuple[bytes, bytes]] = frozenset()  # services the last publish changed (IXFR)
        self.snapshot = empty_snapshot(settings, initial_serial % 2**32)

    @property
    def ready(self) -> bool:
        return self.snapshot.ready

    def apply(self, events: Iterable[Event]) -> Snapshot:
        touched: set[ServiceKey] = set()
        for event in events:
            match event:
                case Upsert(record):
                    self._put(record, touched)
                case Delete(kind, namespace, name):
                    self._drop((kind, namespace, name), touched)
                case Replace(kind, records):
                    self._replace(kind, records, touched)
                case Outage(reason):
                    self.outage = reason
                case Recovered():
                    self.outage = None
        self._publish(touched)
        return self.snapshot

    def objects(self) -> list[Record]:
        return list(self._objects.values())

    def _put(self, record: Record, touched: set[ServiceKey]) -> None:
        key = key_of(record)
        old = self._objects.get(key)
        if old == record:
            return
        previous = self._views.get(key)
        if old is not None:
            self._drop(key, touched)
        self._objects[key] = record
        if isinstance(record, EndpointSlice):
            self._slices.setdefault((record.namespace, record.service), set()).add(key)
            view = SliceView(record, previous)
            # Only not-ready endpoints changed: keep the old view, packed parts and all.
            self._views[key] = previous if view == previous else view
        touched.update(_services_of(record))

    def _drop(self, key: Key, touched: set[ServiceKey]) -> None:
        record = self._objects.pop(key, None)
        if record is None:
            return
        if isinstance(record, EndpointSlice):
            self._views.pop(key, None)
            group = self._slices.get((record.namespace, record.service), set())
            group.discard(key)
            if not group:
                self._slices.pop((record.namespace, record.service), None)
        touched.update(_services_of(record))

    def _replace(self, kind: Kind, records: tuple[Record, ...], touched: set[ServiceKey]) -> None:
        fresh = {key_of(record): record for record in records}
        for key in [key for key in self._objects if key[0] == kind and key not in fresh]:
            self._drop(key, touched)
        for record in fresh.values():
            self._put(record, touched)
        self._listed.add(kind)

    def _publish(self, touched: set[ServiceKey]) -> None:
        old = self.snapshot
        services = old.services.mutate()
        namespaces = old.namespaces.mutate()
        reverse = old.reverse.mutate() if old.ptr else None
        changed: set[tuple[bytes, bytes]] = set()
        for namespace, name in touched:
            key = (namespace.encode(), name.encode())
            before = services.get(key)
            after = self._build(namespace, name)
            if before == after:
                continue
            changed.add(key)
            if reverse is not None:
                change(reverse, key, before.addresses if before else (), after.addresses if after else ())
            count = namespaces.get(key[0], 0) + (after is not None) - (before is not None)
            if after is None:
                del services[key]
            else:
                services[key] = after
            if count:
                namespaces[key[0]] = count
            elif key[0] in namespaces:
                del namespaces[key[0]]
        ready = self.required <= self._listed
        if not changed and ready == old.ready:
            return
        serial = (old.serial + 1) % 2**32 if changed else old.serial
        apex, negative = apex_names(self.settings, serial) if changed else (old.apex, old.negative_soa)
        self.snapshot = replace(
            old,
            serial=serial,
            ready=ready,
            apex=apex,
            negative_soa=negative,
            services=services.finish(),
            namespaces=namespaces.finish(),
            reverse=reverse.finish() if reverse is not None else old.reverse,
        )
        self.changed = frozenset(changed)
        if self._on_publish is not None:
            self._on_publish(self.snapshot)

    def inputs(self, namespace: str, name: str) -> tuple[ServiceImport | None, list[EndpointSlice], Service | None]:
        """What one service's names are built from: its import, its slices (in
        build order) and Karmada's derived Service, each None/empty if absent."""
        imported = self._objects.get((Kind.SERVICE_IMPORT, namespace, name))
        slices = [self._objects[key] for key in sorted(self._slices.get((namespace, name), ()))]
        derived = self._objects.get((Kind.SERVICE, namespace, KARMADA_DERIVED + name))
        return imported, slices, derived

    def _build(self, namespace: str, name: str):
        imported = self._objects.get((Kind.SERVICE_IMPORT, namespace, name))
        if not isinstance(imported, ServiceImport):
            return None
        slices = [self._views[key] for key in sorted(self._slices.get((namespace, name), ()))]
        derived = self._objects.get((Kind.SERVICE, namespace, KARMADA_DERIVED + name))
        return build_service(self.settings, imported, slices, derived)


def _services_of(record: Record) -> list[ServiceKey]:
    """Which services' names a record feeds."""
    match record:
        case ServiceImport(namespace=namespace, name=name):
            return [(namespace, name)]
        case EndpointSlice(namespace=namespace, service=service):
            return [(namespace, service)]
        case Service(namespace=namespace, name=name) if name.startswith(KARMADA_DERIVED):
            return [(namespace, name[len(KARMADA_DERIVED) :])]
    return []
