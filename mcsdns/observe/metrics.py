"""Prometheus metrics, read at scrape time from plain counters the rest keeps.

Nothing here runs per query: the transports count into ints (``TransportStats``),
the sources into their ``SourceStats``, and this collector turns them into
metric families when ``/metrics`` is asked for. A prometheus-client counter call
costs about as much as answering a query from the cache, so none is made on
that path. One registry per app (fresh per test).

Labels are bounded: proto udp|tcp, family 1|2, type one of eleven, rcode one of
eight, resource one of four, reason and field from fixed sets, RRL action and
kind two and three.
"""

from __future__ import annotations

import platform
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib import metadata
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ..engine.tally import unpack
from ..source.stats import SourceStats
from ..transport.rrl import KINDS, RateLimiter
from ..transport.stats import DURATION_BOUNDS, TransportStats
from ..transport.tcp import CLOSE_REASONS
from ..zone.snapshot import Snapshot

# CoreDNS's response size buckets (plugin/pkg/... SizeBuckets), bytes.
SIZE_BOUNDS = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000)


def version() -> str:
    try:
        return metadata.version("mcsdns")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass
class Observed:
    """What the app hands the collector: counters it can read and a few questions."""

    snapshot: Callable[[], Snapshot]
    outage: Callable[[], bool]
    transports: list[TransportStats] = field(default_factory=list)
    source: SourceStats = field(default_factory=SourceStats)
    rejected: Counter = field(default_factory=Counter)  # (kind, field) -> objects
    partial: Counter = field(default_factory=Counter)  # (kind, field) -> objects served less a part
    rrl: RateLimiter | None = None  # None when rate limiting is off
    transfers: Counter = field(default_factory=Counter)  # kind (axfr, ixfr, refused...) -> zone transfers
    notifies: Counter = field(default_factory=Counter)  # sent, answered, gave-up -> NOTIFY messages/targets
    changed_at: float | None = None  # monotonic time of the last publish that moved the serial
    clock: Callable[[], float] = time.monotonic


class Metrics:
    def __init__(self, observed: Observed) -> None:
        self.observed = observed
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(observed))


class _Collector(Collector):
    def __init__(self, observed: Observed) -> None:
        self.observed = observed
        self._records: tuple[Snapshot | None, int] = (None, 0)

    def collect(self) -> Iterator[Metric]:
        yield from self._dns()
        yield from self._zone()
        yield from self._source()
        yield _build_info()

    def _dns(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "mcsdns_dns_requests", "DNS requests answered, by transport, socket family (1 IPv4, 2 IPv6) and question type",
            labels=["proto", "family", "type"],
        )
        responses = CounterMetricFamily(
            "mcsdns_dns_responses", "DNS responses sent, by transport and RCODE", labels=["proto", "rcode"]
        )
        truncated = CounterMetricFamily("mcsdns_dns_truncated_responses", "Responses sent with TC=1", labels=["proto"])
        dropped = CounterMetricFamily(
            "mcsdns_dns_dropped_messages", "Messages that got no answer: short, a response, or unreadable",
            labels=["proto"],
        )
        durations = HistogramMetricFamily(
            "mcsdns_dns_request_duration_seconds", "Time to answer a request, receive to send", labels=["proto"]
        )
        sizes = HistogramMetricFamily("mcsdns_dns_response_size_bytes", "Size of the responses sent", labels=["proto"])
        total = _Totals.of(self.observed.transports)
        for name in ("udp", "tcp"):
            proto = total.protos[name]
            for (family, kind), count in sorted(proto.requests.items()):
                requests.add_metric([name, family, kind], count)
            for rcode, count in sorted(proto.rcodes.items()):
                responses.add_metric([name, rcode], count)
            truncated.add_metric([name], proto.truncated)
            dropped.add_metric([name], proto.dropped)
            durations.add_metric([name], _buckets(DURATION_BOUNDS, proto.durations), proto.duration_sum)
            sizes.add_metric([name], _buckets(SIZE_BOUNDS, proto.size_buckets()), proto.size_sum())
        yield from (requests, responses, truncated, dropped, durations, sizes)
        closed = CounterMetricFamily(
            "mcsdns_tcp_connections_closed", "TCP connections closed, by why: the client, idle, evicted (to make room "
            "at --tcp-max-connections), read_timeout, write_timeout, limit (queries sent far ahead), error, shutdown",
            labels=["reason"],
        )
        for reason in CLOSE_REASONS:
            closed.add_metric([reason], total.closed[reason])
        yield closed
        yield GaugeMetricFamily("mcsdns_tcp_connections", "TCP connections open now", total.connections)
        yield from _rrl(self.observed.rrl)
        yield CounterMetricFamily("mcsdns_cache_hits", "Responses served from the response cache", total.hits)
        yield CounterMetricFamily("mcsdns_cache_misses", "Responses built because the cache did not hold them", total.misses)

    def _zone(self) -> Iterator[Metric]:
        snapshot, observed = self.observed.snapshot(), self.observed
        yield GaugeMetricFamily("mcsdns_zone_services", "Services with names in the zone", len(snapshot.services))
        yield GaugeMetricFamily("mcsdns_zone_records", "Resource records in the zone", self._count_records(snapshot))
        yield GaugeMetricFamily("mcsdns_zone_serial", "SOA serial of the served zone", snapshot.serial)
        since = observed.clock() - observed.changed_at if observed.changed_at is not None else float("nan")
        yield GaugeMetricFamily(
            "mcsdns_zone_seconds_since_change", "Seconds since the serial last moved (NaN before the first publish)", since
        )
        yield GaugeMetricFamily("mcsdns_ready", "1 once every resource of the source has listed", int(snapshot.ready))
        yield GaugeMetricFamily(
            "mcsdns_source_outage", "1 while the source has lost its view (serving the last good zone)",
            int(observed.outage()),
        )

        transfers = CounterMetricFamily(
            "mcsdns_zone_transfers", "AXFR/IXFR requests by outcome: axfr, ixfr, ixfr-full (history gone), "
            "up-to-date, refused, unsigned, badkey, badsig, badtime, notauth...", labels=["kind"],
        )
        for kind, count in sorted(observed.transfers.items()):
            transfers.add_metric([kind], count)
        yield transfers
        notifies = CounterMetricFamily(
            "mcsdns_notify", "NOTIFY to secondaries: messages sent, answered, targets given up on", labels=["result"]
        )
        for result in ("sent", "answered", "gave-up"):
            notifies.add_metric([result], observed.notifies[result])
        yield notifies

    def _source(self) -> Iterator[Metric]:
        stats = self.observed.source
        since = GaugeMetricFamily(
            "mcsdns_source_seconds_since_sync",
            "Seconds since each resource was last known in sync (absent before its first sync)", labels=["resource"],
        )
        for resource, seconds in sorted(stats.seconds_since_sync().items()):
            since.add_metric([resource], seconds)
        yield since
        for name, doc, labels, counts in (
            ("mcsdns_source_watch_events", "Watch events received", ["resource", "type"], stats.events),
            ("mcsdns_source_watch_restarts", "List+watch loops restarted, by why", ["resource", "reason"], stats.restarts),
            ("mcsdns_source_errors", "Source failures, by fault", ["resource", "reason"], stats.errors),
            ("mcsdns_rejected_objects", "Objects that could not become records", ["kind", "field"], self.observed.rejected),
            ("mcsdns_partial_objects", "Objects served with a bad part left out", ["kind", "field"], self.observed.partial),
        ):
            family = CounterMetricFamily(name, doc, labels=labels)
            for key, count in sorted(dict(counts).items()):
                family.add_metric(list(key), count)
            yield family

    def _count_records(self, snapshot: Snapshot) -> int:
        if self._records[0] is not snapshot:
            apex = sum(len(r.tails) for node in snapshot.apex.values() for r in node.rrsets.values())
            # Each service counts its own records once (without building its names).
            self._records = (snapshot, apex + sum(entry.records for entry in snapshot.services.values()))
        return self._records[1]


@dataclass
class _Proto:
    """One transport's counts, summed over its sockets, with the tallies unpacked."""

    requests: Counter = field(default_factory=Counter)  # (family, type)
    rcodes: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)  # exact size -> responses
    durations: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BOUNDS) + 1))
    duration_sum: float = 0.0
    truncated: int = 0
    dropped: int = 0

    def size_buckets(self) -> list[int]:
        counts = [0] * (len(SIZE_BOUNDS) + 1)
        for size, count in self.sizes.items():
            counts[_bucket(SIZE_BOUNDS, size)] += count
        return counts

    def size_sum(self) -> int:
        return sum(size * count for size, count in self.sizes.items())


@dataclass
class _Totals:
    protos: defaultdict = field(default_factory=lambda: defaultdict(_Proto))
    hits: int = 0
    misses: int = 0
    closed: Counter = field(default_factory=Counter)
    connections: int = 0

    @classmethod
    def of(cls, transports: list[TransportStats]) -> "_Totals":
        totals = cls()
        for stats in transports:
            proto = totals.protos[stats.proto]
            proto.dropped += stats.dropped
            proto.duration_sum += stats.duration_sum
            proto.durations = [a + b for a, b in zip(proto.durations, stats.durations)]
            totals.closed.update(stats.closed)
            totals.connections += stats.connections
            for tally, count in list(stats.tallies.items()):
                kind, rcode, tc, hit, size = unpack(tally)
                proto.requests[(str(stats.family), kind)] += count
                proto.rcodes[rcode] += count
                proto.truncated += count if tc else 0
                proto.sizes[size] += count
                if hit:
                    totals.hits += count
                else:
                    totals.misses += count
        return totals


def _rrl(limiter: RateLimiter | None) -> Iterator[Metric]:
    """What rate limiting held back; absent when it is off."""
    if limiter is None:
        return
    held = CounterMetricFamily(
        "mcsdns_rrl_responses", "UDP responses held back by rate limiting (RRL): dropped, or slipped (sent as a "
        "tiny TC=1 answer instead), by kind: answer (per name and type), nxdomain, error", labels=["action", "kind"],
    )
    for index, kind in enumerate(KINDS):
        held.add_metric(["dropped", kind], limiter.dropped[index])
        held.add_metric(["slipped", kind], limiter.slipped[index])
    yield held
    yield GaugeMetricFamily("mcsdns_rrl_buckets", "Rate-limiting buckets held: those used this second, and those in debt "
                            "(with --rrl-window)", limiter.buckets)


def _bucket(bounds, value) -> int:
    """Index of the first bucket whose upper bound (le) holds value."""
    for index, bound in enumerate(bounds):
        if value <= bound:
            return index
    return len(bounds)


def _buckets(bounds, counts: list[int]) -> list[tuple[str, int]]:
    """Per-bucket counts -> cumulative (le, count) pairs ending with +Inf."""
    total, out = 0, []
    for bound, count in zip([*map(_le, bounds), "+Inf"], counts):
        total += count
        out.append((bound, total))
    return out


def _le(bound: float) -> str:
    return repr(float(bound))


def _build_info() -> Metric:
    info = GaugeMetricFamily("mcsdns_build_info", "Version of mcsdns and of Python", labels=["version", "python"])
    info.add_metric([version(), platform.python_version()], 1)
    return info
