"""Response rate limiting (RRL) on a live server over real UDP sockets, each
client bound to its own loopback address: a flood from one source is held to
the rate (the excess dropped, every other one slipped as a tiny TC=1 answer)
while other sources, other names, exempt addresses and TCP are answered in
full; the metrics count what was held back. Then the bucket arithmetic alone
(window, slip, prefixes), with the clock in the test's hands."""

from __future__ import annotations

import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from mcsdns.transport.rrl import RateLimiter
from tests.helpers import DATA, Server, ipv6_loopback
from tests.test_metrics import sample, scrape

RATE = 40  # responses a second per bucket: small, so floods are short
WEB = "web.shop.svc.clusterset.local."
EXEMPT = "127.0.2.4"


@pytest.fixture(scope="module")
def server():
    running = Server(
        DATA / "zone", "--log-level", "warning", "--rrl-rate", str(RATE), "--rrl-slip", "2", "--rrl-exempt", EXEMPT
    ).wait_ready()
    yield running
    running.stop()


def wire(name: str, qtype: str = "A") -> bytes:
    return dns.message.make_query(name, qtype, use_edns=0, id=random.randrange(65536)).to_wire()


def classify(data: bytes | None, query: bytes) -> str:
    """answer (in full), slip (TC=1, no records, no bigger than the question), or none."""
    if data is None:
        return "none"
    message = dns.message.from_wire(data, ignore_trailing=True)
    if message.flags & dns.flags.TC:
        assert not message.answer and not message.authority and len(data) <= len(query)
        return "slip"
    return "answer"


def ask(server: Server, source: str, query: bytes, timeout: float = 0.3) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        sock.sendto(query, (server.host, server.port))
        try:
            return classify(sock.recv(65535), query)
        except socket.timeout:
            return "none"


@dataclass
class Flood:
    sent: int = 0
    seen: dict = field(default_factory=lambda: {"answer": 0, "slip": 0})
    rcodes: set = field(default_factory=set)


def flood(server: Server, source: str, make, seconds: float, per_second: int = 800) -> Flood:
    """Send ``make()`` queries from ``source`` at ``per_second`` for ``seconds``, reading as we go."""
    result = Flood()
    with socket.socket(socket.AF_INET6 if ":" in source else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((source, 0))
        sock.setblocking(False)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds + 0.5:
            while elapsed < seconds and result.sent < elapsed * per_second:
                query = make()
                sock.sendto(query, (server.host, server.port))
                result.sent += 1
            try:
                while True:
                    data = sock.recv(65535)
                    result.seen[classify(data, query)] += 1
                    result.rcodes.add(dns.rcode.to_text(dns.message.from_wire(data, ignore_trailing=True).rcode()))
            except BlockingIOError:
                time.sleep(0.005)
    return result


def mixed_case(name: str) -> str:
    return "".join(c.upper() if random.random() < 0.5 else c for c in name)


# (kind, source, the queries, rcode of what is answered); each kind its own /24.
FLOODS = [
    ("answer", "127.0.3.2", lambda: wire(WEB), "NOERROR"),
    ("answer", "127.0.4.2", lambda: wire(mixed_case(WEB)), "NOERROR"),  # 0x20 case games: one bucket still
    ("nxdomain", "127.0.5.2", lambda: wire(f"x{random.randrange(10**9):09d}.shop.svc.clusterset.local."), "NXDOMAIN"),
    ("error", "127.0.6.2", lambda: wire(f"x{random.randrange(10**9):09d}.example.org."), "REFUSED"),
]


@pytest.mark.parametrize(("kind", "source", "make", "rcode"), FLOODS, ids=[f"{f[0]} {f[1]}" for f in FLOODS])
def test_a_flood_is_held_to_the_rate(server, kind, source, make, rcode):
    before = scrape(server)
    seconds = 1.5
    result = flood(server, source, make, seconds)
    answers, slips = result.seen["answer"], result.seen["slip"]
    # A bucket starts with a second's worth and earns one each tick (1 or 2 in 1.5 s).
    assert RATE * 2 <= answers <= RATE * 3, result
    limited = result.sent - answers
    assert abs(slips - limited / 2) <= 1, result  # slip 2: every other one held back is a TC=1
    assert result.rcodes == {rcode}
    after = scrape(server)
    moved = {action: after[sample("mcsdns_rrl_responses_total", action=action, kind=kind)]
             - before[sample("mcsdns_rrl_responses_total", action=action, kind=kind)] for action in ("dropped", "slipped")}
    assert moved == {"slipped": slips, "dropped": limited - slips}


# (what, source, query, transport, how many of 8 are answered in full), asked while 127.0.2.2 floods WEB A.
# (That the same name from the same /24 is held back with it: test_one_prefix_shares_one_budget.)
DURING = [
    ("exempt address in that /24", EXEMPT, wire(WEB), "udp", 8),
    ("the flooding source, over TCP", "127.0.2.2", wire(WEB), "tcp", 8),
    ("another /24, same name", "127.0.9.3", wire(WEB), "udp", 8),
    ("same /24, another name", "127.0.2.3", wire("api.shop.svc.clusterset.local.", "AAAA"), "udp", 8),
]


def test_others_are_answered_during_a_flood(server):
    flooding = threading.Thread(target=flood, args=(server, "127.0.2.2", lambda: wire(WEB), 4.0))
    flooding.start()
    try:
        time.sleep(0.5)  # the flood has spent the bucket's credit
        outcomes = {}
        for what, source, query, transport, _ in DURING:
            if transport == "tcp":
                message = dns.message.from_wire(query)
                got = [dns.query.tcp(message, server.host, port=server.port, source=source, timeout=2) for _ in range(8)]
                outcomes[what] = sum(1 for r in got if r.answer)
            else:
                outcomes[what] = [ask(server, source, query) for _ in range(8)].count("answer")
            time.sleep(0.05)
    finally:
        flooding.join()
    for what, _, _, _, expected in DURING:
        assert outcomes[what] == expected, (what, outcomes)


def test_one_prefix_shares_one_budget(server):
    """Two addresses of one /24 flooding one name together get one budget between them."""
    with ThreadPoolExecutor(2) as pool:
        floods = list(pool.map(lambda source: flood(server, source, lambda: wire(WEB), 1.5), ["127.0.8.2", "127.0.8.3"]))
    assert all(result.seen["answer"] for result in floods)  # both were answered some
    assert RATE * 2 <= sum(result.seen["answer"] for result in floods) <= RATE * 3, floods


def test_an_exempt_source_is_not_limited(server):
    result = flood(server, EXEMPT, lambda: wire("db.data.svc.clusterset.local."), 0.5)
    assert result.seen == {"answer": result.sent, "slip": 0} and result.sent > RATE * 4


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_an_ipv6_flood_is_held_to_the_rate():
    v6 = Server(DATA / "zone", "--rrl-rate", str(RATE), "--rrl-exempt", "none", host="::1").wait_ready()
    try:
        result = flood(v6, "::1", lambda: wire(WEB), 1.5)
        assert RATE * 2 <= result.seen["answer"] <= RATE * 3, result
        assert abs(result.seen["slip"] - (result.sent - result.seen["answer"]) / 2) <= 1, result
    finally:
        v6.stop()


def test_rate_zero_turns_rrl_off():
    off = Server(DATA / "zone", "--rrl-rate", "0", "--rrl-exempt", "none").wait_ready()
    try:
        result = flood(off, "127.0.7.2", lambda: wire(WEB), 0.5)
        assert result.seen == {"answer": result.sent, "slip": 0} and result.sent > 200
        assert not any(name.startswith("mcsdns_rrl_") for name, _ in scrape(off))
    finally:
        off.stop()


# -- the arithmetic alone: (what, limiter settings, the flood, what each second gets in full)

ANSWER = dns.message.make_response(dns.message.make_query(WEB, "A", use_edns=0)).to_wire()


def run(limiter: RateLimiter, per_second: list[int], peer=("10.0.0.1", 53)) -> list[tuple[int, int]]:
    """(sent in full, slipped) for each second of the flood."""
    seconds = []
    for count in per_second:
        sent = [limiter(b"", ANSWER, peer) for _ in range(count)]
        seconds.append((sum(1 for s in sent if s is ANSWER), sum(1 for s in sent if s not in (ANSWER, None))))
        limiter.tick()
    return seconds


ARITHMETIC = [
    ("token bucket: the rate each second", dict(slip=0), [50, 50, 50, 5], [(10, 0), (10, 0), (10, 0), (5, 0)]),
    ("under the rate: all", dict(slip=2), [10, 9, 10], [(10, 0), (9, 0), (10, 0)]),
    ("slip 2: every other held back", dict(slip=2), [20, 20], [(10, 5), (10, 5)]),
    ("slip 1: all held back truncated", dict(slip=1), [20], [(10, 10)]),
    ("slip 3: every third", dict(slip=3), [19], [(10, 3)]),
    # BIND's window: debt down to 2 s worth; after the flood it takes that long to be answered again
    ("window 2: limited after a flood", dict(slip=0, window=2), [50, 0, 5, 0, 5], [(10, 0), (0, 0), (0, 0), (0, 0), (5, 0)]),
]


@pytest.mark.parametrize(("what", "settings", "flood_", "expected"), ARITHMETIC, ids=[a[0] for a in ARITHMETIC])
def test_bucket_arithmetic(what, settings, flood_, expected):
    assert run(RateLimiter(10, **settings), flood_) == expected


# (prefix lengths, two sources, whether they share one budget)
PREFIXES = [
    ((24, 56), "10.1.2.3", "10.1.2.200", True),
    ((24, 56), "10.1.2.3", "10.1.3.3", False),
    ((32, 56), "10.1.2.3", "10.1.2.4", False),
    ((24, 56), "2001:db8:0:1::1", "2001:db8:0:ff:1::2", True),  # one /56
    ((24, 56), "2001:db8:0:1::1", "2001:db8:0:100::1", False),
    ((24, 64), "2001:db8:0:1::1", "2001:db8:0:2::1", False),
    ((24, 56), "10.1.2.3", "fe80::1%lo", False),
    ((24, 56), "fe80::1%lo", "fe80::2%eth0", True),  # the scope is not part of the address
]


@pytest.mark.parametrize(("bits", "first", "second", "shared"), PREFIXES)
def test_sources_share_a_budget_by_prefix(bits, first, second, shared):
    limiter = RateLimiter(10, slip=0, ipv4_prefix=bits[0], ipv6_prefix=bits[1])
    assert all(limiter(b"", ANSWER, (first, 53)) is ANSWER for _ in range(10))  # the first spends the second's credit
    assert (limiter(b"", ANSWER, (second, 53)) is None) == shared


def test_settled_buckets_are_forgotten_and_debts_kept():
    limiter = RateLimiter(10, slip=0, window=5)
    names = [dns.message.make_response(dns.message.make_query(f"n{i}.clusterset.local.", "A")).to_wire()
             for i in range(5000)]
    for response in names:  # a crowd of names asked once: 5000 buckets, past the sweep threshold
        limiter(b"", response, ("10.0.0.1", 53))
    run(limiter, [100], peer=("10.9.9.9", 53))  # and one source deep in debt (the tick sweeps)
    assert limiter.buckets == 1 and list(limiter.prefixes) == [limiter.prefix_of("10.9.9.9")]
    assert run(limiter, [1], peer=("10.9.9.9", 53)) == [(0, 0)]  # still limited: the debt was kept
