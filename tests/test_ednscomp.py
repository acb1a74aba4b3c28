"""ISC's DNS compliance checks (tests/ednscomp.py) against mcsdns, NSD and Knot
serving the same zone on loopback: mcsdns passes every check that NSD and Knot
both pass (in fact every check). ``python bench/ednscomp.py`` prints the matrix.

Plus the TSIG cases behind ``dnswkk``: we hold no keys, so any TSIG is an
unknown key (RFC 8945 5.2), whatever shape the record takes.
"""

from __future__ import annotations

import struct

import dns.message
import dns.rcode
import pytest

from tests import ednscomp
from tests.helpers import DATA
from tests.peerdns import side_by_side

PEERS = ("NSD", "Knot")


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory) -> dict[str, dict[str, list[str]]]:
    """{server: {check: failure tags}}: every check, run once against each server."""
    with side_by_side(tmp_path_factory.mktemp("ednscomp"), DATA / "zone") as ports:
        return {name: ednscomp.run_all("127.0.0.1", port) for name, port in ports.items()}


@pytest.mark.parametrize("check", ednscomp.CHECKS, ids=lambda check: check.name)
def test_mcsdns_passes_every_check(verdicts, check):
    """Every check NSD and Knot both pass, and today the rest too (opcodeflg,
    which NSD leaves unanswered and Knot answers with RD echoed)."""
    seen = {server: verdicts[server][check.name] or "ok" for server in verdicts}
    assert verdicts["mcsdns"][check.name] == [], seen


@pytest.mark.parametrize("peer", PEERS)
def test_the_peers_really_answer(verdicts, peer):
    """Guards the comparison above: a peer that answered nothing would excuse everything."""
    passed = sum(not tags for tags in verdicts[peer].values())
    assert passed >= len(ednscomp.CHECKS) - 3, {name: tags for name, tags in verdicts[peer].items() if tags}


# ---- TSIG shapes: unknown key always, FORMERR when the record is misplaced ----------


def _signed(check_name: str = "dnswkk") -> bytes:
    return ednscomp.query(ednscomp.BY_NAME[check_name], 0x4242)


def _compressed_key() -> bytes:
    """The well-known-key query, its key name a pointer to the question's "local." label."""
    message = _signed()
    key_at = message.rindex(b"\x00\x00\xfa\x00\xff")  # root owner, TYPE TSIG, CLASS ANY
    pointer = struct.pack("!H", 0xC000 | message.index(b"\x05local"))
    return message[:key_at] + pointer + message[key_at + 1 :]


def _tsig_not_last() -> bytes:
    """A TSIG followed by an OPT: TSIG must be the last record (RFC 8945 5.1)."""
    message = _signed()
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    return message[:10] + struct.pack("!H", 2) + message[12:] + opt


def _tsig_in_answer() -> bytes:
    message = _signed()
    return message[:6] + b"\x00\x01\x00\x00\x00\x00" + message[12:]


def _tsig_cut_short() -> bytes:
    message = _signed()
    rdlength_at = message.rindex(b"\x00\xfa\x00\xff") + 8
    short = struct.unpack_from("!H", message, rdlength_at)[0] - 10
    return message[:rdlength_at] + struct.pack("!H", short) + message[rdlength_at + 2 : -10]


# (case, query bytes, rcode, TSIG error in the answer or None for no TSIG, key name in the answer)
TSIG_CASES = [
    ("well-known key", _signed(), "NOTAUTH", 17, "."),
    ("with EDNS", ednscomp.query(ednscomp.Check("x", "NONE", payload=1232, tsig_error=17), 7), "NOTAUTH", 17, "."),
    ("compressed key name", _compressed_key(), "NOTAUTH", 17, "local."),
    ("TSIG before OPT", _tsig_not_last(), "FORMERR", None, None),
    ("TSIG in the answer section", _tsig_in_answer(), "FORMERR", None, None),
    ("TSIG data cut short", _tsig_cut_short(), "FORMERR", None, None),
]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from tests.helpers import Server

    server = Server(DATA / "zone", "--log-level", "warning").wait_ready()
    yield server
    server.stop()


@pytest.mark.parametrize("case,wire,rcode,error,key", TSIG_CASES, ids=[c[0] for c in TSIG_CASES])
def test_tsig_with_an_unknown_key(live, case, wire, rcode, error, key):
    response = live.raw_udp(wire, timeout=2)
    assert response is not None and response[:2] == wire[:2]
    reply = ednscomp.read_reply(response)
    assert not reply.malformed
    assert dns.rcode.to_text(reply.rcode) == rcode
    if error is None:
        assert reply.tsig is None
        return
    assert reply.tsig["error"] == error and reply.tsig["mac"] == b"" and reply.tsig["last"]
    assert (reply.tsig["name"], reply.tsig["algorithm"], reply.tsig["original_id"]) == (key, "hmac-sha256.", wire[0] << 8 | wire[1])
    # and the server still answers plain questions
    assert live.query(dns.message.make_query("web.shop.svc.clusterset.local.", "A")).answer
