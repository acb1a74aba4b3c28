"""Every owner name of a snapshot with its RRsets, in DNSSEC canonical order
(RFC 4034 6.1: by labels compared right to left), apex first.

What a zone file and a zone transfer need: the zone as a list, not as the
lookup structure the engine reads. Empty non-terminals hold no records, so
they are not listed; they exist implicitly below the names that are.
"""

from __future__ import annotations

from typing import Iterator

from .rrset import Labels, Node
from .snapshot import Snapshot


def walk(snapshot: Snapshot) -> Iterator[tuple[Labels, Node]]:
    """(owner labels below the apex, node) for every name that holds records."""
    named: list[tuple[Labels, Node]] = [(below, node) for below, node in snapshot.apex.items() if node.rrsets]
    for (namespace, service), entry in snapshot.services.items():
        suffix = (service, namespace, b"svc")
        named.extend((below + suffix, node) for below, node in entry.names.items() if node.rrsets)
    named.sort(key=lambda item: item[0][::-1])
    return iter(named)
