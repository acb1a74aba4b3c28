"""RRsets held in wire form, so that answering a query is only concatenation.

Each record is kept as its *tail*: TYPE, CLASS, TTL, RDLENGTH and RDATA. The
owner name is left out because the engine writes it as a compression pointer
into the question it echoes (RFC 1035 4.1.4), which also keeps the client's
letter case. Rdata is packed once, when the zone changes, never per query;
names inside rdata are written uncompressed (RFC 2782 forbids compressing the
SRV target, and a fresh buffer has nothing to point at).

The apex records (SOA, NS, TXT) are packed by dnslib. The records a large
zone holds by the million (A, AAAA, SRV) are packed here with ``struct`` and
``ipaddress``: dnslib spends ~33 us on one SRV (its label and buffer
objects), which made packing most of the time of loading a 100k-service zone;
these fixed layouts (RFC 1035 3.4.1, RFC 3596 2.2, RFC 2782) cost ~1 us, and
a test checks them byte for byte against dnslib.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from itertools import chain
from typing import Iterable

import dnslib

A, NS, SOA, TXT, AAAA, SRV = 1, 2, 6, 16, 28, 33
CLASS_IN = 1
QUESTION = b"\xc0\x0c"  # a pointer to the question name, at offset 12: every answer record's owner

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


class Piece:
    """Some records of an RRset (one EndpointSlice's) with, packed the first
    time they are answered, the bytes they add to the answer section (owner: a
    pointer to the question) and to Additional (their glue, whose owners end in
    a pointer to the apex, the same for every question of one owner name)."""

    __slots__ = ("tails", "glue", "_wire", "_extra")

    def __init__(self, tails: tuple[bytes, ...], glue: tuple[Glue, ...] = ()) -> None:
        self.tails = tails
        self.glue = glue
        self._wire: bytes | None = None
        self._extra: tuple[bytes, bytes, int] | None = None  # (apex pointer, records, how many)

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = b"".join([QUESTION + tail for tail in self.tails])
        return self._wire

    def extra(self, apex: bytes) -> tuple[bytes, int]:
        cached = self._extra
        if cached is None or cached[0] != apex:
            records = [glue.owner + apex + tail for glue in self.glue for tail in glue.tails]
            cached = self._extra = (apex, b"".join(records), len(records))
        return cached[1], cached[2]


class PiecedRRset:
    """An RRset that is its pieces end to end: what a large headless service's
    own name answers (its A, AAAA and SRV sets, slice by slice). Equal to the
    ``RRset`` of the same records; the engine answers it by joining the
    pieces' packed bytes, so a change to one slice repacks that slice alone."""

    __slots__ = ("rtype", "pieces", "count", "_tails", "_glue")

    def __init__(self, rtype: int, pieces: list[Piece]) -> None:
        self.rtype = rtype
        self.pieces = pieces
        self.count = sum(len(piece.tails) for piece in pieces)
        self._tails: tuple[bytes, ...] | None = None
        self._glue: tuple[Glue, ...] | None = None

    @property
    def tails(self) -> tuple[bytes, ...]:
        if self._tails is None:
            self._tails = tuple(chain.from_iterable(piece.tails for piece in self.pieces))
        return self._tails

    @property
    def glue(self) -> tuple[Glue, ...]:
        if self._glue is None:
            self._glue = tuple(chain.from_iterable(piece.glue for piece in self.pieces))
        return self._glue

    def answer(self) -> list[bytes]:
        """The answer section's records, piece by piece (``count`` of them)."""
        return [piece.wire for piece in self.pieces]

    def additional(self, apex: bytes) -> tuple[list[bytes], int]:
        """The glue records, piece by piece, and how many there are."""
        found, count = [], 0
        for piece in self.pieces:
            if piece.glue:
                records, n = piece.extra(apex)
                found.append(records)
                count += n
        return found, count

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (RRset, PiecedRRset)):
            return NotImplemented
        return (self.rtype, self.tails, self.glue) == (other.rtype, other.tails, other.glue)

    def __hash__(self) -> int:
        return hash((self.rtype, self.tails, self.glue))

    def __repr__(self) -> str:
        return f"PiecedRRset({self.rtype}, {self.count} records in {len(self.pieces)} pieces)"


@dataclass(frozen=True, slots=True)
class Node:
    """One owner name. No RRsets means an empty non-terminal (RFC 8020: NODATA)."""

    rrsets: dict[int, RRset | PiecedRRset] = field(default_factory=dict)


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


_FIXED = struct.Struct("!HHIH")  # TYPE, CLASS, TTL, RDLENGTH
_SRV_FIXED = struct.Struct("!HHIHHHH")  # ... then PRIORITY, WEIGHT, PORT


def address_tail(ip: str, ttl: int) -> bytes:
    """The A or AAAA record of one canonical address."""
    if ":" in ip:
        return _FIXED.pack(AAAA, CLASS_IN, ttl, 16) + ipaddress.IPv6Address(ip).packed
    return _FIXED.pack(A, CLASS_IN, ttl, 4) + bytes(map(int, ip.split(".")))  # canonical: 4 decimal octets


def address_rrsets(addresses: Iterable[str], ttl: int) -> dict[int, RRset]:
    """A and AAAA RRsets for a list of canonical addresses, in the given order."""
    v4 = tuple(address_tail(ip, ttl) for ip in addresses if ":" not in ip)
    v6 = tuple(address_tail(ip, ttl) for ip in addresses if ":" in ip)
    return {rtype: RRset(rtype, tails) for rtype, tails in ((A, v4), (AAAA, v6)) if tails}


def srv_tail(ttl: int, weight: int, port: int, target: Labels) -> bytes:
    """An SRV record with priority 0; the target uncompressed (RFC 2782)."""
    name = wire_labels(target) + b"\0"
    return _SRV_FIXED.pack(SRV, CLASS_IN, ttl, 6 + len(name), 0, weight, port) + name
