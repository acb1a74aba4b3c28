"""/metrics moves as it should: known questions over real UDP and TCP sockets to a
live server, and the exact change of every DNS metric, read with prometheus's
own parser. Then the zone's gauges after a folder edit, the build info, and the
tally each response carries against what dnspython reads in it."""

from __future__ import annotations

import socket
import struct
import time

import dns.flags
import dns.message
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mcsdns.engine.cache import ResponseCache
from mcsdns.engine.respond import Responder
from mcsdns.engine.tally import unpack
from tests import ednscomp
from tests.helpers import DATA, Server, ipv6_loopback, wait_for

SIZE_BOUNDS = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000)
DNS_FAMILIES = (
    "mcsdns_dns_requests", "mcsdns_dns_responses", "mcsdns_dns_truncated_responses", "mcsdns_dns_dropped_messages",
    "mcsdns_dns_request_duration_seconds", "mcsdns_dns_response_size_bytes", "mcsdns_cache_hits",
    "mcsdns_cache_misses",
)
Sample = tuple[str, tuple[tuple[str, str], ...]]


def scrape(server: Server) -> dict[Sample, float]:
    status, text = server.http("/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(name: str, **labels: str) -> Sample:
    return name, tuple(sorted(labels.items()))


def changes(before: dict[Sample, float], after: dict[Sample, float], families=DNS_FAMILIES) -> dict[Sample, float]:
    """Samples of these families that moved, by how much; durations only by count
    (how long an answer took is not for a test to know)."""
    moved = {}
    for key, value in after.items():
        name, labels = key
        if not name.startswith(families) or (name.startswith("mcsdns_dns_request_duration") and not _counted(key)):
            continue
        delta = value - before.get(key, 0.0)
        if delta:
            moved[key] = delta
    return moved


def _counted(key: Sample) -> bool:
    name, labels = key
    return name.endswith("_count") or ("le", "+Inf") in labels


def query(name: str, qtype: str, payload: int | None = 1232, ident: int = 7) -> bytes:
    message = dns.message.make_query(name, qtype, use_edns=0 if payload else False, payload=payload or 512)
    message.id = ident
    return message.to_wire()


def exchange(server: Server, wire: bytes, proto: str) -> bytes | None:
    """Send raw bytes, return the raw response (None when there is none)."""
    if proto == "udp":
        return server.raw_udp(wire, timeout=0.5)
    with socket.create_connection((server.host, server.port), timeout=3) as sock:
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        sock.settimeout(0.5)
        try:
            size = struct.unpack("!H", _read(sock, 2))[0]
        except (socket.timeout, ConnectionError, struct.error):
            return None
        return _read(sock, size)


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def answered(proto: str, qtype: str, rcode: str, sizes: list[int], hits: int, truncated: bool = False) -> dict:
    """What ``len(sizes)`` answers of one question move, the first built, the rest from the cache."""
    count = len(sizes)
    moved = {
        sample("mcsdns_dns_requests_total", proto=proto, family="1", type=qtype): count,
        sample("mcsdns_dns_responses_total", proto=proto, rcode=rcode): count,
        sample("mcsdns_dns_request_duration_seconds_count", proto=proto): count,
        sample("mcsdns_dns_request_duration_seconds_bucket", proto=proto, le="+Inf"): count,
        sample("mcsdns_dns_response_size_bytes_count", proto=proto): count,
        sample("mcsdns_dns_response_size_bytes_sum", proto=proto): sum(sizes),
        sample("mcsdns_dns_response_size_bytes_bucket", proto=proto, le="+Inf"): count,
        sample("mcsdns_cache_hits_total"): hits,
        sample("mcsdns_cache_misses_total"): count - hits,
    }
    for bound in SIZE_BOUNDS:
        moved[sample("mcsdns_dns_response_size_bytes_bucket", proto=proto, le=f"{float(bound)}")] = sum(
            1 for size in sizes if size <= bound
        )
    if truncated:
        moved[sample("mcsdns_dns_truncated_responses_total", proto=proto)] = count
    return {key: value for key, value in moved.items() if value}


def bad_version_query() -> bytes:
    message = dns.message.make_query("web.shop.svc.clusterset.local.", "A", use_edns=1)
    message.id = 9
    return message.to_wire()


SHOP = "shop.svc.clusterset.local."
# (what, wire, proto, type, rcode, truncated): each sent twice (a cache miss, then a hit)
ANSWERED = [
    ("A", query("web." + SHOP, "A"), "udp", "A", "NOERROR", False),
    ("AAAA", query("api." + SHOP, "AAAA"), "udp", "AAAA", "NOERROR", False),
    ("SRV over TCP", query("_http._tcp.web." + SHOP, "SRV"), "tcp", "SRV", "NOERROR", False),
    ("NXDOMAIN", query("nope." + SHOP, "A"), "udp", "A", "NXDOMAIN", False),
    ("NODATA TXT", query("web." + SHOP, "TXT"), "udp", "TXT", "NOERROR", False),
    ("SOA", query("clusterset.local.", "SOA"), "tcp", "SOA", "NOERROR", False),
    ("REFUSED outside", query("example.com.", "A"), "udp", "A", "REFUSED", False),
    # over UDP: a TCP transfer skips the response cache (tests/test_transfer.py counts it)
    ("AXFR refused", query("clusterset.local.", "AXFR"), "udp", "AXFR", "REFUSED", False),
    ("other type", query("web." + SHOP, "MX"), "udp", "other", "NOERROR", False),
    ("TC answer", query("big.data.svc.clusterset.local.", "A", payload=None), "udp", "A", "NOERROR", True),
    ("big over TCP", query("big.data.svc.clusterset.local.", "A"), "tcp", "A", "NOERROR", False),
    ("FORMERR", struct.pack("!6H", 5, 0, 0, 0, 0, 0), "udp", "other", "FORMERR", False),
    ("NOTIMP", struct.pack("!6H", 5, 0x2000, 0, 0, 0, 0), "tcp", "other", "NOTIMP", False),
    ("BADVERS", bad_version_query(), "udp", "A", "BADVERS", False),
    ("NOTAUTH, TSIG of an unknown key", ednscomp.query(ednscomp.BY_NAME["dnswkk"], 9), "udp", "SOA", "NOTAUTH", False),
]
DROPPED = [
    ("short datagram", b"\x00\x01\x02", "udp"),
    ("a response", struct.pack("!6H", 5, 0x8000, 1, 0, 0, 0) + query("web." + SHOP, "A")[12:], "udp"),
    ("a response over TCP", struct.pack("!6H", 5, 0x8000, 0, 0, 0, 0), "tcp"),
]


@pytest.fixture(scope="module")
def server():
    live = Server(DATA / "zone").wait_ready()
    yield live
    live.stop()


@pytest.mark.parametrize("what,wire,proto,qtype,rcode,truncated", ANSWERED, ids=[case[0] for case in ANSWERED])
def test_answers_move_exactly_their_metrics(server, what, wire, proto, qtype, rcode, truncated):
    before = scrape(server)
    responses = [exchange(server, wire, proto) for _ in range(2)]
    assert all(responses), "no answer"
    parsed = dns.message.from_wire(responses[0], ignore_trailing=True, keyring=False)  # keyring: TSIG unverified
    assert parsed.rcode() == dns.rcode.from_text(rcode)
    expected = answered(proto, qtype, rcode, [len(r) for r in responses], hits=1, truncated=truncated)
    assert changes(before, scrape(server)) == expected


@pytest.mark.parametrize("what,wire,proto", DROPPED, ids=[case[0] for case in DROPPED])
def test_dropped_messages_count_as_dropped_only(server, what, wire, proto):
    before = scrape(server)
    assert exchange(server, wire, proto) is None
    assert changes(before, scrape(server)) == {sample("mcsdns_dns_dropped_messages_total", proto=proto): 1}


def test_histogram_counts_every_query_of_a_burst(server):
    """Many queries at once (several per wakeup of the UDP loop): one count each."""
    wire = query("db.data.svc.clusterset.local.", "A")
    before = scrape(server)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        for _ in range(50):
            sock.sendto(wire, (server.host, server.port))
        sizes = [len(sock.recv(65535)) for _ in range(50)]
    after = scrape(server)
    assert changes(before, after) == answered("udp", "A", "NOERROR", sizes, hits=49)
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in after.items()
        if name == "mcsdns_dns_request_duration_seconds_bucket" and dict(labels)["proto"] == "udp"
    )
    assert len(buckets) == 17 and buckets[0][0] == 0.00025 and buckets[15][0] == 0.00025 * 2**15
    assert [value for _, value in buckets] == sorted(value for _, value in buckets)  # cumulative


def test_tcp_connections_closed_counted_by_reason():
    strict = Server(DATA / "zone", "--tcp-max-connections", "1").wait_ready()
    try:
        before = scrape(strict)
        with socket.create_connection((strict.host, strict.port), timeout=3) as first:
            time.sleep(0.2)
            with socket.create_connection((strict.host, strict.port), timeout=3):
                first.settimeout(3)
                assert first.recv(10) == b""  # evicted to make room for the second
        wait_for(lambda: scrape(strict)[sample("mcsdns_tcp_connections")] == 0, what="both gone")
        assert changes(before, scrape(strict), families=("mcsdns_tcp_connections_closed",)) == {
            sample("mcsdns_tcp_connections_closed_total", reason="evicted"): 1,
            sample("mcsdns_tcp_connections_closed_total", reason="client"): 1,
        }
    finally:
        strict.stop()


FRESH = """
apiVersion: multicluster.x-k8s.io/v1beta1
kind: ServiceImport
metadata: {name: fresh, namespace: shop}
spec: {type: ClusterSetIP, ips: ["10.50.0.1"]}
"""


def test_zone_gauges_follow_a_folder_edit(zone_copy):
    edited = Server(zone_copy).wait_ready()
    try:
        before = scrape(edited)
        assert before[sample("mcsdns_ready")] == 1 and before[sample("mcsdns_source_outage")] == 0
        assert before[sample("mcsdns_source_seconds_since_sync", resource="files")] < 1.0  # polled every 0.1 s
        time.sleep(0.6)
        quiet = scrape(edited)[sample("mcsdns_zone_seconds_since_change")]
        assert quiet >= 0.6
        (zone_copy / "70-fresh.yaml").write_text(FRESH)
        services = sample("mcsdns_zone_services")
        after = wait_for(lambda: (now := scrape(edited))[services] > before[services] and now, what="a new service")
        assert after[services] == before[services] + 1
        assert after[sample("mcsdns_zone_records")] == before[sample("mcsdns_zone_records")] + 1  # one A record
        assert after[sample("mcsdns_zone_serial")] == before[sample("mcsdns_zone_serial")] + 1
        assert after[sample("mcsdns_zone_seconds_since_change")] < 0.5
        (zone_copy / "80-broken.yaml").write_text("kind: [unclosed\n")
        malformed = sample("mcsdns_source_errors_total", resource="files", reason="malformed")
        wait_for(lambda: scrape(edited).get(malformed) == 1, what="the malformed file counted")
    finally:
        edited.stop()


def test_build_info(server):
    metrics = scrape(server)
    info = [labels for (name, labels), value in metrics.items() if name == "mcsdns_build_info" and value == 1]
    assert len(info) == 1
    labels = dict(info[0])
    assert labels["version"] not in ("", "unknown") and labels["python"].count(".") == 2


def test_old_names_are_gone(server):
    """The names before the CoreDNS-style ones: a dashboard must not find them half-alive."""
    _, text = server.http("/metrics")
    for old in ("mcsdns_responses_total", "mcsdns_dropped_messages_total", "mcsdns_truncated_responses_total"):
        assert old not in text


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_family_is_the_socket_family(proto):
    """CoreDNS's family label: 2 for a query that came in over IPv6."""
    six = Server(DATA / "zone", host="::1").wait_ready()
    try:
        before = scrape(six)
        six.query(dns.message.make_query("api." + SHOP, "AAAA"), proto)
        moved = changes(before, scrape(six))
        assert moved[sample("mcsdns_dns_requests_total", proto=proto, family="2", type="AAAA")] == 1
        assert not any(dict(labels).get("family") == "1" for _, labels in moved)
    finally:
        six.stop()


TALLIED = [  # (name, qtype, EDNS payload or None): every type label, every rcode the engine sends
    ("web." + SHOP, "A", 1232), ("api." + SHOP, "AAAA", 1232), ("_http._tcp.web." + SHOP, "SRV", None),
    ("dns-version.clusterset.local.", "TXT", 1232), ("clusterset.local.", "SOA", None), ("clusterset.local.", "NS", 1232),
    ("1.0.0.10.in-addr.arpa.", "PTR", 1232), ("web." + SHOP, "ANY", 1232), ("clusterset.local.", "AXFR", None),
    ("clusterset.local.", "IXFR", None), ("web." + SHOP, "CAA", 1232), ("nope." + SHOP, "A", None),
    ("big.data.svc.clusterset.local.", "A", None), ("big.data.svc.clusterset.local.", "A", 4096),
]


@pytest.mark.parametrize("name,qtype,payload", TALLIED, ids=[f"{n} {t} {p}" for n, t, p in TALLIED])
def test_tally_agrees_with_dnspython(zone_store, name, qtype, payload):
    """The labels packed into a response's tally are what a real client reads in it."""
    cache = ResponseCache(Responder())
    wire = query(name, qtype, payload)
    response, tally = cache.answer(wire, zone_store.snapshot)
    again, hit = cache.answer(wire, zone_store.snapshot)
    parsed = dns.message.from_wire(response)
    known = {"A", "AAAA", "SRV", "TXT", "SOA", "NS", "PTR", "ANY", "AXFR", "IXFR"}
    expected = (
        qtype if qtype in known else "other",
        dns.rcode.to_text(parsed.rcode()),
        bool(parsed.flags & dns.flags.TC),
        len(response),
    )
    kind, rcode, truncated, cached, size = unpack(tally)
    assert (kind, rcode, truncated, size) == expected and not cached
    assert unpack(hit) == (kind, rcode, truncated, True, size) and again == response
