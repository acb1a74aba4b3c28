"""The Kubernetes source's faults against the real kube-apiserver: API down at
start, RBAC denied, a malformed object the API accepts, and 410 Gone after etcd
compaction. (API dropped mid-watch and CRDs missing are in test_kube_e2e.py.)"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dns.rcode
import pytest

from tests.e2e import peers
from tests.e2e.cluster import RBAC, apply, apply_manifest, delete, start_mcsdns
from tests.helpers import Server, addresses, ask, wait_for

WEB = "web.shop.svc.clusterset.local."


def web(ip: str = "10.42.0.10", name: str = "web") -> dict:
    return {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"type": "ClusterSetIP", "ips": [ip], "ports": [{"port": 80, "protocol": "TCP"}]}}


@pytest.fixture
def api(peer_paths):
    with peers.KubeAPIServer(peer_paths) as server:
        server.install_crds(peer_paths)
        apply(server, web())
        yield server


def test_api_down_at_start(api, tmp_path):
    apply_manifest(api, RBAC)
    kubeconfig = api.service_account_kubeconfig("mcsdns", "mcsdns", tmp_path / "sa.kubeconfig")
    api.stop()
    server = Server("kube", "--kubeconfig", str(kubeconfig))
    try:
        wait_for(lambda: server.http("/readyz")[0] == 503, what="serving, not ready")
        assert ask(server.port, WEB, "A", "udp").rcode() == dns.rcode.SERVFAIL
        time.sleep(1)
        assert server.process.poll() is None
        api.start()
        server.wait_ready(timeout=90)  # recovered by itself
        assert addresses(ask(server.port, WEB, "A", "udp")) == ["10.42.0.10"]
    finally:
        server.stop()


def test_rbac_denied_then_granted(api, tmp_path):
    kubeconfig = api.service_account_kubeconfig("mcsdns", "mcsdns", tmp_path / "sa.kubeconfig")  # no role yet
    server = Server("kube", "--kubeconfig", str(kubeconfig))
    try:
        wait_for(lambda: "forbidden" in server.output().lower(), what="a log line about the missing permission")
        assert server.http("/readyz")[0] == 503
        log = server.output()
        assert "serviceimports" in log and "ClusterRole" in log  # says what to grant
        apply_manifest(api, RBAC)
        server.wait_ready(timeout=90)
        assert addresses(ask(server.port, WEB, "A", "udp")) == ["10.42.0.10"]
    finally:
        server.stop()


def test_malformed_object_accepted_by_the_api_is_rejected_alone(api, tmp_path):
    """The CRD schema does not check that spec.ips are addresses; we do."""
    server = start_mcsdns(api, tmp_path).wait_ready(timeout=60)
    try:
        apply(api, web("10.0.0.300", name="broken"))
        wait_for(lambda: "rejected ServiceImport shop/broken" in server.output(), what="rejection logged")
        assert ask(server.port, "broken.shop.svc.clusterset.local.", "A", "udp").rcode() == dns.rcode.NXDOMAIN
        assert addresses(ask(server.port, WEB, "A", "udp")) == ["10.42.0.10"]
        _, metrics = server.http("/metrics")
        assert 'mcsdns_rejected_objects_total{field="spec.ips",kind="ServiceImport"} 1.0' in metrics
    finally:
        server.stop()


def test_gone_after_compaction_relists(peer_paths, tmp_path):
    """mcsdns is frozen while the API restarts (its watches drop), objects
    change, and etcd compacts away the revision its watches would resume from:
    the API answers 410 Gone, mcsdns relists, and every change made meanwhile
    shows, a deletion included."""
    extra = ["--etcd-compaction-interval=1s", "--watch-cache=false"]
    with peers.KubeAPIServer(peer_paths, extra_args=extra) as api:
        api.install_crds(peer_paths)
        apply(api, web())
        apply(api, web("10.42.0.20", name="doomed"))
        server = start_mcsdns(api, tmp_path).wait_ready(timeout=60)
        try:
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                api.restart()  # the watches drop while mcsdns cannot see it
                for index in range(20):
                    apply(api, web(f"10.42.1.{index}"))
                delete(api, web(name="doomed"))
                time.sleep(3)  # compactions at 1 s intervals
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            wait_for(lambda: addresses(ask(server.port, WEB, "A", "udp")) == ["10.42.1.19"], timeout=90,
                     what="the change made while frozen")
            wait_for(lambda: ask(server.port, "doomed.shop.svc.clusterset.local.", "A", "udp").rcode()
                     == dns.rcode.NXDOMAIN, timeout=30, what="the deletion made while frozen")
            log = Path(server.log.name).read_text()
            assert "serviceimports: relisting" in log and "too old" in log  # 410 Gone
        finally:
            server.stop()
