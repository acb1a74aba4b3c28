"""Responses remembered by the query's bytes, for one snapshot.

A response depends only on the query less its 2-byte ID (flags, question, EDNS)
and on the snapshot, so a repeated question is answered by patching the ID
into bytes already built. A new snapshot empties the cache; so does reaching
either bound (entries, bytes), which keeps a flood of distinct questions from
growing it without end.
"""

from __future__ import annotations

from ..zone.snapshot import Snapshot
from .respond import Responder


class ResponseCache:
    def __init__(self, responder: Responder, max_entries: int = 10_000, max_bytes: int = 16 << 20) -> None:
        self.responder = responder
        self.max_entries = max_entries
        self.max_bytes = max_bytes  # TCP answers reach 64 KiB: count bytes, not only entries
        self._snapshot: Snapshot | None = None
        self._entries: dict[tuple[bytes, bool], bytes] = {}
        self._bytes = 0

    def respond(self, message: bytes, snapshot: Snapshot, udp: bool = True) -> bytes | None:
        if snapshot is not self._snapshot:
            self._clear()
            self._snapshot = snapshot
        key = (message[2:], udp)
        cached = self._entries.get(key)
        if cached is not None:
            return message[:2] + cached[2:]
        response = self.responder.respond(message, snapshot, udp)
        if response is not None:
            if len(self._entries) >= self.max_entries or self._bytes + len(response) > self.max_bytes:
                self._clear()
            self._entries[key] = response
            self._bytes += len(response) + len(key[0])
        return response

    def _clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
