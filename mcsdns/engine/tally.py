"""What a response counts as, packed into one int so that counting it costs one
increment on the query path.

A *tally* holds the labels of a response (question type, RCODE, TC, whether the
response cache answered it) and its exact size: ``(meta << 16) | size``. The
response cache computes it once per distinct response, when it builds one, and
hands it out with every copy; the transports count ``tallies[tally] += 1``; the
metrics collector unpacks the counts at scrape time. Every label has a fixed,
small set of values, so the number of distinct tallies stays bounded.
"""

from __future__ import annotations

import struct

# Question types worth a label of their own (as CoreDNS's request_type); any other is "other".
TYPES = ("A", "AAAA", "SRV", "TXT", "SOA", "NS", "PTR", "ANY", "AXFR", "IXFR", "other")
_TYPE_INDEX = {1: 0, 28: 1, 33: 2, 16: 3, 6: 4, 2: 5, 12: 6, 255: 7, 252: 8, 251: 9}
OTHER_TYPE = len(TYPES) - 1

# Every RCODE the responder sends, plus "other" to keep the set closed.
RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "NOTAUTH", "BADVERS", "other")
_RCODE_INDEX = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 9: 6, 16: 7}
OTHER_RCODE = len(RCODES) - 1

SIZE_BITS = 16  # a DNS message is at most 65535 bytes
# The responder's OPT: root name, TYPE 41, CLASS, TTL, RDLENGTH 0, last but for a
# TSIG, which only NOTAUTH answers carry (no extended RCODE bits to read then).
_OPT_TAIL = 11
_OPT_START = b"\x00\x00\x29"
_COUNT = struct.Struct("!H")


def tally_of(response: bytes, hit: bool) -> int:
    """The tally of a response built by our responder (header, echoed question, ..., OPT last)."""
    qdcount, arcount = _COUNT.unpack_from(response, 4)[0], _COUNT.unpack_from(response, 10)[0]
    rcode = response[3] & 0xF
    if arcount and response[-_OPT_TAIL : -_OPT_TAIL + 3] == _OPT_START:
        rcode |= response[-6] << 4  # extended RCODE, upper 8 bits in the OPT TTL (RFC 6891 6.1.3)
    kind = _TYPE_INDEX.get(_qtype(response), OTHER_TYPE) if qdcount else OTHER_TYPE
    truncated = (response[2] >> 1) & 1
    meta = ((kind * len(RCODES) + _RCODE_INDEX.get(rcode, OTHER_RCODE)) * 2 + truncated) * 2 + hit
    return (meta << SIZE_BITS) | len(response)


def as_hit(tally: int) -> int:
    return tally | (1 << SIZE_BITS)


def unpack(tally: int) -> tuple[str, str, bool, bool, int]:
    """(type, rcode, truncated, cache hit, size) of a tally."""
    meta, size = tally >> SIZE_BITS, tally & ((1 << SIZE_BITS) - 1)
    hit, meta = meta & 1, meta >> 1
    truncated, meta = meta & 1, meta >> 1
    kind, rcode = divmod(meta, len(RCODES))
    return TYPES[kind], RCODES[rcode], bool(truncated), bool(hit), size


def _qtype(response: bytes) -> int:
    """QTYPE of the echoed question: the name is never compressed there."""
    position = 12
    while response[position]:
        position += 1 + response[position]
    return _COUNT.unpack_from(response, position + 1)[0]
