"""Reading a query off the wire: header, the one question, EDNS and TSIG.

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
TYPE_TSIG = 250
MAX_NAME = 255  # RFC 1035 2.3.4, in wire octets
TSIG_FIXED = struct.Struct("!6sHH")  # Time Signed (48 bits), Fudge, MAC Size (RFC 8945 4.2)
TSIG_TAIL = struct.Struct("!HHH")  # Original ID, Error, Other Len


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


@dataclass(slots=True, frozen=True)
class Tsig:
    """What an error response needs of a query's TSIG record (RFC 8945 4.2).

    The names are uncompressed wire form, whatever compression the query used,
    so the response can carry them anywhere.
    """

    key: bytes
    algorithm: bytes
    signed: bytes  # Time Signed and Fudge, 8 octets as sent
    original_id: int


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
    tsig: Tsig | None = None


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
    edns, tsig = _read_records(message, end + 4)
    return Query(ident, flags, labels, offsets, qtype, qclass, question, edns, tsig)


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


def skip_name(message: bytes, position: int) -> int:
    """Where a name in a record ends (one pointer ends it); FormError if it runs
    past the message or uses a reserved label type. Shared by the TSIG and IXFR readers."""
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


def _read_records(message: bytes, position: int) -> tuple[Edns | None, Tsig | None]:
    """Find OPT (RFC 6891 6.1.1) and TSIG (RFC 8945 5.1) among the records after the question."""
    ancount, nscount, arcount = struct.unpack_from("!HHH", message, 6)
    total = ancount + nscount + arcount
    edns = tsig = None
    for index in range(total):
        start = position
        position = skip_name(message, position)
        if position + FIXED.size > len(message):
            raise FormError("a record is cut short")
        rtype, rclass, ttl, rdlength = FIXED.unpack_from(message, position)
        position += FIXED.size + rdlength
        if position > len(message):
            raise FormError("a record's data is cut short")
        if rtype == TYPE_OPT:
            if index < ancount + nscount or edns is not None or message[start] != 0:
                raise FormError("OPT must be one record, owned by the root, in Additional")
            edns = Edns(rclass, (ttl >> 16) & 0xFF, bool(ttl & 0x8000))
        elif rtype == TYPE_TSIG:
            if index != total - 1 or index < ancount + nscount:
                raise FormError("TSIG must be the last record, in Additional")  # RFC 8945 5.1
            tsig = _read_tsig(message, start, position - rdlength, position)
    return edns, tsig


def _read_tsig(message: bytes, start: int, rdata: int, end: int) -> Tsig:
    key, _ = _expand_name(message, start)
    algorithm, position = _expand_name(message, rdata)
    if position + TSIG_FIXED.size > end:
        raise FormError("TSIG data is cut short")
    _, _, mac_size = TSIG_FIXED.unpack_from(message, position)
    signed = message[position : position + 8]
    position += TSIG_FIXED.size + mac_size
    if position + TSIG_TAIL.size > end:
        raise FormError("TSIG data is cut short")
    original_id, _, other = TSIG_TAIL.unpack_from(message, position)
    if position + TSIG_TAIL.size + other != end:
        raise FormError("TSIG data has the wrong length")
    return Tsig(key, algorithm, signed, original_id)


def _expand_name(message: bytes, position: int) -> tuple[bytes, int]:
    """A name that may use compression, as uncompressed wire bytes, and where it ends in place.

    Every pointer must point before itself and the name stays within 255
    octets (RFC 1035 4.1.4, 2.3.4): a loop ends in FORMERR once its labels pass
    255 octets, and a chain of pointers alone makes at most one hop per two
    octets before it, so no message makes this run long.
    """
    parts: list[bytes] = []
    size, end = 0, None
    while True:
        if position >= len(message):
            raise FormError("a name runs past the end")
        length = message[position]
        if length & 0xC0 == 0xC0:
            if position + 1 >= len(message):
                raise FormError("a compression pointer is cut short")
            target = ((length & 0x3F) << 8) | message[position + 1]
            if target >= position:
                raise FormError("a compression pointer points forward")
            if end is None:
                end = position + 2
            position = target
            continue
        if length > 63:
            raise FormError("a name uses a reserved label type")
        size += 1 + length
        if size > MAX_NAME:
            raise FormError("a name is longer than 255 octets")
        parts.append(message[position : position + 1 + length])
        position += 1 + length
        if length == 0:
            return b"".join(parts), position if end is None else end
