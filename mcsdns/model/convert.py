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

What each producer really writes, and how it is read here (fixtures that copy
these shapes, with the producer file each follows: tests/data/zone/50-*.yaml):
  * Submariner lighthouse keeps bookkeeping objects beside the real ones, and
    its own resolver skips them (lighthouse coredns/resolver/service_import.go
    ignoreServiceImport, controller.go isOnBroker); so do we:
      - a ServiceImport *labelled* multicluster.kubernetes.io/service-name is a
        cluster's local import; one *annotated* so is a broker copy;
      - an EndpointSlice whose namespace differs from its label
        lighthouse.submariner.io/sourceNamespace is a broker copy.
    Its ClusterSetIP slices (label lighthouse.submariner.io/is-headless=false)
    hold one endpoint, the cluster's service IP (pkg/agent/controller/
    service_endpoint_slices.go): ``service_ip``.
  * AWS Cloud Map MCS copies the derived Services' ClusterIPs into spec.ips,
    ``None`` for headless ones (pkg/controllers/multicluster/utils.go).
  * Object names are Kubernetes names (RFC 1123 subdomains up to 253 chars,
    no limit per dot-separated part): Karmada's imported-<cluster>-<slice>
    names often pass 63. Only what becomes a DNS label is held to 63.

Partial badness stays partial: a slice without its source-cluster label, or a
port without a number, is kept; what needs the missing piece is left out and
the record carries a ``partial`` Rejected in ``notes`` for the log and counter.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from typing import Any

from .records import Endpoint, EndpointSlice, Port, Record, Rejected, Service, ServiceImport

MCS_GROUP = "multicluster.x-k8s.io"
LABEL_MCS_SERVICE = "multicluster.kubernetes.io/service-name"
LABEL_MCS_CLUSTER = "multicluster.kubernetes.io/source-cluster"
LABEL_K8S_SERVICE = "kubernetes.io/service-name"
KARMADA_DERIVED = "derived-"
KARMADA_IMPORTED = "imported-"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
LIGHTHOUSE_AGENT = "lighthouse-agent.submariner.io"
LABEL_LH_SOURCE_NAMESPACE = "lighthouse.submariner.io/sourceNamespace"
LABEL_LH_HEADLESS = "lighthouse.submariner.io/is-headless"
# Values producers write into spec.ips of a headless import (AWS copies the
# derived Service's clusterIP): not addresses, and not worth a warning.
_IP_PLACEHOLDERS = ("", "None")

# RFC 1123 label, as Kubernetes validates namespaces, hostnames and most names.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# RFC 1123 subdomain as Kubernetes validates object names (IsDNS1123Subdomain):
# up to 253 characters in all, with no limit on one dot-separated part.
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
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
    notes: list[Invalid] = []
    try:
        record = handler(obj, _label(namespace, "metadata.namespace"), object_name(name, "metadata.name"), notes)
    except Invalid as err:
        return Rejected(str(kind), namespace, name, str(err), err.field)
    if record is None or not notes:
        return record
    return replace(record, notes=tuple(Rejected(str(kind), namespace, name, str(n), n.field, True) for n in notes))


def _group(api_version: Any) -> str:
    text = str(api_version or "")
    return text.rsplit("/", 1)[0] if "/" in text else ""


def _service_import(obj: dict, namespace: str, name: str, notes: list[Invalid]) -> ServiceImport | None:
    meta = _mapping(obj.get("metadata"), "metadata")
    if LABEL_MCS_SERVICE in _mapping(meta.get("labels"), "metadata.labels"):
        return None  # lighthouse: a cluster's local ServiceImport, not what consumers import
    if LABEL_MCS_SERVICE in _mapping(meta.get("annotations"), "metadata.annotations"):
        return None  # lighthouse: the aggregated import as kept on the broker
    name = _label(name, "metadata.name")  # it becomes one label of the DNS name
    spec = _mapping(obj.get("spec"), "spec")
    kind = spec.get("type")
    if kind not in ("ClusterSetIP", "Headless"):
        raise Invalid(f"spec.type must be ClusterSetIP or Headless, not {kind!r}", "spec.type")
    raw_ips = _list(spec.get("ips"), "spec.ips")
    if kind == "Headless":
        # A headless import has no IP to serve; what producers put there
        # (placeholders, leftovers) must not cost the import its slices.
        ips: tuple[str, ...] = ()
        for i, ip in enumerate(raw_ips):
            if str(ip).strip() not in _IP_PLACEHOLDERS:
                _noting(notes, lambda: _ip(ip, f"spec.ips[{i}]"))
    else:
        ips = tuple(_ip(ip, f"spec.ips[{i}]") for i, ip in enumerate(raw_ips))
    ports = tuple(_port(p, f"spec.ports[{i}]") for i, p in enumerate(_list(spec.get("ports"), "spec.ports")))
    return ServiceImport(namespace, name, kind == "Headless", ips, ports)


def _endpoint_slice(obj: dict, namespace: str, name: str, notes: list[Invalid]) -> EndpointSlice | None:
    family = {"IPv4": 4, "IPv6": 6}.get(obj.get("addressType"))
    labels = _mapping(_mapping(obj.get("metadata"), "metadata").get("labels"), "metadata.labels")
    if labels.get(LABEL_LH_SOURCE_NAMESPACE, namespace) != namespace:
        return None  # lighthouse: a broker copy, not this cluster's view
    attributed = _attribute(labels, name, notes)
    if family is None or attributed is None:
        return None  # FQDN slices, and slices no multi-cluster producer made
    service, cluster = attributed
    endpoints = tuple(
        _endpoint(e, family, f"endpoints[{i}]") for i, e in enumerate(_list(obj.get("endpoints"), "endpoints"))
    )
    # A bad port costs its SRV records only; the addresses still answer (CoreDNS does the same).
    raw_ports = enumerate(_list(obj.get("ports"), "ports"))
    ports = tuple(p for p in (_noting(notes, lambda: _port(raw, f"ports[{i}]")) for i, raw in raw_ports) if p)
    service_ip = labels.get(LABEL_MANAGED_BY) == LIGHTHOUSE_AGENT and labels.get(LABEL_LH_HEADLESS) == "false"
    return EndpointSlice(namespace, name, service, cluster, family, endpoints, ports, service_ip)


def _noting(notes: list[Invalid], make):
    """``make()``, or None with the reason kept in ``notes`` when it is invalid."""
    try:
        return make()
    except Invalid as err:
        notes.append(err)
        return None


def _attribute(labels: dict, name: str, notes: list[Invalid]) -> tuple[str, str] | None:
    """(service, cluster) of a slice, or None when no producer we know made it."""
    if LABEL_MCS_SERVICE in labels:
        service = _label(labels[LABEL_MCS_SERVICE], LABEL_MCS_SERVICE)
        if LABEL_MCS_CLUSTER not in labels:
            # CoreDNS still serves such a slice's addresses at the service name; so do we.
            notes.append(Invalid(f"label {LABEL_MCS_CLUSTER} is missing: no per-endpoint names", LABEL_MCS_CLUSTER))
            return service, ""
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


def _service(obj: dict, namespace: str, name: str, notes: list[Invalid]) -> Service:
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
    addresses = entry.get("addresses")
    # A million endpoints pass here at start-up: canonical IPv4 (all of them,
    # in practice) skips ipaddress (~10 us an address) for one regex match.
    if family == 4 and type(addresses) is list and addresses and all(map(_is_canonical_v4, addresses)):
        addresses = tuple(addresses)
    else:
        addresses = tuple(_ip(a, f"{where}.addresses", family) for a in _list(addresses, where))
        if not addresses:
            raise Invalid(f"{where} has no addresses", where)
    hostname = entry.get("hostname") or ""
    if hostname:
        hostname = _label(hostname, f"{where}.hostname")
    conditions = entry.get("conditions")
    ready = (conditions if type(conditions) is dict else _mapping(conditions, f"{where}.conditions")).get("ready")
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
    """A domain name: labels of up to 63 characters, 253 in all (the zone)."""
    text = str(value).lower()
    if len(text) > 253 or not all(_LABEL.match(label) for label in text.split(".")):
        raise Invalid(f"{where}: {value!r} is not a DNS subdomain", where)
    return text


def object_name(value: Any, where: str) -> str:
    """A Kubernetes object name: an RFC 1123 subdomain as Kubernetes validates it
    (253 characters, no 63-character parts: slices such as Karmada's
    ``imported-<cluster>-<slice>`` pass 63 easily)."""
    text = str(value).lower()
    if len(text) > 253 or not _OBJECT_NAME.match(text):
        raise Invalid(f"{where}: {value!r} is not an RFC 1123 subdomain (a Kubernetes object name)", where)
    return text


# A canonical dotted quad: what ipaddress would print for it (no leading
# zeros, which ipaddress rejects anyway), ASCII digits only.
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_V4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def _is_canonical_v4(value: Any) -> bool:
    return type(value) is str and _CANONICAL_V4.fullmatch(value) is not None


def _ip(value: Any, where: str, family: int | None = None) -> str:
    if family != 6 and _is_canonical_v4(value):
        return value
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
