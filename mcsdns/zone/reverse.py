"""Reverse names (PTR, RFC 1035 3.5, RFC 3596 2.5) for the addresses we publish.

The zone packs a service's names only when a query first needs them (see
``entry``), so the reverse index holds no names either: it maps each address
(its canonical text, the very string the records hold) to the services that
publish it. A PTR query packs those services, and each one's entry keeps the
address -> owner names it worked out (``owners_in``). The index is kept per
service, like the rest of the zone: a service rebuilt takes its old addresses
out and puts its new ones in, so one change costs what that service holds.

An address names its most specific owner: a headless endpoint's own name
(``db-0.east.db.ns.svc.<zone>``), not the service name that also lists it; a
ClusterSetIP names its service. Several names give several PTRs, sorted.

Only names at full depth (4 labels under in-addr.arpa, 32 nibbles under
ip6.arpa) can be owned: shallower ones are where the engine must not say
NXDOMAIN under a configured reverse zone (RFC 8020), since they may hold ours.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from .rrset import AAAA, A, Labels, Node, labels_of, wire_labels

IN_ADDR, IP6 = (b"in-addr", b"arpa"), (b"ip6", b"arpa")
_NIBBLES = frozenset(b"0123456789abcdef")
ServiceKey = tuple[bytes, bytes]  # (namespace, service): the key of Snapshot.services


def address_of(labels: Labels) -> str | None:
    """The canonical address a full-depth reverse name stands for, or None."""
    if len(labels) == 6 and labels[4:] == IN_ADDR:
        for label in labels[:4]:
            if not label.isdigit() or len(label) > 3 or (label[0] == 48 and len(label) > 1) or int(label) > 255:
                return None
        return b".".join(labels[3::-1]).decode()
    if len(labels) == 34 and labels[32:] == IP6:
        if any(len(label) != 1 or label[0] not in _NIBBLES for label in labels[:32]):
            return None
        return str(ipaddress.IPv6Address(bytes.fromhex(b"".join(labels[31::-1]).decode())))
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


def owners_in(names: Iterable[tuple[Labels, Node]], suffix: Labels) -> dict[bytes, tuple[bytes, ...]]:
    """Packed address -> its owner names (wire, absolute, sorted) among one
    service's names, ``suffix`` completing each owner to an absolute name."""
    owners: dict[bytes, list[Labels]] = {}
    for below, node in names:
        rrsets = node.rrsets
        for rtype in (A, AAAA):
            rrset = rrsets.get(rtype)
            if rrset is not None:
                for tail in rrset.tails:
                    owners.setdefault(tail[10:], []).append(below)
    ending = wire_labels(suffix) + b"\0"
    found = {}
    for address, belows in owners.items():
        deepest = max(map(len, belows))
        found[address] = tuple(sorted(wire_labels(b) + ending for b in set(belows) if len(b) == deepest))
    return found


def packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


def change(mutation, key: ServiceKey, removed: Iterable[str], added: Iterable[str]) -> None:
    """One service's addresses out of, and back into, the index (a mutation the
    caller finishes once per batch). A value is the key itself for the usual
    one service, a tuple of keys for an address several services publish."""
    removed, added = set(removed), set(added)
    for address in removed - added:
        held = mutation.get(address)
        if held == key:
            del mutation[address]
        elif isinstance(held, tuple) and isinstance(held[0], tuple):
            rest = tuple(k for k in held if k != key)
            mutation[address] = rest[0] if len(rest) == 1 else rest
    for address in added - removed:
        held = mutation.get(address)
        if held is None:
            mutation[address] = key
        elif held != key and not (isinstance(held[0], tuple) and key in held):
            keys = held if isinstance(held[0], tuple) else (held,)
            mutation[address] = tuple(sorted((*keys, key)))


def keys_of(value) -> tuple[ServiceKey, ...]:
    if value is None:
        return ()
    return value if isinstance(value[0], tuple) else (value,)
