"""Health, readiness and the shutdown sequence of a live server, and its logs as
one JSON object a line."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import dns.message
import pytest

from tests.helpers import DATA, Server, run_cli, wait_for

WEB = "web.shop.svc.clusterset.local."


def test_lameduck_drains_while_answering():
    """SIGTERM with --lameduck: /readyz 503 "draining" at once, DNS still answered
    over UDP and TCP until the lameduck ends, then exit 0."""
    server = Server(DATA / "zone", "--lameduck", "2").wait_ready()
    try:
        assert server.http("/readyz")[0] == 200
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        status, body = wait_for(lambda: (r := server.http("/readyz"))[0] == 503 and r, timeout=1, what="503")
        assert body.startswith("draining")
        assert server.http("/healthz") == (200, "ok\n")  # alive, only not ready
        for transport in ("udp", "tcp"):
            answer = server.query(dns.message.make_query(WEB, "A"), transport)
            assert answer.answer[0][0].address == "10.42.0.10"
        assert time.monotonic() - signalled < 2, "the checks must run inside the lameduck"
        assert server.process.wait(10) == 0
        assert time.monotonic() - signalled >= 2
    finally:
        server.stop()
    assert "Traceback" not in server.output()


def test_readyz_and_healthz_when_ready(live_server):
    assert live_server.http("/healthz") == (200, "ok\n")
    status, body = live_server.http("/readyz")
    assert status == 200 and body.startswith("ready, serial ") and "outage" not in body


JSON_EVENTS = ["start", "listening", "synced", "stopping", "stopped"]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_json_logs_one_object_a_line(how):
    args, env = (["--log-format", "json"], {}) if how == "flag" else ([], {"MCSDNS_LOG_FORMAT": "JSON"})
    server = Server(DATA / "zone", *args, env=env).wait_ready()
    for _ in range(20):
        server.query(dns.message.make_query(WEB, "A"))  # queries log nothing
    assert server.stop() == 0
    lines = [json.loads(line) for line in Path(server.log.name).read_text().splitlines()]  # every line parses
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys()
        assert line["time"].endswith("+00:00") and "T" in line["time"]
    events = [line["event"] for line in lines if line.get("event") not in (None, "rejected", "partial")]
    assert events == JSON_EVENTS
    listening = next(line for line in lines if line.get("event") == "listening")
    assert listening["addresses"] == [f"127.0.0.1:{server.port}"] and listening["zone"] == "clusterset.local"
    rejected = [line for line in lines if "rejected" in line["message"]]
    assert len(rejected) == 2 and all(r["level"] == "warning" and r["logger"] == "mcsdns.source.files" for r in rejected)
    assert sorted((r["event"], r["kind"], r["field"]) for r in rejected) == [
        ("rejected", "ServiceImport", "spec.ips"), ("rejected", "ServiceImport", "spec.type")
    ]
    partial = [line for line in lines if line.get("event") == "partial"]  # tests/data/zone/60-partial.yaml
    assert sorted((p["kind"], p["field"]) for p in partial) == [
        ("EndpointSlice", "multicluster.kubernetes.io/source-cluster"), ("EndpointSlice", "ports.port")
    ]
    # nothing per query: the lines are the events, the two rejections and the two partial objects
    assert len(lines) == len(JSON_EVENTS) + len(rejected) + len(partial)


def test_plain_logs_by_default():
    server = Server(DATA / "zone").wait_ready()
    assert server.stop() == 0
    lines = server.output().splitlines()
    assert any(" INFO mcsdns: answering for clusterset.local on " in line for line in lines)
    assert not any(line.startswith("{") for line in lines)


def test_bad_log_format_is_one_line():
    result = run_cli("serve", "--source", str(DATA / "zone"), "--log-format", "xml")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["mcsdns: error: --log-format: 'xml' is not one of plain, json"]
