"""The Grafana dashboard and the PrometheusRule ask only for metrics a live
server exports, by the names and labels of the metrics contract.

Every PromQL expression of the dashboard (panel targets and template
variables) and every alert of manifests/monitoring/prometheusrule.yaml is taken
apart into metric names, functions and keywords; nothing else may be left. Each
metric must be in CONTRACT with the labels the expression groups or matches by,
and on /metrics of a running server (the test zone, after a few queries).
"""

from __future__ import annotations

import json
import re

import dns.message
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import DATA, ROOT, Server

DASHBOARD = ROOT / "manifests" / "grafana" / "mcsdns-dashboard.json"
RULES = ROOT / "manifests" / "monitoring" / "prometheusrule.yaml"

# metric -> its labels (the names mcsdns exports; histograms by their base name).
CONTRACT = {
    "mcsdns_dns_requests_total": {"proto", "family", "type"},
    "mcsdns_dns_responses_total": {"proto", "rcode"},
    "mcsdns_dns_request_duration_seconds": {"proto"},
    "mcsdns_dns_response_size_bytes": {"proto"},
    "mcsdns_dns_truncated_responses_total": {"proto"},
    "mcsdns_dns_dropped_messages_total": {"proto"},
    "mcsdns_tcp_connections_closed_total": {"reason"},
    "mcsdns_tcp_connections": set(),
    "mcsdns_rrl_responses_total": {"action", "kind"},
    "mcsdns_rrl_buckets": set(),
    "mcsdns_cache_hits_total": set(),
    "mcsdns_cache_misses_total": set(),
    "mcsdns_zone_services": set(),
    "mcsdns_zone_records": set(),
    "mcsdns_zone_serial": set(),
    "mcsdns_zone_seconds_since_change": set(),
    "mcsdns_source_seconds_since_sync": {"resource"},
    "mcsdns_source_watch_events_total": {"resource", "type"},
    "mcsdns_source_watch_restarts_total": {"resource", "reason"},
    "mcsdns_source_errors_total": {"resource", "reason"},
    "mcsdns_rejected_objects_total": {"kind", "field"},
    "mcsdns_source_outage": set(),
    "mcsdns_ready": set(),
    "mcsdns_build_info": {"version", "python"},
}
HISTOGRAMS = {"mcsdns_dns_request_duration_seconds", "mcsdns_dns_response_size_bytes"}
TARGET_LABELS = {"namespace", "pod", "instance", "job"}  # added by the scrape (ServiceMonitor)
FUNCTIONS = {"sum", "max", "min", "avg", "count", "rate", "increase", "irate", "histogram_quantile", "clamp_min",
             "label_values", "absent", "topk", "delta", "deriv", "time", "vector"}
KEYWORDS = {"by", "without", "and", "or", "unless", "bool", "on", "ignoring", "group_left", "group_right", "offset"}


def series_name(name: str) -> tuple[str, bool]:
    """(contract name, is a histogram series)"""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
            return name[: -len(suffix)], True
    return name, False


class Expr:
    """What a PromQL expression refers to: metric names, labels grouped or
    matched by, functions, and anything left over (which must be nothing)."""

    def __init__(self, text: str):
        self.text = text
        rest = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)  # string literals
        self.matchers: list[tuple[str, str]] = []  # (metric, label)
        for metric, body in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^{}]*)\}", rest):
            self.matchers += [(metric, label) for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", body)]
        rest = re.sub(r"\{[^{}]*\}", " ", rest)
        rest = re.sub(r"\[[^\]]*\]", " ", rest)  # ranges, $__rate_interval
        self.grouping: set[str] = set()
        for body in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", rest):
            self.grouping |= {label.strip() for label in body.split(",") if label.strip()}
        rest = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", rest)
        rest = re.sub(r"\blabel_values\s*\(([^,()]*),\s*[a-zA-Z_]+\s*\)", r"label_values(\1)", rest)  # Grafana: a label name
        self.functions = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\(", rest))
        words = set(re.findall(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()", rest))
        self.metrics = {w for w in words if w.startswith("mcsdns_")}
        self.leftover = (words - self.metrics - KEYWORDS) | (self.functions - FUNCTIONS)


def dashboard_exprs() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    out = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                out.append((f"panel {panel['title']!r}", target["expr"]))
            walk(panel.get("panels", []))

    walk(board["panels"])
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            out.append((f"variable {var['name']}", query))
    return out


def alert_exprs() -> list[tuple[str, str]]:
    rule = yaml.safe_load(RULES.read_text())
    return [(f"alert {r['alert']}", r["expr"]) for group in rule["spec"]["groups"] for r in group["rules"]]


EXPRS = dashboard_exprs() + alert_exprs()


def test_dashboard_is_importable_with_any_prometheus():
    """Valid JSON; every query through the ${datasource} variable; unique ids;
    panels inside the 24-column grid without overlapping."""
    board = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids, cells = [], set()
    for panel in board["panels"]:
        ids.append(panel["id"])
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        area = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"], panel["title"]
    assert len(ids) == len(set(ids))
    for name in ("namespace", "pod"):
        assert variables[name]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_alerts_cover_what_an_operator_must_hear_about():
    alerts = {where.split(" ", 1)[1]: Expr(expr) for where, expr in alert_exprs()}
    wanted = {
        "McsdnsNotReady": {"mcsdns_ready"},
        "McsdnsSourceOutage": {"mcsdns_source_outage"},
        "McsdnsSyncStale": {"mcsdns_source_seconds_since_sync"},
        "McsdnsServfailRatio": {"mcsdns_dns_responses_total"},
        "McsdnsWatchErrors": {"mcsdns_source_errors_total"},
    }
    assert {name: e.metrics for name, e in alerts.items()} == wanted
    assert ("mcsdns_dns_responses_total", "rcode") in alerts["McsdnsServfailRatio"].matchers


@pytest.mark.parametrize(("where", "expr"), EXPRS, ids=[where for where, _ in EXPRS])
def test_expression_follows_the_contract(where, expr):
    e = Expr(expr)
    assert e.metrics, f"{where}: no metric in {expr!r}"
    assert not e.leftover, f"{where}: unknown words {sorted(e.leftover)} in {expr!r}"
    labels = set(TARGET_LABELS)
    for name in e.metrics:
        base, histogram = series_name(name)
        assert base in CONTRACT, f"{where}: {name} is not an mcsdns metric"
        labels |= CONTRACT[base] | ({"le"} if histogram else set())
        if base in HISTOGRAMS:
            assert histogram, f"{where}: a histogram is read through _bucket, _sum or _count, not {name}"
    for metric, label in e.matchers:
        base, histogram = series_name(metric)
        assert label in CONTRACT[base] | TARGET_LABELS | ({"le"} if histogram else set()), f"{where}: {metric} has no label {label}"
    assert e.grouping <= labels, f"{where}: groups by {sorted(e.grouping - labels)}, which none of its metrics has"


def test_expression_parser_sees_mistakes():
    """The checks above can fail: each of these is caught."""
    assert Expr("sum(rate(mcsdns_dns_responses_total[5m]))").metrics == {"mcsdns_dns_responses_total"}
    assert Expr("sum(rates(mcsdns_ready[5m]))").leftover == {"rates"}
    assert Expr("sum by (pod) (mcsdns_ready) > 0").leftover == set()
    assert Expr("sum by (pod) (mcsdns_ready) > 0").grouping == {"pod"}
    assert Expr("up == 0").leftover == {"up"}
    assert Expr('sum by (rcodes) (mcsdns_dns_responses_total{rcode="NOERROR"})').grouping == {"rcodes"}
    assert Expr('mcsdns_ready{zone="x"}').matchers == [("mcsdns_ready", "zone")]
    assert Expr('label_values(mcsdns_build_info{namespace="$namespace"}, pod)').metrics == {"mcsdns_build_info"}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Series names a live server exports, once it has answered a few queries
    (labelled metrics only show up once used): samples, and for metrics
    registered without samples yet, the names their type gives them."""
    server = Server(DATA / "zone").wait_ready()
    try:
        for name, qtype, transport in [("web.shop.svc.clusterset.local.", "A", "udp"),
                                       ("web.shop.svc.clusterset.local.", "A", "udp"),
                                       ("nothing.shop.svc.clusterset.local.", "A", "tcp"),
                                       ("clusterset.local.", "SOA", "udp"), ("example.com.", "A", "udp")]:
            server.query(dns.message.make_query(name, qtype, use_edns=0), transport)
        status, text = server.http("/metrics")
        assert status == 200
    finally:
        server.stop()
    names = set()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "info": ["_info"]}
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        names |= {family.name + s for s in suffixes.get(family.type, [""])}
    return names


def test_contract_names_are_exported(exported):
    wanted = {name + s for name in CONTRACT for s in (["_bucket", "_sum", "_count"] if name in HISTOGRAMS else [""])}
    assert not wanted - exported, f"not on /metrics: {sorted(wanted - exported)}"


@pytest.mark.parametrize(("where", "expr"), EXPRS, ids=[where for where, _ in EXPRS])
def test_expression_metrics_are_exported(exported, where, expr):
    missing = Expr(expr).metrics - exported
    assert not missing, f"{where}: not on a live server's /metrics: {sorted(missing)}"
