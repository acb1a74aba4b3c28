"""Property-based fuzzing (hypothesis): the engine alone, then TCP framing
against the live server. The strategies and the properties every response
must have are in tests/dnsfuzz.py; bench/fuzz.py runs the coverage-guided
version for minutes. Runs are derandomized (the same examples every run) and
keep no example database, so the suite stays reproducible and writes nothing.
"""

from __future__ import annotations

import socket
import struct

import dns.message
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcsdns.engine.cache import ResponseCache
from mcsdns.engine.respond import Responder
from tests import dnsfuzz

FUZZ = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
RESPONDER = Responder()
CACHE = ResponseCache(Responder())


@settings(FUZZ, max_examples=1000)
@given(message=dnsfuzz.messages, udp=st.booleans())
def test_engine_never_raises_and_every_response_parses(zone_store, message, udp):
    response = RESPONDER.respond(message, zone_store.snapshot, udp)
    dnsfuzz.check(message, response, udp)
    # The path the transports take: the cache, which also tallies each response for the metrics.
    assert CACHE.answer(message, zone_store.snapshot, udp)[0] == response


@settings(FUZZ, max_examples=500)
@given(message=dnsfuzz.queries(), udp=st.booleans())
def test_every_well_formed_query_is_answered(zone_store, message, udp):
    assert dnsfuzz.check(message, RESPONDER.respond(message, zone_store.snapshot, udp), udp)


@settings(FUZZ, max_examples=150)
@pytest.mark.parametrize("mutation", dnsfuzz.MUTATIONS, ids=lambda mutation: mutation.__name__)
@given(data=st.data())
def test_each_way_of_lying(zone_store, mutation, data):
    message = mutation(data.draw, data.draw(dnsfuzz.queries()))
    dnsfuzz.check(message, RESPONDER.respond(message, zone_store.snapshot), True)


@settings(FUZZ, max_examples=300)
@given(message=st.binary(min_size=12, max_size=300))
def test_a_response_is_never_answered(zone_store, message):
    message = message[:2] + bytes([message[2] | 0x80]) + message[3:]
    assert RESPONDER.respond(message, zone_store.snapshot) is None


def _name(*sizes: int) -> bytes:
    return b"".join(bytes([size]) + b"a" * size for size in sizes) + b"\x00"


def _chain(count: int, forward: bool = False) -> bytes:
    query = dnsfuzz.header(9, 0) + b"\x03web\x04shop\x03svc\x0aclusterset\x05local\x00\x00\x01\x00\x01"
    return dnsfuzz.chained_tsig(query, count, forward)


# (case, message, rcode or None for no response); each a limit or a lie by name
EDGES = [
    ("label of 63 octets", dnsfuzz.header(1, 0) + _name(63) + b"\x00\x01\x00\x01", "REFUSED"),
    ("label of 64 octets", dnsfuzz.header(1, 0) + _name(64) + b"\x00\x01\x00\x01", "FORMERR"),
    ("name of 255 octets", dnsfuzz.header(1, 0) + _name(63, 63, 63, 61) + b"\x00\x01\x00\x01", "REFUSED"),
    ("name of 256 octets", dnsfuzz.header(1, 0) + _name(63, 63, 63, 62) + b"\x00\x01\x00\x01", "FORMERR"),
    ("question is a pointer to itself", dnsfuzz.header(1, 0) + b"\xc0\x0c\x00\x01\x00\x01", "FORMERR"),
    ("TSIG key behind 120 pointers", _chain(120), "NOTAUTH"),
    ("TSIG key behind a forward pointer", _chain(5, forward=True), "FORMERR"),
    ("QDCOUNT says 2, one there", dnsfuzz.header(1, 0, qd=2) + _name(3) + b"\x00\x01\x00\x01", "FORMERR"),
    ("ARCOUNT says 1, none there", dnsfuzz.header(1, 0, ar=1) + _name(3) + b"\x00\x01\x00\x01", "FORMERR"),
    ("trailing garbage", dnsfuzz.header(1, 0) + _name(3) + b"\x00\x01\x00\x01" + b"\xff" * 30, "REFUSED"),
    ("QR=1", dnsfuzz.header(1, 0x8000) + _name(3) + b"\x00\x01\x00\x01", None),
]


@pytest.mark.parametrize("case,message,rcode", EDGES, ids=[edge[0] for edge in EDGES])
def test_edges(zone_store, live_server, case, message, rcode):
    for response in (RESPONDER.respond(message, zone_store.snapshot), live_server.raw_udp(message, 0.5 if rcode is None else 2)):
        if rcode is None:
            assert response is None
        else:
            assert dns.rcode.to_text(dns.message.from_wire(response, keyring=False).rcode()) == rcode


# ---- TCP framing on the live server ------------------------------------------------

LENGTH = struct.Struct("!H")
# How a connection ends: cleanly, a frame whose length promises more than is sent,
# a zero length, or bytes that are not frames at all.
ENDINGS = ["close", "short", "zero", "junk"]


@st.composite
def streams(draw):
    """(framed messages, ending, bytes of the ending)."""
    frames = draw(st.lists(st.one_of(dnsfuzz.queries(), dnsfuzz.broken(), st.binary(max_size=80)), max_size=5))
    ending = draw(st.sampled_from(ENDINGS))
    tail = {
        "close": b"",
        "short": LENGTH.pack(draw(st.integers(13, 65535))) + draw(st.binary(max_size=12)),
        "zero": LENGTH.pack(0),
        "junk": draw(st.binary(min_size=1, max_size=200)),
    }[ending]
    return frames, ending, tail


def _read_frames(sock: socket.socket) -> tuple[list[bytes], bytes]:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    frames = []
    while len(data) >= 2 and len(data) >= 2 + LENGTH.unpack_from(data)[0]:
        size = LENGTH.unpack_from(data)[0]
        frames.append(data[2 : 2 + size])
        data = data[2 + size :]
    return frames, data


@settings(FUZZ, max_examples=120)
@given(stream=streams())
def test_tcp_framing(zone_store, live_server, stream):
    """Each whole frame before the ending is answered in order, as the engine
    answers it; whatever the ending, every byte back is a whole frame holding
    a response, and the server goes on answering UDP and new TCP clients."""
    frames, ending, tail = stream
    with socket.create_connection((live_server.host, live_server.port), timeout=5) as sock:
        sock.sendall(b"".join(LENGTH.pack(len(frame)) + frame for frame in frames) + tail)
        sock.shutdown(socket.SHUT_WR)
        answers, leftover = _read_frames(sock)
    assert leftover == b"", "a response frame cut short"
    if b"" in frames:  # a zero length ends the connection there
        frames, ending = frames[: frames.index(b"")], "zero"
    expected = [RESPONDER.respond(frame, zone_store.snapshot, udp=False) for frame in frames]
    expected = [response for response in expected if response is not None]
    # The header and size fix the shape; the SOA serial (the clock at load) is the only difference.
    shapes = [(response[:12], len(response)) for response in answers]
    if ending == "junk":
        assert shapes[: len(expected)] == [(response[:12], len(response)) for response in expected]
    else:
        assert shapes == [(response[:12], len(response)) for response in expected]
    for response in answers:
        dns.message.from_wire(response, keyring=False)
    probe = dns.message.make_query("web.shop.svc.clusterset.local.", "A")
    assert live_server.query(probe, "udp").answer and live_server.query(probe, "tcp").answer
