"""A headless service's names, put together from what each slice adds.

Building a headless service whole costs ~35 us an endpoint, and one flapping
endpoint changes one EndpointSlice: rebuilding the whole service for it cost
3.9 ms at 100 endpoints and ~150 ms at 5,000. Here each slice's ready
endpoints are packed once into a ``Part`` (their names' nodes, the addresses
they add to the service name, their SRV target names and glue), kept with the
slice's view until the slice changes, and then reused endpoint by endpoint;
the service's names are the parts put end to end, which is dict and tuple
concatenation (bench/churn.py measures it).

End to end is what ``build.headless_names`` defines only when no name comes
from two slices (one hostname in an IPv4 and an IPv6 slice, one address in
two slices of a cluster): then the service is built whole. tests/test_churn.py
checks both ways over a table of slice sets and changes.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from itertools import chain

from ..model.records import EndpointSlice, ServiceImport
from .build import Names, dashed, headless_names
from .rrset import A, AAAA, CLASS_IN, EMPTY_NON_TERMINAL, SRV, Glue, Labels, Node, RRset, address_tail, wire_labels
from .settings import ZoneSettings

_SRV_FIXED = struct.Struct("!HHIHHHH")  # TYPE, CLASS, TTL, RDLENGTH, PRIORITY, WEIGHT, PORT (rrset.srv_tail)


class SliceView:
    """One EndpointSlice as DNS sees it (its ready endpoints only) and, once a
    query needed it, its ``Part``. Equal views hold equal slices."""

    __slots__ = ("slice", "_part", "_previous")

    def __init__(self, piece: EndpointSlice, previous: "SliceView | None" = None) -> None:
        self.slice = _ready(piece)
        self._part: Part | None = None
        # The view this one replaces, to reuse its packed endpoints; only a
        # packed one is worth keeping (so there is never a chain of them).
        self._previous = previous if previous is None or previous._part is not None else previous._previous

    def part(self, settings: ZoneSettings, service: Labels) -> "Part":
        if self._part is None:
            old = self._previous._part if self._previous is not None else None
            self._part = Part(settings, service, self.slice, old)
            self._previous = None
        return self._part

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SliceView) and self.slice == other.slice

    __hash__ = None  # type: ignore[assignment]


def _ready(piece: EndpointSlice) -> EndpointSlice:
    """The slice less its not-ready endpoints; itself when all are ready, so an
    unchanged slice compares by identity."""
    for endpoint in piece.endpoints:
        if not endpoint.ready:
            return replace(piece, endpoints=tuple(e for e in piece.endpoints if e.ready))
    return piece


class Part:
    """What one slice's ready endpoints add to their service's names.

    ``targets`` are its per-endpoint names in order, each with its node, glue
    and SRV target name (``pieces``, reused by the next version of the slice);
    ``clash`` says two of its endpoints make one name (then the service is
    built whole)."""

    __slots__ = ("service", "a", "aaaa", "nodes", "ents", "glue", "owners", "targets", "pieces", "clash", "_srv")

    def __init__(self, settings: ZoneSettings, service: Labels, piece: EndpointSlice, old: "Part | None") -> None:
        ttl = settings.ttl
        self.service = service
        tails: dict[str, bytes] = {}
        for endpoint in piece.endpoints:
            for ip in endpoint.addresses:
                if ip not in tails:
                    tails[ip] = address_tail(ip, ttl)
        self.a = tuple(tail for ip, tail in tails.items() if ":" not in ip)
        self.aaaa = tuple(tail for ip, tail in tails.items() if ":" in ip)
        self.nodes: Names = {}
        self.pieces: dict[tuple, tuple[Node, Glue, bytes]] = {}
        self.targets: list[bytes] = []  # SRV target names, wire form
        self.clash = False
        self._srv: dict[tuple[Labels, int], tuple[bytes, ...]] = {}
        if not piece.cluster:
            self.ents, self.glue, self.owners = (), (), {}
            return  # addresses for the service name only (build.headless_targets)
        cluster = tuple(label.encode() for label in piece.cluster.split("."))
        self.ents = tuple(cluster[cut:] for cut in range(len(cluster)))
        suffix, origin = service, settings.labels
        reuse = old.pieces if old is not None and old.service == service else {}  # names include the service
        glue = []
        for endpoint in piece.endpoints:
            if endpoint.hostname:
                named = [((endpoint.hostname.encode(), *cluster), tuple(dict.fromkeys(endpoint.addresses)))]
            else:
                named = [((dashed(ip).encode(), *cluster), (ip,)) for ip in endpoint.addresses]
            for below, addresses in named:
                if below in self.nodes:
                    self.clash = True
                    continue
                key = (below, addresses)
                packed = reuse.get(key) or _pack(below, addresses, tails, suffix, origin)
                self.pieces[key] = packed
                self.nodes[below] = packed[0]
                glue.append(packed[1])
                self.targets.append(packed[2])
        self.glue = tuple(glue)
        # SRV owner -> the distinct port numbers each target gets there (build.srv_pairs)
        owners: dict[Labels, dict[int, None]] = {}
        for port in dict.fromkeys(piece.ports):
            owners.setdefault((), {})[port.port] = None
            if port.name:
                owners.setdefault((b"_" + port.name.encode(), b"_" + port.protocol.encode()), {})[port.port] = None
        self.owners = {owner: tuple(numbers) for owner, numbers in owners.items()}

    def pairs(self, owner: Labels) -> int:
        return len(self.targets) * len(self.owners.get(owner, ()))

    def srv(self, owner: Labels, weight: int, ttl: int) -> tuple[bytes, ...]:
        """This slice's SRV records at ``owner``, target by target (kept per weight)."""
        key = (owner, weight)
        tails = self._srv.get(key)
        if tails is None:
            numbers = self.owners[owner]
            pack = _SRV_FIXED.pack
            tails = self._srv[key] = tuple(
                pack(SRV, CLASS_IN, ttl, 6 + len(name), 0, weight, port) + name
                for name in self.targets
                for port in numbers
            )
        return tails


def _pack(below: Labels, addresses: tuple[str, ...], tails: dict[str, bytes], service: Labels, origin: Labels):
    """One endpoint name's node, its glue, and its name as an SRV target."""
    v4 = tuple(tails[ip] for ip in addresses if ":" not in ip)
    v6 = tuple(tails[ip] for ip in addresses if ":" in ip)
    rrsets = {rtype: RRset(rtype, found) for rtype, found in ((A, v4), (AAAA, v6)) if found}
    glue = Glue(wire_labels(below + service), v4 + v6)
    return Node(rrsets), glue, wire_labels(below + service + origin) + b"\0"


def assemble(settings: ZoneSettings, imported: ServiceImport, views: tuple[SliceView, ...]) -> Names:
    """The names of a headless service from its views' parts; the same as
    ``build.headless_names`` of their slices (which it falls back to on a clash)."""
    service = (imported.name.encode(), imported.namespace.encode(), b"svc")
    parts = [view.part(settings, service) for view in views]  # key order: the service name's addresses
    ordered = [part for _, part in sorted(zip(views, parts), key=_target_order)]
    names: Names = {}
    count = 0
    for part in ordered:
        names.update(part.nodes)
        count += len(part.nodes)
    if count != len(names) or any(part.clash for part in parts):
        return headless_names(settings, imported, [view.slice for view in views])  # a name from two slices
    ttl = settings.ttl
    top = {
        rtype: RRset(rtype, found)
        for rtype, found in (
            (A, tuple(dict.fromkeys(chain.from_iterable(part.a for part in parts)))),
            (AAAA, tuple(dict.fromkeys(chain.from_iterable(part.aaaa for part in parts)))),
        )
        if found
    }
    owners = dict.fromkeys(owner for part in ordered for owner in part.owners)
    for owner in owners:
        having = [part for part in ordered if owner in part.owners]
        weight = max(1, 100 // sum(part.pairs(owner) for part in having))
        tails = tuple(chain.from_iterable(part.srv(owner, weight, ttl) for part in having))
        glue = tuple(chain.from_iterable(part.glue for part in having))
        if owner:
            names[owner] = Node({SRV: RRset(SRV, tails, glue)})
            names.setdefault(owner[1:], EMPTY_NON_TERMINAL)
        else:
            top[SRV] = RRset(SRV, tails, glue)
    names[()] = Node(top)
    for part in ordered:
        for ent in part.ents:
            names.setdefault(ent, EMPTY_NON_TERMINAL)
    return names


def _target_order(pair: tuple[SliceView, Part]):
    piece = pair[0].slice
    return (piece.cluster, piece.family, piece.name)
