"""Kubernetes API objects (plain dicts) -> records, at the edge.

``convert(obj)`` returns a record, a ``Rejected`` with the reason, or ``None``
for an object that is well formed but none of our business (an EndpointSlice
without multi-cluster labels, an FQDN slice). Validation happens here once, so
the zone never meets a bad address or a name that is not a DNS label.

Which labels attribute an EndpointSlice to a service and a cluster:
  standard MCS (mcs-api, Submariner, Cilium, AWS, Antrea):
      multicluster.kubernetes.io/service-name   -> service
      multicluster.kubernetes.io/source-cluster -> cluster
  Karmada (no multicluster labels):
      kubernetes.io/service-name = derived-<service>
      metadata.name = imported-<cluster>-<original slice name>
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .records import Endpoint, EndpointSlice, Port, Record, Rejected, Service, ServiceImport

MCS_GROUP = "multicluster.x-k8s.io"
LABEL_MCS_SERVICE = "multicluster.kubernetes.io/service-name"
LABEL_MCS_CLUSTER = "multicluster.kubernetes.io/source-cluster"
LABEL_K8S_SERVICE = "kubernetes.io/service-name"
KARMADA_DERIVED = "derived-"
KARMADA_IMPORTED = "imported-"

# RFC 1123 label, as Kubernetes validates namespaces, hostnames and most names.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


class Invalid(ValueError):
    """Raised inside conversion; becomes a ``Rejected`` at the function's edge.

    ``field`` is the offending field with list indices dropped (``spec.ips``,
    ``endpoints.addresses``): a small, fixed set, fit for a metric label, where
    the message itself names values and indices.
    """

    def __init__(self, message: str, field: str = "object") -> None:
        super().__init__(message)
        self.field = re.sub(r"\[\d+\]", "", field)


def convert(obj: Any) -> Record | Rejected | None:
    if not isinstance(obj, dict):
        return Rejected("?", "?", "?", "not a mapping", "object")
    kind = obj.get("kind")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    namespace = str(meta.get("namespace") or "default")
    name = str(meta.get("name") or "?")
    handler = _HANDLERS.get((_group(obj.get("apiVersion")), kind))
    if handler is None:
        return None
    try:
        return handler(obj, _label(namespace, "metadata.namespace"), subdomain(name, "metadata.name"))
    except Invalid as err:
        return Rejected(str(kind), namespace, name, str(err), err.field)


def _group(api_version: Any) -> str:
    text = str(api_version or "")
    return text.rsplit("/", 1)[0] if "/" in text else ""


def _service_import(obj: dict, namespace: str, name: str) -> ServiceImport:
    name = _label(name, "metadata.name")  # it becomes one label of the DNS name
    spec = _mapping(obj.get("spec"), "spec")
    kind = spec.get("type")
    if kind not in ("ClusterSetIP", "Headless"):
        raise Invalid(f"spec.type must be ClusterSetIP or Headless, not {kind!r}", "spec.type")
    ips = tuple(_ip(ip, f"spec.ips[{i}]") for i, ip in enumerate(_list(spec.get("ips"), "spec.ips")))
    ports = tuple(_port(p, f"spec.ports[{i}]") for i, p in enumerate(_list(spec.get("ports"), "spec.ports")))
    return ServiceImport(namespace, name, kind == "Headless", ips, ports)


def _endpoint_slice(obj: dict, namespace: str, name: str) -> EndpointSlice | None:
    family = {"IPv4": 4, "IPv6": 6}.get(obj.get("addressType"))
    attributed = _attribute(obj, name)
    if family is None or attributed is None:
        return None  # FQDN slices, and slices no multi-cluster producer made
    service, cluster = attributed
    endpoints = tuple(
        _endpoint(e, family, f"endpoints[{i}]") for i, e in enumerate(_list(obj.get("endpoints"), "endpoints"))
    )
    ports = tuple(_port(p, f"ports[{i}]") for i, p in enumerate(_list(obj.get("ports"), "ports")))
    return EndpointSlice(namespace, name, service, cluster, family, endpoints, ports)


def _attribute(obj: dict, name: str) -> tuple[str, str] | None:
    """(service, cluster) of a slice, or None when no producer we know made it."""
    labels = _mapping(_mapping(obj.get("metadata"), "metadata").get("labels"), "metadata.labels")
    if LABEL_MCS_SERVICE in labels:
        service = _label(labels[LABEL_MCS_SERVICE], LABEL_MCS_SERVICE)
        if LABEL_MCS_CLUSTER not in labels:
            raise Invalid(f"label {LABEL_MCS_CLUSTER} is missing", LABEL_MCS_CLUSTER)
        return service, cluster_id(labels[LABEL_MCS_CLUSTER], LABEL_MCS_CLUSTER)
    derived = str(labels.get(LABEL_K8S_SERVICE, ""))
    if derived.startswith(KARMADA_DERIVED) and name.startswith(KARMADA_IMPORTED):
        service = _label(derived[len(KARMADA_DERIVED) :], LABEL_K8S_SERVICE)
        rest = name[len(KARMADA_IMPORTED) :]
        cut = rest.rfind(f"-{service}-") if f"-{service}-" in rest else rest.rfind("-")
        if cut <= 0:
            raise Invalid(f"cannot read the cluster from Karmada slice name {name!r}", "metadata.name")
        return service, cluster_id(rest[:cut], "metadata.name")
    return None


def _service(obj: dict, namespace: str, name: str) -> Service:
    spec = _mapping(obj.get("spec"), "spec")
    raw = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ips = tuple(_ip(ip, "spec.clusterIPs") for ip in _list(raw, "spec.clusterIPs") if ip != "None")
    return Service(namespace, name, ips)


_HANDLERS = {
    (MCS_GROUP, "ServiceImport"): _service_import,
    ("discovery.k8s.io", "EndpointSlice"): _endpoint_slice,
    ("", "Service"): _service,
}


def _endpoint(raw: Any, family: int, where: str) -> Endpoint:
    entry = _mapping(raw, where)
    addresses = tuple(_ip(a, f"{where}.addresses", family) for a in _list(entry.get("addresses"), where))
    if not addresses:
        raise Invalid(f"{where} has no addresses", where)
    hostname = entry.get("hostname") or ""
    if hostname:
        hostname = _label(hostname, f"{where}.hostname")
    ready = _mapping(entry.get("conditions"), f"{where}.conditions").get("ready")
    # A missing condition means ready (discovery.k8s.io/v1 EndpointConditions).
    return Endpoint(addresses, hostname, ready is None or ready is True)


def _port(raw: Any, where: str) -> Port:
    entry = _mapping(raw, where)
    number = entry.get("port")
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
        raise Invalid(f"{where}.port must be a number from 1 to 65535, not {number!r}", f"{where}.port")
    protocol = _PROTOCOLS.get(entry.get("protocol") or "TCP")
    if protocol is None:
        raise Invalid(f"{where}.protocol must be TCP, UDP or SCTP, not {entry.get('protocol')!r}", f"{where}.protocol")
    name = entry.get("name") or ""
    return Port(_label(name, f"{where}.name") if name else "", protocol, number)


def cluster_id(value: Any, where: str) -> str:
    """A cluster id is one or two DNS labels (KEP-1645 allows <name>.<registry>)."""
    labels = str(value).lower().split(".")
    if len(labels) > 2:
        raise Invalid(f"{where}: cluster id {value!r} has more than two labels", where)
    return ".".join(_label(label, where) for label in labels)


def _label(value: Any, where: str) -> str:
    text = str(value).lower()
    if not _LABEL.match(text):
        raise Invalid(f"{where}: {value!r} is not a DNS label", where)
    return text


def subdomain(value: Any, where: str) -> str:
    """Object names in general are RFC 1123 subdomains (slices may hold dots)."""
    text = str(value).lower()
    if len(text) > 253 or not all(_LABEL.match(label) for label in text.split(".")):
        raise Invalid(f"{where}: {value!r} is not a DNS subdomain", where)
    return text


def _ip(value: Any, where: str, family: int | None = None) -> str:
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise Invalid(f"{where}: {value!r} is not an IP address", where) from None
    if family is not None and address.version != family:
        raise Invalid(f"{where}: {value} is not an IPv{family} address", where)
    return str(address)


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{where} must be a mapping", where)
    return value


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(f"{where} must be a list", where)
    return value
