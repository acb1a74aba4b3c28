"""manifests/rbac.yaml grants exactly what the source watches, read-only, to the
service account the deployment runs as; and the 403 hint quotes those rules."""

from __future__ import annotations

from pathlib import Path

import yaml

from mcsdns.source.kube.feeds import FEEDS

ROOT = Path(__file__).resolve().parents[2]
READ = ["get", "list", "watch"]


def documents(name: str) -> dict[str, list[dict]]:
    by_kind: dict[str, list[dict]] = {}
    for doc in yaml.safe_load_all((ROOT / "manifests" / name).read_text()):
        by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def test_cluster_role_is_least_privilege():
    rbac = documents("rbac.yaml")
    (role,) = rbac["ClusterRole"]
    granted = {(group, plural) for rule in role["rules"] for group in rule["apiGroups"] for plural in rule["resources"]}
    needed = {(f.resource.group, f.resource.plural) for feeds in FEEDS.values() for f in feeds}
    assert granted == needed
    assert all(rule["verbs"] == READ for rule in role["rules"])
    assert all(len(rule["apiGroups"]) == 1 and len(rule["resources"]) == 1 for rule in role["rules"])


def test_binding_ties_the_deployment_account_to_the_role():
    rbac, deployment = documents("rbac.yaml"), documents("deployment.yaml")
    (account,) = rbac["ServiceAccount"]
    (binding,) = rbac["ClusterRoleBinding"]
    (role,) = rbac["ClusterRole"]
    assert (account["metadata"]["name"], account["metadata"]["namespace"]) == ("mcsdns", "mcsdns")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mcsdns", "namespace": "mcsdns"}]
    (pods,) = deployment["Deployment"]
    assert pods["spec"]["template"]["spec"]["serviceAccountName"] == "mcsdns"
    assert pods["metadata"]["namespace"] == "mcsdns"


def test_forbidden_hint_quotes_the_manifest_rules():
    (role,) = documents("rbac.yaml")["ClusterRole"]
    for feeds in FEEDS.values():
        for feed in feeds:
            rule = yaml.safe_load(feed.resource.rule)
            assert rule in role["rules"]
