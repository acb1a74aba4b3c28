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
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from itertools import chain, count
from math import isqrt

from ..model.records import EndpointSlice, ServiceImport
from .build import Names, dashed, headless_names
from .rrset import A, AAAA, CLASS_IN, EMPTY_NON_TERMINAL, SRV, Glue, Labels, Node, Piece, PiecedRRset, RRset, address_tail, wire_labels
from .settings import ZoneSettings

_SRV_FIXED = struct.Struct("!HHIHHHH")  # TYPE, CLASS, TTL, RDLENGTH, PRIORITY, WEIGHT, PORT (rrset.srv_tail)


class SliceView:
    """One EndpointSlice as DNS sees it (its ready endpoints only) and, once a
    query needed it, its ``Part``. Equal views hold equal slices."""

    __slots__ = ("slice", "_part", "_previous", "joined", "_addresses")

    def __init__(self, piece: EndpointSlice, previous: "SliceView | None" = None) -> None:
        self.slice = _ready(piece)
        self._part: Part | None = None
        # The newest service names this view's part was put into: the next
        # version of the service starts from them (``HeadlessNames.after``).
        self.joined: HeadlessNames | None = None
        self._addresses: tuple[str, ...] | None = None
        # The view this one replaces, to reuse its packed endpoints; only a
        # packed one is worth keeping (so there is never a chain of them).
        self._previous = previous if previous is None or previous._part is not None else previous._previous

    def part(self, settings: ZoneSettings, service: Labels) -> "Part":
        if self._part is None:
            old = self._previous._part if self._previous is not None else None
            self._part = Part(settings, service, self.slice, old)
            self._previous = None
        return self._part

    @property
    def addresses(self) -> tuple[str, ...]:
        """The slice's ready addresses in order, each once (``build.ready_addresses``),
        kept: each publish of the service lists all of them for the reverse index."""
        if self._addresses is None:
            self._addresses = tuple(dict.fromkeys(ip for endpoint in self.slice.endpoints for ip in endpoint.addresses))
        return self._addresses

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
    and SRV target name (``pieces``: by endpoint, reused by the next version
    of the slice, as are the address records, ``tails``);
    ``clash`` says two of its endpoints make one name (then the service is
    built whole)."""

    __slots__ = ("scope", "tails", "a", "aaaa", "nodes", "ents", "glue", "owners", "targets", "pieces", "clash", "_srv",
                 "a_piece", "aaaa_piece")

    def __init__(self, settings: ZoneSettings, service: Labels, piece: EndpointSlice, old: "Part | None") -> None:
        ttl = settings.ttl
        self.scope = (service, piece.cluster)  # what every packed name depends on besides the endpoint
        fits = old is not None and old.scope == self.scope
        known = old.tails if fits else {}
        self.tails: dict[str, bytes] = {}
        for endpoint in piece.endpoints:
            for ip in endpoint.addresses:
                if ip not in self.tails:
                    self.tails[ip] = known.get(ip) or address_tail(ip, ttl)
        self.a = tuple(tail for ip, tail in self.tails.items() if ":" not in ip)
        self.aaaa = tuple(tail for ip, tail in self.tails.items() if ":" in ip)
        self.a_piece, self.aaaa_piece = Piece(self.a), Piece(self.aaaa)  # of the service name's A and AAAA
        self.nodes: Names = {}
        # (hostname, addresses) of an endpoint -> its names, each (below, (node, glue, SRV target name))
        self.pieces: dict[tuple, tuple] = {}
        self.targets: list[bytes] = []  # SRV target names, wire form
        self.clash = False
        self._srv: dict[tuple[Labels, int], Piece] = {}
        if not piece.cluster:
            self.ents, self.glue, self.owners = (), (), {}
            return  # addresses for the service name only (build.headless_targets)
        cluster = tuple(label.encode() for label in piece.cluster.split("."))
        self.ents = tuple(cluster[cut:] for cut in range(len(cluster)))
        origin = settings.labels
        reuse = old.pieces if fits else {}
        glue = []
        for endpoint in piece.endpoints:
            key = (endpoint.hostname, endpoint.addresses)
            named = reuse.get(key)
            if named is None:
                if endpoint.hostname:
                    found = [((endpoint.hostname.encode(), *cluster), tuple(dict.fromkeys(endpoint.addresses)))]
                else:
                    found = [((dashed(ip).encode(), *cluster), (ip,)) for ip in endpoint.addresses]
                named = tuple((below, _pack(below, ips, self.tails, service, origin)) for below, ips in found)
            self.pieces[key] = named
            for below, packed in named:
                if below in self.nodes:
                    self.clash = True
                    continue
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

    def srv(self, owner: Labels, weight: int, ttl: int) -> Piece:
        """This slice's SRV records at ``owner``, target by target, with their
        glue (kept per weight)."""
        key = (owner, weight)
        piece = self._srv.get(key)
        if piece is None:
            numbers = self.owners[owner]
            pack = _SRV_FIXED.pack
            tails = tuple(
                pack(SRV, CLASS_IN, ttl, 6 + len(name), 0, weight, port) + name
                for name in self.targets
                for port in numbers
            )
            piece = self._srv[key] = Piece(tails, self.glue)
        return piece


def _pack(below: Labels, addresses: tuple[str, ...], tails: dict[str, bytes], service: Labels, origin: Labels):
    """One endpoint name's node, its glue, and its name as an SRV target."""
    v4 = tuple(tails[ip] for ip in addresses if ":" not in ip)
    v6 = tuple(tails[ip] for ip in addresses if ":" in ip)
    rrsets = {rtype: RRset(rtype, found) for rtype, found in ((A, v4), (AAAA, v6)) if found}
    glue = Glue(wire_labels(below + service), v4 + v6)
    return Node(rrsets), glue, wire_labels(below + service + origin) + b"\0"


def assemble(settings: ZoneSettings, imported: ServiceImport, views: tuple[SliceView, ...]) -> "Names | HeadlessNames":
    """The names of a headless service from its views' parts; the same as
    ``build.headless_names`` of their slices (which it falls back to when a
    name comes from two slices)."""
    service = (imported.name.encode(), imported.namespace.encode(), b"svc")
    parts = [view.part(settings, service) for view in views]  # key order: the service name's addresses
    names = None
    if not any(part.clash for part in parts):
        names = HeadlessNames.after(_newest(views, (service, settings.ttl, settings.labels)), settings, service, views, parts)
    if names is None:
        return headless_names(settings, imported, [view.slice for view in views])  # a name from two slices
    for view in views:
        view.joined = names
    return names


def _newest(views, scope) -> "HeadlessNames | None":
    found = None
    for view in views:
        joined = view.joined
        if joined is not None and (found is None or joined.version > found.version):
            found = joined
    return found if found is not None and found.scope == scope else None


_MISSING = object()
_versions = count()


class HeadlessNames(Mapping):
    """A headless service's names as parts put end to end, kept so that the
    next version is made from this one in what the changed slices hold.

    Read as the mapping ``build.headless_names`` defines (labels below the
    service -> node). A query's ``get`` looks in three places: ``small`` (the
    service name, its SRV owners and the empty non-terminals: a few names,
    made anew each version), then the endpoint names, which are ``index`` (a
    dict shared, unchanged, by the versions made from it) read through
    ``over`` (this version's changes to it; None: gone). ``counts`` and
    ``counted`` do the same for how many slices hold each address record:
    ``shared`` counts those in more than one, and while it is 0 the service
    name's A and AAAA are the slices' records end to end, with no dedup. When
    an overlay outgrows ``_limit`` of its dict, they are merged (once in
    ~2 sqrt(n) changes). Nothing here refers to a view, so no cycle is made.

    Listing (``items``, equality) builds the plain dict, in the order the
    names are put together in (what ``build.headless_names`` gives, as a set)."""

    __slots__ = ("scope", "version", "by_name", "order", "index", "over", "counts", "counted", "shared", "srv", "top",
                 "small")

    @classmethod
    def after(cls, base, settings: ZoneSettings, service: Labels, views, parts: list[Part]) -> "HeadlessNames | None":
        """The names of ``views``, from ``base`` (an earlier version's names,
        or None); None when two slices make one name."""
        self = cls.__new__(cls)
        self.scope, self.version = (service, settings.ttl, settings.labels), next(_versions)
        self.by_name = {view.slice.name: part for view, part in zip(views, parts)}
        self.order = [part for _, part in sorted(zip(views, parts), key=_target_order)]
        if not (self._fresh(parts) if base is None else self._step(base)):
            return None
        self._put_together(settings.ttl, parts)
        return self

    def _fresh(self, parts: list[Part]) -> bool:
        index: Names = {}
        total = 0
        for part in self.order:
            index.update(part.nodes)
            total += len(part.nodes)
        counts = Counter(chain.from_iterable(part.tails.values() for part in parts))
        self.index, self.over, self.counts, self.counted = index, {}, counts, {}
        shared = len(counts) < sum(len(part.tails) for part in parts)
        self.shared = sum(1 for n in counts.values() if n > 1) if shared else 0
        return total == len(index)

    def _step(self, base: "HeadlessNames") -> bool:
        """What changed since ``base``: the slices whose part is another."""
        old = base.by_name
        pairs = [(old.get(name), part) for name, part in self.by_name.items() if old.get(name) is not part]
        pairs += [(part, None) for name, part in old.items() if name not in self.by_name]
        index, over = base.index, dict(base.over)
        for before, after in pairs:  # names out first: one may move from a slice to another
            if before is not None:
                kept = after.nodes if after is not None else {}
                for below, node in before.nodes.items():
                    if kept.get(below) is not node:
                        if below in index:
                            over[below] = None
                        else:
                            over.pop(below, None)
        for before, after in pairs:
            if after is not None:
                had = before.nodes if before is not None else {}
                for below, node in after.nodes.items():
                    if had.get(below) is not node:
                        held = over.get(below, _MISSING)
                        if (index.get(below) if held is _MISSING else held) is not None:
                            return False  # a name from two slices
                        over[below] = node
        counts, counted, shared = base.counts, dict(base.counted), base.shared
        for before, after in pairs:
            out = set(before.tails.values()) if before is not None else set()
            into = set(after.tails.values()) if after is not None else set()
            for tail in out - into:
                n = counted.get(tail)
                n = counts.get(tail, 0) if n is None else n
                counted[tail] = n - 1
                shared -= n == 2
            for tail in into - out:
                n = counted.get(tail)
                n = counts.get(tail, 0) if n is None else n
                counted[tail] = n + 1
                shared += n == 1
        if len(over) > _limit(len(index)):
            index = {**index, **over}
            index = {below: node for below, node in index.items() if node is not None}
            over = {}
        if len(counted) > _limit(len(counts)):
            counts = {tail: n for tail, n in {**counts, **counted}.items() if n}
            counted = {}
        self.index, self.over, self.counts, self.counted, self.shared = index, over, counts, counted, shared
        return True

    def _put_together(self, ttl: int, parts: list[Part]) -> None:
        """The service name and SRV owners, and which names are empty non-terminals."""
        top: dict = {}
        if self.shared:  # an address in two slices: listed once, where it first appears
            for rtype, found in (
                (A, tuple(dict.fromkeys(chain.from_iterable(part.a for part in parts)))),
                (AAAA, tuple(dict.fromkeys(chain.from_iterable(part.aaaa for part in parts)))),
            ):
                if found:
                    top[rtype] = RRset(rtype, found)
        else:
            for rtype, pieces in ((A, [p.a_piece for p in parts if p.a]), (AAAA, [p.aaaa_piece for p in parts if p.aaaa])):
                if pieces:
                    top[rtype] = PiecedRRset(rtype, pieces)
        self.srv = []
        for owner, rrset in _srv_rrsets(self.order, ttl):
            if owner:
                self.srv.append((owner, Node({SRV: rrset})))
            else:
                top[SRV] = rrset
        self.top = Node(top)
        self.small = small = {}
        for ent in chain((owner[1:] for owner, _ in self.srv), (ent for part in self.order for ent in part.ents)):
            if self._endpoint(ent) is None:
                small[ent] = EMPTY_NON_TERMINAL
        small.update(self.srv)
        small[()] = self.top

    def _endpoint(self, below: Labels) -> Node | None:
        node = self.over.get(below, _MISSING)
        return self.index.get(below) if node is _MISSING else node

    def get(self, below: Labels, default=None):
        node = self.small.get(below)
        if node is None:
            node = self.over.get(below, _MISSING)
            if node is _MISSING:
                node = self.index.get(below)
            if node is None:
                return default
        return node

    def __getitem__(self, below: Labels) -> Node:
        node = self.get(below)
        if node is None:
            raise KeyError(below)
        return node

    def __contains__(self, below: object) -> bool:
        return self.get(below) is not None  # type: ignore[arg-type]

    def flat(self) -> Names:
        """The names as one dict, put together as ``assemble`` always did."""
        names: Names = {}
        for part in self.order:
            names.update(part.nodes)
        for owner, node in self.srv:
            names[owner] = node
            names.setdefault(owner[1:], EMPTY_NON_TERMINAL)
        names[()] = self.top
        for part in self.order:
            for ent in part.ents:
                names.setdefault(ent, EMPTY_NON_TERMINAL)
        return names

    def __iter__(self):
        return iter(self.flat())

    def __len__(self) -> int:
        return len(self.flat())

    def items(self):
        return self.flat().items()

    def keys(self):
        return self.flat().keys()

    def values(self):
        return self.flat().values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HeadlessNames):
            other = other.flat()
        elif not isinstance(other, Mapping):
            return NotImplemented
        return self.flat() == dict(other.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"HeadlessNames({len(self.order)} slices, version {self.version})"


def _limit(size: int) -> int:
    """How large an overlay may grow over a dict of ``size`` before they merge."""
    return 64 + 2 * isqrt(size)


def _srv_rrsets(ordered: list[Part], ttl: int):
    """(owner, SRV RRset) for each SRV name: the parts' records end to end, with
    the weight of the whole set (build._add_srv: 100 split over its pairs)."""
    for owner in dict.fromkeys(owner for part in ordered for owner in part.owners):
        having = [part for part in ordered if owner in part.owners]
        weight = max(1, 100 // sum(part.pairs(owner) for part in having))
        yield owner, PiecedRRset(SRV, [part.srv(owner, weight, ttl) for part in having])


def _target_order(pair: tuple[SliceView, Part]):
    piece = pair[0].slice
    return (piece.cluster, piece.family, piece.name)
