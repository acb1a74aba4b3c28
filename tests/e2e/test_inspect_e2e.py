"""``mcsdns zone`` and ``mcsdns explain`` with ``--source kube``: the same
least-privilege account as the server, the same zone as the server answers."""

from __future__ import annotations

from tests.helpers import run_cli, zone_answers_match


def test_zone_from_the_api_is_what_the_server_answers(stack, tmp_path):
    kubeconfig = stack.api.service_account_kubeconfig("mcsdns", "mcsdns", tmp_path / "inspect.kubeconfig")
    done = run_cli("zone", "--source", "kube", "--kubeconfig", str(kubeconfig), timeout=120)
    assert done.returncode == 0, done.stderr
    assert zone_answers_match(done.stdout, stack.server) > 50


def test_explain_from_the_api(stack, tmp_path):
    kubeconfig = stack.api.service_account_kubeconfig("mcsdns", "mcsdns", tmp_path / "explain.kubeconfig")
    done = run_cli("explain", "--source", "kube", "--kubeconfig", str(kubeconfig), "db.data.svc.clusterset.local", "A",
                   timeout=120)
    assert done.returncode == 0, done.stderr
    assert "EndpointSlice data/db-east-v4: cluster east, IPv4, 2 of 3 endpoint(s) ready" in done.stdout
    assert done.stdout.rstrip().endswith("10.2.0.22"), done.stdout
    assert "answer: 4 record(s)" in done.stdout


def test_unreachable_api_is_one_line(tmp_path):
    config = tmp_path / "nowhere.kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n"
    )
    done = run_cli("zone", "--source", "kube", "--kubeconfig", str(config), "--sync-timeout", "3")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "did not sync within 3s" in done.stderr and "Traceback" not in done.stderr
