"""What one listening socket has counted, in plain ints: no metrics library on
the query path (a prometheus-client call costs more than a cached answer).

The metrics collector reads these at scrape time. Everything here is touched
only on the event loop thread, so a scrape sees a consistent set.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

# CoreDNS's request duration buckets: ExponentialBuckets(0.00025, 2, 16), seconds.
DURATION_BOUNDS = tuple(0.00025 * 2**i for i in range(16))


class TransportStats:
    def __init__(self, proto: str, family: int) -> None:
        self.proto = proto  # "udp" | "tcp"
        self.family = family  # 1 IPv4, 2 IPv6, of the socket (as CoreDNS's label)
        self.tallies: defaultdict[int, int] = defaultdict(int)  # engine.tally -> responses sent
        self.durations = [0] * (len(DURATION_BOUNDS) + 1)  # per bucket, the last is +Inf
        self.duration_sum = 0.0
        self.dropped = 0  # messages that got no answer: short, a response, a bug
        self.closed: defaultdict[str, int] = defaultdict(int)  # TCP connections closed, by reason
        self.connections = 0  # TCP connections open now

    def timed(self, answered: int, seconds: float) -> None:
        """``answered`` requests took ``seconds`` together: each counts as their mean."""
        if answered:
            # bisect_left: a value equal to a bound belongs to that bucket (le).
            self.durations[bisect_left(DURATION_BOUNDS, seconds / answered)] += answered
            self.duration_sum += seconds
