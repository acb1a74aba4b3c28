"""Several zones served at once (``--zone clusterset.local,example.com``).

Each zone is a snapshot of its own, with its own SOA and serial, built from the
same objects; the engine reads them through this one immutable value, so the
response cache still sees a single thing that changes when any zone does. A
lone ``Snapshot`` offers the same reading surface, so one zone needs no set.
"""

from __future__ import annotations

from dataclasses import dataclass

from .rrset import Labels
from .snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class ZoneSet:
    zones: tuple[Snapshot, ...]  # the first is the primary: reverse answers take its SOA and TTL

    @property
    def primary(self) -> Snapshot:
        return self.zones[0]

    @property
    def ready(self) -> bool:
        return all(zone.ready for zone in self.zones)

    @property
    def reverse_zones(self) -> tuple[Labels, ...]:
        return self.primary.reverse_zones

    @property
    def ptr(self) -> bool:
        return self.primary.ptr

    def owners(self, address: bytes) -> tuple[bytes, ...]:
        """Every zone's names for an address, zone by zone in the configured order."""
        return tuple(owner for zone in self.zones for owner in zone.owners(address))
