"""The wire protocol against the live server: header rules, malformed packets,
EDNS, truncation then TCP retry, and TCP's framing, pipelining, timeout and cap.
"""

from __future__ import annotations

import socket
import struct
import time

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import pytest

from tests.helpers import DATA, Server, read_frame

WEB = "web.shop.svc.clusterset.local."
BIG = "big.data.svc.clusterset.local."  # 100 A records: 1.6 kB, more than any UDP limit here


def header(ident=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


QUESTION = b"\x03web\x04shop\x03svc\x0aclusterset\x05local\x00\x00\x01\x00\x01"

# (name, raw query, expected rcode or None for no answer at all)
MALFORMED = [
    ("empty", b"", None),
    ("short header", b"\x12\x34\x01", None),
    ("a response", header(flags=0x8000) + QUESTION, None),
    ("no question", header(qd=0), "FORMERR"),
    ("two questions", header(qd=2) + QUESTION + QUESTION, "FORMERR"),
    ("cut in the name", header() + QUESTION[:7], "FORMERR"),
    ("cut before the type", header() + QUESTION[:-3], "FORMERR"),
    ("pointer in the question", header() + b"\x03web\xc0\x0c\x00\x01\x00\x01", "FORMERR"),
    ("reserved label type", header() + b"\x43abc\x00\x00\x01\x00\x01", "FORMERR"),
    ("name over 255 octets", header() + b"\x3f" + b"a" * 63 + (b"\x3f" + b"b" * 63) * 4 + b"\x00\x00\x01\x00\x01", "FORMERR"),
    ("additional cut short", header(ar=1) + QUESTION + b"\x00\x00\x29", "FORMERR"),
    ("two OPT records", header(ar=2) + QUESTION + (b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00") * 2, "FORMERR"),
    ("OPT not at the root", header(ar=1) + QUESTION + b"\x01a\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00", "FORMERR"),
    ("OPT as the question type", header() + QUESTION[:-4] + b"\x00\x29\x00\x01", "FORMERR"),
    ("opcode NOTIFY", header(flags=0x2000) + QUESTION, "NOTIMP"),
    ("opcode UPDATE", header(flags=0x2800) + QUESTION, "NOTIMP"),
    ("opcode STATUS", header(flags=0x1000, qd=0), "NOTIMP"),
]


@pytest.mark.parametrize("name,payload,rcode", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed(live_server, name, payload, rcode):
    response = live_server.raw_udp(payload, timeout=0.5 if rcode is None else 2)
    if rcode is None:
        assert response is None
    else:
        assert response is not None and response[:2] == payload[:2]
        parsed = dns.message.from_wire(response, question_only=True)
        assert dns.rcode.to_text(parsed.rcode()) == rcode
        assert parsed.flags & dns.flags.QR and not parsed.flags & dns.flags.AA
    # whatever came before, the server still answers
    assert live_server.query(dns.message.make_query(WEB, "A")).answer


def test_garbage_never_kills_the_server(live_server):
    import random

    rng = random.Random(7)
    for _ in range(300):
        size = rng.randrange(0, 80)
        live_server.raw_udp(bytes(rng.randrange(256) for _ in range(size)), timeout=0.01)
        live_server.raw_udp(header() + bytes(rng.randrange(256) for _ in range(size)), timeout=0.01)
    assert live_server.query(dns.message.make_query(WEB, "A")).answer
    assert live_server.process.poll() is None


def test_question_echoed_byte_for_byte_and_flags(live_server):
    mixed = b"\x03WeB\x04sHoP\x03svc\x0aClusterSet\x05LOCAL\x00\x00\x01\x00\x01"
    query = header(ident=0xBEEF, flags=0x0110) + mixed  # RD and CD set
    response = live_server.raw_udp(query)
    assert response[:2] == b"\xbe\xef"
    assert response[12 : 12 + len(mixed)] == mixed
    flags = struct.unpack("!H", response[2:4])[0]
    assert flags & 0x8000 and flags & 0x0400  # QR, AA
    assert flags & 0x0100 and flags & 0x0010  # RD and CD copied
    assert not flags & 0x0080  # never RA


def test_edns_echoed_with_our_payload(live_server):
    response = live_server.query(dns.message.make_query(WEB, "A", use_edns=0, payload=4096, want_dnssec=True))
    assert response.edns == 0
    assert response.payload == 1232
    assert response.ednsflags & dns.flags.DO  # RFC 3225: DO is copied


def test_edns_unknown_option_ignored(live_server):
    option = dns.edns.GenericOption(65001, b"hello")
    response = live_server.query(dns.message.make_query(WEB, "A", use_edns=0, options=[option]))
    assert response.rcode() == dns.rcode.NOERROR and response.answer
    assert not response.options


def test_edns_badvers(live_server):
    response = live_server.query(dns.message.make_query(WEB, "A", use_edns=1))
    assert response.rcode() == dns.rcode.BADVERS
    assert response.edns == 0 and not response.answer


def test_no_edns_no_opt(live_server):
    response = live_server.query(dns.message.make_query(WEB, "A", use_edns=False))
    assert response.edns == -1


@pytest.mark.parametrize("use_edns,payload", [(False, 512), (0, 512), (0, 1232), (0, 65000)])
def test_truncated_over_udp_then_whole_over_tcp(live_server, use_edns, payload):
    query = dns.message.make_query(BIG, "A", use_edns=use_edns, payload=payload)
    truncated = live_server.query(query, "udp")
    assert truncated.flags & dns.flags.TC
    assert truncated.question == query.question and not truncated.answer
    assert truncated.rcode() == dns.rcode.NOERROR
    whole = live_server.query(query, "tcp")
    assert not whole.flags & dns.flags.TC
    assert len(whole.answer[0]) == 100


@pytest.mark.parametrize("use_edns,glue", [(False, 0), (0, 6)])
def test_additional_dropped_before_truncating(live_server, use_edns, glue):
    """Six SRV records fit in 512 bytes, their glue does not: RFC 2181 9 drops the
    optional Additional data instead of setting TC."""
    query = dns.message.make_query("_http._tcp.mid.data.svc.clusterset.local.", "SRV", use_edns=use_edns)
    response = live_server.query(query)
    assert not response.flags & dns.flags.TC
    assert len(response.answer[0]) == 6
    assert sum(len(rrset) for rrset in response.additional) == glue


def _tcp_frames(server, payloads: list[bytes], expect: int, timeout=3.0) -> list[bytes]:
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(p)) + p for p in payloads))
        return [read_frame(sock) for _ in range(expect)]


def test_tcp_pipelined_queries_answered_in_order(live_server):
    names = [WEB, "api.shop.svc.clusterset.local.", "nope.shop.svc.clusterset.local.", BIG]
    queries = [dns.message.make_query(name, "A") for name in names]
    for index, query in enumerate(queries):
        query.id = 1000 + index
    frames = _tcp_frames(live_server, [q.to_wire() for q in queries], len(queries))
    responses = [dns.message.from_wire(frame) for frame in frames]
    assert [r.id for r in responses] == [1000, 1001, 1002, 1003]
    assert [dns.rcode.to_text(r.rcode()) for r in responses] == ["NOERROR", "NOERROR", "NXDOMAIN", "NOERROR"]
    assert len(responses[3].answer[0]) == 100


@pytest.fixture(scope="module")
def strict_server():
    server = Server(DATA / "zone", "--tcp-idle-timeout", "0.5", "--tcp-max-connections", "2").wait_ready()
    yield server
    server.stop()


def test_tcp_idle_connection_closed(strict_server):
    with socket.create_connection((strict_server.host, strict_server.port), timeout=5) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""  # the server closes
        assert 0.3 < time.monotonic() - started < 3


def test_tcp_connection_cap_evicts_the_longest_idle(strict_server):
    held = [socket.create_connection((strict_server.host, strict_server.port), timeout=3) for _ in range(2)]
    try:
        time.sleep(0.1)
        query = dns.message.make_query(WEB, "A")
        assert strict_server.query(query, "tcp").answer  # a third client is answered, over the cap
        held[0].settimeout(3)
        assert held[0].recv(1) == b""  # the oldest idle one made room (RFC 7766 6.2.3)
        _, metrics = strict_server.http("/metrics")
        assert 'mcsdns_tcp_connections_closed_total{reason="evicted"} 1.0' in metrics
    finally:
        for sock in held:
            sock.close()


def test_tcp_short_frame_and_garbage(live_server):
    # too short for an answer (dropped, the connection goes on), then FORMERR, then a good one
    payloads = [b"\x00\x01garbage", header(qd=0), dns.message.make_query(WEB, "A").to_wire()]
    frames = _tcp_frames(live_server, payloads, 2)
    assert dns.message.from_wire(frames[0], question_only=True).rcode() == dns.rcode.FORMERR
    assert dns.message.from_wire(frames[1]).answer
