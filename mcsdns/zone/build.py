"""One service's records -> the names below ``<svc>.<ns>.svc.<zone>``.

A service is rebuilt alone whenever one of its objects changes, which is what
keeps zone updates incremental. The result is a plain mapping from the labels
below the service name (``()`` is the service name itself) to nodes; two builds
of the same inputs are equal, so the store can tell whether DNS sees a change.

Records follow the MCS DNS specification (KEP-1645 specification.md, 1.0.0):
  ClusterSetIP (2.3): A/AAAA = the clusterset IPs (see ``clusterset_ips`` for
      producers that leave spec.ips empty); _<port>._<proto> SRV per named
      port, target the service name.
  Headless (2.4): A/AAAA = every ready endpoint address of every cluster;
      <host>.<cluster> A/AAAA per ready endpoint; _<port>._<proto> SRV per
      ready endpoint x named port, target the endpoint name; no ready
      endpoint at all -> the service has no names (NXDOMAIN).
  Both: SRV at the bare service name, one per distinct (target, port), as the
      mcs-api conformance suite queries it. Unnamed ports appear only there.
Every proper suffix of a name is an empty non-terminal (RFC 8020), e.g.
``_tcp.<svc>`` or ``<cluster>.<svc>``; the spec reserves ``<cluster>.<svc>``
and we keep it free of address records.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.records import EndpointSlice, Port, Service, ServiceImport
from .rrset import EMPTY_NON_TERMINAL, SRV, Glue, Labels, Node, RRset, address_rrsets, srv_tail, wire_labels
from .settings import ZoneSettings

Names = dict[Labels, Node]


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    names: Names


@dataclass(frozen=True, slots=True)
class Target:
    """Something an SRV record can point at: a name below the service and its addresses."""

    below: Labels
    addresses: tuple[str, ...]


def build_service(
    settings: ZoneSettings,
    imported: ServiceImport,
    slices: list[EndpointSlice],
    derived: Service | None,
) -> ServiceEntry | None:
    origin, ttl = settings.labels, settings.ttl
    service_labels = (imported.name.encode(), imported.namespace.encode(), b"svc")
    if imported.headless:
        targets = _headless_targets(slices)
        if not targets:
            return None  # spec 2.4.1: no ready endpoint -> NXDOMAIN
    else:
        local = local_backends(slices, settings.local_cluster)
        targets = [Target((), local or clusterset_ips(imported, slices, derived))]
    names: Names = {}
    everything = tuple(dict.fromkeys(ip for target in targets for ip in target.addresses))
    _add(names, (), address_rrsets(everything, ttl))
    for target in targets:
        if target.below:
            _add(names, target.below, address_rrsets(target.addresses, ttl))
    ports_of = _ports_by_target(imported, slices, targets)
    _add_srv(names, origin, service_labels, ttl, ports_of)
    if not any(node.rrsets for node in names.values()):
        return None  # no address and no port yet: a name with no records does not exist
    return ServiceEntry(names)


def local_backends(slices: list[EndpointSlice], cluster: str | None) -> tuple[str, ...]:
    """Local-first: the ready addresses this cluster's own slices hold (pod IPs for
    standard producers and Karmada, the local service IP for lighthouse), or
    nothing, which fails over to the clusterset-wide answer."""
    if cluster is None:
        return ()
    return _ready_addresses(piece for piece in slices if piece.cluster == cluster)


def _ready_addresses(slices) -> tuple[str, ...]:
    ready = (ip for piece in slices for endpoint in piece.endpoints if endpoint.ready for ip in endpoint.addresses)
    return tuple(dict.fromkeys(ready))


def clusterset_ips(imported: ServiceImport, slices: list[EndpointSlice], derived: Service | None) -> tuple[str, ...]:
    """Where a ClusterSetIP name points, by producer: ``spec.ips`` (the standard);
    else the ClusterIPs of Karmada's ``derived-<svc>`` Service; else, as
    Submariner's lighthouse does, the ready endpoints of the per-cluster slices
    (each holds that cluster's service IP)."""
    if imported.ips:
        return imported.ips
    if derived is not None and derived.cluster_ips:
        return derived.cluster_ips
    return _ready_addresses(slices)


def _headless_targets(slices: list[EndpointSlice]) -> list[Target]:
    """Ready endpoints by name; one name gathers an endpoint's IPv4 and IPv6 slices."""
    by_name: dict[Labels, list[str]] = {}
    for piece in sorted(slices, key=lambda s: (s.cluster, s.family, s.name)):
        cluster = tuple(label.encode() for label in piece.cluster.split("."))
        for endpoint in piece.endpoints:
            if not endpoint.ready:
                continue
            if endpoint.hostname:
                by_name.setdefault((endpoint.hostname.encode(), *cluster), []).extend(endpoint.addresses)
            else:
                for ip in endpoint.addresses:
                    by_name.setdefault((dashed(ip).encode(), *cluster), []).append(ip)
    return [Target(below, tuple(dict.fromkeys(ips))) for below, ips in sorted(by_name.items())]


def dashed(ip: str) -> str:
    """An endpoint name made from its address when it has no hostname."""
    label = ip.replace(".", "-").replace(":", "-")
    return ("0" if label.startswith("-") else "") + label + ("0" if label.endswith("-") else "")


def _ports_by_target(
    imported: ServiceImport, slices: list[EndpointSlice], targets: list[Target]
) -> dict[Labels, tuple[Port, ...]]:
    """The ports each target serves: the import's ports, with a headless slice's
    own number for a port of the same name (the endpoint's target port)."""
    if not imported.headless:
        return {(): imported.ports}
    numbers: dict[tuple[bytes, str], int] = {}
    for piece in slices:
        for port in piece.ports:
            if port.name:
                numbers[(piece.cluster.encode(), port.name)] = port.port
    result = {}
    for target in targets:
        cluster = b".".join(target.below[1:])
        result[target.below] = tuple(
            Port(p.name, p.protocol, numbers.get((cluster, p.name), p.port)) for p in imported.ports
        )
    return result


def _add_srv(
    names: Names, origin: Labels, service: Labels, ttl: int, ports_of: dict[Labels, tuple[Port, ...]]
) -> None:
    by_owner: dict[Labels, dict[tuple[Labels, int], None]] = {}
    for below, ports in ports_of.items():
        for port in ports:
            by_owner.setdefault((), {})[(below, port.port)] = None
            if port.name:
                owner = (b"_" + port.name.encode(), b"_" + port.protocol.encode())
                by_owner.setdefault(owner, {})[(below, port.port)] = None
    for owner, pairs in by_owner.items():
        weight = max(1, 100 // len(pairs))
        tails = tuple(srv_tail(ttl, weight, port, below + service + origin) for below, port in pairs)
        glue = tuple(_glue(names, below, service) for below in dict.fromkeys(below for below, _ in pairs))
        _add(names, owner, {SRV: RRset(SRV, tails, tuple(g for g in glue if g.tails))})


def _glue(names: Names, below: Labels, service: Labels) -> Glue:
    rrsets = names[below].rrsets.values() if below in names else ()
    tails = tuple(t for rrset in rrsets if rrset.rtype != SRV for t in rrset.tails)
    return Glue(wire_labels(below + service), tails)


def _add(names: Names, below: Labels, rrsets: dict[int, RRset]) -> None:
    node = names.get(below)
    merged = {**node.rrsets, **rrsets} if node else dict(rrsets)
    names[below] = Node(merged)
    for cut in range(1, len(below)):
        names.setdefault(below[cut:], EMPTY_NON_TERMINAL)
