"""(zones, name, type) -> what kind of answer, with which RRset, in which zone.

The name grammar below a zone (MCS DNS specification 2.3, 2.4):

    <zone>                                       SOA, NS
    dns-version.<zone>                           TXT
    svc.<zone>                                   empty non-terminal
    <ns>.svc.<zone>                              empty non-terminal
    <svc>.<ns>.svc.<zone>                        A, AAAA, SRV
    _<port>._<proto>.<svc>.<ns>.svc.<zone>       SRV
    <host>.<cluster>.<svc>.<ns>.svc.<zone>       A, AAAA (headless; cluster is 1 or 2 labels)

and, outside every zone, the reverse names of the addresses we publish
(``zone.reverse``). ``Snapshot.node`` walks a zone; this module only decides
the outcome, and which apex the response's SOA and pointers belong to.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum

from ..zone.reverse import address_of, is_full_depth
from ..zone.rrset import A, AAAA, NS, SOA, SRV, TXT, RRset
from ..zone.snapshot import Snapshot

CLASS_IN, CLASS_ANY = 1, 255
QTYPE_ANY = 255
PTR = 12
# Transfers and meta types are not ours to serve (RFC 6895 3.1): refuse them.
REFUSED_QTYPES = frozenset({251, 252, 253, 254})  # IXFR, AXFR, MAILB, MAILA
FORMERR_QTYPES = frozenset({41, 249, 250})  # OPT, TKEY, TSIG never appear as a question type
ANY_PREFERENCE = (A, AAAA, SRV, TXT, SOA, NS)
_FIXED = struct.Struct("!HHIH")


class Outcome(Enum):
    ANSWER = "answer"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    REFUSED = "refused"
    SERVFAIL = "servfail"
    FORMERR = "formerr"


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    rrset: RRset | None = None
    apex: int = 0  # labels of the zone apex, counted from the right of the question
    soa: bytes = b""  # the SOA tail for the authority section of a negative answer


REFUSED = Result(Outcome.REFUSED)
SERVFAIL = Result(Outcome.SERVFAIL)
FORMERR = Result(Outcome.FORMERR)


def lookup(zones, labels: tuple[bytes, ...], qtype: int, qclass: int) -> Result:
    """``zones`` is a Snapshot or a ZoneSet: anything with ``zones`` and ``owners``."""
    if qclass not in (CLASS_IN, CLASS_ANY):
        return REFUSED  # not our class: we are not a resolver
    zone = _zone_of(zones, labels)
    if zone is None:
        if labels[-1:] == (b"arpa",) and zones.ptr:
            return _reverse(zones, labels, qtype)
        return REFUSED  # not our zone: we are not a resolver
    if qtype in FORMERR_QTYPES:
        return FORMERR
    if qtype in REFUSED_QTYPES:
        return REFUSED
    if not zone.ready:
        return SERVFAIL  # before the first full sync we know nothing for sure
    apex = len(zone.origin)
    node = zone.node(labels[: len(labels) - apex])
    if node is None:
        return Result(Outcome.NXDOMAIN, None, apex, zone.negative_soa)
    if qtype == QTYPE_ANY:
        # RFC 8482: answer ANY with one RRset of the name, not all of them.
        rrset = next((node.rrsets[t] for t in ANY_PREFERENCE if t in node.rrsets), None)
    else:
        rrset = node.rrsets.get(qtype)
    if rrset is None:
        return Result(Outcome.NODATA, None, apex, zone.negative_soa)
    return Result(Outcome.ANSWER, rrset, apex)


def _zone_of(zones, labels: tuple[bytes, ...]) -> Snapshot | None:
    """The zone whose origin ends the name, the longest if they nest."""
    found = None
    for zone in zones.zones:
        origin = zone.origin
        cut = len(labels) - len(origin)
        if cut >= 0 and labels[cut:] == origin and (found is None or len(origin) > len(found.origin)):
            found = zone
    return found


def _reverse(zones, labels: tuple[bytes, ...], qtype: int) -> Result:
    """A name under in-addr.arpa or ip6.arpa: ours if it names an address we
    publish; else NXDOMAIN under a reverse zone we are configured for, and
    REFUSED anywhere else (we are no resolver, and not the authority)."""
    primary = zones.primary
    authority = next((zone for zone in primary.reverse_zones if labels[len(labels) - len(zone):] == zone), None)
    address = address_of(labels)
    owners = zones.owners(address) if address is not None else ()
    if not owners and authority is None:
        return REFUSED
    if qtype in FORMERR_QTYPES:
        return FORMERR
    if qtype in REFUSED_QTYPES:
        return REFUSED
    if not zones.ready:
        return SERVFAIL
    apex = len(authority) if authority is not None else len(labels)  # an owned name is its own apex
    soa = primary.negative_soa
    if owners:
        if qtype not in (PTR, QTYPE_ANY):
            return Result(Outcome.NODATA, None, apex, soa)
        ttl = primary.ttl
        tails = tuple(_FIXED.pack(PTR, CLASS_IN, ttl, len(owner)) + owner for owner in owners)
        return Result(Outcome.ANSWER, RRset(PTR, tails), apex)
    if len(labels) == len(authority):  # the reverse zone's apex
        if qtype in (SOA, QTYPE_ANY):
            return Result(Outcome.ANSWER, RRset(SOA, (soa,)), apex)
        if qtype == NS:
            return Result(Outcome.ANSWER, RRset(NS, primary.apex[()].rrsets[NS].tails), apex)
        return Result(Outcome.NODATA, None, apex, soa)
    if not is_full_depth(labels, authority):
        return Result(Outcome.NODATA, None, apex, soa)  # may hold addresses of ours (RFC 8020)
    return Result(Outcome.NXDOMAIN, None, apex, soa)
