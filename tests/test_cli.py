"""The command-line contract: flags and MCSDNS_* environment, exit codes, signals."""

from __future__ import annotations

import signal
import socket

import dns.message
import dns.rcode
import pytest

from mcsdns.cli import config_from
from tests.helpers import DATA, Server, ipv6_loopback, run_cli

ZONE_DIR = str(DATA / "zone")

# (what, argv after "serve", environment, text expected in the one error line)
BAD = [
    ("no source", [], {}, "--source is required"),
    ("missing source", ["--source", "/nonexistent/zone"], {}, "does not exist"),
    ("ttl not a number", ["--source", ZONE_DIR, "--ttl", "soon"], {}, "--ttl: 'soon' is not a number"),
    ("ttl negative", ["--source", ZONE_DIR, "--ttl", "-1"], {}, "--ttl: -1 is not between"),
    ("listen without port", ["--source", ZONE_DIR, "--listen", "127.0.0.1"], {}, "is not HOST:PORT"),
    ("listen hostname", ["--source", ZONE_DIR, "--listen", "dns.example:53"], {}, "is not an IP address"),
    ("listen port 0", ["--source", ZONE_DIR, "--listen", "127.0.0.1:0"], {}, "is not between 1 and 65535"),
    ("bad zone", ["--source", ZONE_DIR, "--zone", "bad..zone"], {}, "--zone: 'bad..zone' is not a domain name"),
    ("bad producer", ["--source", "kube", "--producer", "istio"], {}, "--producer: 'istio' is not one of"),
    ("local-first alone", ["--source", ZONE_DIR, "--local-first"], {}, "--local-first needs --cluster-id"),
    ("bad cluster id", ["--source", ZONE_DIR, "--cluster-id", "a.b.c"], {}, "not one or two DNS labels"),
    ("missing kubeconfig", ["--source", "kube", "--kubeconfig", "/nonexistent"], {}, "kubeconfig /nonexistent does not exist"),
    ("no cluster, no kubeconfig", ["--source", "kube"], {"HOME": "/nonexistent", "KUBECONFIG": ""}, "pass --kubeconfig"),
    ("unknown flag", ["--source", ZONE_DIR, "--frobnicate"], {}, "unrecognized arguments"),
    ("bad env ttl", ["--source", ZONE_DIR], {"MCSDNS_TTL": "x"}, "--ttl: 'x' is not a number"),
    ("bad env listen", ["--source", ZONE_DIR], {"MCSDNS_LISTEN": "nowhere"}, "is not HOST:PORT"),
    ("rrl exempt not a network", ["--source", ZONE_DIR, "--rrl-exempt", "10.0.0.0/33"], {}, "--rrl-exempt: '10.0.0.0/33'"),
    ("bad env rrl exempt", ["--source", ZONE_DIR], {"MCSDNS_RRL_EXEMPT": "coredns"}, "is not an IP network"),
    ("rrl slip out of range", ["--source", ZONE_DIR, "--rrl-slip", "11"], {}, "--rrl-slip: 11 is not between"),
    ("rrl prefix too short", ["--source", ZONE_DIR, "--rrl-ipv4-prefix", "4"], {}, "--rrl-ipv4-prefix: 4 is not between"),
    ("tcp buffer too small", ["--source", ZONE_DIR, "--tcp-max-buffered", "10"], {}, "--tcp-max-buffered: 10 is not"),
    ("tcp read timeout 0", ["--source", ZONE_DIR, "--tcp-read-timeout", "0"], {}, "--tcp-read-timeout: 0.0 is not"),
    ("bad transfer network", ["--source", ZONE_DIR, "--transfer-allow", "10.0.0.0/33"], {}, "--transfer-allow: '10.0.0.0/33' is not an IP network"),
    ("missing key file", ["--source", ZONE_DIR, "--tsig-key-file", "/nonexistent"], {}, "--tsig-key-file: cannot read /nonexistent"),
    ("empty key file", ["--source", ZONE_DIR, "--tsig-key-file", "/dev/null"], {}, "holds no key"),
    ("tsig required, no key", ["--source", ZONE_DIR, "--transfer-require-tsig"], {}, "--transfer-require-tsig needs --tsig-key-file"),
    ("notify hostname", ["--source", ZONE_DIR, "--notify", "ns2.example:53"], {}, "--notify: 'ns2.example' is not an IP address"),
    ("ixfr history negative", ["--source", ZONE_DIR], {"MCSDNS_IXFR_HISTORY": "-1"}, "--ixfr-history: -1 is not between"),
]

# (argv after the source, environment, the Config fields expected)
RRL_SETTINGS = [
    ([], {}, dict(rrl_rate=1000, rrl_nxdomain_rate=1000, rrl_error_rate=1000, rrl_exempt=("127.0.0.0/8", "::1/128"))),
    (["--rrl-rate", "50"], {}, dict(rrl_rate=50, rrl_nxdomain_rate=50, rrl_error_rate=50)),  # the others follow
    (["--rrl-rate", "50", "--rrl-error-rate", "5"], {}, dict(rrl_nxdomain_rate=50, rrl_error_rate=5)),
    (["--rrl-exempt", "none"], {}, dict(rrl_exempt=())),
    ([], {"MCSDNS_RRL_EXEMPT": "10.244.0.0/16, 10.96.0.10"}, dict(rrl_exempt=("10.244.0.0/16", "10.96.0.10/32"))),
    (["--tcp-max-in-flight", "8", "--tcp-write-timeout", "1.5"], {}, dict(tcp_max_in_flight=8, tcp_write_timeout=1.5)),
]


@pytest.mark.parametrize("argv,env,expected", RRL_SETTINGS)
def test_abuse_limits_from_flags_and_environment(argv, env, expected):
    config = config_from(["serve", "--source", ZONE_DIR, *argv], env)
    assert {field: getattr(config, field) for field in expected} == expected


@pytest.mark.parametrize("what,argv,env,message", BAD, ids=[b[0] for b in BAD])
def test_bad_settings_one_line_exit_2(what, argv, env, message):
    result = run_cli("serve", *argv, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcsdns: error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_address_in_use_is_a_clear_error():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--source", ZONE_DIR, "--listen", f"127.0.0.1:{port}", "--http", "off")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mcsdns: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_help_documents_every_flag_and_its_environment():
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for flag in ("--source", "--listen", "--zone", "--ttl", "--http", "--dns-version", "--kubeconfig"):
        assert flag in result.stdout
        assert "MCSDNS_" + flag[2:].upper().replace("-", "_") in result.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signals_stop_cleanly(sig):
    server = Server(ZONE_DIR).wait_ready()
    assert server.stop(sig) == 0
    assert "Traceback" not in server.output()


def test_settings_from_environment_and_flags():
    """TTL, zone and dns-version from MCSDNS_* variables; a flag beats its variable."""
    server = Server(
        ZONE_DIR, "--ttl", "30", env={"MCSDNS_TTL": "7", "MCSDNS_ZONE": "mcs.example.", "MCSDNS_DNS_VERSION": "1.1.0"}
    ).wait_ready()
    try:
        web = server.query(dns.message.make_query("web.shop.svc.mcs.example.", "A"))
        assert web.answer[0].ttl == 30 and web.answer[0][0].address == "10.42.0.10"
        version = server.query(dns.message.make_query("dns-version.mcs.example.", "TXT"))
        assert version.answer[0][0].strings == (b"1.1.0",)
        missing = server.query(dns.message.make_query("nope.mcs.example.", "A"))
        soa = missing.authority[0]
        assert missing.rcode() == dns.rcode.NXDOMAIN and soa.ttl == 30 and soa[0].minimum == 30
        other = server.query(dns.message.make_query("web.shop.svc.clusterset.local.", "A"))
        assert other.rcode() == dns.rcode.REFUSED
    finally:
        server.stop()


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_ipv6_listener(transport):
    server = Server(ZONE_DIR, host="::1").wait_ready()
    try:
        response = server.query(dns.message.make_query("api.shop.svc.clusterset.local.", "AAAA"), transport)
        assert response.answer[0][0].address == "fd00:42::20"
    finally:
        server.stop()


def test_health_and_readiness(live_server):
    assert live_server.http("/healthz") == (200, "ok\n")
    status, text = live_server.http("/readyz")
    assert status == 200 and text.startswith("ready, serial ")
    status, metrics = live_server.http("/metrics")
    assert status == 200 and "mcsdns_zone_services" in metrics and "mcsdns_ready 1.0" in metrics
    assert live_server.http("/nope")[0] == 404
