"""Zone transfers from a live server: AXFR is the zone, IXFR the difference,
the ACL and TSIG decide who gets either, NOTIFY follows a change (coalesced).
dnspython is the client (it checks TSIG on every message) and dig too."""

from __future__ import annotations

import base64
import ipaddress
import socket
import struct
import subprocess
import time

import dns.exception
import dns.opcode
import dns.rrset
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest

from mcsdns.engine import transfer as engine
from mcsdns.engine import tsig
from mcsdns.inspect.zonefile import zone_text
from mcsdns.zone.history import History
from tests.conftest import load_store
from tests.helpers import DATA, ZONE, Server, wait_for

SECRET = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
KEYRING = dns.tsigkeyring.from_text({"xfr-key.": ("hmac-sha256", SECRET)})
WRONG_SECRET = dns.tsigkeyring.from_text({"xfr-key.": ("hmac-sha256", base64.b64encode(b"x" * 32).decode())})
UNKNOWN_KEY = dns.tsigkeyring.from_text({"other-key.": ("hmac-sha256", SECRET)})
FRESH = """
apiVersion: multicluster.x-k8s.io/v1beta1
kind: ServiceImport
metadata: {name: fresh, namespace: shop}
spec: {type: ClusterSetIP, ips: ["%s"]}
"""


def records(zone: dns.zone.Zone, soa: bool = False) -> set[str]:
    """Every record as one line of text; the SOA left out (its serial is the clock's)."""
    return {
        f"{name.derelativize(zone.origin)} {rdataset.ttl} {dns.rdatatype.to_text(rdataset.rdtype)} {rd.to_text(origin=zone.origin, relativize=False)}"
        for name, rdataset in zone.iterate_rdatasets()
        if soa or rdataset.rdtype != dns.rdatatype.SOA
        for rd in rdataset
    }


def axfr(server: Server, **options) -> dns.zone.Zone:
    return dns.zone.from_xfr(dns.query.xfr(server.host, ZONE, port=server.port, timeout=5, lifetime=10, **options))


def xfr_rcode(server: Server, **options) -> str:
    try:
        axfr(server, **options)
    except dns.xfr.TransferError as error:
        return dns.rcode.to_text(error.rcode)
    except dns.exception.DNSException as error:
        return type(error).__name__
    return "NOERROR"


def serial(server: Server) -> int:
    return server.query(dns.message.make_query(ZONE, "SOA")).answer[0][0].serial


@pytest.fixture
def folder(zone_copy):
    return zone_copy


@pytest.fixture
def open_server(folder):
    running = Server(folder, "--transfer-allow", "127.0.0.0/8,::1").wait_ready()
    yield running
    running.stop()


def test_axfr_is_the_zone_walk_gives(open_server, folder):
    expected = dns.zone.from_text(zone_text(load_store(folder).snapshot), origin=ZONE, relativize=False)
    got = axfr(open_server)
    assert records(got) == records(expected) and len(records(got)) > 400
    assert got.get_soa().serial == serial(open_server)


def test_dig_axfr(open_server):
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(open_server.port), ZONE, "AXFR", "+tcp"],
        capture_output=True, text=True, timeout=10,
    ).stdout
    assert "XFR size: 506 records" in out and "web.shop.svc.clusterset.local. 5 IN A 10.42.0.10" in out.replace("\t", " ")


def test_ixfr_from_a_known_serial_is_the_difference(open_server, folder):
    before_zone = axfr(open_server)
    before = before_zone.get_soa().serial
    (folder / "50-fresh.yaml").write_text(FRESH % "10.50.0.1")
    wait_for(lambda: serial(open_server) == before + 1, timeout=5)
    (folder / "50-fresh.yaml").write_text(FRESH % "10.50.0.2")
    wait_for(lambda: serial(open_server) == before + 2, timeout=5)
    messages = list(dns.query.xfr(open_server.host, ZONE, dns.rdatatype.IXFR, port=open_server.port, serial=before, relativize=False))
    lines = [f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rd}" for m in messages for rrset in m.answer for rd in rrset]
    soas = [line.split()[-5] for line in lines if " SOA " in line]
    # new, old, (deletions: none), new, additions, new: both edits merged into one step
    assert soas == [str(before + 2), str(before), str(before + 2), str(before + 2)]
    assert "fresh.shop.svc.clusterset.local. A 10.50.0.2" in lines and not any("10.50.0.1" in line for line in lines)
    assert len(lines) == 5
    # applied by dnspython to the old zone, it gives the new one
    dns.query.inbound_xfr(open_server.host, before_zone, dns.xfr.make_query(before_zone)[0], port=open_server.port)
    assert records(before_zone) == records(axfr(open_server))


def test_ixfr_from_an_unknown_or_current_serial(open_server):
    now = serial(open_server)
    full = list(dns.query.xfr(open_server.host, ZONE, dns.rdatatype.IXFR, port=open_server.port, serial=now - 1000))
    rrsets = [rrset for m in full for rrset in m.answer]
    assert rrsets[0].rdtype == dns.rdatatype.SOA and rrsets[1].rdtype != dns.rdatatype.SOA  # AXFR-style
    assert sum(len(r) for r in rrsets) == 506
    query = dns.message.make_query(ZONE, "IXFR")
    query.authority.append(dns.rrset.from_text(ZONE, 0, "IN", "SOA", f". . {now} 0 0 0 0"))
    response = dns.query.tcp(query, open_server.host, port=open_server.port, timeout=5)
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.SOA] and response.answer[0][0].serial == now


@pytest.mark.parametrize(
    "allow, rcode",
    [(None, "REFUSED"), ("10.0.0.0/8", "REFUSED"), ("127.0.0.1", "NOERROR")],
)
def test_acl(folder, allow, rcode):
    server = Server(folder, *(["--transfer-allow", allow] if allow else [])).wait_ready()
    try:
        assert xfr_rcode(server) == rcode
        kind = "axfr" if rcode == "NOERROR" else "refused"
        metrics = server.http("/metrics")[1]
        assert f'mcsdns_zone_transfers_total{{kind="{kind}"}} 1.0' in metrics
        assert f'mcsdns_dns_responses_total{{proto="tcp",rcode="{rcode}"}} 1.0' in metrics
        assert server.query(dns.message.make_query(ZONE, "SOA")).rcode() == dns.rcode.NOERROR
    finally:
        server.stop()


@pytest.fixture(scope="module")
def signed_server(tmp_path_factory):
    """One server for the TSIG cases: they only read."""
    keys = tmp_path_factory.mktemp("tsig") / "keys"
    keys.write_text(f"# name algorithm secret\nxfr-key hmac-sha256 {SECRET}\n")
    running = Server(DATA / "zone", "--transfer-allow", "127.0.0.1", "--tsig-key-file", str(keys), "--transfer-require-tsig").wait_ready()
    yield running
    running.stop()


@pytest.mark.parametrize(
    "keyring, rcode",
    [
        (KEYRING, "NOERROR"),  # dnspython checks the signature of every message
        (None, "NOTAUTH"),  # unsigned, but a key is required
        (UNKNOWN_KEY, "PeerBadKey"),  # NOTAUTH with TSIG error BADKEY (RFC 8945 5.2.1)
        (WRONG_SECRET, "PeerBadSignature"),  # BADSIG (5.2.2)
    ],
)
def test_tsig(signed_server, keyring, rcode):
    options = {"keyring": keyring, "keyname": next(iter(keyring))} if keyring else {}
    assert xfr_rcode(signed_server, **options) == rcode


def test_tsig_multi_message_signed(signed_server):
    """The zone spans several messages: each is signed and chained to the last."""
    messages = list(dns.query.xfr(signed_server.host, ZONE, port=signed_server.port, keyring=KEYRING, keyname="xfr-key."))
    assert len(messages) >= 2 and all(m.had_tsig for m in messages)


def test_tsig_bad_time_and_unsigned_without_key_required():
    store = load_store(DATA / "zone")
    history = History(store.snapshot)
    policy = engine.Policy((ipaddress.ip_network("127.0.0.0/8"),), {"xfr-key.": tsig.Key("xfr-key.", "hmac-sha256.", base64.b64decode(SECRET))})
    query = dns.message.make_query(ZONE, "AXFR")
    query.use_tsig(KEYRING, keyname="xfr-key.")
    wire = query.to_wire()
    histories = {store.snapshot.origin: history}.get
    late = engine.transfer(wire, "127.0.0.1", histories, policy, int(time.time()) + 3600)
    late.messages = list(late.messages)
    assert late.kind == "badtime"
    with pytest.raises(dns.tsig.PeerBadTime):
        dns.message.from_wire(late.messages[0], keyring=KEYRING, request_mac=query.mac)
    plain = engine.transfer(dns.message.make_query(ZONE, "AXFR").to_wire(), "127.0.0.1", histories, policy, 0)
    plain.messages = list(plain.messages)  # packed as they are read
    assert plain.kind == "axfr" and plain.records == 506
    inside = engine.transfer(dns.message.make_query("svc." + ZONE, "AXFR").to_wire(), "127.0.0.1", histories, policy, 0)
    assert inside.kind == "notauth"


def test_notify_after_a_change_coalesced(folder):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.2)
    server = Server(folder, "--notify", f"127.0.0.1:{listener.getsockname()[1]}").wait_ready()
    try:
        for number in range(3):  # three changes inside the coalescing wait: one NOTIFY
            (folder / "50-fresh.yaml").write_text(FRESH % f"10.50.0.{number + 1}")
            time.sleep(0.25)
        got = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # the first within 4 s, then 1.5 s for any other
            if got:
                deadline = min(deadline, first + 1.5)
            try:
                data, peer = listener.recvfrom(4096)
            except socket.timeout:
                continue
            message = dns.message.from_wire(data)
            first = time.monotonic() if not got else first
            got.append((message.opcode(), str(message.question[0].name), message.question[0].rdtype))
            listener.sendto(dns.message.make_response(message).to_wire(), peer)
        assert got and got[0] == (dns.opcode.NOTIFY, ZONE, dns.rdatatype.SOA)
        assert len(got) == 1, got  # coalesced: one NOTIFY for the three changes
        metrics = server.http("/metrics")[1]
        assert 'mcsdns_notify_total{result="sent"} 1.0' in metrics and 'mcsdns_notify_total{result="answered"} 1.0' in metrics
    finally:
        server.stop()
        listener.close()


def test_is_transfer_reads_only_the_question_type():
    axfr_query = dns.message.make_query(ZONE, "AXFR").to_wire()
    assert engine.is_transfer(axfr_query) and engine.is_transfer(dns.message.make_query(ZONE, "IXFR").to_wire())
    assert not engine.is_transfer(dns.message.make_query(ZONE, "SOA").to_wire())
    assert not engine.is_transfer(axfr_query[:14]) and not engine.is_transfer(b"")
    assert struct.unpack("!H", axfr_query[-4:-2])[0] == 252


@pytest.mark.parametrize(
    "text, error",
    [
        (f"xfr-key hmac-md5 {SECRET}\n", "algorithm 'hmac-md5' is not one of"),
        ("xfr-key hmac-sha256 not*base64\n", "the secret is not base64"),
        ("xfr-key hmac-sha256\n", "expected NAME ALGORITHM BASE64SECRET"),
        (f"k hmac-sha256 {SECRET}\nk. hmac-sha512 {SECRET}\n", "key k. is defined twice"),
    ],
)
def test_key_file_errors_name_the_line(tmp_path, text, error):
    from mcsdns.config import ConfigError, load_keys

    path = tmp_path / "keys"
    path.write_text("# keys\n" + text)
    with pytest.raises(ConfigError, match=error) as raised:
        load_keys(str(path))
    assert "line 2" in str(raised.value) or "line 3" in str(raised.value)


def test_each_zone_transfers_alone(folder):
    """--zone a,b: each apex is a zone of its own, with its own SOA and records."""
    server = Server(folder, "--zone", "clusterset.local,example.com", "--transfer-allow", "127.0.0.1").wait_ready()
    try:
        other = dns.zone.from_xfr(dns.query.xfr(server.host, "example.com.", port=server.port, timeout=5))
        assert str(other.origin) == "example.com." and other.get_soa().mname.to_text() == "ns.dns"
        assert other.get_rdataset("web.shop.svc", "A")[0].address == "10.42.0.10"
        assert len(records(other)) == len(records(axfr(server)))
    finally:
        server.stop()


@pytest.mark.parametrize(
    "keyring, outcome",
    [(KEYRING, "signed"), (UNKNOWN_KEY, "PeerBadKey"), (WRONG_SECRET, "PeerBadSignature")],
)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_signed_soa_query_gets_a_signed_answer(signed_server, keyring, outcome, transport):
    """A secondary's SOA probe comes signed (Knot's over TCP before an IXFR, NSD's over UDP)."""
    query = dns.message.make_query(ZONE, "SOA", use_edns=0)
    query.use_tsig(keyring, keyname=next(iter(keyring)))
    try:
        response = signed_server.query(query, transport, timeout=5)
    except dns.exception.DNSException as error:
        assert type(error).__name__ == outcome
        return
    assert outcome == "signed" and response.had_tsig and response.answer[0][0].serial == serial(signed_server)


def test_notify_retries_until_answered_then_gives_up_on_the_dead():
    """RFC 1996 3.6: sent again, the wait doubling, until a response; a silent target
    is given up after the retries (short times here; the server waits 1 s, then 1, 2, 4...)."""
    import asyncio

    from mcsdns.transport.notify import Notifier

    async def scenario() -> tuple[list[float], dict]:
        loop = asyncio.get_running_loop()
        arrivals: list[float] = []

        class Target(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                arrivals.append(loop.time())
                if len(arrivals) == 3:  # ignore two, answer the third
                    reply = dns.message.make_response(dns.message.from_wire(data))
                    self.transport.sendto(reply.to_wire(), addr)

        live, _ = await loop.create_datagram_endpoint(Target, local_addr=("127.0.0.1", 0))
        dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dead.bind(("127.0.0.1", 0))  # bound, never answers
        targets = (live.get_extra_info("sockname")[:2], dead.getsockname())
        notifier = Notifier((b"clusterset", b"local"), targets, delay=0.05, timeout=0.1, retries=3)
        notifier.changed()
        notifier.changed()  # coalesced with the first
        await asyncio.sleep(0.05 + 0.1 + 0.2 + 0.4 + 0.8 + 0.3)
        live.close()
        dead.close()
        return arrivals, dict(notifier.counts)

    arrivals, counts = asyncio.run(scenario())
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert len(arrivals) == 3 and 0.09 < gaps[0] < gaps[1] / 1.5, gaps  # the wait doubles
    # live: 3 sent, 1 answered; dead: 4 sent (1 + 3 retries), given up
    assert counts == {"sent": 7, "answered": 1, "gave-up": 1}, counts
