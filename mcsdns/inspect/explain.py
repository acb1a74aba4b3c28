"""Why a name answers what it answers: the objects behind it, in words.

The outcome is the engine's own (``lookup`` on the store's snapshot), so the
explanation can never disagree with an answer; the reasons beside it walk the
same rules ``zone.build`` applies (MCS DNS specification 2.3, 2.4), object by
object, so an operator reads "ServiceImport shop/web found; spec.ips empty; no
Service derived-web; ..." instead of guessing from an NXDOMAIN.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

import dnslib

from ..engine.lookup import Outcome, lookup
from ..model.convert import KARMADA_DERIVED
from ..model.records import EndpointSlice, Rejected, ServiceImport
from ..zone.build import clusterset_ips, dashed, local_backends
from ..zone.reverse import address_of
from ..zone.rrset import Labels
from ..zone.store import ZoneStore
from .zonefile import owner_text, record_text

CLASS_IN = 1
MAX_NAME = 253


class ExplainError(ValueError):
    """The question itself is unusable (bad name or type); the text says why."""


def parse_type(text: str) -> int:
    text = text.strip().upper()
    if text.isdigit() or text.startswith("TYPE") and text[4:].isdigit():
        number = int(text.removeprefix("TYPE"))
        if 0 < number < 65536:
            return number
    else:
        try:
            return int(getattr(dnslib.QTYPE, text))
        except (dnslib.DNSError, AttributeError):
            pass
    raise ExplainError(f"{text!r} is not a DNS record type (e.g. A, AAAA, SRV, TXT, 33)")


def parse_name(text: str) -> Labels:
    name = text.strip().rstrip(".").lower()
    labels = tuple(label.encode() for label in name.split(".")) if name else ()
    if not name or len(name) > MAX_NAME or any(not 0 < len(label) < 64 for label in labels) or not name.isascii():
        raise ExplainError(f"{text!r} is not a domain name")
    return labels


def explain(store: ZoneStore, name: str, qtype: str = "A", rejected: Iterable[Rejected] = ()) -> list[str]:
    """Lines of text: the question, the reasons, then the outcome and records."""
    labels, rtype = parse_name(name), parse_type(qtype)
    snapshot = store.snapshot
    origin = snapshot.origin
    shown = owner_text(labels)
    lines = [f"{shown} {dnslib.QTYPE.get(rtype)}  (zone {owner_text(origin)} serial {snapshot.serial})"]
    cut = len(labels) - len(origin)
    if labels[-1:] == (b"arpa",) and (cut < 0 or labels[cut:] != origin):
        lines.extend(_reverse_reasons(snapshot, labels))
    elif cut < 0 or labels[cut:] != origin:
        lines.append(f"not in the zone {owner_text(origin)}: refused (mcsdns is authoritative only, not a resolver)")
    elif not snapshot.ready:
        lines.append("the source has not completed its first full sync: every query gets SERVFAIL")
    else:
        lines.extend(_reasons(store, labels[:cut], list(rejected)))
    result = lookup(snapshot, labels, rtype, CLASS_IN)
    if result.outcome is Outcome.ANSWER:
        lines.append(f"answer: {len(result.rrset.tails)} record(s)")
        lines.extend("  " + record_text(shown, tail) for tail in result.rrset.tails)
    else:
        lines.append(f"answer: {_OUTCOMES[result.outcome]}")
    return lines


_OUTCOMES = {
    Outcome.NODATA: "NODATA (the name exists, with no record of this type)",
    Outcome.NXDOMAIN: "NXDOMAIN (no such name)",
    Outcome.REFUSED: "REFUSED",
    Outcome.SERVFAIL: "SERVFAIL",
    Outcome.FORMERR: "FORMERR (not a type one may ask for)",
}


def _reverse_reasons(snapshot, labels: Labels) -> list[str]:
    if not snapshot.ptr:
        return ["PTR answers are off (--ptr false): refused"]
    address = address_of(labels)
    if address is None:
        return ["not the reverse name of one address (4 labels under in-addr.arpa, 32 under ip6.arpa)"]
    owners = snapshot.owners(address)
    shown = str(ipaddress.ip_address(address))
    if owners:
        return [f"address {shown} is published by {len(owners)} name(s) of the zone"]
    zones = [owner_text(zone) for zone in snapshot.reverse_zones if labels[len(labels) - len(zone):] == zone]
    if zones:
        return [f"address {shown} is published by no name; we are the authority for {zones[0]} (--reverse-zone)"]
    return [f"address {shown} is published by no name, and no --reverse-zone covers it: refused"]


def _reasons(store: ZoneStore, below: Labels, rejected: list[Rejected]) -> list[str]:
    snapshot = store.snapshot
    if not below:
        return ["the zone apex: SOA and NS, always present"]
    if below[-1] != b"svc":
        if below in snapshot.apex:
            return [f"a fixed name of the zone ({'the MCS schema version' if below == (b'dns-version',) else 'the nameserver'})"]
        return ["outside svc.<zone> only the apex, dns-version and ns.dns exist"]
    if len(below) == 1:
        return [f"svc.<zone>: an empty non-terminal while any service is served ({len(snapshot.services)} now)"]
    namespace = below[-2].decode()
    if len(below) == 2:
        count = snapshot.namespaces.get(below[-2], 0)
        if count:
            return [f"namespace {namespace}: an empty non-terminal holding {count} served service(s)"]
        return [f"namespace {namespace}: no served service in it"] + _rejections(rejected, namespace, None)
    service = below[-3].decode()
    return _service_reasons(store, namespace, service, below[:-3], rejected)


def _service_reasons(store: ZoneStore, namespace: str, service: str, rest: Labels, rejected: list[Rejected]) -> list[str]:
    imported, slices, derived = store.inputs(namespace, service)
    lines = []
    if not isinstance(imported, ServiceImport):
        lines.append(f"no ServiceImport {namespace}/{service}")
        lines.extend(_rejections(rejected, namespace, service))
        if slices:
            lines.append(f"{len(slices)} EndpointSlice(s) name this service, but without an import they are not served")
        return lines
    kind = "Headless" if imported.headless else "ClusterSetIP"
    lines.append(f"ServiceImport {namespace}/{service} found: type {kind}, ports {_ports(imported.ports)}")
    lines.extend(f"  note: {note.reason}" for note in imported.notes)
    lines.extend(_slice_lines(slices))
    present = {imported.name, *(piece.name for piece in slices), *([derived.name] if derived else [])}
    lines.extend(_rejections(rejected, namespace, service, present))
    settings = store.settings
    if imported.headless:
        ready = sum(e.ready for piece in slices for e in piece.endpoints)
        lines.append(f"headless: {ready} ready endpoint(s)" if ready else
                     "headless: no EndpointSlice with a ready endpoint, so the service has no names (spec 2.4.1)")
    else:
        local = local_backends(imported, slices, settings.local_cluster)
        if settings.local_cluster is not None:
            lines.append(f"local-first: cluster {settings.local_cluster} " +
                         ("has ready backends serving every port: they answer" if local else
                          "has no ready backend serving every port: the clusterset answer is used"))
        if imported.ips:
            lines.append(f"spec.ips: {', '.join(imported.ips)}")
        else:
            lines.append("spec.ips empty")
            if derived is not None:
                shown = ", ".join(derived.cluster_ips) or "none"
                lines.append(f"Service {namespace}/{derived.name} (Karmada's derived Service): cluster IPs {shown}")
            else:
                lines.append(f"no Service {KARMADA_DERIVED}{service}")
            found = clusterset_ips(imported, slices, derived)
            lines.append(f"clusterset IPs from the fallbacks: {', '.join(found)}" if found else
                         "no clusterset IP from any producer yet: the names hold no address (NODATA)")
    lines.extend(_rest(imported, slices, rest))
    return lines


def _rest(imported: ServiceImport, slices: list[EndpointSlice], rest: Labels) -> list[str]:
    """The part of the name left of <svc>.<ns>.svc."""
    if not rest:
        return []
    if len(rest) == 2 and rest[0].startswith(b"_") and rest[1].startswith(b"_"):
        port, protocol = rest[0][1:].decode(), rest[1][1:].decode()
        known = imported.ports if not imported.headless else tuple(p for s in slices for p in s.ports)
        named = [p for p in known if (p.name, p.protocol) == (port, protocol)]
        return [f"port {port}/{protocol}: " + (f"number {', '.join(str(p.port) for p in named)}" if named else
                                                "no port of that name and protocol")]
    if not imported.headless:
        return ["ClusterSetIP services have names only for themselves and their named ports"]
    host, cluster = rest[0].decode(), ".".join(label.decode() for label in rest[1:])
    matching = [
        (piece, endpoint)
        for piece in slices if piece.cluster == cluster
        for endpoint in piece.endpoints
        if endpoint.hostname == host or not endpoint.hostname and host in {dashed(ip) for ip in endpoint.addresses}
    ]
    if not any(piece.cluster == cluster for piece in slices):
        return [f"no EndpointSlice from cluster {cluster}"]
    if not matching:
        return [f"no endpoint named {host} in cluster {cluster} (hostname, or its dashed address)"]
    return [
        f"endpoint {host} in EndpointSlice {piece.name}: {', '.join(e.addresses)}, " + ("ready" if e.ready else "not ready (not published)")
        for piece, e in matching
    ]


def _slice_lines(slices: list[EndpointSlice]) -> list[str]:
    if not slices:
        return ["no EndpointSlice for this service"]
    lines = []
    for piece in slices:
        ready = sum(e.ready for e in piece.endpoints)
        cluster = piece.cluster or "(no cluster label: no per-endpoint names)"
        kind = ", the cluster's service IP" if piece.service_ip else ""
        lines.append(
            f"EndpointSlice {piece.namespace}/{piece.name}: cluster {cluster}, IPv{piece.family}{kind}, "
            f"{ready} of {len(piece.endpoints)} endpoint(s) ready, ports {_ports(piece.ports)}"
        )
        lines.extend(f"  note: {note.reason}" for note in piece.notes)
    return lines


def _rejections(rejected: list[Rejected], namespace: str, service: str | None, present: set[str] = frozenset()) -> list[str]:
    """Objects the source turned away that would have fed this name (and that
    are not in the zone now: a later, good version of one supersedes it)."""
    lines = []
    for item in rejected:
        if item.partial or item.namespace != namespace:
            continue
        if service is not None and item.name not in (service, KARMADA_DERIVED + service) and not item.name.startswith(service + "-"):
            continue
        if item.name in present:
            continue
        lines.append(str(item))
    return lines


def _ports(ports) -> str:
    return ", ".join(f"{p.name or '(unnamed)'} {p.port}/{p.protocol}" for p in ports) or "none"
