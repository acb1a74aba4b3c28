"""AXFR (RFC 5936) and IXFR (RFC 1995): a transfer query -> the messages to send.

No sockets here: the TCP transport frames what this returns. Who may
transfer is decided here too (a source network list, then TSIG, RFC 8945),
so the whole policy is testable without a connection.

Messages are concatenated from the zone's wire tails like every answer
(``respond``): an owner is its labels below the apex and a pointer to the
apex in the question (offset 12; the question of a transfer is the apex).
Each message holds as many records as fit in ``MESSAGE_LIMIT`` bytes, and
repeats the question (RFC 5936 2.2.1 allows it; secondaries accept it).

IXFR answers, in order (RFC 1995 4):
  client serial is ours or newer    one SOA, ours: nothing to send
  client serial is in the history   SOA(new) SOA(old) deleted.. SOA(new) added.. SOA(new),
                                    every version since merged into one step (RFC 1995 5)
  anything else                     the whole zone, as AXFR sends it
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from ..zone.history import History
from ..zone.rrset import SOA, Labels, wire_labels
from ..zone.snapshot import Snapshot
from . import tsig
from .wire import HEADER, Dropped, FormError, NotImplementedOpcode, parse_query, read_header, skip_name

IXFR, AXFR = 251, 252
NOERROR, FORMERR, SERVFAIL, NOTAUTH, REFUSED = 0, 1, 2, 9, 5
QR, AA = 0x8000, 0x0400
APEX = b"\xc0\x0c"
MESSAGE_LIMIT = 16_384  # bytes of records a message; far below 65535, room for TSIG
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Policy:
    """Who may transfer: a source network, and with ``require_tsig`` a good key too."""

    allow: tuple[Network, ...] = ()  # none: every transfer is REFUSED
    keys: dict[str, tsig.Key] = field(default_factory=dict)
    require_tsig: bool = False

    def allows(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer.split("%")[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allow)


@dataclass(slots=True)
class Transfer:
    """What to send and why: the transport logs and counts it. ``messages`` may be
    a generator that packs the zone as it is read, counting ``records``."""

    messages: Iterable[bytes]
    kind: str  # "axfr", "ixfr", "ixfr-full" (fell back to the whole zone), "up-to-date", or the refusal
    zone: str = ""
    serial: int | None = None
    records: int = 0


def is_transfer(message: bytes) -> bool:
    """A cheap look at the question type, before any parsing (the TCP hook)."""
    if len(message) < 17 or message[4:6] != b"\x00\x01":
        return False
    end = 12
    while end < len(message) and message[end]:
        if message[end] > 63:
            return False
        end += 1 + message[end]
    return message[end + 1 : end + 3] in (b"\x00\xfb", b"\x00\xfc")


def transfer(message: bytes, peer: str, histories: Callable[[Labels], History | None], policy: Policy, now: int) -> Transfer:
    """The response to a transfer query from ``peer``; histories maps an apex to its zone."""
    try:
        query = parse_query(message)
        signature = tsig.read(message)
    except Dropped:
        return Transfer([], "dropped")
    except (FormError, NotImplementedOpcode, tsig.TsigError, struct.error):
        return Transfer([_bare(message, FORMERR)], "formerr")
    if not policy.allows(peer):
        return _refusal(query, REFUSED, "refused")  # the default: nobody may transfer
    signer, refusal = _authenticate(query, signature, policy, now)
    if refusal is not None:
        return refusal
    history = histories(query.labels)
    if history is None:
        result = _refusal(query, NOTAUTH, "notauth")  # not the apex of a zone of ours (RFC 5936 2.2.1)
    elif not history.current.ready:
        result = _refusal(query, SERVFAIL, "not-ready")
    elif query.qtype == IXFR:
        result = _ixfr(query, history, message)
    else:
        result = _messages(query, _full(history.current), "axfr", history.current)
    return _signed(signer, result)


def maybe_signed(message: bytes) -> bool:
    """Whether a query may carry TSIG (type 250, class ANY, TTL 0): a cheap look first."""
    return message[10:12] != b"\0\0" and b"\x00\xfa\x00\xff\x00\x00\x00\x00" in message


def sign_answer(message: bytes, response: bytes, policy: Policy, now: int) -> bytes:
    """An ordinary query that came signed gets a signed answer, or the TSIG error
    instead (RFC 8945 5.2, 5.3); an unsigned one keeps ``response`` as it is."""
    try:
        query = parse_query(message)
        signature = tsig.read(message)
    except (Dropped, FormError, NotImplementedOpcode, tsig.TsigError, struct.error):
        return response
    if signature is None:
        return response
    signer, refusal = _authenticate(query, signature, Policy(policy.allow, policy.keys), now)
    if refusal is not None:
        return next(iter(refusal.messages))
    return signer.sign(response)


def _authenticate(query, signature: tsig.Signature | None, policy: Policy, now: int):
    """(the signer of the response or None, a refusal or None), by RFC 8945 5.2."""
    if signature is None:
        return None, _refusal(query, NOTAUTH, "unsigned") if policy.require_tsig else None
    problem, key = tsig.verify(signature, policy.keys, now)
    if problem in (tsig.BADKEY, tsig.BADSIG):  # answered unsigned: we cannot prove who we are to them
        kind = "badkey" if problem == tsig.BADKEY else "badsig"
        return None, Transfer([tsig.unsigned_error(_reply(query, NOTAUTH, []), signature, problem)], kind)
    signer = tsig.Signer(key, signature.mac, now)
    if problem == tsig.BADTIME:  # signed, with our clock in Other Data (RFC 8945 5.2.3)
        clock = struct.pack("!HI", now >> 32, now & 0xFFFFFFFF)
        return None, Transfer([signer.sign(_reply(query, NOTAUTH, []), tsig.BADTIME, clock)], "badtime")
    return signer, None


def _refusal(query, rcode: int, kind: str) -> Transfer:
    return Transfer([_reply(query, rcode, [])], kind)


def _ixfr(query, history: History, message: bytes) -> Transfer:
    snapshot = history.current
    try:
        theirs = _client_serial(message)
    except (FormError, struct.error):
        return Transfer([_bare(message, FORMERR)], "formerr")
    if theirs is not None and not _older(theirs, snapshot.serial):
        return _messages(query, _records([_soa(snapshot)]), "up-to-date", snapshot)
    difference = history.since(theirs) if theirs is not None else None
    if difference is None:
        return _messages(query, _full(snapshot), "ixfr-full", snapshot)
    new, old = _soa(snapshot), _soa(difference.old)
    records = [new, old, *difference.deleted, new, *difference.added, new]
    return _messages(query, _records(records), "ixfr", snapshot)


def _full(snapshot: Snapshot) -> Iterator[bytes]:
    """The zone as AXFR sends it: SOA, every other record, SOA again (RFC 5936 2.2).

    Service by service, as the map holds them: RFC 5936 leaves the order free,
    and a generator lets each service be packed only when its turn comes, so a
    large zone goes out message by message while the server keeps answering."""
    soa = APEX + _soa(snapshot)[1]
    yield soa
    yield from _names(snapshot.apex.items(), b"")
    for (namespace, service), entry in snapshot.services.items():
        yield from _names(entry.names.items(), wire_labels((service, namespace, b"svc")))
    yield soa


def _names(names, suffix: bytes) -> Iterator[bytes]:
    for below, node in names:
        if not node.rrsets:
            continue  # empty non-terminals exist only implicitly
        owner = wire_labels(below) + suffix + APEX  # packed once a name, not once a record
        for rtype, rrset in node.rrsets.items():
            if rtype != SOA:
                yield from (owner + tail for tail in rrset.tails)


def _soa(snapshot: Snapshot) -> tuple[Labels, bytes]:
    return (), snapshot.apex[()].rrsets[SOA].tails[0]


def _records(pairs: Iterable[tuple[Labels, bytes]]) -> Iterator[bytes]:
    return (wire_labels(below) + APEX + tail for below, tail in pairs)


def _messages(query, records: Iterable[bytes], kind: str, snapshot: Snapshot) -> Transfer:
    """Records (wire, owner included) packed into messages, lazily."""
    zone = ".".join(label.decode() for label in snapshot.origin) + "."
    result = Transfer((), kind, zone, snapshot.serial)
    result.messages = _packed(query, records, result)
    return result


def _packed(query, records: Iterable[bytes], result: Transfer) -> Iterator[bytes]:
    batch, size = [], 0
    for record in records:
        if batch and size + len(record) > MESSAGE_LIMIT:
            yield _reply(query, NOERROR, batch)
            batch, size = [], 0
        batch.append(record)
        size += len(record)
        result.records += 1
    yield _reply(query, NOERROR, batch)


def _reply(query, rcode: int, records: Iterable[bytes]) -> bytes:
    records = list(records)
    flags = QR | (query.flags & 0x0100) | (AA if rcode == NOERROR else 0) | rcode
    return HEADER.pack(query.id, flags, 1, len(records), 0, 0) + query.question + b"".join(records)


def _bare(message: bytes, rcode: int) -> bytes:
    ident, flags, _ = read_header(message)
    return HEADER.pack(ident, QR | (flags & 0x7900) | rcode, 0, 0, 0, 0)


def _signed(signer: tsig.Signer | None, result: Transfer) -> Transfer:
    if signer is None:
        return result
    result.messages = (signer.sign(m) for m in result.messages)  # in order: each MAC chains to the last
    return result


def _older(a: int, b: int) -> bool:
    """RFC 1982: serial a is before serial b."""
    return a != b and ((b - a) % 2**32) < 2**31


def _client_serial(message: bytes) -> int | None:
    """The serial in the SOA an IXFR query carries in Authority (RFC 1995 3)."""
    _, ancount, nscount = struct.unpack_from("!HHH", message, 4)
    if not nscount:
        return None
    position = skip_name(message, 12) + 4
    for _ in range(ancount):
        position = skip_name(message, position)
        position += 10 + struct.unpack_from("!H", message, position + 8)[0]
    position = skip_name(message, position)
    rtype, _, _, size = struct.unpack_from("!HHIH", message, position)
    if rtype != SOA or size < 22:
        raise FormError("IXFR authority is not an SOA")
    end = position + 10 + size
    return struct.unpack_from("!I", message, end - 20)[0]
