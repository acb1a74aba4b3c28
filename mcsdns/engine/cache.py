"""Responses remembered by the query's bytes, for one snapshot.

A response depends only on the query less its 2-byte ID (flags, question, EDNS)
and on the snapshot, so a repeated question is answered by patching the ID
into bytes already built. A new snapshot empties the cache; so does reaching
the bound, which keeps a flood of distinct names from growing it without end.
"""

from __future__ import annotations

from ..zone.snapshot import Snapshot
from .respond import Responder


class ResponseCache:
    def __init__(self, responder: Responder, max_entries: int = 10_000) -> None:
        self.responder = responder
        self.max_entries = max_entries
        self._snapshot: Snapshot | None = None
        self._entries: dict[tuple[bytes, bool], bytes] = {}

    def respond(self, message: bytes, snapshot: Snapshot, udp: bool = True) -> bytes | None:
        if snapshot is not self._snapshot:
            self._entries.clear()
            self._snapshot = snapshot
        key = (message[2:], udp)
        cached = self._entries.get(key)
        if cached is not None:
            return message[:2] + cached[2:]
        response = self.responder.respond(message, snapshot, udp)
        if response is not None:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = response
        return response
