"""The UDP fast paths answer byte for byte what the engine answers.

The live server answers cache hits inline in its UDP loop, in batches
(recvmmsg/sendmmsg) or one datagram at a time (``--udp-batch false``). Every
question of the answer table is asked of both, as a miss and again as a hit,
one at a time and all at once in one burst (so one batch mixes hits, misses and
a message that gets no answer), and each response must equal the bytes the
engine builds from the same folder, ID included; again right after the zone
changes.
"""

from __future__ import annotations

import contextlib
import socket
import time

import dns.message
import dns.rdatatype
import pytest

from mcsdns.engine.respond import Responder
from mcsdns.source.files import FolderSource
from mcsdns.transport import batch
from mcsdns.zone.settings import ZoneSettings
from mcsdns.zone.store import ZoneStore
from tests.helpers import DATA, Server, ipv6_loopback, wait_for
from tests.test_answers import CASES


@contextlib.contextmanager
def udp_pair():
    """A server socket for a drain under test, and a client beside it, on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        server.bind(("127.0.0.1", 0))
        client.bind(("127.0.0.1", 0))
        client.settimeout(1)
        yield server, client

ENGINE = Responder()


def wires(first_id: int) -> list[bytes]:
    out = []
    for number, case in enumerate(CASES):
        query = dns.message.make_query(case.qname, case.qtype, case.qclass, use_edns=0, payload=1232)
        query.id = first_id + number
        out.append(query.to_wire())
    return out


def serial(server: Server) -> int:
    response = server.query(dns.message.make_query("clusterset.local.", "SOA"))
    return response.answer[0][0].serial


def engine_for(folder, server: Server) -> ZoneStore:
    """The engine on the same folder, at the serial the server shows (one batch: serial + 1)."""
    source = FolderSource(str(folder))
    store = ZoneStore(ZoneSettings(), serial(server) - 1, source.required)
    store.apply(source.scan())
    return store


def ask_all(server: Server, messages: list[bytes], burst: bool) -> dict[bytes, bytes]:
    """Responses by ID; in a burst, every message is sent before any is read."""
    with socket.socket(socket.AF_INET6 if ":" in server.host else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        if not burst:
            return {m[:2]: (sock.sendto(m, (server.host, server.port)), sock.recv(65535))[1] for m in messages}
        for message in messages:
            sock.sendto(message, (server.host, server.port))
        got = {}
        while len(got) < len(messages):
            response = sock.recv(65535)
            got[response[:2]] = response
        return got


def check_table(server: Server, store: ZoneStore, burst: bool, first_id: int) -> None:
    snapshot = store.snapshot
    for round_ in range(2):  # first a miss (the engine through the cache), then a hit (the inline path)
        messages = wires(first_id + round_ * 1000)
        got = ask_all(server, messages, burst)
        for case, message in zip(CASES, messages):
            assert got[message[:2]] == ENGINE.respond(message, snapshot, True), f"{case} round {round_}"


@pytest.fixture(params=["batch", "plain"])
def udp_loop(request):
    if request.param == "batch" and not batch.available():
        pytest.fail("recvmmsg/sendmmsg should be there on Linux")
    return request.param


@pytest.mark.parametrize("burst", [False, True], ids=["one-by-one", "burst"])
def test_fast_path_equals_engine(udp_loop, burst):
    server = Server(DATA / "zone", "--udp-batch", str(udp_loop == "batch")).wait_ready()
    try:
        store = engine_for(DATA / "zone", server)
        assert store.snapshot.serial == serial(server)
        check_table(server, store, burst, 1)
    finally:
        server.stop()


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_fast_path_equals_engine_over_ipv6(udp_loop):
    """The batch loop sends each answer to the address the kernel wrote: sockaddr_in6 here."""
    server = Server(DATA / "zone", "--udp-batch", str(udp_loop == "batch"), host="::1").wait_ready()
    try:
        check_table(server, engine_for(DATA / "zone", server), True, 1)
    finally:
        server.stop()


def test_burst_with_a_message_that_gets_no_answer(udp_loop):
    """A response (QR set) in the middle of a batch is dropped; its neighbours are answered."""
    server = Server(DATA / "zone", "--udp-batch", str(udp_loop == "batch")).wait_ready()
    try:
        store = engine_for(DATA / "zone", server)
        messages = wires(1)[:20]
        dropped = bytearray(messages[10])
        dropped[2] |= 0x80
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            for message in messages[:10] + [bytes(dropped)] + messages[11:]:
                sock.sendto(message, (server.host, server.port))
            got = {}
            for _ in range(19):
                response = sock.recv(65535)
                got[response[:2]] = response
            sock.settimeout(0.3)
            with pytest.raises(socket.timeout):
                sock.recv(65535)
        assert set(got) == {m[:2] for m in messages} - {messages[10][:2]}
        for message in messages[:10] + messages[11:]:
            assert got[message[:2]] == ENGINE.respond(message, store.snapshot, True)
    finally:
        server.stop()


def test_fast_path_equals_engine_right_after_a_change(udp_loop, zone_copy):
    server = Server(zone_copy, "--udp-batch", str(udp_loop == "batch")).wait_ready()
    try:
        web = dns.message.make_query("web.shop.svc.clusterset.local.", "A")
        assert server.query(web).answer[0][0].address == "10.42.0.10"  # now cached
        path = zone_copy / "10-examples.yaml"
        path.write_text(path.read_text().replace("10.42.0.10", "10.42.7.7"))

        def changed():
            return server.query(web).answer[0][0].address == "10.42.7.7"

        wait_for(changed, timeout=10, what="the edit is served")
        time.sleep(0.3)  # past the folder's next poll: nothing else is moving
        store = engine_for(zone_copy, server)
        assert store.snapshot.serial == serial(server)
        check_table(server, store, True, 5000)
    finally:
        server.stop()


@pytest.mark.skipif(not batch.available(), reason="recvmmsg/sendmmsg exist only on Linux")
def test_batch_loop_sends_what_the_limiter_says():
    """With response rate limiting on, every answer of a batch goes through the
    limiter, which sees the client's address: it may pass it, replace it (a slip),
    or drop it; only passed answers are counted as sent."""
    from mcsdns.engine.cache import ResponseCache
    from mcsdns.transport.stats import TransportStats
    from tests.conftest import load_store

    store = load_store(DATA / "zone")
    cache = ResponseCache(Responder())
    seen = []

    def limiter(message, response, peer):
        seen.append(peer)
        ident = int.from_bytes(message[:2], "big")
        if ident % 3 == 0:
            return None
        if ident % 3 == 1:
            return response[:2] + bytes([response[2] | 0x02]) + response[3:12]  # header only, TC=1
        return response

    with udp_pair() as (server, client):
        stats = TransportStats("udp", 1)
        drain = batch.BatchDrain(server, lambda m, udp: cache.answer(m, store.snapshot, udp),
                                 lambda: cache.udp_hits(store.snapshot), stats, limiter)
        messages = wires(1)[:30]
        for round_ in range(2):  # misses, then hits
            for message in messages:
                client.sendto(message, server.getsockname())
            time.sleep(0.1)
            drain()
            got = {}
            for _ in range(20):
                response = client.recv(65535)
                got[int.from_bytes(response[:2], "big")] = response
            for message in messages:
                ident = int.from_bytes(message[:2], "big")
                if ident % 3 == 0:
                    assert ident not in got
                elif ident % 3 == 1:
                    assert len(got[ident]) == 12 and got[ident][2] & 0x02
                else:
                    assert got[ident] == ENGINE.respond(message, store.snapshot, True)
            assert sum(stats.tallies.values()) == 10 * (round_ + 1)
        assert set(seen) == {client.getsockname()} and len(seen) == 60


@pytest.mark.skipif(not batch.available(), reason="recvmmsg/sendmmsg exist only on Linux")
def test_batch_loop_skips_the_limiter_for_an_exempt_source():
    """A limiter that exempts a source by its address is asked once about it, then
    its answers go out as without a limiter: the engine's bytes, all counted."""
    from mcsdns.engine.cache import ResponseCache
    from mcsdns.transport.stats import TransportStats
    from tests.conftest import load_store

    store = load_store(DATA / "zone")
    cache = ResponseCache(Responder())
    asked, limited = [], []

    class Exempting:
        def is_exempt(self, host):
            asked.append(host)
            return True

        def __call__(self, message, response, peer):
            limited.append(peer)
            return response  # what a limiter does for a source it exempts

    with udp_pair() as (server, client):
        stats = TransportStats("udp", 1)
        drain = batch.BatchDrain(server, lambda m, udp: cache.answer(m, store.snapshot, udp),
                                 lambda: cache.udp_hits(store.snapshot), stats, Exempting())
        messages = wires(1)[:30]
        for _ in range(2):
            for message in messages:
                client.sendto(message, server.getsockname())
            time.sleep(0.1)
            drain()
            got = {}
            for _ in range(30):
                response = client.recv(65535)
                got[response[:2]] = response
            for message in messages:
                assert got[message[:2]] == ENGINE.respond(message, store.snapshot, True)
    assert asked == ["127.0.0.1"]
    assert len(limited) == 1  # the first answer, before the source was known exempt
    assert sum(stats.tallies.values()) == 60


@pytest.mark.skipif(not batch.available(), reason="recvmmsg/sendmmsg exist only on Linux")
def test_batch_loop_counts_no_replacement_as_sent():
    """A batch where the limiter replaces every answer (TC=1 slips) and drops none:
    each client gets its slip, and the loop counts none of them (the limiter does)."""
    from mcsdns.engine.cache import ResponseCache
    from mcsdns.transport.stats import TransportStats
    from tests.conftest import load_store

    store = load_store(DATA / "zone")
    cache = ResponseCache(Responder())

    def slip(message, response, peer):
        return response[:2] + bytes([response[2] | 0x02]) + response[3:12]

    with udp_pair() as (server, client):
        stats = TransportStats("udp", 1)
        drain = batch.BatchDrain(server, lambda m, udp: cache.answer(m, store.snapshot, udp),
                                 lambda: cache.udp_hits(store.snapshot), stats, slip)
        messages = wires(1)[:30]
        for _ in range(2):  # misses, then hits
            for message in messages:
                client.sendto(message, server.getsockname())
            time.sleep(0.1)
            drain()
            got = {client.recv(65535) for _ in messages}
            assert {r[:2] for r in got} == {m[:2] for m in messages} and all(len(r) == 12 for r in got)
        assert dict(stats.tallies) == {}


@pytest.mark.skipif(not batch.available(), reason="recvmmsg/sendmmsg exist only on Linux")
def test_batch_loop_limits_a_source_beside_an_exempt_one():
    """Once a batch mixes an exempt source with one that is not, every answer to
    the second goes through the limiter (the exempt batch shortcut is per batch)."""
    from mcsdns.engine.cache import ResponseCache
    from mcsdns.transport.stats import TransportStats
    from tests.conftest import load_store

    store = load_store(DATA / "zone")
    cache = ResponseCache(Responder())
    limited = []

    class OneExempt:
        def is_exempt(self, host):
            return host == "127.0.0.1"

        def __call__(self, message, response, peer):
            limited.append(peer)
            return response

    with udp_pair() as (server, exempt), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.2", 0))
        other.settimeout(1)
        limited_source = other.getsockname()
        stats = TransportStats("udp", 1)
        drain = batch.BatchDrain(server, lambda m, udp: cache.answer(m, store.snapshot, udp),
                                 lambda: cache.udp_hits(store.snapshot), stats, OneExempt())
        messages = wires(1)[:20]
        for message in messages:
            exempt.sendto(message, server.getsockname())
        time.sleep(0.1)
        drain()  # learns that 127.0.0.1 is exempt
        assert [exempt.recv(65535)[:2] for _ in messages] and len(limited) == 1
        for message in messages[:10]:
            exempt.sendto(message, server.getsockname())
            other.sendto(message, server.getsockname())
        time.sleep(0.1)
        drain()
        for sock in (exempt, other):
            got = {}
            for _ in range(10):
                response = sock.recv(65535)
                got[response[:2]] = response
            for message in messages[:10]:
                assert got[message[:2]] == ENGINE.respond(message, store.snapshot, True)
    assert limited[1:] == [limited_source] * 10
    assert sum(stats.tallies.values()) == 40
