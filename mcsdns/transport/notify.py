"""NOTIFY (RFC 1996): tell the secondaries the serial moved, so they refresh now.

A change starts a short wait (``delay``); changes within it are coalesced
into one NOTIFY of the newest serial, so churn costs the secondaries one
refresh a ``delay``, not one a change. Each target is sent the NOTIFY over
UDP and sent it again, with the wait doubling, until it answers (RFC 1996 3.6)
or ``retries`` run out. Signed with TSIG when a key is given (RFC 8945).
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections import Counter

from ..engine import tsig
from ..zone.rrset import wire_labels

log = logging.getLogger(__name__)
Address = tuple[str, int]
NOTIFY_FLAGS = (4 << 11) | 0x0400  # opcode NOTIFY, AA (RFC 1996 3.7)
SOA, CLASS_IN = 6, 1


def notify_message(ident: int, origin: tuple[bytes, ...], key: tsig.Key | None = None, now: int = 0) -> bytes:
    message = struct.pack("!HHHHHH", ident, NOTIFY_FLAGS, 1, 0, 0, 0) + wire_labels(origin) + b"\0"
    message += struct.pack("!HH", SOA, CLASS_IN)
    return tsig.Signer(key, b"", now).sign(message) if key is not None else message


class _Reply(asyncio.DatagramProtocol):
    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.answered: asyncio.Future = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) >= 12 and not self.answered.done():
            ident, flags = struct.unpack_from("!HH", data)
            if ident == self.ident and flags & 0x8000 and (flags >> 11) & 0xF == 4:
                self.answered.set_result((flags & 0xF))


class Notifier:
    def __init__(
        self, origin: tuple[bytes, ...], targets: tuple[Address, ...], key: tsig.Key | None = None,
        delay: float = 1.0, timeout: float = 1.0, retries: int = 5, counts: Counter | None = None,
    ) -> None:
        self.origin, self.targets, self.key = origin, targets, key
        self.delay, self.timeout, self.retries = delay, timeout, retries
        self.counts: Counter = Counter() if counts is None else counts  # "sent", "answered", "gave-up"
        self._pending: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    def changed(self) -> None:
        """The serial moved: NOTIFY after ``delay``, once for every change until then."""
        if self.targets and (self._pending is None or self._pending.done()):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop, so nothing serving: nobody to tell
            self._pending = loop.create_task(self._after_delay(), name="notify")

    async def _after_delay(self) -> None:
        await asyncio.sleep(self.delay)
        for target in self.targets:  # each target on its own: a dead one does not hold the rest
            task = asyncio.get_running_loop().create_task(self._send(target))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, target: Address) -> None:
        wait = self.timeout
        for attempt in range(1 + self.retries):
            ident = random.getrandbits(16)
            message = notify_message(ident, self.origin, self.key, int(time.time()))
            loop = asyncio.get_running_loop()
            transport, protocol = await loop.create_datagram_endpoint(lambda: _Reply(ident), remote_addr=target)
            try:
                transport.sendto(message)
                self.counts["sent"] += 1
                rcode = await asyncio.wait_for(asyncio.shield(protocol.answered), wait)
                self.counts["answered"] += 1
                log.debug("NOTIFY to %s answered, rcode %d", target, rcode)
                return
            except asyncio.TimeoutError:
                wait *= 2
            except OSError as error:
                log.debug("NOTIFY to %s: %s", target, error)
                await asyncio.sleep(wait)
                wait *= 2
            finally:
                transport.close()
        self.counts["gave-up"] += 1
        log.warning("NOTIFY to %s:%d unanswered after %d tries", *target, 1 + self.retries,
                    extra={"event": "notify-unanswered", "target": f"{target[0]}:{target[1]}"})

    async def close(self) -> None:
        for task in [self._pending, *self._tasks]:
            if task is not None:
                task.cancel()
