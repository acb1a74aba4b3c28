"""The last few versions of a zone, and what changed between them (for IXFR).

Snapshots are immutable and share every unchanged service (``snapshot``), so
keeping the last N costs only what changed in them. Each version also keeps
the set of services its publish changed (``ZoneStore.changed``): the
difference between two versions is then worked out from those services alone,
never by comparing whole zones. A serial older than the history answers with
the whole zone instead (RFC 1995 4).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

from .rrset import SOA, Labels, Node
from .snapshot import Snapshot

Record = tuple[Labels, bytes]  # (owner below the apex, wire tail)
ServiceKey = tuple[bytes, bytes]  # (namespace, service)


@dataclass(frozen=True, slots=True)
class Difference:
    """From ``old`` to ``new``: the records to delete and to add (SOA excluded)."""

    old: Snapshot
    new: Snapshot
    deleted: list[Record]
    added: list[Record]


class History:
    """Versions by serial, the newest last; only published versions with a new serial."""

    def __init__(self, snapshot: Snapshot, depth: int = 32) -> None:
        self.depth = depth
        self._versions: deque[tuple[Snapshot, frozenset[ServiceKey]]] = deque([(snapshot, frozenset())], depth + 1)

    @property
    def current(self) -> Snapshot:
        return self._versions[-1][0]

    def add(self, snapshot: Snapshot, changed: frozenset[ServiceKey]) -> None:
        """A publish; one that left the serial alone (readiness only) replaces the newest."""
        if snapshot.serial == self.current.serial:
            _, keys = self._versions.pop()
            self._versions.append((snapshot, keys | changed))
        else:
            self._versions.append((snapshot, changed))

    def serials(self) -> list[int]:
        return [snapshot.serial for snapshot, _ in self._versions]

    def since(self, serial: int) -> Difference | None:
        """What changed from ``serial`` to now, condensed into one step (RFC 1995 5
        lets a server merge versions); None if that serial is not held."""
        for index, (snapshot, _) in enumerate(self._versions):
            if snapshot.serial == serial:
                break
        else:
            return None
        keys: set[ServiceKey] = set()
        for _, changed in list(self._versions)[index + 1 :]:
            keys |= changed
        return difference(snapshot, self.current, keys)


def difference(old: Snapshot, new: Snapshot, keys: set[ServiceKey]) -> Difference:
    before, after = _apex_records(old), _apex_records(new)
    for key in sorted(keys):
        before.update(_service_records(old, key))
        after.update(_service_records(new, key))
    deleted = [record for record in before if record not in after]
    added = [record for record in after if record not in before]
    return Difference(old, new, deleted, added)


def _apex_records(snapshot: Snapshot) -> dict[Record, None]:
    return dict.fromkeys(_records(snapshot.apex.items(), ()))


def _service_records(snapshot: Snapshot, key: ServiceKey) -> dict[Record, None]:
    entry = snapshot.services.get(key)
    if entry is None:
        return {}
    namespace, service = key
    return dict.fromkeys(_records(entry.names.items(), (service, namespace, b"svc")))


def _records(names: Iterable[tuple[Labels, Node]], suffix: Labels) -> Iterator[Record]:
    for below, node in names:
        for rtype, rrset in node.rrsets.items():
            if rtype == SOA:
                continue  # the SOA pair frames the difference instead
            for tail in rrset.tails:
                yield below + suffix, tail
