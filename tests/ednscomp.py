"""ISC's DNS compliance checks ("ednscomp", the queries of genreport) as a table.

Each ``Check`` is one of genreport's tests: the query it sends to the zone
apex (header bits, EDNS version, flags and options, TCP, a TSIG) and, in
``verdict``, the rules genreport applies to the answer, each a tag that names
what was wrong ("noaa", "soa", "badversion", ...); no tag means "ok". Written
from reading ISC's DNS-Compliance-Testing genreport.c for behaviour; the tags
keep genreport's names so a report can be compared with ISC's.

One deliberate difference: ``dnswkk`` signs the query with the "well-known
key" (name ".", hmac-sha256, 32 zero octets). genreport calls it ok only if
the server knows that key and signs a NOERROR answer; a server holding no such
key must answer NOTAUTH with TSIG error BADKEY, unsigned (RFC 8945 5.2, 5.3.2),
and that is what this table expects.

    from tests import ednscomp
    results = ednscomp.run_all("127.0.0.1", port)   # {check name: [failure tags]}
"""

from __future__ import annotations

import hashlib
import hmac
import random
import socket
import struct
import time
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.wire

from tests.helpers import read_frame

ZONE = "clusterset.local."
SOA, DNSKEY, OPT, TSIG, ANY_CLASS, IN = 6, 48, 41, 250, 255, 1
NOERROR, NOTIMP, NOTAUTH, BADVERS, BADKEY, BADTIME, BADCOOKIE = 0, 4, 9, 16, 17, 18, 23
BADSIG = 16  # the TSIG error that shares BADVERS's number
AA, TC, RD, RA, Z, AD, CD = 0x0400, 0x0200, 0x0100, 0x0080, 0x0040, 0x0020, 0x0010
DO = 0x8000
RCODE_TEXT = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
              9: "NOTAUTH", 16: "BADVERS", 17: "BADKEY", 18: "BADTIME", 23: "BADCOOKIE"}
WELL_KNOWN_KEY = bytes(32)
HMAC_SHA256 = b"\x0bhmac-sha256\x00"
CLIENT_COOKIE = bytes(range(1, 9))


def option(code: int, data: bytes = b"") -> bytes:
    return struct.pack("!HH", code, len(data)) + data


NSID, ECS, EXPIRE, COOKIE = option(3), option(8, b"\x00\x01\x00\x00"), option(9), option(10, CLIENT_COOKIE)
UNKNOWN_OPTION = option(100)


@dataclass(frozen=True)
class Check:
    name: str
    group: str  # genreport's grouping: EDNS (its default run), FULL, COMM, TYPE, NONE
    qtype: int = SOA
    payload: int = 0  # EDNS UDP size; 0: no OPT record at all
    version: int = 0  # EDNS version
    eflags: int = 0  # EDNS flags (DO is the only one defined)
    options: bytes = b""  # EDNS options, wire form
    flags: int = 0  # header bits set in the query
    opcode: int = 0  # not QUERY: a header alone, no question
    tcp: bool = False
    ignore_tc: bool = False  # judge a truncated UDP answer instead of retrying over TCP
    cookie: bool = False  # the options carry a client cookie
    tsig_error: int | None = None  # sign with the well-known key; the TSIG error expected back


CHECKS: list[Check] = [
    Check("dns", "EDNS"),
    Check("aa", "FULL", flags=AA),
    Check("ad", "FULL", flags=AD),
    Check("cd", "FULL", flags=CD),
    Check("ra", "FULL", flags=RA),
    Check("rd", "FULL", flags=RD),
    Check("tc", "FULL", flags=TC),
    Check("zflag", "FULL", flags=Z),
    Check("opcode", "FULL", opcode=15),
    Check("opcodeflg", "FULL", opcode=15, flags=TC | RD | RA | CD | AD | AA | Z),
    Check("type666", "FULL", qtype=666),
    Check("tcp", "FULL", tcp=True),
    Check("edns", "EDNS", payload=4096),
    Check("edns1", "EDNS", payload=4096, version=1),
    Check("edns@512", "EDNS", qtype=DNSKEY, payload=512, ignore_tc=True),
    Check("ednsopt", "EDNS", payload=4096, options=UNKNOWN_OPTION),
    Check("edns1opt", "EDNS", payload=4096, version=1, options=UNKNOWN_OPTION),
    Check("do", "EDNS", payload=4096, eflags=DO),
    Check("docd", "FULL", payload=4096, eflags=DO, flags=CD),
    Check("edns1do", "FULL", payload=4096, eflags=DO, version=1),
    Check("ednsflags", "EDNS", payload=4096, eflags=0x0080),
    Check("optlist", "EDNS", payload=4096, options=NSID + ECS + EXPIRE + COOKIE, cookie=True),
    Check("ednsnsid", "FULL", payload=4096, options=NSID),
    Check("ednscookie", "FULL", payload=4096, options=COOKIE, cookie=True),
    Check("ednsexpire", "FULL", payload=4096, options=EXPIRE),
    Check("ednssubnet", "FULL", payload=4096, options=ECS),
    Check("edns1nsid", "FULL", payload=4096, version=1, options=NSID),
    Check("edns1cookie", "FULL", payload=4096, version=1, options=COOKIE, cookie=True),
    Check("edns1expire", "FULL", payload=4096, version=1, options=EXPIRE),
    Check("edns1subnet", "FULL", payload=4096, version=1, options=ECS),
    Check("ednstcp", "EDNS", qtype=DNSKEY, payload=512, eflags=DO, tcp=True),
    Check("bind11", "COMM", payload=4096, eflags=DO, options=COOKIE, cookie=True),
    Check("dig11", "COMM", payload=4096, options=COOKIE, cookie=True, flags=RD | AD),
    Check("dnswkk", "NONE", tsig_error=BADKEY),
]
# genreport's TYPE group: a plain query for each type code at the apex.
TYPES = {
    "A": 1, "NS": 2, "MD": 3, "MF": 4, "CNAME": 5, "SOA": 6, "MB": 7, "MG": 8, "MR": 9, "NULL": 10,
    "WKS": 11, "PTR": 12, "HINFO": 13, "MINFO": 14, "MX": 15, "TXT": 16, "RP": 17, "AFSDB": 18, "X25": 19,
    "ISDN": 20, "RT": 21, "NSAP": 22, "NSAP-PTR": 23, "SIG": 24, "KEY": 25, "PX": 26, "GPOS": 27, "AAAA": 28,
    "LOC": 29, "NXT": 30, "SRV": 33, "NAPTR": 35, "KX": 36, "CERT": 37, "A6": 38, "DNAME": 39, "APL": 42,
    "DS": 43, "SSHFP": 44, "IPSECKEY": 45, "RRSIG": 46, "NSEC": 47, "DNSKEY": 48, "DHCID": 49, "NSEC3": 50,
    "NSEC3PARAM": 51, "TLSA": 52, "SMIMEA": 53, "HIP": 55, "CDS": 59, "CDNSKEY": 60, "OPENPGPKEY": 61,
    "SPF": 99, "NID": 104, "L32": 105, "L64": 106, "LP": 107, "EUI48": 108, "EUI64": 109, "URI": 256,
    "CAA": 257, "AVC": 258, "DOA": 259, "DLV": 32769, "TYPE1000": 1000,
}
CHECKS += [Check(name, "TYPE", qtype=code) for name, code in TYPES.items()]
BY_NAME = {check.name: check for check in CHECKS}


# ---- the query ----------------------------------------------------------------


def query(check: Check, ident: int, now: int | None = None) -> bytes:
    """The bytes genreport sends for ``check``."""
    if check.opcode:
        return struct.pack("!HHHHHH", ident, (check.opcode << 11) | check.flags, 0, 0, 0, 0)
    records = b""
    if check.payload:
        ttl = (check.version << 16) | check.eflags
        records = b"\x00" + struct.pack("!HHIH", OPT, check.payload, ttl, len(check.options)) + check.options
    count = bool(records)
    message = struct.pack("!HHHHHH", ident, check.flags, 1, 0, 0, count)
    message += dns.name.from_text(ZONE).to_wire() + struct.pack("!HH", check.qtype, IN) + records
    if check.tsig_error is not None:
        message = sign(message, int(time.time()) if now is None else now)
    return message


def sign(message: bytes, now: int, fudge: int = 300) -> bytes:
    """Append a TSIG made with the well-known key (RFC 8945 4.3.3)."""
    signed = struct.pack("!HIH", now >> 32, now & 0xFFFFFFFF, fudge)
    variables = b"\x00" + struct.pack("!HI", ANY_CLASS, 0) + HMAC_SHA256 + signed + struct.pack("!HH", 0, 0)
    mac = hmac.new(WELL_KNOWN_KEY, message + variables, hashlib.sha256).digest()
    rdata = HMAC_SHA256 + signed + struct.pack("!H", len(mac)) + mac + message[:2] + struct.pack("!HH", 0, 0)
    arcount = struct.unpack_from("!H", message, 10)[0] + 1
    message = message[:10] + struct.pack("!H", arcount) + message[12:]
    return message + b"\x00" + struct.pack("!HHIH", TSIG, ANY_CLASS, 0, len(rdata)) + rdata


# ---- the answer, read as genreport reads it ----------------------------------------


@dataclass
class Reply:
    size: int
    id: int
    flags: int  # the 16 header bits less the RCODE
    rcode: int  # with the OPT's extended bits
    counts: tuple[int, int, int, int]
    question: list[tuple[str, int]] = field(default_factory=list)
    answer_types: list[tuple[str, int]] = field(default_factory=list)
    opt: tuple[int, int] | None = None  # (payload, ttl)
    option_codes: list[tuple[int, bytes]] = field(default_factory=list)
    tsig: dict | None = None  # its fields by name, and whether it was the last record
    malformed: str = ""

    def bit(self, mask: int) -> bool:
        return bool(self.flags & mask)


def read_reply(wire: bytes) -> Reply:
    ident, flags, *counts = struct.unpack_from("!HHHHHH", wire)
    reply = Reply(len(wire), ident, flags & ~0xF, flags & 0xF, tuple(counts))
    parser = dns.wire.Parser(wire, 12)
    try:
        for _ in range(counts[0]):
            name = parser.get_name(decompress=True).to_text().lower()
            reply.question.append((name, parser.get_struct("!HH")[0]))
        for section, count in enumerate(counts[1:], 1):
            for index in range(count):
                _read_record(parser, reply, section, index == count - 1)
        if parser.remaining():
            reply.malformed = "trailing-data"
    except (dns.exception.DNSException, struct.error, ValueError) as error:
        reply.malformed = f"malformed ({error})"
    if reply.opt is not None:
        reply.rcode |= (reply.opt[1] >> 24) << 4
    return reply


def _read_record(parser: dns.wire.Parser, reply: Reply, section: int, last: bool) -> None:
    name = parser.get_name(decompress=True).to_text().lower()
    rtype, rclass, ttl, rdlength = parser.get_struct("!HHIH")
    end = parser.current + rdlength
    if end > len(parser.wire):
        raise ValueError("record data cut short")
    if section == 1:
        reply.answer_types.append((name, rtype))
    if section == 3 and rtype == OPT:
        if reply.opt is not None:
            raise ValueError("two OPT records")
        reply.opt = (rclass, ttl)
        with parser.restrict_to(rdlength):
            while parser.remaining():
                code, length = parser.get_struct("!HH")
                reply.option_codes.append((code, parser.get_bytes(length)))
    elif section == 3 and rtype == TSIG:
        if reply.tsig is not None:
            raise ValueError("two TSIG records")
        with parser.restrict_to(rdlength):
            algorithm = parser.get_name(decompress=True).to_text().lower()
            high, low, fudge, mac_size = parser.get_struct("!HIHH")
            mac = parser.get_bytes(mac_size)
            original, error, other = parser.get_struct("!HHH")
            parser.get_bytes(other)
        reply.tsig = {"name": name, "class": rclass, "ttl": ttl, "algorithm": algorithm, "time": (high << 32) | low,
                      "fudge": fudge, "mac": mac, "original_id": original, "error": error, "other": other,
                      "last": last}
    parser.seek(end)


# ---- genreport's rules ------------------------------------------------------------


def verdict(check: Check, reply: Reply | None, now: float | None = None) -> list[str]:
    """What genreport would tag this answer with; [] is "ok"."""
    if reply is None:
        return ["timeout"]
    if reply.malformed:
        return [reply.malformed]
    if check.opcode == 0 and any(asked != (ZONE, check.qtype) for asked in reply.question):
        return ["mismatch"]  # genreport waits for another answer: it never gets one
    now = time.time() if now is None else now
    return [tag for rule in RULES for tag in [rule(check, reply, now)] if tag]


def _rcode_name(rcode: int) -> str:
    return RCODE_TEXT.get(rcode, f"rcode{rcode}")


def _expected_rcode(check: Check, reply: Reply) -> int:
    if check.version:
        return BADVERS
    if check.opcode:
        return NOTIMP
    if check.tsig_error is not None:
        return NOTAUTH if check.tsig_error else NOERROR
    if check.cookie and reply.rcode == BADCOOKIE and any(code == 10 for code, _ in reply.option_codes):
        return BADCOOKIE
    return NOERROR


def _opcode(check, reply, now):
    return "" if (reply.flags >> 11) & 0xF == check.opcode else f"opcode{(reply.flags >> 11) & 0xF}"


def _sections(check, reply, now):
    names = ("question", "answer", "authority", "additional")
    return ",".join(f"non-empty-{n}-section" for n, c in zip(names, reply.counts) if check.opcode and c)


def _rcode(check, reply, now):
    return "" if reply.rcode == _expected_rcode(check, reply) else _rcode_name(reply.rcode)


def _tsig(check, reply, now):
    """The TSIG rules: present when the query had one, last, class ANY, TTL 0,
    the query's key and algorithm, a time within the fudge, the expected
    error, and never a MAC on a BADKEY/BADSIG error (RFC 8945 5.3.2)."""
    tsig = reply.tsig
    if tsig is None:
        return "notsig" if check.tsig_error is not None else ""
    rules = {
        "tsig-not-last": not tsig["last"], "tsig-bad-class": tsig["class"] != ANY_CLASS,
        "tsig-bad-ttl": tsig["ttl"] != 0, "tsig-wrong-key": tsig["name"] != ".",
        "tsig-wrong-alg": tsig["algorithm"] != "hmac-sha256.", "tsig-bad-fudge": tsig["fudge"] == 0,
        "tsig-bad-time": abs(tsig["time"] - now) > tsig["fudge"],
        "tsig-bad-other-len": tsig["error"] == BADTIME and tsig["other"] != 6,
        "tsig-signed-error": tsig["error"] in (BADSIG, BADKEY) and bool(tsig["mac"]),
        _rcode_name(tsig["error"]): tsig["error"] != (check.tsig_error or 0),
    }
    return ",".join(tag for tag, failed in rules.items() if failed)


def _edns_version(check, reply, now):
    if reply.opt is None:
        return "noopt" if check.payload else ""
    if not check.payload:
        return "opt"
    version = (reply.opt[1] >> 16) & 0xFF
    tags = ["version-not-zero"] if version else []
    if (version < check.version) != (reply.rcode == BADVERS):
        tags.append("badversion")
    return ",".join(tags)


def _soa(check, reply, now):
    if check.qtype != SOA or check.opcode:
        return ""
    seen = any(rtype == SOA and name == ZONE for name, rtype in reply.answer_types)
    if not seen and check.version == 0 and not check.ignore_tc and reply.rcode == NOERROR:
        return "nosoa"
    if seen and (check.version or reply.rcode != NOERROR):
        return "soa"
    return ""


def _options(check, reply, now):
    codes = [code for code, _ in reply.option_codes]
    tags = ["echoed"] if 100 in codes else []
    for code, data in reply.option_codes:
        if code == 10 and 16 <= len(data) <= 40 and check.cookie and data[:8] != CLIENT_COOKIE:
            tags.append("cookie-mismatch")
    return ",".join(tags)


def _dnssec(check, reply, now):
    rrsig = any(rtype == 46 for _, rtype in reply.answer_types)
    if reply.opt is None or not check.eflags & DO or not rrsig:
        return ""
    if not reply.opt[1] & DO:
        return "nodo"
    return "nocd" if check.flags & CD and not reply.bit(CD) else ""


def _header(check, reply, now):
    """AA, RA, RD, AD, CD and Z, each defined only for QUERY (RFC 1035 4.1.1, RFC 4035 3.2)."""
    query = check.opcode == 0
    rules = {
        "noaa": query and not reply.bit(AA) and check.version == 0 and reply.rcode == NOERROR,
        "aa": reply.bit(AA) and not query,
        "ra": reply.bit(RA) and not query,
        "rd": reply.bit(RD) and (not query or not check.flags & RD),
        "nord": query and check.flags & RD and not reply.bit(RD),
        "ad": reply.bit(AD) and (not query or (not check.flags & AD and not check.eflags & DO)),
        "cd": reply.bit(CD) and (not query or not check.flags & CD),
        "z": reply.bit(Z),
    }
    return ",".join(tag for tag, failed in rules.items() if failed)


def _mbz(check, reply, now):
    return "mbz" if reply.opt is not None and reply.opt[1] & 0x7FFF else ""


def _size(check, reply, now):
    return "toobig" if check.ignore_tc and reply.size > (check.payload or 512) else ""


RULES = [_opcode, _sections, _rcode, _tsig, _edns_version, _soa, _options, _dnssec, _header, _mbz, _size]


# ---- asking ---------------------------------------------------------------------


def ask(check: Check, host: str, port: int, timeout: float = 2.0, tries: int = 2) -> Reply | None:
    """Send the check's query as genreport does: UDP (TCP for TCP checks, or after TC=1)."""
    ident = random.randrange(1 << 16)
    message = query(check, ident)
    wire = None if check.tcp else _udp(message, host, port, timeout, tries)
    if check.tcp or (wire is not None and len(wire) >= 12 and wire[2] & 0x02 and not check.ignore_tc):
        wire = _tcp(message, host, port, timeout)
    if wire is None or len(wire) < 12 or wire[:2] != message[:2]:
        return None
    return read_reply(wire)


def _udp(message: bytes, host: str, port: int, timeout: float, tries: int) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for _ in range(tries):
            sock.sendto(message, (host, port))
            try:
                while True:
                    wire = sock.recv(65535)
                    if wire[:2] == message[:2]:
                        return wire
            except socket.timeout:
                continue
    return None


def _tcp(message: bytes, host: str, port: int, timeout: float) -> bytes | None:
    try:
        with socket.create_connection((host, port), timeout) as sock:
            sock.sendall(struct.pack("!H", len(message)) + message)
            return read_frame(sock)
    except (OSError, struct.error):
        return None


def run_all(host: str, port: int) -> dict[str, list[str]]:
    """Every check against one server: {name: failure tags}, [] for ok."""
    return {check.name: verdict(check, ask(check, host, port)) for check in CHECKS}
