"""query bytes + snapshot -> response bytes. No sockets, clocks or Kubernetes here.

The response is concatenated from pre-encoded record tails (see
``zone.rrset``): owners are compression pointers into the echoed question, so
no name is encoded per query. Because the output depends only on the message
(less its ID) and the snapshot, a cache of responses can sit in front.
"""

from __future__ import annotations

import logging
import struct

from ..zone.rrset import QUESTION, RRset
from ..zone.snapshot import Snapshot
from ..zone.zoneset import ZoneSet
from .lookup import Outcome, Result, lookup
from .wire import HEADER, TYPE_TSIG, Dropped, FormError, NotImplementedOpcode, Query, Tsig, parse_query, read_header

log = logging.getLogger(__name__)
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, NOTAUTH = 0, 1, 2, 3, 4, 5, 9
BADVERS = 16  # extended RCODE (RFC 6891 9): the upper 8 bits travel in OPT
BADKEY = 17  # a TSIG error (RFC 8945 5.2), carried in the TSIG record, not the header
QR, AA, TC = 0x8000, 0x0400, 0x0200
OPCODE = 0x7800
KEPT_FLAGS = OPCODE | 0x0100 | 0x0010  # opcode, RD, CD are copied from the query
# What a header-only error keeps of the query's flags. RD and CD mean something
# only for QUERY: NOTIMP to an unknown opcode echoes the opcode alone (RFC 1035
# 4.1.1; ISC's genreport flags any other bit).
_BARE_FLAGS = {NOTIMP: OPCODE, FORMERR: KEPT_FLAGS}
TSIG_RR = struct.Struct("!HHIH")
ANSWER_POINTER = QUESTION  # the question name always starts at offset 12
CLASSIC_UDP = 512  # RFC 1035 4.2.1, without EDNS
TCP_LIMIT = 65535

# How each outcome shows in the header and the authority section.
_SHAPES: dict[Outcome, tuple[int, bool, bool]] = {  # rcode, authoritative, SOA in authority
    Outcome.ANSWER: (NOERROR, True, False),
    Outcome.NODATA: (NOERROR, True, True),  # RFC 2308 2.2
    Outcome.NXDOMAIN: (NXDOMAIN, True, True),  # RFC 2308 2.1
    Outcome.REFUSED: (REFUSED, False, False),
    Outcome.SERVFAIL: (SERVFAIL, False, False),
    Outcome.FORMERR: (FORMERR, False, False),
}


class Responder:
    """Holds what the wire format needs beyond the zone: the UDP payload we allow."""

    def __init__(self, max_udp_payload: int = 1232) -> None:
        # 1232 avoids IP fragmentation on any path (DNS Flag Day 2020).
        self.max_udp_payload = max(CLASSIC_UDP, min(max_udp_payload, TCP_LIMIT))

    def respond(self, message: bytes, snapshot: Snapshot | ZoneSet, udp: bool = True) -> bytes | None:
        """The response to send, or None when the message deserves none."""
        try:
            query = parse_query(message)
        except Dropped:
            return None
        except (FormError, NotImplementedOpcode) as error:
            return _bare_error(message, NOTIMP if isinstance(error, NotImplementedOpcode) else FORMERR)
        if query.edns is not None and query.edns.version > 0:
            return self._build(query, BADVERS, False, [], [], [], CLASSIC_UDP)  # RFC 6891 6.1.3
        limit = self._limit(query, udp)
        if query.tsig is not None:
            # We hold no TSIG keys, so every key is unknown: NOTAUTH with TSIG error
            # BADKEY (RFC 8945 5.2), the TSIG unsigned (5.3.2: MAC Size 0).
            return self._build(query, NOTAUTH, False, [], [], [], limit, _unsigned_tsig(query.tsig, BADKEY))
        try:
            return self._answer(query, lookup(snapshot, query.labels, query.qtype, query.qclass), limit)
        except Exception:  # a bug costs this answer (SERVFAIL), never the server
            log.exception("SERVFAIL for %r", query.labels)
            return self._answer(query, Result(Outcome.SERVFAIL), limit)

    def _limit(self, query: Query, udp: bool) -> int:
        if not udp:
            return TCP_LIMIT
        if query.edns is None:
            return CLASSIC_UDP
        return max(CLASSIC_UDP, min(query.edns.payload, self.max_udp_payload))

    def _answer(self, query: Query, result: Result, limit: int) -> bytes:
        rcode, authoritative, negative = _SHAPES[result.outcome]
        answer, authority, additional = [], [], []
        counts = None
        if authoritative:
            # The zone apex inside the question, for owners below the apex.
            apex = struct.pack("!H", 0xC000 | query.offsets[len(query.labels) - result.apex])
            if negative:
                authority.append(apex + result.soa)
            rrset = result.rrset
            if type(rrset) is RRset:
                answer = [ANSWER_POINTER + tail for tail in rrset.tails]
                additional = [glue.owner + apex + t for glue in rrset.glue for t in glue.tails]
            elif rrset is not None:  # a PiecedRRset: each piece's records are packed once, here joined
                answer = rrset.answer()
                additional, extra = rrset.additional(apex)
                counts = [rrset.count, len(authority), extra]
        return self._build(query, rcode, authoritative, answer, authority, additional, limit, counts=counts)

    def _build(self, query, rcode, authoritative, answer, authority, additional, limit, tsig=b"", counts=None) -> bytes:
        """``counts``: how many records each section holds, when its items are
        not one record each (pieces of several)."""
        opt = self._opt(query, rcode)
        flags = QR | (query.flags & KEPT_FLAGS) | (AA if authoritative else 0) | (rcode & 0xF)
        sections = [answer, authority, additional]
        message = _pack(query, flags, sections, opt, tsig, counts)
        if len(message) > limit and additional:
            # Additional data is optional: drop it before truncating (RFC 2181 9).
            sections[2] = []
            if counts is not None:
                counts = [counts[0], counts[1], 0]
            message = _pack(query, flags, sections, opt, tsig, counts)
        if len(message) > limit:
            # RFC 1035 4.2.1 / RFC 7766: TC with the question, the client retries on TCP.
            message = _pack(query, flags | TC, [[], [], []], opt, tsig)
        return message

    def _opt(self, query: Query, rcode: int) -> bytes:
        if query.edns is None:
            return b""
        ttl = ((rcode >> 4) << 24) | (0x8000 if query.edns.do else 0)
        return b"\x00" + struct.pack("!HHIH", 41, self.max_udp_payload, ttl, 0)


def _pack(query: Query, flags: int, sections: list[list[bytes]], opt: bytes, tsig: bytes = b"", counts=None) -> bytes:
    answer, authority, additional = sections
    an, ns, ar = (len(answer), len(authority), len(additional)) if counts is None else counts
    header = HEADER.pack(query.id, flags, 1, an, ns, ar + bool(opt) + bool(tsig))
    return b"".join((header, query.question, *answer, *authority, *additional, opt, tsig))


def _unsigned_tsig(tsig: Tsig, error: int) -> bytes:
    """The TSIG of an error response: the query's key, algorithm, time and fudge,
    no MAC, the error (RFC 8945 4.2, 5.3.2). Echoing the query's Time Signed
    keeps the engine free of clocks and the response a function of the query."""
    rdata = tsig.algorithm + tsig.signed + b"\x00\x00" + struct.pack("!HHH", tsig.original_id, error, 0)
    return tsig.key + TSIG_RR.pack(TYPE_TSIG, 255, 0, len(rdata)) + rdata  # CLASS ANY, TTL 0


def _bare_error(message: bytes, rcode: int) -> bytes | None:
    """FORMERR/NOTIMP for a message we could not read: the header alone (RFC 1035 4.1.1)."""
    try:
        ident, flags, _ = read_header(message)
    except Dropped:
        return None
    return HEADER.pack(ident, QR | (flags & _BARE_FLAGS[rcode]) | rcode, 0, 0, 0, 0)
