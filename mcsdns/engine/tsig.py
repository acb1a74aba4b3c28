"""TSIG (RFC 8945): checking a signed request and signing its response(s).

Written on ``hmac`` from the standard library rather than taking dnspython as
a runtime dependency: the engine builds messages as bytes, and TSIG over
bytes is only a digest of those bytes plus a few fields (RFC 8945 4.3), so
a message library would cost a parse and a repack of every message of a
transfer. dnspython, NSD and Knot check the result in the tests.

The clock is an argument (``now``): the engine reads no clock itself.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from .wire import FormError, skip_name

TSIG, CLASS_ANY = 250, 255
BADSIG, BADKEY, BADTIME = 16, 17, 18  # TSIG errors (RFC 8945 5.2)
FUDGE = 300  # seconds of clock skew allowed (RFC 8945 10 recommends 300)
ALGORITHMS = {"hmac-sha256.": hashlib.sha256, "hmac-sha512.": hashlib.sha512, "hmac-sha1.": hashlib.sha1}
_HEADER = struct.Struct("!HHHHHH")


class TsigError(Exception):
    """A TSIG record we cannot read; the request is answered FORMERR."""


@dataclass(frozen=True, slots=True)
class Key:
    name: str  # lower case, absolute ("xfr.example.")
    algorithm: str  # one of ALGORITHMS, absolute
    secret: bytes


@dataclass(frozen=True, slots=True)
class Signature:
    """A request's TSIG as read: enough to check it and to answer it."""

    key_name: str
    algorithm: str
    time_signed: int
    fudge: int
    mac: bytes
    original_id: int
    error: int
    other: bytes
    unsigned: bytes  # the request without its TSIG, ARCOUNT and ID restored (RFC 8945 4.3.1)


@dataclass(slots=True)
class Signer:
    """Signs the messages of one response in turn, each chained to the last MAC."""

    key: Key
    mac: bytes  # the request's MAC, then each message's own
    time_signed: int
    first: bool = True

    def sign(self, message: bytes, error: int = 0, other: bytes = b"") -> bytes:
        if self.first:
            data = _mac_field(self.mac) + message + _variables(self.key, self.time_signed, FUDGE, error, other)
            self.first = False
        else:  # RFC 8945 5.3.1: later messages cover the previous MAC, the message and the timers
            data = _mac_field(self.mac) + message + _timers(self.time_signed, FUDGE)
        self.mac = hmac.new(self.key.secret, data, ALGORITHMS[self.key.algorithm]).digest()
        ident = struct.unpack_from("!H", message)[0]
        return append(message, self.key, self.time_signed, self.mac, ident, error, other)


def read(message: bytes) -> Signature | None:
    """The request's TSIG, or None if it carries none (it must be the last record)."""
    ancount, nscount, arcount = struct.unpack_from("!HHH", message, 6)
    if not arcount:
        return None
    position = _skip_name(message, 12) + 4
    last = position
    for _ in range(ancount + nscount + arcount):
        last = position
        position = _skip_name(message, position)
        if position + 10 > len(message):
            raise TsigError("a record is cut short")
        position += 10 + struct.unpack_from("!H", message, position + 8)[0]
    rtype = struct.unpack_from("!H", message, _skip_name(message, last))[0]
    if rtype != TSIG:
        return None
    key_name, at = _name(message, last)
    rdata = at + 10
    algorithm, at = _name(message, rdata)
    if at + 10 > len(message):
        raise TsigError("TSIG is cut short")
    high, low, fudge, size = struct.unpack_from("!HIHH", message, at)
    mac = message[at + 10 : at + 10 + size]
    at += 10 + size
    original_id, error, other_size = struct.unpack_from("!HHH", message, at)
    other = message[at + 6 : at + 6 + other_size]
    unsigned = struct.pack("!H", original_id) + message[2:10] + struct.pack("!H", arcount - 1) + message[12:last]
    return Signature(key_name, algorithm, (high << 32) | low, fudge, mac, original_id, error, other, unsigned)


def verify(signature: Signature, keys: dict[str, Key], now: int) -> tuple[int, Key | None]:
    """(TSIG error, the key): 0 when the request is good (RFC 8945 5.2)."""
    key = keys.get(signature.key_name)
    if key is None or key.algorithm != signature.algorithm:
        return BADKEY, None
    data = signature.unsigned + _variables(key, signature.time_signed, signature.fudge, signature.error, signature.other)
    expected = hmac.new(key.secret, data, ALGORITHMS[key.algorithm]).digest()
    if not hmac.compare_digest(expected, signature.mac):
        return BADSIG, key
    if abs(now - signature.time_signed) > signature.fudge:
        return BADTIME, key
    return 0, key


def unsigned_error(message: bytes, signature: Signature, error: int) -> bytes:
    """BADKEY/BADSIG answers carry a TSIG with no MAC: we cannot sign (RFC 8945 5.3.2)."""
    key = Key(signature.key_name, signature.algorithm, b"")
    ident = struct.unpack_from("!H", message)[0]
    return append(message, key, signature.time_signed, b"", ident, error, b"")


def append(message: bytes, key: Key, time_signed: int, mac: bytes, ident: int, error: int, other: bytes) -> bytes:
    rdata = (
        _wire(key.algorithm)
        + struct.pack("!HIHH", time_signed >> 32, time_signed & 0xFFFFFFFF, FUDGE, len(mac))
        + mac
        + struct.pack("!HHH", ident, error, len(other))
        + other
    )
    record = _wire(key.name) + struct.pack("!HHIH", TSIG, CLASS_ANY, 0, len(rdata)) + rdata
    arcount = struct.unpack_from("!H", message, 10)[0]
    return message[:10] + struct.pack("!H", arcount + 1) + message[12:] + record


def _variables(key: Key, time_signed: int, fudge: int, error: int, other: bytes) -> bytes:
    """RFC 8945 4.3.3: name, class, TTL, algorithm, timers, error, other data."""
    return (
        _wire(key.name)
        + struct.pack("!HI", CLASS_ANY, 0)
        + _wire(key.algorithm)
        + _timers(time_signed, fudge)
        + struct.pack("!HH", error, len(other))
        + other
    )


def _timers(time_signed: int, fudge: int) -> bytes:
    return struct.pack("!HIH", time_signed >> 32, time_signed & 0xFFFFFFFF, fudge)


def _mac_field(mac: bytes) -> bytes:
    return struct.pack("!H", len(mac)) + mac if mac else b""


def _wire(name: str) -> bytes:
    """A name in canonical wire form: lower case, uncompressed (RFC 8945 4.3.3)."""
    labels = [label.encode("ascii") for label in name.lower().strip(".").split(".") if label]
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\0"


def _skip_name(message: bytes, position: int) -> int:
    try:
        return skip_name(message, position)
    except FormError as error:
        raise TsigError(str(error)) from None


def _name(message: bytes, position: int) -> tuple[str, int]:
    """(the name as lower-case text with the final dot, where it ends), following pointers."""
    labels: list[str] = []
    end = None
    for _ in range(128):
        if position >= len(message):
            raise TsigError("a name runs past the end")
        length = message[position]
        if length & 0xC0 == 0xC0:
            end = end or position + 2
            position = struct.unpack_from("!H", message, position)[0] & 0x3FFF
            continue
        if length == 0:
            return ".".join(labels).lower() + ".", end or position + 1
        labels.append(message[position + 1 : position + 1 + length].decode("ascii", "replace"))
        position += 1 + length
    raise TsigError("a name loops")
