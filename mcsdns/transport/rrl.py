"""Response rate limiting (RRL) for UDP, so a spoofed source cannot turn the
server into an amplifier (a 1232-byte answer to a 50-byte question).

Behaviour follows the RRL of BIND, Knot and NSD (their documentation, not their
code). Each response falls in a *bucket* keyed by the client's prefix (/24 for
IPv4, /56 for IPv6: a victim's neighbours share its budget) and what it is:

- ``answer``: NOERROR (answers and NODATA), per question name and type, the name
  case-folded so 0x20 case games do not open fresh buckets;
- ``nxdomain``: per zone; we serve one, so one bucket per prefix: a flood of
  random names under the zone counts as one;
- ``error``: REFUSED, FORMERR, SERVFAIL, NOTIMP..., one bucket per prefix.

A bucket is credited ``rate`` responses a second, holds at most one second's
worth, and pays one per response (a token bucket, as Knot). With a ``window``
(BIND's), a bucket over its rate goes into debt, down to ``window`` seconds'
worth, so a source that flooded stays limited until it has been quiet that long.
A response over the limit is dropped, except every ``slip``-th, which is sent as
a tiny TC=1 answer (header, question, OPT): no amplification, and a real client
behind the spoofed address retries over TCP, which is not limited.

Cost on the query path: one call. The clock is not read per query: a loop timer
ticks ``now`` once a second. Known sources are remembered (address -> its
prefix's buckets, or EXEMPT), so the common case is two dict lookups and a
compare.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

log = logging.getLogger(__name__)

KINDS = ("answer", "nxdomain", "error")
ANSWER, NXDOMAIN, ERROR = range(3)
EXEMPT: dict = {}  # the buckets of every exempt source: never filled, told apart by identity
MAX_SOURCES = 65536  # remembered addresses before the memo is emptied
SWEEP_FROM = 4096  # buckets kept without a sweep; past it, each tick drops the settled ones
MAX_BUCKETS = 65536  # past it, a sweep runs at once (a flood of distinct sources or names)
LOG_EVERY = 10  # seconds between warnings that we are limiting
_NX_KEY, _ERROR_KEY = b"\xffnx", b"\xfferr"  # 0xff never starts a name in wire form
# An answer's key: the response from its question on, 96 bytes of it. That holds
# the name and type of any but a very long name (names sharing their first ~90
# bytes then share a bucket: stricter, never looser), and costs a third of
# finding where the name ends (bytes.find with a start is slow to call).
# What follows the question is the answer itself, fixed for a name and type as
# long as the responder never shuffles records (it does not; if it ever rotates
# them, key on the question alone, or rotation opens fresh buckets).
_KEY_END = 12 + 96
_BALANCE, _SECOND, _RATE, _KIND, _SLIP = range(5)  # a bucket is a list of these


class RateLimiter:
    """``limiter(message, response, peer)`` -> the bytes to send (``response``
    itself, or a TC=1 slip) or None (drop). Counters are plain ints, read by the
    metrics collector at scrape time.

    Buckets live in one dict per source prefix (``prefixes``), and every address
    seen is remembered with its prefix's dict (``_sources``): a lookup by the
    short name key is cheaper than building and hashing prefix + name."""

    def __init__(
        self,
        rate: int,
        nxdomain_rate: int | None = None,
        error_rate: int | None = None,
        slip: int = 2,
        window: int = 0,
        ipv4_prefix: int = 24,
        ipv6_prefix: int = 56,
        exempt: tuple[str, ...] = (),
    ) -> None:
        self.rates = (rate, rate if nxdomain_rate is None else nxdomain_rate, rate if error_rate is None else error_rate)
        self.slip = slip
        self.window = window
        self.bits = {4: ipv4_prefix, 6: ipv6_prefix}
        self.exempt = [ipaddress.ip_network(net, strict=False) for net in exempt]
        self._exempt = [  # (version, network >> shift, shift), for prefix_of
            (net.version, int(net.network_address) >> (net.max_prefixlen - net.prefixlen), net.max_prefixlen - net.prefixlen)
            for net in self.exempt
        ]
        self.now = 0  # whole seconds since start, ticked by ``start``
        self.dropped = [0] * len(KINDS)
        self.slipped = [0] * len(KINDS)
        self.prefixes: dict[bytes, dict[bytes, list[int]]] = {}  # prefix -> key -> bucket
        self.buckets = 0  # how many, about (exact after each sweep)
        self._sources: dict[str, dict[bytes, list[int]]] = {}  # address -> its prefix's buckets
        self._quiet_until = 0  # no warning before this second
        self._timer: asyncio.TimerHandle | None = None

    @property
    def enabled(self) -> bool:
        return any(self.rates)

    def __call__(self, message: bytes, response: bytes, peer: tuple) -> bytes | None:
        buckets = self._sources.get(peer[0])
        if buckets is None:
            buckets = self._learn(peer[0])
        if buckets is EXEMPT:
            return response
        rcode = response[3] & 0xF
        if rcode:
            key = _NX_KEY if rcode == 3 else _ERROR_KEY
        else:  # the echoed question (and what follows), case-folded
            key = response[12:_KEY_END].lower()
        bucket = buckets.get(key)
        if bucket is not None and bucket[1] == self.now and bucket[0] > 0:  # _SECOND, _BALANCE
            bucket[0] -= 1
            return response
        return self._settle(buckets, key, bucket, rcode, response, peer[0])

    def _settle(self, buckets: dict, key: bytes, bucket: list[int] | None, rcode: int, response: bytes,
                host: str) -> bytes | None:
        """The slower path: a new bucket, a new second, or over the limit."""
        now = self.now
        if bucket is None:
            kind = ANSWER if rcode == 0 else NXDOMAIN if rcode == 3 else ERROR
            rate = self.rates[kind]
            if not rate:
                return response  # this kind is not limited
            if self.buckets >= MAX_BUCKETS:
                self.sweep()
                buckets = self._learn(host)  # the sweep emptied the memo, and may have dropped this dict
            buckets[key] = [rate - 1, now, rate, kind, 0]
            self.buckets += 1
            return response
        rate = bucket[_RATE]
        if bucket[_SECOND] != now:  # credit the seconds gone by, at most one second's worth
            bucket[_BALANCE] = min(rate, bucket[_BALANCE] + rate * (now - bucket[_SECOND]))
            bucket[_SECOND] = now
        bucket[_BALANCE] -= 1
        if bucket[_BALANCE] >= 0:
            return response
        bucket[_BALANCE] = max(bucket[_BALANCE], -rate * self.window)  # the debt, at most window seconds
        return self._limited(bucket, response, host)

    def _limited(self, bucket: list[int], response: bytes, host: str) -> bytes | None:
        kind = bucket[_KIND]
        if self.now >= self._quiet_until:
            self._quiet_until = self.now + LOG_EVERY
            source = self.network_of(host)
            log.warning(
                "rate limiting %s responses to %s (over %d/s); if that is CoreDNS, list it in --rrl-exempt",
                KINDS[kind], source, bucket[_RATE], extra={"event": "rrl", "prefix": source, "kind": KINDS[kind]},
            )
        if self.slip:  # the first over the limit slips, then every slip-th
            slips = bucket[_SLIP] == 0
            bucket[_SLIP] = (bucket[_SLIP] + 1) % self.slip
            if slips:
                self.slipped[kind] += 1
                return truncated(response)
        self.dropped[kind] += 1
        return None

    def _learn(self, host: str) -> dict[bytes, list[int]]:
        if len(self._sources) >= MAX_SOURCES:
            self._sources.clear()  # only a memo: a flood of spoofed sources costs it, not correctness
        prefix = self.prefix_of(host)
        buckets = EXEMPT if prefix is None else self.prefixes.setdefault(prefix, {})
        self._sources[host] = buckets
        return buckets

    def is_exempt(self, host: str) -> bool:
        """Whether answers to ``host`` are never limited (``--rrl-exempt``): by its
        address alone, so a caller may remember it (the batch UDP loop does)."""
        return self.prefix_of(host) is None

    def prefix_of(self, host: str) -> bytes | None:
        """Version byte + the address's first bits, or None for an exempt source.
        Plain ints, not ``ipaddress``: under a flood of spoofed sources every
        query brings a new address, and this is then on the query path."""
        try:
            if ":" in host:
                version, packed = 6, socket.inet_pton(socket.AF_INET6, host.partition("%")[0])  # less the scope
            else:
                version, packed = 4, socket.inet_pton(socket.AF_INET, host)
        except OSError:
            return b"?" + host.encode()  # not from a socket we bound; its own bucket
        value = int.from_bytes(packed, "big")
        for net_version, net_value, net_shift in self._exempt:
            if net_version == version and value >> net_shift == net_value:
                return None
        shift = len(packed) * 8 - self.bits[version]
        return bytes((version,)) + (value >> shift << shift).to_bytes(len(packed), "big")[: -(shift // 8) or None]

    def network_of(self, host: str) -> str:
        """The source prefix of ``host`` as a CIDR, for the log."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return host
        return str(ipaddress.ip_network(f"{address}/{self.bits[address.version]}", strict=False))

    def tick(self, seconds: int = 1) -> None:
        self.now += seconds
        if not self.window:
            # Without debt every bucket is full again a second later: forgetting
            # them all is the same as keeping them, and O(1) (a flood of spoofed
            # sources leaves a bucket per source each second).
            if self.buckets:
                self.prefixes, self._sources, self.buckets = {}, {}, 0
        elif self.buckets > SWEEP_FROM:
            self.sweep()

    def sweep(self) -> None:
        """Forget buckets that would be full again: they hold nothing a new one would not."""
        now, kept = self.now, 0
        for prefix, buckets in list(self.prefixes.items()):
            settled = [key for key, b in buckets.items() if b[_BALANCE] + b[_RATE] * (now - b[_SECOND]) >= b[_RATE]]
            for key in settled:
                del buckets[key]
            if not buckets:
                del self.prefixes[prefix]
            kept += len(buckets)
        if kept >= MAX_BUCKETS:  # all in debt: keep the memory bound, lose the debts
            self.prefixes, kept = {}, 0
        self.buckets = kept
        self._sources.clear()  # it may point at prefixes just dropped

    def start(self) -> None:
        """Tick ``now`` once a second on the running loop, at whole seconds from now (no drift)."""
        loop = asyncio.get_running_loop()
        origin = loop.time()

        def tick() -> None:
            elapsed = int(loop.time() - origin)
            if elapsed > self.now:
                self.tick(elapsed - self.now)
            self._timer = loop.call_at(origin + self.now + 1, tick)

        self._timer = loop.call_at(origin + 1, tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def truncated(response: bytes) -> bytes:
    """The response cut to header and question with TC=1, its OPT kept (RFC 6891
    wants one back when the query had one): as small as the question."""
    end = 12
    if response[4] or response[5]:  # one question (the responder echoes at most one)
        length = response[12]
        while length:
            end += length + 1
            length = response[end]
        end += 5
    opt = response[-11:]
    if not (response[10] or response[11]) or opt[:3] != b"\x00\x00\x29":
        opt = b""
    header = bytes((response[2] | 0x02, response[3], response[4], response[5], 0, 0, 0, 0, 0, 1 if opt else 0))
    return response[:2] + header + response[12:end] + opt
