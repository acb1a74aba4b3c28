"""A snapshot as RFC 1035 master-file text, the form NSD, Knot and BIND load.

Records are rendered from the very wire bytes the engine answers with (dnslib
parses each tail back), so the text cannot drift from the answers. The SOA
comes first, as every zone loader wants; names are absolute, so the text means
the same wherever it is included.
"""

from __future__ import annotations

import struct

import dnslib

from ..zone.rrset import SOA, Labels, Node
from ..zone.snapshot import Snapshot
from ..zone.walk import walk

_FIXED = struct.Struct("!HHIH")


def owner_text(labels: Labels) -> str:
    return ".".join(label.decode("ascii") for label in labels) + "."


def record_text(owner: str, tail: bytes) -> str:
    """One record from its wire tail (TYPE CLASS TTL RDLENGTH RDATA)."""
    rtype, rclass, ttl, length = _FIXED.unpack_from(tail)
    rdata = dnslib.RDMAP.get(dnslib.QTYPE.get(rtype), dnslib.RD).parse(dnslib.DNSBuffer(tail[_FIXED.size :]), length)
    return dnslib.RR(owner, rtype, rclass, ttl, rdata).toZone()


def node_lines(owner: str, node: Node) -> list[str]:
    rrsets = sorted(node.rrsets.values(), key=lambda rrset: (rrset.rtype != SOA, rrset.rtype))
    return [record_text(owner, tail) for rrset in rrsets for tail in rrset.tails]


def zone_text(snapshot: Snapshot) -> str:
    origin = snapshot.origin
    lines = [f"; zone {owner_text(origin)} serial {snapshot.serial}, written by mcsdns"]
    for below, node in walk(snapshot):
        lines.extend(node_lines(owner_text(below + origin), node))
    return "\n".join(lines) + "\n"
