"""Reading a query off the wire: header, the one question, and EDNS.

Only the few fields an authoritative server needs are decoded, directly with
``struct``: a general-purpose parser (dnslib) costs ~90 us a query here, more
than all the rest of the answer. Anything malformed raises ``FormError`` with
what was wrong; the responder turns it into FORMERR (RFC 1035 4.1.1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct("!HHHHHH")
FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength of a resource record
TYPE_OPT = 41
MAX_NAME = 255  # RFC 1035 2.3.4, in wire octets


class Dropped(Exception):
    """Not worth an answer: shorter than a header, or itself a response."""


class FormError(Exception):
    """The message is malformed; the text says how."""


class NotImplementedOpcode(Exception):
    """An opcode other than QUERY (RFC 1035 4.1.1: NOTIMP)."""


@dataclass(slots=True)
class Edns:
    payload: int  # advertised UDP size, as sent
    version: int
    do: bool  # DNSSEC OK, echoed back (RFC 3225)


@dataclass(slots=True)
class Query:
    id: int
    flags: int
    labels: tuple[bytes, ...]  # lower case, leftmost first
    offsets: tuple[int, ...]  # where each label starts in the message
    qtype: int
    qclass: int
    question: bytes  # echoed byte for byte, letter case included
    edns: Edns | None


def read_header(message: bytes) -> tuple[int, int, int]:
    """(id, flags, qdcount); raises Dropped for what deserves no answer."""
    if len(message) < 12:
        raise Dropped("shorter than a DNS header")
    ident, flags, qdcount = struct.unpack_from("!HHH", message)
    if flags & 0x8000:
        raise Dropped("a response, not a query")
    return ident, flags, qdcount


def parse_query(message: bytes) -> Query:
    ident, flags, qdcount = read_header(message)
    if (flags >> 11) & 0xF:
        raise NotImplementedOpcode()
    if qdcount != 1:
        raise FormError(f"QDCOUNT is {qdcount}, not 1")
    labels, offsets, end = _read_qname(message, 12)
    if end + 4 > len(message):
        raise FormError("question is cut short")
    qtype, qclass = struct.unpack_from("!HH", message, end)
    question = message[12 : end + 4]
    edns = _read_edns(message, end + 4)
    return Query(ident, flags, labels, offsets, qtype, qclass, question, edns)


def _read_qname(message: bytes, position: int) -> tuple[tuple[bytes, ...], tuple[int, ...], int]:
    labels: list[bytes] = []
    offsets: list[int] = []
    size = len(message)
    while True:
        if position >= size:
            raise FormError("question name runs past the end")
        length = message[position]
        if length == 0:
            break
        if length > 63:
            raise FormError("question name uses a pointer or a reserved label type")
        offsets.append(position)
        labels.append(message[position + 1 : position + 1 + length].lower())
        position += 1 + length
    if position + 1 - 12 > MAX_NAME:
        raise FormError("question name is longer than 255 octets")
    return tuple(labels), tuple(offsets), position + 1


def _skip_name(message: bytes, position: int) -> int:
    while True:
        if position >= len(message):
            raise FormError("a record name runs past the end")
        length = message[position]
        if length == 0:
            return position + 1
        if length & 0xC0 == 0xC0:
            return position + 2
        if length > 63:
            raise FormError("a record name uses a reserved label type")
        position += 1 + length


def _read_edns(message: bytes, position: int) -> Edns | None:
    """Find the OPT record (RFC 6891 6.1.1) among the records after the question."""
    ancount, nscount, arcount = struct.unpack_from("!HHH", message, 6)
    edns = None
    for index in range(ancount + nscount + arcount):
        start = position
        position = _skip_name(message, position)
        if position + FIXED.size > len(message):
            raise FormError("a record is cut short")
        rtype, rclass, ttl, rdlength = FIXED.unpack_from(message, position)
        position += FIXED.size + rdlength
        if position > len(message):
            raise FormError("a record's data is cut short")
        if rtype != TYPE_OPT:
            continue
        if index < ancount + nscount or edns is not None or message[start] != 0:
            raise FormError("OPT must be one record, owned by the root, in Additional")
        edns = Edns(rclass, (ttl >> 16) & 0xFF, bool(ttl & 0x8000))
    return edns
