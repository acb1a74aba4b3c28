"""Zone transfers over TCP: the hook the TCP server calls before the engine.

A transfer query gets several messages (``engine.transfer`` builds them); this
module only reads the clock, logs each transfer and counts it. Everything else
(who may, TSIG, AXFR or IXFR) is decided in the engine, without I/O.
"""

from __future__ import annotations

import logging
import struct
import time
from collections import Counter
from typing import Callable, Iterator

from ..heap import settle
from ..engine import tsig
from ..engine.transfer import Policy, is_transfer, maybe_signed, sign_answer, transfer
from ..zone.history import History
from ..zone.rrset import Labels
from .udp import Handler

log = logging.getLogger(__name__)
SETTLE_EVERY = 64  # messages (~1 MiB) between freezes of what packing them left alive


def signing(handler: Handler, policy: Policy) -> Handler:
    """The engine's handler, answering signed queries signed (RFC 8945 5.3): a
    secondary signs its SOA probes (Knot over TCP, NSD over UDP). Used only with
    --tsig-key-file, so the query path is unchanged without keys; with them, an
    unsigned query costs one bytes search more (``maybe_signed``)."""

    def answer(message: bytes, udp: bool) -> tuple[bytes | None, int]:
        if not maybe_signed(message):
            return handler(message, udp)
        try:
            signature = tsig.read(message)
        except (tsig.TsigError, struct.error, IndexError):
            signature = None
        # A key we hold: the engine answers the query without its TSIG (it
        # answers any TSIG it sees BADKEY: it holds no keys), and we sign that.
        known = signature is not None and signature.key_name in policy.keys
        response, tally = handler(message[:2] + signature.unsigned[2:] if known else message, udp)
        if response is not None:
            response = sign_answer(message, response, policy, int(time.time()))
        return response, tally

    return answer


class Transfers:
    def __init__(self, histories: Callable[[Labels], History | None], policy: Policy) -> None:
        self.histories = histories
        self.policy = policy
        self.counts: Counter = Counter()  # kind ("axfr", "ixfr", "refused", ...) -> transfers

    def __call__(self, message: bytes, peer: str) -> Iterator[bytes] | None:
        """The messages to send, or None when the message is no transfer query."""
        return self._sending(message, peer) if is_transfer(message) else None

    def _sending(self, message: bytes, peer: str) -> Iterator[bytes]:
        """The messages as they are packed; logged and counted once all are out."""
        sent = 0
        try:
            result = transfer(message, peer, self.histories, self.policy, int(time.time()))
            for reply in result.messages:
                sent += 1
                if sent % SETTLE_EVERY == 0:
                    settle()  # what the last messages packed: out of the collector's way
                yield reply
        except Exception:  # a bug costs this transfer (the connection closes), never the server
            log.exception("transfer to %s failed after %d messages", peer, sent)
            self.counts["failed"] += 1
            return
        self.counts[result.kind] += 1
        level = logging.INFO if result.zone else logging.WARNING
        log.log(
            level, "transfer to %s: %s %s serial %s, %d records in %d messages", peer, result.kind,
            result.zone or "-", result.serial, result.records, sent,
            extra={"event": "transfer", "peer": peer, "kind": result.kind, "zone": result.zone,
                   "serial": result.serial, "records": result.records},
        )
