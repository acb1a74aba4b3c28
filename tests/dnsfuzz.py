"""Queries for fuzzing, well-formed and broken, and what every response must be.

Shared by tests/test_fuzz.py (hypothesis, in the suite) and bench/fuzz.py
(atheris, coverage-guided, for minutes). Builds bytes with ``struct`` so that
every field, counts and lengths included, can be made to lie; judges responses
with dnspython, a parser that is not ours.

The properties (``check``):
- a message shorter than a header, or with QR=1, gets no response (RFC 1035
  4.1.1: a response is never answered, which also stops reflection loops);
- anything else gets one: same ID, QR=1, parsed whole by dnspython, within the
  UDP size the query allows (RFC 1035 4.2.1, RFC 6891 6.2.5);
- a well-formed query (``well_formed``) gets its question back byte for byte;
  BADVERS for EDNS versions above 0, else NOTAUTH/BADKEY if signed (we hold no
  TSIG keys), else REFUSED outside the zone.
"""

from __future__ import annotations

import struct

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
from hypothesis import strategies as st

ZONE = dns.name.from_text("clusterset.local.")
NAMES = [
    "clusterset.local.", "ns.dns.clusterset.local.", "dns-version.clusterset.local.", "svc.clusterset.local.",
    "shop.svc.clusterset.local.", "web.shop.svc.clusterset.local.", "api.shop.svc.clusterset.local.",
    "_http._tcp.web.shop.svc.clusterset.local.", "db.data.svc.clusterset.local.",
    "db-0.east.db.data.svc.clusterset.local.", "big.data.svc.clusterset.local.", "nope.shop.svc.clusterset.local.",
    "example.com.", ".",
]
QTYPES = [1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 48, 99, 249, 250, 251, 252, 255, 666, 65535]
OPT, TSIG = 41, 250
# EDNS option codes whose data may be any bytes: NSID and the unassigned (the
# assigned others have a syntax, and broken ones are the business of ``broken``).
OPTION_CODES = st.one_of(st.just(3), st.integers(19, 65535))
MAX_UDP = 1232  # Responder's default ceiling
QR = 0x8000


def header(ident: int, flags: int, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def opt_record(payload: int, version: int = 0, do: bool = False, options: bytes = b"") -> bytes:
    ttl = (version << 16) | (0x8000 if do else 0)
    return b"\x00" + struct.pack("!HHIH", OPT, payload, ttl, len(options)) + options


def _random_case(draw, wire: bytes) -> bytes:
    """The same name with some ASCII letters upper-cased (names match case-blind, RFC 4343)."""
    flips = draw(st.lists(st.booleans(), min_size=len(wire), max_size=len(wire)))
    return bytes(b - 32 if flip and 97 <= b <= 122 else b for b, flip in zip(wire, flips))


@st.composite
def qnames(draw) -> bytes:
    """Wire form of a name: a zone name in any letter case, random labels under
    the zone or anywhere, labels of up to 63 octets, names up to 255."""
    base = draw(st.sampled_from(NAMES))
    wire = _random_case(draw, dns.name.from_text(base).to_wire())
    prefix = draw(st.lists(st.binary(min_size=1, max_size=63), max_size=4))
    name = b"".join(bytes([len(label)]) + label for label in prefix) + wire
    return name if len(name) <= 255 else wire


@st.composite
def queries(draw) -> bytes:
    """A well-formed QUERY: one question, maybe an OPT with options, any flags but QR and opcode."""
    flags = draw(st.integers(0, 0xFFFF)) & ~0xF800  # QR=0, opcode QUERY
    qtype = draw(st.one_of(st.sampled_from(QTYPES), st.integers(0, 65535)))
    qclass = draw(st.sampled_from([1, 1, 1, 3, 254, 255, draw(st.integers(0, 65535))]))
    edns = b""
    if draw(st.booleans()):
        options = b"".join(
            struct.pack("!HH", code, len(data)) + data
            for code, data in draw(st.lists(st.tuples(OPTION_CODES, st.binary(max_size=40)), max_size=3))
        )
        version = draw(st.sampled_from([0, 0, 0, 1, 255]))
        edns = opt_record(draw(st.integers(0, 65535)), version, draw(st.booleans()), options)
    message = header(draw(st.integers(0, 0xFFFF)), flags, ar=bool(edns))
    return message + draw(qnames()) + struct.pack("!HH", qtype, qclass) + edns


def _question_end(message: bytes) -> int:
    position = 12
    while message[position]:
        position += 1 + message[position]
    return position + 5


# ---- broken messages, each one way of lying ------------------------------------------


def truncate(draw, message):
    return message[: draw(st.integers(0, len(message) - 1))]


def trailing_garbage(draw, message):
    return message + draw(st.binary(min_size=1, max_size=64))


def wrong_counts(draw, message):
    return message[:4] + struct.pack("!4H", *draw(st.tuples(*[st.integers(0, 65535)] * 4))) + message[12:]


def flipped_bytes(draw, message):
    data = bytearray(message)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def compression_loop(draw, message):
    """The question name is a pointer to itself, or two pointers to each other."""
    loop = draw(st.sampled_from([b"\xc0\x0c", b"\xc0\x0e\xc0\x0c", b"\x01a\xc0\x0c"]))
    return header(0x1234, 0) + loop + b"\x00\x01\x00\x01"


def pointer_chain(draw, message):
    return chained_tsig(message, draw(st.integers(1, 120)), draw(st.booleans()))


def chained_tsig(message: bytes, count: int, forward: bool = False) -> bytes:
    """``message`` plus a TSIG whose key name ends a chain of ``count`` pointers,
    each to the one before, the first to the question name; with ``forward``
    the last points forward instead, which must never be followed."""
    end = _question_end(message)
    start = end + 11  # the chain is the rdata of a NULL record owned by the root
    chain = struct.pack("!H", 0xC00C) + b"".join(struct.pack("!H", 0xC000 | (start + 2 * i)) for i in range(count - 1))
    if forward:
        chain = chain[:-2] + struct.pack("!H", 0xC000 | (start + 2 * count + 40))
    null = b"\x00" + struct.pack("!HHIH", 10, 1, 0, len(chain)) + chain
    key = struct.pack("!H", 0xC000 | (start + 2 * (count - 1)))
    rdata = b"\x0bhmac-sha256\x00" + bytes(8) + b"\x00\x00" + message[:2] + b"\x00\x00\x00\x00"
    tsig = key + struct.pack("!HHIH", TSIG, 255, 0, len(rdata)) + rdata
    return message[:10] + b"\x00\x02" + message[12:end] + null + tsig


def long_names(draw, message):
    """Labels of 63 and 64 octets, names of 255 and 256 octets."""
    label = draw(st.sampled_from([62, 63, 64]))
    total = draw(st.sampled_from([254, 255, 256, 257]))
    name = b""
    while len(name) + 1 + label + 1 <= total:
        name += bytes([label]) + b"a" * label
    rest = total - len(name) - 2
    if rest > 0:
        name += bytes([rest]) + b"b" * rest
    return header(7, 0x0100) + name + b"\x00" + b"\x00\x01\x00\x01"


def response_bit(draw, message):
    return message[:2] + bytes([message[2] | 0x80]) + message[3:]


def other_opcode(draw, message):
    opcode = draw(st.integers(1, 15))
    return message[:2] + bytes([(message[2] & 0x87) | (opcode << 3)]) + message[3:]


MUTATIONS = [truncate, trailing_garbage, wrong_counts, flipped_bytes, compression_loop, pointer_chain,
             long_names, response_bit, other_opcode]


@st.composite
def broken(draw) -> bytes:
    message = draw(queries())
    return draw(st.sampled_from(MUTATIONS))(draw, message)


messages = st.one_of(queries(), broken(), st.binary(max_size=600))


# ---- the properties ---------------------------------------------------------------


def well_formed(message: bytes) -> bool:
    """One question, QUERY, QR=0, parsed whole by dnspython, the question name uncompressed."""
    try:
        parsed = dns.message.from_wire(message, keyring=False)
    except (dns.exception.DNSException, ValueError, struct.error):
        return False
    if parsed.flags & dns.flags.QR or parsed.opcode() != dns.opcode.QUERY or len(parsed.question) != 1:
        return False
    return message[12 : _question_end(message) - 4] == parsed.question[0].name.to_wire()


def limit(query: dns.message.Message, udp: bool) -> int:
    """The largest response the query allows (RFC 6891 6.2.5: never below 512)."""
    if not udp:
        return 65535
    return 512 if query.edns < 0 else max(512, min(query.payload, MAX_UDP))


def check(message: bytes, response: bytes | None, udp: bool = True) -> bool:
    """Assert the properties; True if the message was a well-formed query."""
    if len(message) < 12 or message[2] & 0x80:
        assert response is None, "a response or a runt was answered"
        return False
    assert response is not None, "a query got no response"
    assert response[:2] == message[:2] and response[2] & 0x80, "ID not echoed or QR not set"
    parsed = dns.message.from_wire(response, keyring=False)  # raises if dnspython cannot read it
    if not well_formed(message):
        assert not udp or len(response) <= MAX_UDP, f"{len(response)} bytes over UDP"
        return False
    query = dns.message.from_wire(message, keyring=False)
    assert len(response) <= limit(query, udp), f"{len(response)} bytes over the limit"
    end = _question_end(message)
    assert response[12:end] == message[12:end], "question not echoed byte for byte"
    name, qclass = query.question[0].name, query.question[0].rdclass
    if query.edns > 0:
        assert parsed.rcode() == dns.rcode.BADVERS
    elif query.had_tsig:  # verified before anything else, and we hold no keys (RFC 8945 5.2)
        assert parsed.rcode() == dns.rcode.NOTAUTH and parsed.tsig_error == 17
    elif not name.is_subdomain(ZONE) or qclass not in (1, 255):
        assert parsed.rcode() == dns.rcode.REFUSED, "not our zone, yet not REFUSED"
    return True
