"""``mcsdns zone`` and ``mcsdns explain`` (and /debug/explain), run as users run them.

The zone text must load in NSD's and Knot's own zone checkers, and hold exactly
what a running server answers: each RRset of the text is asked of a live
``serve`` over the same folder, over UDP and TCP.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.helpers import DATA, ROOT, ZONE, Server, run_cli, zone_answers_match

ZONE_FOLDER = DATA / "zone"


@pytest.fixture(scope="module")
def zone_text() -> str:
    done = run_cli("zone", "--source", str(ZONE_FOLDER), "--ns-address", "127.0.0.1,::1", timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "checker",
    [
        ["nsd-checkzone", ZONE, "{file}"],
        ["kzonecheck", "-o", ZONE, "{file}"],
    ],
    ids=["nsd-checkzone", "kzonecheck"],
)
def test_zone_text_loads_in_nsd_and_knot_checkers(zone_text, tmp_path, checker):
    assert shutil.which(checker[0]), f"{checker[0]} is installed by scripts/setup.sh"
    path = tmp_path / "zone.txt"
    path.write_text(zone_text)
    done = subprocess.run([part.format(file=path) for part in checker], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "error" not in (done.stdout + done.stderr).lower()


def test_zone_text_is_what_the_server_answers(zone_text):
    server = Server(ZONE_FOLDER, "--ns-address", "127.0.0.1,::1").wait_ready()
    try:
        assert zone_answers_match(zone_text, server) > 50, "the test zone is large enough to mean something"
    finally:
        server.stop()


EXPLAIN = [
    # (name, type, lines that must appear, the outcome line)
    ("web.shop.svc.clusterset.local", "A",
     ["ServiceImport shop/web found: type ClusterSetIP", "spec.ips: 10.42.0.10"], "answer: 1 record(s)"),
    ("db.data.svc.clusterset.local", "SRV",
     ["type Headless", "EndpointSlice data/db-east-v4: cluster east, IPv4, 2 of 3 endpoint(s) ready"],
     "answer: 4 record(s)"),
    ("db-0.east.db.data.svc.clusterset.local", "AAAA",
     ["endpoint db-0 in EndpointSlice db-east-v4: 10.1.0.11, ready"], "answer: NODATA"),
    ("db-2.east.db.data.svc.clusterset.local", "A",
     ["endpoint db-2 in EndpointSlice db-east-v4", "not ready (not published)"], "answer: NXDOMAIN"),
    ("nope.shop.svc.clusterset.local", "A", ["no ServiceImport shop/nope"], "answer: NXDOMAIN"),
    ("_grpc._tcp.api.shop.svc.clusterset.local", "SRV", ["port grpc/tcp: number 8443"], "answer: 1 record(s)"),
    ("_nope._tcp.api.shop.svc.clusterset.local", "SRV", ["no port of that name and protocol"], "answer: NXDOMAIN"),
    ("shop.svc.clusterset.local", "A", ["namespace shop: an empty non-terminal"], "answer: NODATA"),
    ("www.example.com", "A", ["not in the zone clusterset.local."], "answer: REFUSED"),
    ("clusterset.local", "SOA", ["the zone apex"], "answer: 1 record(s)"),
    ("dns-version.clusterset.local", "TXT", ["the MCS schema version"], "answer: 1 record(s)"),
    ("11.0.1.10.in-addr.arpa", "PTR", ["address 10.1.0.11 is published by 1 name(s)"], "answer: 1 record(s)"),
    ("13.0.1.10.in-addr.arpa", "PTR", ["address 10.1.0.13 is published by no name"], "answer: REFUSED"),
]


@pytest.mark.parametrize("name,qtype,reasons,outcome", EXPLAIN, ids=[f"{n} {t}" for n, t, _, _ in EXPLAIN])
def test_explain_names_the_objects_and_the_rule(name, qtype, reasons, outcome):
    done = run_cli("explain", "--source", str(ROOT / "examples" / "clusterset.yaml"), name, qtype)
    assert done.returncode == 0, done.stderr
    for reason in reasons:
        assert reason in done.stdout, done.stdout
    assert outcome in done.stdout.splitlines()[-1] or outcome in done.stdout, done.stdout


UNPRODUCED = """\
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceImport
metadata: {name: web, namespace: shop}
spec: {type: ClusterSetIP, ports: [{name: http, port: 80, protocol: TCP}]}
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceImport
metadata: {name: broken, namespace: shop}
spec: {type: ClusterSetIP, ips: [not-an-ip]}
"""


@pytest.mark.parametrize(
    "name,expected",
    [
        ("web.shop.svc.clusterset.local", ["ServiceImport shop/web found", "spec.ips empty", "no Service derived-web",
                                           "no clusterset IP from any producer yet", "answer: NODATA"]),
        ("broken.shop.svc.clusterset.local", ["no ServiceImport shop/broken", "rejected ServiceImport shop/broken",
                                              "answer: NXDOMAIN"]),
    ],
)
def test_explain_says_why_a_name_is_empty(tmp_path, name, expected):
    (tmp_path / "objects.yaml").write_text(UNPRODUCED)
    done = run_cli("explain", "--source", str(tmp_path), name)
    assert done.returncode == 0, done.stderr
    for line in expected:
        assert line in done.stdout, done.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["zone", "--source", "/nonexistent"], "does not exist"),
        (["explain", "--source", "examples/clusterset.yaml", "a..b"], "is not a domain name"),
        (["explain", "--source", "examples/clusterset.yaml", "web.shop.svc.clusterset.local", "NOPE"],
         "is not a DNS record type"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args, message):
    done = run_cli(*args)
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_debug_explain_is_off_by_default_and_served_when_asked():
    source = ROOT / "examples" / "clusterset.yaml"
    plain = Server(source).wait_ready()
    try:
        assert plain.http("/debug/explain?name=web.shop.svc.clusterset.local")[0] == 404
    finally:
        plain.stop()
    server = Server(source, "--debug-explain").wait_ready()
    try:
        status, body = server.http("/debug/explain?name=web.shop.svc.clusterset.local&type=A")
        assert status == 200 and "spec.ips: 10.42.0.10" in body and "answer: 1 record(s)" in body
        assert server.http("/debug/explain?name=web.shop.svc.clusterset.local&type=NOPE")[0] == 400
        assert server.http("/debug/explain")[0] == 400
    finally:
        server.stop()
