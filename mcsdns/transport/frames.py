"""DNS over TCP framing (RFC 1035 4.2.2): every complete frame in a buffer answered at once.

A client that pipelines (RFC 7766 6.2.1.1) sends many queries per segment; the
TCP loop reads what has arrived and answers all the complete frames in it, so
the cost of a read, a timeout and a write is shared by those queries instead
of paid for each one (with a read, a timeout task and a drain per query, TCP
ran at a tenth of the UDP rate).
"""

from __future__ import annotations

import logging
import struct

from .stats import TransportStats

log = logging.getLogger(__name__)
LENGTH = struct.Struct("!H")


def answer_frames(data: bytes, handler, stats: TransportStats) -> tuple[list[bytes], int, bool]:
    """(length-prefixed responses and responses, in order; bytes of ``data`` used;
    whether to end the connection). A partial frame at the end is left unused.
    A frame that gets no answer is counted as dropped; an empty frame or a bug
    ends the connection after the answers before it."""
    out: list[bytes] = []
    tallies, at, end = stats.tallies, 0, len(data)
    while end - at >= 2:
        size = (data[at] << 8) | data[at + 1]
        if end - at - 2 < size:
            break
        message = data[at + 2 : at + 2 + size]
        at += 2 + size
        try:
            response, tally = handler(message, False)
        except Exception:  # a bug costs this connection, never the server
            log.exception("no answer to a %d-byte TCP query", size)
            stats.dropped += 1
            return out, at, True
        if response is None:
            stats.dropped += 1
            if size == 0:
                return out, at, True
            continue
        out.append(LENGTH.pack(len(response)))
        out.append(response)
        tallies[tally] += 1
    return out, at, False
