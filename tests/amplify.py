"""How much bigger than the question the answer is, over UDP, for every name
and type a zone holds: the amplification an attacker with a spoofed source
could get from us.

Names come from the snapshot the engine serves (every name below the apex,
every service and the names below it, plus one name that does not exist);
each is asked over real UDP, as the shortest query can be (no padding, no
options), for each type in ``QTYPES`` and each EDNS variant in ``VARIANTS``.
Used by tests/test_amplification.py (the examples zone, a bound) and
bench/amplification.py (bigger zones, a flood, later RRL).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

QTYPES = {"A": 1, "NS": 2, "SOA": 6, "TXT": 16, "AAAA": 28, "SRV": 33, "DNSKEY": 48, "TYPE666": 666, "ANY": 255}
VARIANTS: dict[str, int | None] = {"no EDNS": None, "EDNS 512": 512, "EDNS 1232": 1232, "EDNS 4096": 4096}


@dataclass(frozen=True)
class Probe:
    name: str
    qtype: str
    variant: str
    query: int  # bytes sent
    response: int  # bytes back
    rcode: int
    truncated: bool

    @property
    def ratio(self) -> float:
        return self.response / self.query


def wire_name(labels: tuple[bytes, ...]) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def zone_names(snapshot) -> list[tuple[bytes, ...]]:
    """Every name the snapshot answers for, leftmost label first, plus one that does not exist."""
    origin = tuple(snapshot.origin)
    names = [below + origin for below in snapshot.apex]
    if snapshot.services:
        names.append((b"svc",) + origin)
    names += [(namespace, b"svc") + origin for namespace in snapshot.namespaces.keys()]
    for (namespace, service), entry in snapshot.services.items():
        names += [below + (service, namespace, b"svc") + origin for below in entry.names]
    names.append((b"no-such-name",) + origin)
    return names


def query(ident: int, name: bytes, qtype: int, payload: int | None) -> bytes:
    opt = b"" if payload is None else b"\x00" + struct.pack("!HHIH", 41, payload, 0, 0)
    return struct.pack("!HHHHHH", ident, 0, 1, 0, 0, bool(opt)) + name + struct.pack("!HH", qtype, 1) + opt


def ask(sock: socket.socket, address: tuple[str, int], message: bytes, tries: int = 3) -> bytes:
    for _ in range(tries):
        sock.sendto(message, address)
        try:
            while True:
                response = sock.recv(65535)
                if response[:2] == message[:2]:
                    return response
        except socket.timeout:
            continue
    raise AssertionError(f"no answer to {message!r}")


def walk(names, host: str, port: int, qtypes=QTYPES, variants=VARIANTS) -> list[Probe]:
    """Ask every (name, type, variant) once over UDP; a Probe for each."""
    probes = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        ident = 0
        for labels in names:
            name = wire_name(labels)
            text = b".".join(labels).decode(errors="replace") + "."
            for qname, qtype in qtypes.items():
                for variant, payload in variants.items():
                    ident = (ident + 1) & 0xFFFF
                    message = query(ident, name, qtype, payload)
                    response = ask(sock, (host, port), message)
                    probes.append(Probe(text, qname, variant, len(message), len(response),
                                        response[3] & 0xF, bool(response[2] & 0x02)))
    return probes


def worst(probes: list[Probe], variant: str) -> Probe:
    return max((probe for probe in probes if probe.variant == variant), key=lambda probe: probe.ratio)
