"""Small frozen records: what the zone needs to know of each Kubernetes object.

Sources convert API objects into these at the edge (see ``convert``), so nothing
inward ever holds an API dict. Every field is already validated: an IP is a
canonical address string, a name is a lower-case DNS label, a cluster id is one
or two labels. Records compare by value, which is how the zone tells a change
that DNS can see from one it cannot (status updates, resourceVersion bumps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Kind(str, Enum):
    """The API kinds the zone is built from; also the first part of every key."""

    SERVICE_IMPORT = "ServiceImport"
    ENDPOINT_SLICE = "EndpointSlice"
    SERVICE = "Service"


@dataclass(frozen=True, slots=True)
class Port:
    name: str  # "" for an unnamed port: no SRV name of its own (MCS spec 2.3.2)
    protocol: str  # lower case: tcp, udp, sctp
    port: int


@dataclass(frozen=True, slots=True)
class ServiceImport:
    namespace: str
    name: str
    headless: bool
    ips: tuple[str, ...]
    ports: tuple[Port, ...]
    # What conversion left out of an object it kept (a bad entry ignored); for
    # the log and the rejection counter only, so never part of equality.
    notes: tuple["Rejected", ...] = field(default=(), compare=False, repr=False)

    kind = Kind.SERVICE_IMPORT


@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[str, ...]
    hostname: str  # "" when the endpoint has none: names then use the dashed IP
    ready: bool


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    """One slice of backends, already attributed to a service and a cluster.

    ``service`` is the ServiceImport name it serves (for Karmada, the name with
    its ``derived-`` prefix removed) and ``cluster`` the cluster id used in
    per-endpoint names, "" when the slice does not say (its addresses still
    count for the service name, it has no per-endpoint names). ``service_ip``
    marks a slice whose endpoint is its cluster's service IP rather than pods
    (the Submariner lighthouse agent's ClusterSetIP slices).
    """

    namespace: str
    name: str
    service: str
    cluster: str
    family: int  # 4 or 6
    endpoints: tuple[Endpoint, ...]
    ports: tuple[Port, ...]
    service_ip: bool = False
    notes: tuple["Rejected", ...] = field(default=(), compare=False, repr=False)

    kind = Kind.ENDPOINT_SLICE


@dataclass(frozen=True, slots=True)
class Service:
    """A cluster-local Service, kept only for producers that leave ``spec.ips``
    empty (Karmada's ``derived-<name>``): its ClusterIPs stand in for them."""

    namespace: str
    name: str
    cluster_ips: tuple[str, ...]
    notes: tuple["Rejected", ...] = field(default=(), compare=False, repr=False)

    kind = Kind.SERVICE


Record = ServiceImport | EndpointSlice | Service


@dataclass(frozen=True, slots=True)
class Rejected:
    """An object that could not become a record, and why: ``reason`` for the
    log, ``field`` (which field was wrong, from a fixed set) for metric labels.

    ``partial`` marks the lesser case: the object was kept and only the part
    named by ``field`` was left out (a port without a number, a slice without
    its cluster label); it travels the same road so it is logged and counted.
    """

    kind: str
    namespace: str
    name: str
    reason: str
    field: str = "object"
    partial: bool = False

    def __str__(self) -> str:
        what = "ignored part of" if self.partial else "rejected"
        return f"{what} {self.kind} {self.namespace}/{self.name}: {self.reason}"


def key_of(record: Record) -> tuple[Kind, str, str]:
    return (record.kind, record.namespace, record.name)
