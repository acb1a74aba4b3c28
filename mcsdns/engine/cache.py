"""Responses remembered by the query's bytes, for one snapshot.

A response depends only on the query less its 2-byte ID (flags, question, EDNS)
and on the snapshot, so a repeated question is answered by patching the ID
into bytes already built. A new snapshot empties the cache; so does reaching
either bound (entries, bytes), which keeps a flood of distinct questions from
growing it without end.

The UDP entries are a plain dict keyed by the query less its ID, handed to the
UDP loop (``udp_hits``) so that a hit there costs one dict lookup and an ID
splice, with no call into this class. The loop asks for the dict once per
wakeup with the store's current snapshot; the store only changes on the event
loop thread, between wakeups, so the dict it reads always belongs to the
snapshot of that wakeup: the cache is invalidated exactly when the zone changes.

A new snapshot that changed some services keeps the positive answers of all
the others (``carry``): an answer to a name below ``<svc>.<ns>.svc.<zone>``
with records and no SOA is built from that service's entry alone, and an
unchanged service keeps its entry object, so its bytes cannot differ. Every
other response (negative answers carry the SOA serial; the apex; reverse
names, which gather several services) is dropped. Under 100 changes a second,
emptying the whole cache each time made nearly every query a miss.

Each entry also carries the response's tally (see ``tally``): what the
transports count, computed once when the response is built, so that counting a
cache hit is one integer increment. The hit/miss bit of the tally is how hits
and misses are counted: nothing is added to this path for them.
"""

from __future__ import annotations

from typing import Iterable

from ..zone.snapshot import Snapshot
from .respond import Responder
from .tally import as_hit, tally_of

NO_TALLY = -1  # for a message that gets no response (counted as dropped)
_SVC = b"svc"


class ResponseCache:
    def __init__(self, responder: Responder, max_entries: int = 10_000, max_bytes: int = 16 << 20) -> None:
        self.responder = responder
        self.max_entries = max_entries
        self.max_bytes = max_bytes  # TCP answers reach 64 KiB: count bytes, not only entries
        self._snapshot: Snapshot | None = None
        # query less its ID -> (response less its ID, tally); one dict per transport
        # (the size limit differs), cleared in place: the UDP loop holds a reference.
        self._udp: dict[bytes, tuple[bytes, int]] = {}
        self._tcp: dict[bytes, tuple[bytes, int]] = {}
        self._bytes = 0
        # What a carry must drop: the entries of each service, and all the rest.
        self._by_service: dict[tuple[bytes, bytes], list[tuple[dict, bytes, int]]] = {}
        self._volatile: list[tuple[dict, bytes, int]] = []

    def respond(self, message: bytes, snapshot: Snapshot, udp: bool = True) -> bytes | None:
        return self.answer(message, snapshot, udp)[0]

    def udp_hits(self, snapshot: Snapshot) -> dict[bytes, tuple[bytes, int]]:
        """The UDP entries for ``snapshot`` (emptied first if it is new): read them
        as ``hits.get(message[2:])`` -> (response less its ID, hit tally) or None,
        and send ``message[:2] + response``; on None call ``answer``."""
        if snapshot is not self._snapshot:
            self._clear()
            self._snapshot = snapshot
        return self._udp

    def answer(self, message: bytes, snapshot: Snapshot, udp: bool = True) -> tuple[bytes | None, int]:
        """(response or None, its tally)."""
        if snapshot is not self._snapshot:
            self._clear()
            self._snapshot = snapshot
        entries = self._udp if udp else self._tcp
        key = message[2:]
        cached = entries.get(key)
        if cached is not None:
            return message[:2] + cached[0], cached[1]
        response = self.responder.respond(message, snapshot, udp)
        if response is None:
            return None, NO_TALLY
        if len(self) >= self.max_entries or self._bytes + len(response) > self.max_bytes:
            self._clear()
        tally = tally_of(response, False)
        entries[key] = (response[2:], as_hit(tally))
        size = len(response) + len(key)
        self._bytes += size
        service = _service_of(message, response, snapshot)
        place = (entries, key, size)
        if service is None:
            self._volatile.append(place)
        else:
            self._by_service.setdefault(service, []).append(place)
        return response, tally

    def carry(self, old: Snapshot, new: Snapshot, changed: Iterable[tuple[bytes, bytes]]) -> None:
        """``new`` replaces ``old``, changing only the services ``changed`` (keys as
        in ``Snapshot.services``): keep the answers that cannot differ. A cache
        holding any other snapshot is left alone (emptied on its next use)."""
        if self._snapshot is not old or not isinstance(new, Snapshot) or new.origin != old.origin:
            return
        for service in changed:
            self._drop(self._by_service.pop(service, ()))
        self._drop(self._volatile)
        self._volatile = []
        self._snapshot = new

    def _drop(self, places: Iterable[tuple[dict, bytes, int]]) -> None:
        for entries, key, size in places:
            if entries.pop(key, None) is not None:
                self._bytes -= size

    def __len__(self) -> int:
        return len(self._udp) + len(self._tcp)

    def _clear(self) -> None:
        self._udp.clear()
        self._tcp.clear()
        self._bytes = 0
        self._by_service.clear()
        self._volatile = []


def _service_of(message: bytes, response: bytes, snapshot) -> tuple[bytes, bytes] | None:
    """The service a response is made of alone, or None: a NOERROR answer with
    records and no authority (so no SOA), to a name below <svc>.<ns>.svc.<zone>
    of a single zone."""
    if not isinstance(snapshot, Snapshot) or response[3] & 0xF or response[6:8] == b"\0\0" or response[8:10] != b"\0\0":
        return None
    labels, position = [], 12
    while True:  # the question name: never compressed, already read once by the engine
        length = message[position]
        if not length:
            break
        labels.append(message[position + 1 : position + 1 + length].lower())
        position += 1 + length
    origin = snapshot.origin
    cut = len(labels) - len(origin)
    if cut < 3 or tuple(labels[cut:]) != origin or labels[cut - 1] != _SVC:
        return None
    return labels[cut - 2], labels[cut - 3]
