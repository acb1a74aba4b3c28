"""The alerts of manifests/monitoring/ and the dashboard's queries, checked by
Prometheus's own promtool (built by tests/e2e/peers/build.sh).

- ``promtool check rules``: the PrometheusRule's groups (as kustomize renders
  them) parse and pass its lint; so does every dashboard query, as a recording
  rule with the Grafana variables filled in.
- ``promtool test rules``: each alert fires on the series it is about, after
  its ``for``, with its labels and annotations rendered, and stays quiet on
  healthy or too short input.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e import peers
from tests.helpers import ROOT

MANIFESTS = ROOT / "manifests"
POD = {"namespace": "mcsdns", "pod": "mcsdns-7d9f-abcde"}


@pytest.fixture(scope="module")
def tools(peer_paths) -> peers.DeployTools:
    return peers.deploy_tools(peer_paths)


@pytest.fixture(scope="module")
def rules_file(tools, tmp_path_factory) -> Path:
    """The PrometheusRule's spec, which is a Prometheus rule file."""
    (rule,) = [x for x in peers.kustomize_build(tools, MANIFESTS / "monitoring") if x["kind"] == "PrometheusRule"]
    path = tmp_path_factory.mktemp("rules") / "mcsdns-rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    return path


def promtool(tools: peers.DeployTools, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(tools.promtool), *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def test_rules_pass_promtool_check(tools, rules_file):
    checked = promtool(tools, "check", "rules", str(rules_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout


def dashboard_as_rules(exprs: list[str]) -> dict:
    """Dashboard queries as recording rules, the Grafana variables filled in."""
    fill = {"$__rate_interval": "1m", "$namespace": "mcsdns", "$pod": ".*"}
    rules = []
    for i, expr in enumerate(exprs):
        for var, value in fill.items():
            expr = expr.replace(var, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    return {"groups": [{"name": "dashboard", "rules": rules}]}


def dashboard_exprs() -> list[str]:
    board = json.loads((MANIFESTS / "grafana" / "mcsdns-dashboard.json").read_text())
    exprs = []

    def walk(panels):
        for panel in panels:
            exprs.extend(target["expr"] for target in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(board["panels"])
    return exprs


@pytest.mark.parametrize(("case", "broken"), [("the dashboard", None), ("a typo", "sum(rate(mcsdns_ready[1m])")])
def test_dashboard_queries_parse(tools, tmp_path, case, broken):
    exprs = dashboard_exprs() if broken is None else [broken]
    assert exprs
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(dashboard_as_rules(exprs)))
    checked = promtool(tools, "check", "rules", str(path))
    if broken is None:
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"SUCCESS: {len(exprs)} rules found" in checked.stdout
    else:
        assert checked.returncode != 0 and "parse error" in (checked.stdout + checked.stderr), checked.stdout


def series(name: str, values: str, **labels: str) -> dict:
    body = ", ".join(f'{k}="{v}"' for k, v in {**POD, **labels}.items())
    return {"series": f"{name}{{{body}}}", "values": values}


# (case, input series, alert, evaluated at, expected: [(extra labels, templated annotations)])
CASES = [
    ("not ready 6m", [series("mcsdns_ready", "0x10")], "McsdnsNotReady", "6m",
     [({}, {"summary": "mcsdns mcsdns/mcsdns-7d9f-abcde has not loaded the zone"})]),
    ("not ready 4m: still pending", [series("mcsdns_ready", "0x10")], "McsdnsNotReady", "4m", []),
    ("ready", [series("mcsdns_ready", "1x10")], "McsdnsNotReady", "6m", []),
    ("outage 6m", [series("mcsdns_source_outage", "1x10")], "McsdnsSourceOutage", "6m",
     [({}, {"summary": "mcsdns mcsdns/mcsdns-7d9f-abcde has lost the Kubernetes API"})]),
    ("no outage", [series("mcsdns_source_outage", "0x10")], "McsdnsSourceOutage", "6m", []),
    ("sync age growing", [series("mcsdns_source_seconds_since_sync", "0+60x20", resource="serviceimports"),
                          series("mcsdns_source_seconds_since_sync", "30x20", resource="endpointslices")],
     "McsdnsSyncStale", "12m",
     [({"resource": "serviceimports"}, {"summary": "mcsdns mcsdns/mcsdns-7d9f-abcde: serviceimports not in sync for 12m 0s",
                                        "description": "No list, watch event or bookmark for serviceimports in over 5 minutes."})]),
    ("sync age stale, not for long enough", [series("mcsdns_source_seconds_since_sync", "0+60x20", resource="serviceimports")],
     "McsdnsSyncStale", "9m", []),
    ("10% SERVFAIL", [series("mcsdns_dns_responses_total", "0+10x30", proto="udp", rcode="SERVFAIL"),
                      series("mcsdns_dns_responses_total", "0+90x30", proto="udp", rcode="NOERROR")],
     "McsdnsServfailRatio", "20m",
     [({}, {"summary": "mcsdns mcsdns/mcsdns-7d9f-abcde answers 10% SERVFAIL"})]),
    ("0.5% SERVFAIL", [series("mcsdns_dns_responses_total", "0+1x30", proto="udp", rcode="SERVFAIL"),
                       series("mcsdns_dns_responses_total", "0+199x30", proto="udp", rcode="NOERROR")],
     "McsdnsServfailRatio", "20m", []),
    ("no traffic", [series("mcsdns_dns_responses_total", "0x30", proto="udp", rcode="SERVFAIL"),
                    series("mcsdns_dns_responses_total", "0x30", proto="udp", rcode="NOERROR")],
     "McsdnsServfailRatio", "20m", []),
    ("errors on end", [series("mcsdns_source_errors_total", "0+1x30", resource="endpointslices", reason="forbidden")],
     "McsdnsWatchErrors", "25m",
     [({"resource": "endpointslices"},
       {"summary": "mcsdns mcsdns/mcsdns-7d9f-abcde: endpointslices list/watch keeps failing",
        "description": "Errors listing or watching endpointslices for 15 minutes (mcsdns_source_errors_total by reason says which)."})]),
    ("one error, retried", [series("mcsdns_source_errors_total", "0 1+0x30", resource="endpointslices", reason="broken")],
     "McsdnsWatchErrors", "25m", []),
]


def unit_test(rules_file: Path, inputs: list[dict], alert: str, at: str, expected: list) -> dict:
    rules = yaml.safe_load(rules_file.read_text())
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == alert]
    static = {k: v for k, v in rule.get("annotations", {}).items() if "{{" not in v}
    alerts = [{"exp_labels": {**POD, **rule.get("labels", {}), **labels}, "exp_annotations": {**static, **annotations}}
              for labels, annotations in expected]
    return {"rule_files": [str(rules_file)], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": inputs,
                       "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": alerts}]}]}


@pytest.mark.parametrize(("case", "inputs", "alert", "at", "expected"), CASES, ids=[c[0] for c in CASES])
def test_alert(tools, rules_file, tmp_path, case, inputs, alert, at, expected):
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(unit_test(rules_file, inputs, alert, at, expected)))
    result = promtool(tools, "test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_test_can_fail(tools, rules_file, tmp_path):
    """promtool does fail a wrong expectation: NotReady said not to fire when it does."""
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(unit_test(rules_file, [series("mcsdns_ready", "0x10")], "McsdnsNotReady", "6m", [])))
    result = promtool(tools, "test", "rules", str(path))
    assert result.returncode == 1 and "FAILED" in result.stdout + result.stderr, result.stdout
