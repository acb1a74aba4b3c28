"""The immutable zone a query reads: one snapshot per query, swapped whole.

Services live in a HAMT (``immutables.Map``) so that a change to one service
makes a new snapshot in O(log n) without copying the others; that is what lets
updates stay incremental while readers never see a half-applied change.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import dnslib
import immutables

from .entry import ServiceEntry
from .reverse import keys_of, owners_in, packed, reverse_zone_labels
from .rrset import EMPTY_NON_TERMINAL, NS, SOA, TXT, Glue, Labels, Node, RRset, address_rrsets, tail, wire_labels
from .settings import ZoneSettings


@dataclass(frozen=True, slots=True)
class Snapshot:
    origin: Labels
    serial: int
    ready: bool
    apex: dict[Labels, Node]  # names outside svc.<zone>: the apex and dns-version
    services: immutables.Map  # (namespace, service) as bytes -> ServiceEntry
    namespaces: immutables.Map  # namespace as bytes -> how many services it holds
    negative_soa: bytes  # SOA tail for the authority of negative answers
    ttl: int = 5
    reverse: immutables.Map = immutables.Map()  # address -> the services publishing it, see zone.reverse
    apex_reverse: dict = field(default_factory=dict)  # address -> owner names (ns.dns.<zone>)
    reverse_zones: tuple[Labels, ...] = ()  # where an address we do not own is NXDOMAIN, not REFUSED
    ptr: bool = True

    @property
    def zones(self) -> tuple["Snapshot", ...]:
        """The forward zones a query may fall in: this one (see ``ZoneSet``)."""
        return (self,)

    @property
    def primary(self) -> "Snapshot":
        return self

    def owners(self, address: str) -> tuple[bytes, ...]:
        """The names (wire, absolute) whose PTRs an address gets, in this zone."""
        found = self.apex_reverse.get(address, ())
        keys = keys_of(self.reverse.get(address))
        if keys:
            wire = packed(address)
            for key in keys:
                entry = self.services.get(key)
                if entry is not None:
                    found += entry.reverse((key[1], key[0], b"svc", *self.origin)).get(wire, ())
        return found

    def node(self, below: Labels) -> Node | None:
        """The node at labels below the apex, or None if the name does not exist."""
        if not below or below[-1] != b"svc":
            return self.apex.get(below)
        if len(below) == 1:
            return _ENT if self.services else None
        if len(below) == 2:
            return _ENT if below[0] in self.namespaces else None
        entry: ServiceEntry | None = self.services.get((below[-2], below[-3]))
        return entry.names.get(below[:-3]) if entry is not None else None


_ENT = Node()
NAMESERVER = (b"ns", b"dns")  # ns.dns.<zone>, below the apex (ZoneSettings.nameserver)


def apex_names(settings: ZoneSettings, serial: int) -> tuple[dict[Labels, Node], bytes]:
    """The apex SOA and NS, dns-version TXT, and the SOA used in negative answers.

    With ``ns_addresses`` the nameserver ns.dns.<zone> has A/AAAA records, and
    an NS answer carries them in Additional (glue, RFC 1034 4.2.1), so a
    secondary or a validator can reach the server the zone names."""
    ttl = minimum = settings.ttl
    negative_ttl = min(ttl, minimum)  # RFC 2308 section 5

    def soa(record_ttl: int) -> bytes:
        times = (serial, settings.refresh, settings.retry, settings.expire, minimum)
        return tail(SOA, record_ttl, dnslib.SOA(settings.nameserver, settings.hostmaster, times))

    addresses = address_rrsets(settings.ns_addresses, ttl)
    glue = tuple(Glue(wire_labels(NAMESERVER), rrset.tails) for rrset in addresses.values())
    apex = Node(
        {
            SOA: RRset(SOA, (soa(ttl),)),
            NS: RRset(NS, (tail(NS, ttl, dnslib.NS(settings.nameserver)),), glue),
        }
    )
    version = Node({TXT: RRset(TXT, (tail(TXT, ttl, dnslib.TXT(settings.dns_version)),))})
    names = {(): apex, (b"dns-version",): version}
    if addresses:
        names[NAMESERVER] = Node(addresses)
        names[NAMESERVER[1:]] = EMPTY_NON_TERMINAL  # dns.<zone> (RFC 8020)
    return names, soa(negative_ttl)


def empty_snapshot(settings: ZoneSettings, serial: int) -> Snapshot:
    apex, negative = apex_names(settings, serial)
    owned = owners_in(apex.items(), settings.labels) if settings.ptr else {}
    apex_reverse = {str(ipaddress.ip_address(address)): owners for address, owners in owned.items()}
    zones = tuple(labels for labels in map(reverse_zone_labels, settings.reverse_zones) if labels)
    return Snapshot(
        settings.labels, serial, False, apex, immutables.Map(), immutables.Map(), negative,
        ttl=settings.ttl, apex_reverse=apex_reverse, reverse_zones=zones, ptr=settings.ptr,
    )
