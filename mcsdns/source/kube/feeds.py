"""What each producer makes us watch: resources, selectors and filters, as a table.

A *feed* is one list+watch of one resource with one label selector. Producers
differ in their inputs (see MCS-DNS.md, "Producers differ"):

  standard, lighthouse: ServiceImports + EndpointSlices labelled
      multicluster.kubernetes.io/service-name (KEP-1645). Lighthouse writes one
      slice per (service, cluster); the zone reads them the same way. Its
      bookkeeping (local per-cluster imports, broker copies of imports and
      slices, where the broker shares the cluster) matches these feeds too
      and is dropped by convert(), as lighthouse's own resolver drops it.
  karmada: ServiceImports (spec.ips empty) + Services ``derived-<svc>`` (their
      ClusterIPs answer) + EndpointSlices labelled
      kubernetes.io/service-name=derived-<svc>, named imported-<cluster>-...
  auto: the union, so any producer works without configuration.

Label selectors cannot match a value prefix, so the Karmada feeds narrow what
they can on the server and convert()/the name filter drop the rest:

  * Karmada's slices carry no label of their own beyond kubernetes.io/service-name
    (karmada pkg/controllers/mcs/endpointslice_controller.go sets exactly the
    work namespace/name labels and that one). Every slice of every ordinary
    Service carries it too, but those are all managed by the in-tree
    controllers, which mark them endpointslice.kubernetes.io/managed-by. So we
    ask for ``kubernetes.io/service-name`` AND managed-by not one of the in-tree
    values: the server drops the bulk of the cluster's slices before they reach
    us, and convert() drops whatever is left that is not ``imported-*``.
  * Derived Services have no labels at all (service_import_controller.go), and
    field selectors on metadata.name only do equality, so Services are watched
    whole and everything not named ``derived-*`` is dropped on arrival, before
    conversion: we never hold the cluster's other Services.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...model.convert import KARMADA_DERIVED, LABEL_K8S_SERVICE, LABEL_MCS_SERVICE, MCS_GROUP
from ...model.records import Kind

LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
IN_TREE_MANAGERS = ("endpointslice-controller.k8s.io", "endpointslicemirroring-controller.k8s.io")
MCS_CRD_URL = (
    "https://raw.githubusercontent.com/kubernetes-sigs/mcs-api/master/config/crd/"
    "multicluster.x-k8s.io_serviceimports.yaml"
)


@dataclass(frozen=True, slots=True)
class Resource:
    kind: Kind
    group: str  # "" for the core group
    plural: str
    versions: tuple[str, ...]  # preferred first; with more than one, discovery picks

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def title(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def rule(self) -> str:
        """The ClusterRole rule that grants what we do to it (manifests/rbac.yaml)."""
        return f'{{apiGroups: ["{self.group}"], resources: ["{self.plural}"], verbs: ["get", "list", "watch"]}}'


@dataclass(frozen=True, slots=True)
class Feed:
    name: str
    resource: Resource
    selector: str | None = None
    name_prefix: str = ""  # keep only objects whose name starts with this

    @property
    def kind(self) -> Kind:
        return self.resource.kind

    def wants(self, name: str) -> bool:
        return name.startswith(self.name_prefix)


SERVICE_IMPORTS = Resource(Kind.SERVICE_IMPORT, MCS_GROUP, "serviceimports", ("v1beta1", "v1alpha1"))
ENDPOINT_SLICES = Resource(Kind.ENDPOINT_SLICE, "discovery.k8s.io", "endpointslices", ("v1",))
SERVICES = Resource(Kind.SERVICE, "", "services", ("v1",))

IMPORTS = Feed("serviceimports", SERVICE_IMPORTS)
MCS_SLICES = Feed("multicluster endpointslices", ENDPOINT_SLICES, LABEL_MCS_SERVICE)
KARMADA_SLICES = Feed(
    "karmada endpointslices",
    ENDPOINT_SLICES,
    f"{LABEL_K8S_SERVICE},{LABEL_MANAGED_BY} notin ({','.join(IN_TREE_MANAGERS)})",
)
DERIVED_SERVICES = Feed("karmada derived services", SERVICES, name_prefix=KARMADA_DERIVED)

FEEDS: dict[str, tuple[Feed, ...]] = {
    "standard": (IMPORTS, MCS_SLICES),
    "lighthouse": (IMPORTS, MCS_SLICES),
    "karmada": (IMPORTS, KARMADA_SLICES, DERIVED_SERVICES),
    "auto": (IMPORTS, MCS_SLICES, KARMADA_SLICES, DERIVED_SERVICES),
}


def feeds_for(producer: str) -> tuple[Feed, ...]:
    try:
        return FEEDS[producer]
    except KeyError:
        raise ValueError(f"producer {producer!r} is not one of {', '.join(FEEDS)}") from None
