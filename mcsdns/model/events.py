"""What a source tells the zone. Every source (YAML folder, Kubernetes API) speaks
only these, so the zone cannot tell them apart.

- ``Upsert``: this object now looks like this (an add or an update).
- ``Delete``: this object is gone.
- ``Replace``: the complete current set of one kind (a list, a relist after 410,
  a rescan of the folder). Whatever the zone held of that kind and is not in the
  set is deleted; the kind counts as listed from now on.
- ``Outage`` / ``Recovered``: the source lost / regained its view of the world.
  The zone keeps answering from what it has; readiness reports the outage.
"""

from __future__ import annotations

from dataclasses import dataclass

from .records import Kind, Record


@dataclass(frozen=True, slots=True)
class Upsert:
    record: Record


@dataclass(frozen=True, slots=True)
class Delete:
    kind: Kind
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Replace:
    kind: Kind
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class Outage:
    reason: str


@dataclass(frozen=True, slots=True)
class Recovered:
    pass


Event = Upsert | Delete | Replace | Outage | Recovered
