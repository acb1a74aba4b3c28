"""What shapes the zone besides the objects: its name, TTL, schema version, policy."""

from __future__ import annotations

from dataclasses import dataclass

from .rrset import Labels, labels_of


@dataclass(frozen=True, slots=True)
class ZoneSettings:
    origin: str = "clusterset.local"
    ttl: int = 5
    dns_version: str = "1.0.0"
    # SOA timers: only secondaries read them and we have none; the minimum is
    # what matters, as the negative-caching TTL (RFC 2308 section 5).
    refresh: int = 7200
    retry: int = 1800
    expire: int = 86400
    # Local-first policy: the cluster whose ready backends answer ClusterSetIP
    # names while it has any; None answers by the specification alone.
    local_cluster: str | None = None
    # Addresses of ns.dns.<zone>, the name the apex NS and the SOA MNAME give
    # (--ns-address; the manifests pass the pod IP). Empty: that name has no
    # address, which only a secondary or a zone validator would ever ask for.
    ns_addresses: tuple[str, ...] = ()
    # PTR names for every address published (--ptr); ``reverse_zones`` are the
    # reverse zones we are the authority for (--reverse-zone): below them a name
    # we do not own is NXDOMAIN; elsewhere it is REFUSED, as any name not ours.
    ptr: bool = True
    # Submariner lighthouse's per-cluster names <cluster>.<svc>.<ns>.svc.<zone>
    # (--lighthouse-names): that cluster's ready addresses. The MCS spec keeps
    # those names free of addresses (reserved), so off by default.
    lighthouse_names: bool = False
    reverse_zones: tuple[str, ...] = ()

    @property
    def labels(self) -> Labels:
        return labels_of(self.origin)

    @property
    def nameserver(self) -> str:
        return f"ns.dns.{self.origin.strip('.')}."

    @property
    def hostmaster(self) -> str:
        return f"hostmaster.{self.origin.strip('.')}."
