"""Prometheus metrics, in a registry of their own (one per app, fresh per test).

Labels are bounded: transport is udp|tcp, rcode one of a handful of names, kind
one of the three API kinds. Label children are bound once, so counting a query
on the hot path is one dictionary lookup and one increment.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        queries = Counter(
            "mcsdns_responses", "DNS responses sent, by transport and RCODE", ["transport", "rcode"], registry=self.registry
        )
        self.dropped = Counter(
            "mcsdns_dropped_messages", "Messages that got no answer (short, or a response)", ["transport"],
            registry=self.registry,
        )
        self.truncated = Counter("mcsdns_truncated_responses", "UDP responses sent with TC=1", registry=self.registry)
        self.rejected = Counter(
            "mcsdns_rejected_objects", "Kubernetes objects that could not become records", ["kind"], registry=self.registry
        )
        self.tcp_refused = Counter(
            "mcsdns_tcp_connections_refused", "TCP connections closed at once: over --tcp-max-connections",
            registry=self.registry,
        )
        self.serial = Gauge("mcsdns_zone_serial", "SOA serial of the served zone", registry=self.registry)
        self.services = Gauge("mcsdns_zone_services", "Services with names in the zone", registry=self.registry)
        self.ready = Gauge("mcsdns_ready", "1 once every source kind has listed", registry=self.registry)
        self._responses = {
            (transport, code): queries.labels(transport, name)
            for transport in ("udp", "tcp")
            for code, name in [*RCODES.items(), (-1, "OTHER")]
        }

    def response(self, transport: str, message: bytes) -> None:
        code = message[3] & 0xF
        self._responses.get((transport, code), self._responses[(transport, -1)]).inc()
        if transport == "udp" and message[2] & 0x02:
            self.truncated.inc()
