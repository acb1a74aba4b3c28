"""One service in the snapshot: whether it exists, what it is made of, and
its names, packed the first time something needs them.

A 100k-service zone is mostly names nobody asks for: packing every record of
every endpoint up front cost ~35 us an endpoint and 120 us a ClusterSetIP
import, and most of the memory of a large zone (bench/RESULTS.md, "Zone
scale and churn"). So an entry holds only its *inputs* and packs them on
first use; it is immutable in meaning, so the packed form lives as long as
the entry, across snapshots, and a change to the service makes a new entry.

Two entries are equal when their inputs are: the store uses that to tell
whether DNS sees a change without building anything. Inputs are only what
the names are made of (a ClusterSetIP import's target; a headless service's
slices less their not-ready endpoints), so equal inputs give equal names.
"""

from __future__ import annotations

from itertools import chain

from ..model.records import Service, ServiceImport
from .build import Names, Target, clusterset_ips, cluster_set_ip_names, headless_targets, local_backends
from .build import ready_addresses, srv_pairs
from .headless import SliceView, assemble
from .reverse import owners_in
from .rrset import EMPTY_NON_TERMINAL, Labels, Node, address_rrsets
from .settings import ZoneSettings


class ServiceEntry:
    __slots__ = ("settings", "imported", "part", "clusters", "_names", "_records", "_reverse")

    def __init__(
        self,
        settings: ZoneSettings,
        imported: ServiceImport,
        part: Target | tuple[SliceView, ...],
        clusters: tuple[tuple[Labels, tuple[str, ...]], ...] = (),
    ):
        self.settings = settings
        self.imported = imported
        self.part = part  # ClusterSetIP: its Target; headless: its slices' ready views, in key order
        self.clusters = clusters  # --lighthouse-names: (cluster labels, its ready addresses)
        self._names: Names | None = None
        self._records: int | None = None
        self._reverse: dict[bytes, tuple[bytes, ...]] | None = None

    @property
    def names(self) -> Names:
        names = self._names
        if names is None:
            if isinstance(self.part, Target):
                names = cluster_set_ip_names(self.settings, self.imported, self.part)
            else:
                names = assemble(self.settings, self.imported, self.part)
            if self.clusters:
                names = with_cluster_names(names, self.clusters, self.settings.ttl)
            self._names = names
        return names

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address the names publish, from the inputs (nothing packed):
        what the reverse index holds for this service."""
        if isinstance(self.part, Target):
            published = self.part.addresses
        else:
            published = tuple(dict.fromkeys(chain.from_iterable(view.addresses for view in self.part)))
        if self.clusters:
            published = tuple(dict.fromkeys((*published, *(ip for _, ips in self.clusters for ip in ips))))
        return published

    def reverse(self, suffix: Labels) -> dict[bytes, tuple[bytes, ...]]:
        """Packed address -> the owner names of its PTRs (``reverse.owners_in``),
        worked out on the first PTR query for one of them, then kept."""
        if self._reverse is None:
            self._reverse = owners_in(self.names.items(), suffix)
        return self._reverse

    @property
    def built(self) -> bool:
        return self._names is not None

    @property
    def records(self) -> int:
        """How many resource records the names hold, counted without packing them
        (a scrape must not build the whole zone); kept once counted."""
        if self._records is None:
            if isinstance(self.part, Target):
                everything, targets = self.part.addresses, [self.part]
            else:
                slices = [view.slice for view in self.part]
                everything, targets = ready_addresses(slices), headless_targets(slices)
            pairs = srv_pairs([t for t in targets if t.addresses])
            below = sum(len(t.addresses) for t in targets if t.below)
            clusters = sum(len(ips) for _, ips in self.clusters)
            self._records = len(everything) + below + clusters + sum(len(p) for p in pairs.values())
        return self._records

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ServiceEntry)
            and self.imported == other.imported
            and self.part == other.part
            and self.clusters == other.clusters
            and self.settings == other.settings
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        state = "built" if self.built else "unbuilt"
        return f"ServiceEntry({self.imported.namespace}/{self.imported.name}, {state})"


def build_service(
    settings: ZoneSettings,
    imported: ServiceImport,
    views: list[SliceView],
    derived: Service | None,
) -> ServiceEntry | None:
    """The service's entry, or None when it has no names at all (decided now:
    it decides NXDOMAIN and the namespace's existence). ``views`` are its
    slices' ready views in key order."""
    ready = tuple(view for view in views if view.slice.endpoints)
    clusters = cluster_addresses([view.slice for view in ready]) if settings.lighthouse_names else ()
    if imported.headless:
        if not ready:
            return None  # spec 2.4.1: no ready endpoint -> NXDOMAIN
        return ServiceEntry(settings, imported, ready, clusters)
    slices = [view.slice for view in ready]
    local = local_backends(imported, slices, settings.local_cluster)
    target = local or Target((), clusterset_ips(imported, slices, derived), imported.ports)
    if not target.addresses and not imported.ports:
        return None  # no address and no port: the import is not served (as CoreDNS)
    return ServiceEntry(settings, imported, target, clusters)


def cluster_addresses(slices) -> tuple[tuple[Labels, tuple[str, ...]], ...]:
    """Each cluster's ready addresses (its service IP for lighthouse's slices,
    its pods' for other producers), by cluster id, for --lighthouse-names."""
    by_cluster: dict[str, list] = {}
    for piece in slices:
        if piece.cluster:
            by_cluster.setdefault(piece.cluster, []).append(piece)
    return tuple(
        (tuple(label.encode() for label in cluster.split(".")), ready_addresses(pieces))
        for cluster, pieces in sorted(by_cluster.items())
    )


def with_cluster_names(names: Names, clusters, ttl: int) -> Names:
    """The names plus <cluster>.<svc>: A/AAAA of that cluster's ready addresses."""
    names = dict(names)
    for below, addresses in clusters:
        if addresses:
            node = names.get(below)
            names[below] = Node({**(node.rrsets if node else {}), **address_rrsets(addresses, ttl)})
            for cut in range(1, len(below)):
                names.setdefault(below[cut:], EMPTY_NON_TERMINAL)
    return names
