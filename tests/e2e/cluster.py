"""Putting Kubernetes objects (the same YAML the folder source reads) into the
real apiserver, and a whole stack around it: apiserver, mcsdns --source kube
with a least-privilege service account, and CoreDNS forwarding to it."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.e2e import peers
from tests.helpers import ROOT, Server

RBAC = ROOT / "manifests" / "rbac.yaml"

# kind -> (API prefix, plural)
_RESOURCES = {
    "ServiceImport": ("/apis/multicluster.x-k8s.io/v1beta1", "serviceimports"),
    "EndpointSlice": ("/apis/discovery.k8s.io/v1", "endpointslices"),
    "Service": ("/api/v1", "services"),
}


def load_objects(*paths: Path) -> list[dict]:
    """Objects from YAML/JSON files, ``kind: List`` opened, in file order."""
    objects: list[dict] = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json")) if path.is_dir() else [path]
        for file in files:
            for document in yaml.safe_load_all(file.read_text()):
                if not document:
                    continue
                items = document.get("items", []) if str(document.get("kind", "")).endswith("List") else [document]
                objects.extend(item for item in items if item.get("kind") in _RESOURCES)
    return objects


def object_path(obj: dict, named: bool = True) -> str:
    prefix, plural = _RESOURCES[obj["kind"]]
    namespace = obj["metadata"].get("namespace", "default")
    base = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{base}/{obj['metadata']['name']}" if named else base


def apply(api: peers.KubeAPIServer, obj: dict) -> dict:
    """Create or replace ``obj`` as the admin; the apiserver validates it.
    Objects it rejects (our malformed test data) raise PeersError."""
    api.ensure_namespace(obj["metadata"].get("namespace", "default"))
    body = {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}}
    if obj["kind"] == "ServiceImport":
        body["apiVersion"] = "multicluster.x-k8s.io/v1beta1"
    status, current = api._request("GET", object_path(obj))
    if status == 200:
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if obj["kind"] == "Service":
            body["spec"] = {**body.get("spec", {}), "clusterIP": current["spec"]["clusterIP"],
                            "clusterIPs": current["spec"]["clusterIPs"]}
        return api.request("PUT", object_path(obj), body)
    return api.request("POST", object_path(obj, named=False), body)


def load_test_zone(api: peers.KubeAPIServer) -> list[str]:
    """Create the test zone's objects; returns the names the apiserver refused."""
    refused = []
    for obj in load_objects(ROOT / "tests" / "data" / "zone"):
        try:
            apply(api, obj)
        except peers.PeersError:
            refused.append(obj["metadata"]["name"])
    return refused


def delete(api: peers.KubeAPIServer, obj: dict) -> None:
    api.request("DELETE", object_path(obj), expect=(200, 202, 404))


def apply_manifest(api: peers.KubeAPIServer, path: Path) -> None:
    """Apply RBAC manifests as the admin, with the apiserver's own validation."""
    routes = {
        "Namespace": "/api/v1/namespaces",
        "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
        "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
        "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    }
    for document in yaml.safe_load_all(path.read_text()):
        if not document:
            continue
        namespace = document["metadata"].get("namespace", "default")
        if document["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
            api.ensure_namespace(namespace)
        base = routes[document["kind"]].format(ns=namespace)
        api.request("POST", f"{base}?fieldValidation=Strict", document, expect=(200, 201, 409))


def start_mcsdns(api: peers.KubeAPIServer, workdir: Path, *extra: str) -> Server:
    """mcsdns --source kube as the least-privilege service account of manifests/rbac.yaml."""
    apply_manifest(api, RBAC)
    kubeconfig = api.service_account_kubeconfig("mcsdns", "mcsdns", workdir / "mcsdns.kubeconfig")
    return Server("kube", "--kubeconfig", str(kubeconfig), *extra)

