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

Each entry also carries the response's tally (see ``tally``): what the
transports count, computed once when the response is built, so that counting a
cache hit is one integer increment. The hit/miss bit of the tally is how hits
and misses are counted: nothing is added to this path for them.
"""

from __future__ import annotations

from ..zone.snapshot import Snapshot
from .respond import Responder
from .tally import as_hit, tally_of

NO_TALLY = -1  # for a message that gets no response (counted as dropped)


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
        self._bytes += len(response) + len(key)
        return response, tally

    def __len__(self) -> int:
        return len(self._udp) + len(self._tcp)

    def _clear(self) -> None:
        self._udp.clear()
        self._tcp.clear()
        self._bytes = 0
