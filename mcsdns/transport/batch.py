"""DNS over UDP in batches: recvmmsg and sendmmsg (Linux) called through ctypes.

Per datagram, ``socket.recvfrom`` and ``sendto`` cost ~1.3 us of Python around
the system calls here: a 64 KiB buffer allocated and shrunk, the peer address
turned into a ``(str, int)`` and parsed back, the GIL dropped and taken twice.
That is more than NSD spends in user space on a whole query. This loop instead
receives up to ``SLOTS`` datagrams in one call into fixed buffers, and sends the
answers in one call: each answer's header ID is sent straight from the query's
buffer and its peer address from where the kernel wrote it, so per query Python
only copies the query less its ID into a ``bytes`` for the cache lookup and the
cached response into its slot.

The buffers are laid out once (ctypes structures over them, ``memoryview``s to
read lengths and write them) and never move. They live in anonymous memory
maps: a slot is 64 KiB so that any datagram fits whole (no truncation to handle),
but only the pages a query or an answer touches are ever resident.

Only for Linux with a libc that has both calls (``available()``); the plain
loop in ``udp.py`` is the fallback and stays tested. Answers are the same
bytes either way: the response comes from the same cache and engine.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import mmap
import os
import socket
import sys
from collections import _count_elements  # Counter.update's C loop
from time import perf_counter
from typing import Callable

from .stats import TransportStats

log = logging.getLogger(__name__)

SLOTS = 64  # datagrams per system call
ROUNDS = 4  # calls per wakeup: 256 datagrams at most before the loop gets its turn, as the plain loop
SLOT = 65536  # bytes per receive and per send slot: a UDP datagram of any size fits
_RETRY = (errno.EINTR,)
_EMPTY = (errno.EAGAIN, errno.EWOULDBLOCK)


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint)]


_HEADER = ctypes.sizeof(_MMsgHdr)
_LEN_INDEX = _MMsgHdr.len.offset // 4  # of a message's msg_len, in 32-bit words from its header
_STRIDE32 = _HEADER // 4


def _calls():
    """(recvmmsg, sendmmsg) from libc, or None where they are missing."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        receive, send = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    receive.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    receive.restype = send.restype = ctypes.c_int
    return receive, send


_CALLS = _calls()


def _counted(tally) -> bool:
    return tally is not None


def available() -> bool:
    return _CALLS is not None


def _address(buffer, offset: int = 0) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer, offset))


class BatchDrain:
    """The reader callback for one UDP socket: answers what is queued, in batches.

    ``handler(message, True)`` -> (response or None, tally) answers a query the
    cache does not hold; ``hits()`` returns the cache's UDP entries for the zone
    as it is now (``ResponseCache.udp_hits``), read once per wakeup.
    ``limiter(message, response, peer)``, when given (response rate limiting),
    sees every answer and returns what to send instead: the response itself, a
    replacement (e.g. a truncated slip), or None to send nothing; only the
    response itself is counted as sent (the limiter counts the others). If it
    has ``is_exempt(host)`` (true for a source it never limits, by address alone),
    answers to such a source skip it."""

    def __init__(
        self, sock: socket.socket, handler, hits: Callable[[], dict], stats: TransportStats, limiter=None
    ) -> None:
        if _CALLS is None:
            raise OSError("recvmmsg/sendmmsg are not available here")
        self.sock, self.fd, self.handler, self.hits, self.stats = sock, sock.fileno(), handler, hits, stats
        self._receive, self._send = _CALLS
        self.family = sock.family
        name_size = 28 if sock.family == socket.AF_INET6 else 16  # sockaddr_in6 / sockaddr_in: exact, so the
        # kernel writes back the same length and no field needs resetting between calls
        self._queries = mmap.mmap(-1, SLOTS * SLOT)
        self._answers = mmap.mmap(-1, SLOTS * SLOT)
        self._names = mmap.mmap(-1, SLOTS * name_size)  # slices of an mmap are bytes: hashable
        self._name_size = name_size
        self._rvec = (_MMsgHdr * SLOTS)()
        self._svec = (_MMsgHdr * SLOTS)()
        self._riov = (_IoVec * SLOTS)()
        self._siov = (_IoVec * (2 * SLOTS))()  # per answer: its ID (from the query's slot), the rest (cached bytes)
        for index in range(SLOTS):
            query, name = _address(self._queries, index * SLOT), _address(self._names, index * name_size)
            self._riov[index].base, self._riov[index].len = query, SLOT
            self._siov[2 * index].base, self._siov[2 * index].len = query, 2
            self._siov[2 * index + 1].base = _address(self._answers, index * SLOT)
            for vector, iov, count in ((self._rvec, self._riov, 1), (self._svec, self._siov, 2)):
                header = vector[index].hdr
                header.name, header.namelen, header.iovlen = name, name_size, count
                header.iov = ctypes.addressof(iov[index * count])
        # Views, one item per slot: msg_len as recvmmsg wrote it; the base and length of each answer's rest.
        self._sizes = memoryview(self._rvec).cast("B").cast("I")[_LEN_INDEX::_STRIDE32]
        answer_iov = memoryview(self._siov).cast("B").cast("Q")  # 4 words per slot: ID base, 2, rest base, length
        self._rest_length = answer_iov[3::4]
        self._bases = [index * SLOT for index in range(SLOTS)]
        self._pending: list = [None] * SLOTS  # the tally of each slot's answer (None: not ours to count)
        # Where a source address is in its sockaddr (bytes), and each of its 32-bit words, one item per slot.
        self._source_span = (8, 24) if sock.family == socket.AF_INET6 else (4, 8)
        words = memoryview(self._names).cast("I")
        per_slot = name_size // 4
        self._address_words = ([words[word::per_slot] for word in range(2, 6)] if sock.family == socket.AF_INET6
                               else [words[1::per_slot]])
        self._rvec_at = ctypes.addressof(self._rvec)
        self._svec_at = ctypes.addressof(self._svec)
        self.limiter = limiter
        self._hosts: dict[bytes, tuple[str, bool]] = {}  # source address bytes -> (text, exempt), for the limiter
        self._exempt: set[bytes] = set()  # the exempt ones among them

    def __call__(self) -> None:
        receive, fd, vector = self._receive, self.fd, self._rvec_at
        hits = self.hits().get  # the zone cannot change during this call: it changes on this thread
        answered = 0
        started = perf_counter()
        for _ in range(ROUNDS):
            count = receive(fd, vector, SLOTS, socket.MSG_DONTWAIT, None)  # never wait for a full batch
            if count <= 0:
                if count == 0 or ctypes.get_errno() in _EMPTY:
                    break
                if ctypes.get_errno() not in _RETRY:  # e.g. ICMP port unreachable reported on the socket
                    log.debug("udp receive: %s", os.strerror(ctypes.get_errno()))
                continue
            answered += self._answer(count, hits)
            if count < SLOTS:
                break
        self.stats.timed(answered, perf_counter() - started)

    def _answer(self, count: int, hits) -> int:
        """Answer the ``count`` queries received; how many answers went out."""
        queries, answers, rest_length, pending = self._queries, self._answers, self._rest_length, self._pending
        limiter = self.limiter
        if limiter is not None and self._exempt and self._one_exempt_source(count):
            limiter = None  # the whole batch is from one source the limiter exempts: as without it
        names, known, size, (source_at, source_end) = self._names, self._hosts, self._name_size, self._source_span
        first = sent = 0  # the run of slots [first, index) waiting to be sent
        quiet = False  # a slot of this batch is not counted here: no answer, or the limiter's replacement
        for index, base, length in zip(range(count), self._bases, self._sizes[:count].tolist()):
            hit = hits(queries[base + 2 : base + length])
            if hit is None:
                hit = self._miss(queries[base : base + length], index)
            if limiter is not None and hit is not None:
                at = index * size
                source = known.get(names[at + source_at : at + source_end])
                if source is None or not source[1]:  # unknown yet, or not exempt from the limiter
                    hit, quiet = self._limited(index, hit), True  # a replacement's tally is None
            if hit is None:  # nothing to send: the run before it goes now
                sent += self._flush(first, index)
                first, pending[index], quiet = index + 1, None, True
                continue
            rest, pending[index] = hit
            answers[base : base + len(rest)] = rest
            rest_length[index] = len(rest)
        sent += self._flush(first, count)
        tallies = pending[:count]  # counted together, in C (a failed send was taken back from its tally)
        _count_elements(self.stats.tallies, filter(_counted, tallies) if quiet else tallies)
        return sent

    def _limited(self, index: int, hit: tuple):
        """Slot ``index``'s answer through the limiter: ``hit`` itself, a replacement
        (its tally None: the limiter counts it), or None to send nothing."""
        base = index * SLOT
        message = self._queries[base : base + self._sizes[index]]
        response = message[:2] + hit[0]
        try:
            sent = self.limiter(message, response, self._peer_of(index))
        except Exception:  # a bug must cost one answer, never the batch
            log.exception("no answer to a %d-byte query from %s", len(message), self.peer(index))
            self.stats.dropped += 1
            sent = None
        if sent is None or sent is response:
            return sent and hit
        self._queries[base : base + 2] = sent[:2]
        return sent[2:], None

    def _one_exempt_source(self, count: int) -> bool:
        """Whether the first ``count`` queries all come from one address, exempt from the limiter
        (a resolver in front, a load generator): then the loop skips the limiter for the batch."""
        runs = [view[:count].tobytes() for view in self._address_words]  # each a 32-bit word of the address
        return all(run == run[:4] * count for run in runs) and b"".join(run[:4] for run in runs) in self._exempt

    def _miss(self, message: bytes, index: int) -> tuple[bytes, int] | None:
        """The engine's answer to a query the cache does not hold, as a hit: (response less its ID, tally)."""
        try:
            response, tally = self.handler(message, True)
        except Exception:  # a bug must cost one answer, never the server
            log.exception("no answer to a %d-byte query from %s", len(message), self.peer(index))
            response = None
        if response is None:
            self.stats.dropped += 1
            return None
        self._queries[index * SLOT : index * SLOT + 2] = response[:2]  # the ID the engine wrote (always the query's)
        return response[2:], tally

    def _flush(self, first: int, end: int) -> int:
        """Send the answers in slots [first, end); how many went out. A failed one
        (full buffer, a peer address the kernel refuses) is dropped, as UDP may."""
        sent_total = 0
        while first < end:
            sent = self._send(self.fd, self._svec_at + first * _HEADER, end - first, socket.MSG_DONTWAIT)
            if sent > 0:
                first += sent
                sent_total += sent
                continue
            error = ctypes.get_errno()
            if sent < 0 and error in _RETRY:
                continue
            log.debug("udp send to %s: %s", self.peer(first), os.strerror(error))
            if self._pending[first] is not None:  # None: a limiter's replacement, not counted
                self.stats.tallies[self._pending[first]] -= 1
            first += 1
        return sent_total

    def _peer_of(self, index: int) -> tuple[str, int]:
        """``peer(index)`` for the limiter: the address text is remembered by its
        bytes (a bounded memo), with whether the limiter exempts it (then the
        loop skips the limiter for it: ``is_exempt(host)``, where the limiter has one,
        depends on the address alone); only the port is read each time."""
        at = index * self._name_size
        address = self._names[at + self._source_span[0] : at + self._source_span[1]]
        known = self._hosts.get(address)
        if known is None:
            if len(self._hosts) >= 4096:
                self._hosts.clear()
                self._exempt.clear()
            host = self.peer(index)[0]
            exempt = getattr(self.limiter, "is_exempt", None)
            known = self._hosts[address] = (host, bool(exempt and exempt(host)))
            if known[1]:
                self._exempt.add(address)
        return known[0], self._names[at + 2] << 8 | self._names[at + 3]

    def peer(self, index: int) -> tuple[str, int]:
        """The source address of the query in slot ``index`` (for log lines)."""
        name = bytes(self._names[index * self._name_size : (index + 1) * self._name_size])
        port = int.from_bytes(name[2:4], "big")
        if self.family == socket.AF_INET6:
            return socket.inet_ntop(socket.AF_INET6, name[8:24]), port
        return socket.inet_ntop(socket.AF_INET, name[4:8]), port
