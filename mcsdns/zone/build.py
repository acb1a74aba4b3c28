"""One service's records -> the names below ``<svc>.<ns>.svc.<zone>``.

A service is built alone (see ``entry``: when a query first needs it), from
its import and its slices' ready views. The result is a plain mapping from the
labels below the service name (``()`` is the service name itself) to nodes.
A large headless service is put together from per-slice parts instead
(``headless``), which gives the same mapping; this module is its definition.

Records follow the MCS DNS specification (KEP-1645 specification.md, 1.0.0):
  ClusterSetIP (2.3): A/AAAA = the clusterset IPs (see ``clusterset_ips`` for
      producers that leave spec.ips empty); _<port>._<proto> SRV per named
      port of the import, target the service name. No address yet (the
      producer has not written it): the names exist and hold nothing, SRV
      included, since its target would not resolve (NODATA, as CoreDNS).
  Headless (2.4): A/AAAA = every ready endpoint address of every cluster;
      <host>.<cluster> A/AAAA per ready endpoint; _<port>._<proto> SRV per
      ready endpoint x named port *of the slice it came from* (as CoreDNS;
      a headless import's own ports are often empty, and two
      slices of one cluster may number a port differently mid-rollout); no
      ready endpoint at all -> the service has no names (NXDOMAIN).
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
class Target:
    """Something an SRV record can point at: a name below the service, its
    addresses, and the ports those addresses serve (they always go together)."""

    below: Labels
    addresses: tuple[str, ...]
    ports: tuple[Port, ...]


def headless_names(settings: ZoneSettings, imported: ServiceImport, slices: list[EndpointSlice]) -> Names:
    """A headless service's names built whole, from its slices' ready views in
    key order (``headless.assemble`` puts the same together from per-slice parts)."""
    everything = ready_addresses(slices)  # a slice without its cluster label counts here too
    return _names(settings, imported, everything, headless_targets(slices))


def cluster_set_ip_names(settings: ZoneSettings, imported: ServiceImport, target: Target) -> Names:
    names = _names(settings, imported, target.addresses, [target])
    if not target.addresses:
        # Ports but no address yet: the names exist, with nothing to answer
        # (an SRV target must resolve); NODATA, as CoreDNS answers.
        for port in (port for port in imported.ports if port.name):
            _add(names, (b"_" + port.name.encode(), b"_" + port.protocol.encode()), {})
    return names


def _names(settings: ZoneSettings, imported: ServiceImport, everything: tuple[str, ...], targets: list[Target]) -> Names:
    origin, ttl = settings.labels, settings.ttl
    service_labels = (imported.name.encode(), imported.namespace.encode(), b"svc")
    names: Names = {}
    _add(names, (), address_rrsets(everything, ttl))
    for target in targets:
        if target.below:
            _add(names, target.below, address_rrsets(target.addresses, ttl))
    _add_srv(names, origin, service_labels, ttl, [t for t in targets if t.addresses])
    return names


def local_backends(imported: ServiceImport, slices: list[EndpointSlice], cluster: str | None) -> Target | None:
    """Local-first: this cluster's own ready backends with the ports *they*
    serve, or None, which fails over to the clusterset-wide answer.

    The addresses are what the local slices hold: the local service IP for
    lighthouse (its slice carries the service's ports), pod IPs for everyone
    else (their slices carry the target ports). An address is never paired with
    a port it does not serve: every port of the import must have exactly one
    number among the local slices that have a ready endpoint (a rollout that
    numbers a port two ways, or a port they lack, fails over instead)."""
    if cluster is None:
        return None
    local = [piece for piece in slices if piece.cluster == cluster and any(e.ready for e in piece.endpoints)]
    addresses = ready_addresses(local)
    if not addresses:
        return None
    ports = []
    for port in imported.ports:
        numbers = {p.port for piece in local for p in piece.ports if (p.name, p.protocol) == (port.name, port.protocol)}
        if len(numbers) != 1:
            return None
        ports.append(Port(port.name, port.protocol, numbers.pop()))
    return Target((), addresses, tuple(ports))


def ready_addresses(slices) -> tuple[str, ...]:
    ready = (ip for piece in slices for endpoint in piece.endpoints if endpoint.ready for ip in endpoint.addresses)
    return tuple(dict.fromkeys(ready))


def clusterset_ips(imported: ServiceImport, slices: list[EndpointSlice], derived: Service | None) -> tuple[str, ...]:
    """Where a ClusterSetIP name points, by producer: ``spec.ips`` (the standard);
    else the ClusterIPs of Karmada's ``derived-<svc>`` Service; else, as
    Submariner's lighthouse does, the ready endpoints of its per-cluster
    service-IP slices. Pod IPs never stand in for a clusterset IP: an import
    whose IPs are not written yet has none (NODATA, as CoreDNS answers)."""
    if imported.ips:
        return imported.ips
    if derived is not None and derived.cluster_ips:
        return derived.cluster_ips
    return ready_addresses(piece for piece in slices if piece.service_ip)


def headless_targets(slices: list[EndpointSlice]) -> list[Target]:
    """Ready endpoints by name, each with its own slice's ports; one name gathers
    an endpoint's IPv4 and IPv6 slices. A slice without a cluster id gives no
    names (nothing to put in them); its addresses count at the service name.

    In order of first appearance, slices by (cluster, family, name), endpoints
    as their slice lists them: the order of the SRV records, which is also
    what putting per-slice parts end to end gives (``headless.assemble``)."""
    by_name: dict[Labels, tuple[list[str], list[Port]]] = {}
    for piece in sorted(slices, key=lambda s: (s.cluster, s.family, s.name)):
        if not piece.cluster:
            continue
        cluster = tuple(label.encode() for label in piece.cluster.split("."))
        for endpoint in piece.endpoints:
            if not endpoint.ready:
                continue
            named = [endpoint.hostname] if endpoint.hostname else [dashed(ip) for ip in endpoint.addresses]
            ips = [endpoint.addresses] if endpoint.hostname else [(ip,) for ip in endpoint.addresses]
            for host, addresses in zip(named, ips):
                found, ports = by_name.setdefault((host.encode(), *cluster), ([], []))
                found.extend(addresses)
                ports.extend(piece.ports)
    return [
        Target(below, tuple(dict.fromkeys(ips)), tuple(dict.fromkeys(ports)))
        for below, (ips, ports) in by_name.items()
    ]


def dashed(ip: str) -> str:
    """An endpoint name made from its address when it has no hostname."""
    label = ip.replace(".", "-").replace(":", "-")
    return ("0" if label.startswith("-") else "") + label + ("0" if label.endswith("-") else "")


def srv_pairs(targets: list[Target]) -> dict[Labels, dict[tuple[Labels, int], None]]:
    """SRV owner -> its distinct (target name, port) pairs, in order."""
    by_owner: dict[Labels, dict[tuple[Labels, int], None]] = {}
    for target in targets:
        below = target.below
        for port in target.ports:
            by_owner.setdefault((), {})[(below, port.port)] = None
            if port.name:
                owner = (b"_" + port.name.encode(), b"_" + port.protocol.encode())
                by_owner.setdefault(owner, {})[(below, port.port)] = None
    return by_owner


def _add_srv(names: Names, origin: Labels, service: Labels, ttl: int, targets: list[Target]) -> None:
    for owner, pairs in srv_pairs(targets).items():
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
