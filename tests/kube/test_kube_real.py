"""The same source against a real kube-apiserver (tests/e2e/peers.py): real RBAC,
real CRD discovery, real watch streams and a real restart. Skipped, with the
reason, where the peers cannot be built (no Go)."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e import peers
from tests.e2e.cluster import RBAC, apply, apply_manifest

from . import objects as o
from .harness import harness, run

ROLE_BINDING = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"


@pytest.fixture(scope="module")
def api():
    try:
        paths = peers.build()
    except peers.PeersUnavailable as missing:
        pytest.skip(f"real kube-apiserver unavailable: {missing.reason}")
    with peers.KubeAPIServer(paths) as server:
        server.install_crds(paths)
        apply_manifest(server, RBAC)
        yield server


@pytest.fixture(scope="module")
def account(api, tmp_path_factory):
    """The least-privilege service account of manifests/rbac.yaml."""
    return str(api.service_account_kubeconfig("mcsdns", "mcsdns", tmp_path_factory.mktemp("sa") / "kubeconfig"))


def test_all_producers_as_the_manifest_account(api, account):
    created = {}
    for obj in [*o.STANDARD, *o.LIGHTHOUSE, *o.NOISE, *o.KARMADA]:
        if obj["kind"] == "Service":  # the apiserver allocates ClusterIPs itself
            obj = {**obj, "spec": {k: v for k, v in obj["spec"].items() if not k.startswith("clusterIP")}}
        created[obj["metadata"]["name"]] = apply(api, obj)
    derived_ip = created["derived-orders"]["spec"]["clusterIP"]
    expected = {**o.STANDARD_ANSWERS, **o.LIGHTHOUSE_ANSWERS, **o.KARMADA_ANSWERS,
                (o.name("orders.shop"), "A"): ("NOERROR", [derived_ip])}

    async def scenario():
        async with harness(account, "auto") as h:
            await h.answers(expected, timeout=20)
            assert h.outage is None
            assert all(not r.name == "frontend" for r in h.store.objects())

    run(scenario(), timeout=60)


def test_forbidden_until_bound(api, tmp_path):
    """A service account without the role: the real 403, one clear outage naming
    the missing rule; binding the role later is picked up without a restart."""
    kubeconfig = str(api.service_account_kubeconfig("mcsdns", "unbound", tmp_path / "kubeconfig"))

    async def scenario():
        async with harness(kubeconfig, "standard") as h:
            rules = ['resources: ["serviceimports"]', 'resources: ["endpointslices"]']
            await h.until(lambda: all(rule in (h.outage or "") for rule in rules), "an outage naming both rules", 20)
            assert "system:serviceaccount:mcsdns:unbound" in h.outage
            assert not h.store.ready
            binding = {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "mcsdns-unbound"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mcsdns"},
                "subjects": [{"kind": "ServiceAccount", "name": "unbound", "namespace": "mcsdns"}],
            }
            await asyncio.to_thread(api.request, "POST", ROLE_BINDING, binding, expect=(200, 201, 409))
            await h.until(lambda: h.store.ready and h.outage is None, "recovery once bound", timeout=30)

    run(scenario(), timeout=60)


def test_restart_keeps_the_zone(api, account):
    apply(api, o.STANDARD[0])
    web = {(o.name("web.demo"), "A"): ("NOERROR", ["10.42.0.1"])}
    late = o.service_import("demo", "late", ips=["10.42.0.50"])

    async def scenario():
        async with harness(account, "standard", backoff=(0.1, 1.0)) as h:
            await h.answers(web, timeout=20)
            async with h.steady(web):
                await asyncio.to_thread(api.restart)
            await asyncio.to_thread(apply, api, late)
            await h.answers({(o.name("late.demo"), "A"): ("NOERROR", ["10.42.0.50"])}, timeout=30)
            await h.until(lambda: h.outage is None, "no outage left", timeout=30)

    run(scenario(), timeout=120)
