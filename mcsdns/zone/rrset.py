"""RRsets held in wire form, so that answering a query is only concatenation.

Each record is kept as its *tail*: TYPE, CLASS, TTL, RDLENGTH and RDATA. The
owner name is left out because the engine writes it as a compression pointer
into the question it echoes (RFC 1035 4.1.4), which also keeps the client's
letter case. Rdata is packed by dnslib once, when the zone changes, never per
query; names inside rdata are written uncompressed (RFC 2782 forbids
compressing the SRV target, and a fresh buffer has nothing to point at).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterable

import dnslib

A, NS, SOA, TXT, AAAA, SRV = 1, 2, 6, 16, 28, 33
CLASS_IN = 1

Labels = tuple[bytes, ...]  # a name as lower-case labels, leftmost first, root omitted


@dataclass(frozen=True, slots=True)
class Glue:
    """An address RRset owned by some name in the zone, added to Additional.

    ``owner`` is that name's labels relative to the zone apex, in wire form
    without the final root byte: the engine finishes it with a pointer to the
    apex inside the question.
    """

    owner: bytes
    tails: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class RRset:
    rtype: int
    tails: tuple[bytes, ...]
    glue: tuple[Glue, ...] = ()


@dataclass(frozen=True, slots=True)
class Node:
    """One owner name. No RRsets means an empty non-terminal (RFC 8020: NODATA)."""

    rrsets: dict[int, RRset] = field(default_factory=dict)


EMPTY_NON_TERMINAL = Node()


def labels_of(name: str) -> Labels:
    return tuple(label.encode("ascii").lower() for label in name.strip(".").split(".") if label)


def wire_labels(labels: Iterable[bytes]) -> bytes:
    """Labels in wire form, without the terminating root byte."""
    return b"".join(bytes((len(label),)) + label for label in labels)


def tail(rtype: int, ttl: int, rdata: dnslib.RD) -> bytes:
    buffer = dnslib.DNSBuffer()
    buffer.encode_name = buffer.encode_name_nocompress  # no pointers into a buffer we throw away
    rdata.pack(buffer)
    packed = bytes(buffer.data)
    return struct.pack("!HHIH", rtype, CLASS_IN, ttl, len(packed)) + packed


def address_rrsets(addresses: Iterable[str], ttl: int) -> dict[int, RRset]:
    """A and AAAA RRsets for a list of canonical addresses, in the given order."""
    v4 = tuple(tail(A, ttl, dnslib.A(ip)) for ip in addresses if ":" not in ip)
    v6 = tuple(tail(AAAA, ttl, dnslib.AAAA(ip)) for ip in addresses if ":" in ip)
    return {rtype: RRset(rtype, tails) for rtype, tails in ((A, v4), (AAAA, v6)) if tails}


def srv_tail(ttl: int, weight: int, port: int, target: Labels) -> bytes:
    name = ".".join(label.decode("ascii") for label in target) + "."
    return tail(SRV, ttl, dnslib.SRV(priority=0, weight=weight, port=port, target=name))
