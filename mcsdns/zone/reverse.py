"""Reverse names (PTR, RFC 1035 3.5, RFC 3596 2.5) for the addresses we publish.

The index maps a packed address to the absolute names that publish it, in
wire form, sorted: one PTR each, in an order that never depends on event
order. It is kept per service, like the rest of the zone: a service rebuilt
takes its old names out and puts its new ones in, so one change costs what
that service holds. An address names its most specific owner: a headless
endpoint's own name (``db-0.east.db.ns.svc.<zone>``), not the service name
that also lists it; a ClusterSetIP names its service.

Only names at full depth (4 labels under in-addr.arpa, 32 nibbles under
ip6.arpa) can be owned: shallower ones are where the engine must not say
NXDOMAIN under a configured reverse zone (RFC 8020), since they may hold ours.
"""

from __future__ import annotations

from typing import Iterable

import immutables

from .rrset import AAAA, A, Labels, Node, labels_of, wire_labels

IN_ADDR, IP6 = (b"in-addr", b"arpa"), (b"ip6", b"arpa")
_NIBBLES = frozenset(b"0123456789abcdef")
Contribution = dict[bytes, list[bytes]]  # packed address -> owner names (wire, absolute)


def address_of(labels: Labels) -> bytes | None:
    """The packed address a full-depth reverse name stands for, or None."""
    if len(labels) == 6 and labels[4:] == IN_ADDR:
        octets = []
        for label in labels[3::-1]:
            if not label.isdigit() or len(label) > 3 or (label[0] == 48 and len(label) > 1) or int(label) > 255:
                return None
            octets.append(int(label))
        return bytes(octets)
    if len(labels) == 34 and labels[32:] == IP6:
        if any(len(label) != 1 or label[0] not in _NIBBLES for label in labels[:32]):
            return None
        return bytes.fromhex(b"".join(labels[31::-1]).decode())
    return None


def is_full_depth(labels: Labels, zone: Labels) -> bool:
    """Whether a name under a reverse zone is deep enough to be an address."""
    return len(labels) >= (6 if zone[-2:] == IN_ADDR else 34)


def reverse_zone_labels(text: str) -> Labels | None:
    """A configured reverse zone, or None if the name is not one."""
    labels = labels_of(text)
    if labels[-2:] in (IN_ADDR, IP6) and len(labels) <= (6 if labels[-2:] == IN_ADDR else 34):
        return labels
    return None


def contributions(names: Iterable[tuple[Labels, Node]], suffix: Labels) -> Contribution:
    """Address -> owners for one service's (or the apex's) names, ``suffix``
    completing each owner to an absolute name."""
    owners: dict[bytes, list[Labels]] = {}
    for below, node in names:
        rrsets = node.rrsets
        for rtype in (A, AAAA):
            rrset = rrsets.get(rtype)
            if rrset is not None:
                for tail in rrset.tails:
                    owners.setdefault(tail[10:], []).append(below)
    ending = wire_labels(suffix) + b"\0"
    found: Contribution = {}
    for address, belows in owners.items():
        if len(belows) > 1:
            deepest = max(map(len, belows))
            belows = sorted({below for below in belows if len(below) == deepest})
        found[address] = [wire_labels(below) + ending for below in belows]
    return found


def update(index: immutables.Map, removed: Contribution, added: Contribution) -> immutables.Map:
    """The index with one service's old owners out and its new ones in."""
    mutation = index.mutate()
    change(mutation, removed, added)
    return mutation.finish()


def change(mutation, removed: Contribution, added: Contribution) -> None:
    """``update`` inside a mutation the caller finishes: one per batch, not per service."""
    if removed == added:
        return
    for address, owners in removed.items():
        kept = tuple(owner for owner in held(mutation, address) if owner not in owners)
        if kept:
            mutation[address] = kept[0] if len(kept) == 1 else kept
        else:
            mutation.pop(address, None)
    for address, owners in added.items():
        now = held(mutation, address)
        merged = sorted({*now, *owners}) if now else owners
        mutation[address] = merged[0] if len(merged) == 1 else tuple(merged)


def held(index, address: bytes) -> tuple[bytes, ...]:
    """The owners of an address. One owner, by far the most common, is stored
    as the bare name: a tuple around each of a million names costs 56 MB."""
    value = index.get(address)
    if value is None:
        return ()
    return (value,) if isinstance(value, bytes) else value
