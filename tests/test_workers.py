"""``--workers 2``: two processes on one port, each answering what the engine
answers; a change reaches both; one set of metrics and one readiness; a killed
worker is started again; SIGTERM stops them all.

SO_REUSEPORT spreads flows by source address and port, so every question is
asked from a socket of its own, and the per-worker request counters show that
both answered.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import dns.message
import dns.query
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mcsdns.engine.respond import Responder
from tests.helpers import DATA, Server, wait_for
from tests.test_answers import CASES
from tests.test_fastpath import engine_for, wires

ENGINE = Responder()
WEB = dns.message.make_query("web.shop.svc.clusterset.local.", "A")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return sorted(found)


def fresh_socket_ask(server: Server, message: bytes, timeout: float = 2.0) -> bytes:
    """One question from a new socket (a new source port: a new flow)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(message, (server.host, server.port))
        return sock.recv(65535)


def per_worker_requests(server: Server) -> dict[str, float]:
    status, text = server.http("/metrics")
    assert status == 200
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "mcsdns_dns_requests":
            for sample in family.samples:
                if sample.name == "mcsdns_dns_requests_total":
                    counts[sample.labels["worker"]] = counts.get(sample.labels["worker"], 0) + sample.value
    return counts


@pytest.fixture
def two(zone_copy):
    server = Server(zone_copy, "--workers", "2").wait_ready()
    yield server
    server.stop()


def test_both_workers_answer_what_the_engine_answers(two, zone_copy):
    store = engine_for(zone_copy, two)
    for round_ in range(2):  # misses, then hits
        for case, message in zip(CASES, wires(100 + round_ * 1000)):
            assert fresh_socket_ask(two, message) == ENGINE.respond(message, store.snapshot, True), str(case)
    counts = per_worker_requests(two)
    assert set(counts) == {"0", "1"} and min(counts.values()) > 0, counts


def test_a_change_reaches_both_workers(two, zone_copy):
    _, before = two.http("/readyz")
    path = zone_copy / "10-examples.yaml"
    path.write_text(path.read_text().replace("10.42.0.10", "10.42.7.7"))
    counted = per_worker_requests(two)

    def all_new():
        answers = [dns.message.from_wire(fresh_socket_ask(two, WEB.to_wire())) for _ in range(30)]
        return all(a.answer[0][0].address == "10.42.7.7" for a in answers)

    wait_for(all_new, timeout=10, what="30 flows all see the edit")
    after = per_worker_requests(two)
    assert all(after[w] > counted.get(w, 0) for w in ("0", "1")), (counted, after)  # both answered the new zone
    serials = [int(part.split("serial ")[1].split()[0].rstrip(";")) for part in two.http("/readyz")[1].split("worker ")[1:]]
    old = [int(part.split("serial ")[1].split()[0].rstrip(";")) for part in before.split("worker ")[1:]]
    assert len(serials) == 2 and all(new > o for new, o in zip(serials, old)), (before, serials)


def test_one_set_of_metrics_and_one_readiness(two):
    status, body = two.http("/readyz")
    assert status == 200 and body.startswith("ready: 2 of 2 workers answering"), body
    assert body.count("ready, serial") == 2
    fresh_socket_ask(two, WEB.to_wire())
    status, text = two.http("/metrics")
    assert status == 200
    names = [family.name for family in text_string_to_metric_families(text)]
    assert len(names) == len(set(names)), "each family once"
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["mcsdns_workers"].samples[0].value == 2
    assert families["mcsdns_worker_restarts"].samples[0].value == 0
    for name in ("mcsdns_zone_serial", "mcsdns_ready", "mcsdns_zone_services", "mcsdns_build_info"):
        assert {s.labels["worker"] for s in families[name].samples} == {"0", "1"}, name
    assert {s.value for s in families["mcsdns_ready"].samples} == {1.0}


def test_a_killed_worker_is_started_again(two):
    first = children(two.process.pid)
    assert len(first) == 2
    os.kill(first[1], signal.SIGKILL)
    time.sleep(0.3)
    status, body = two.http("/readyz")  # the other one answers every flow: still ready
    assert status == 200 and body.startswith("ready: 1 of 2 workers answering"), body
    for _ in range(20):  # the other worker takes every flow meanwhile
        try:
            fresh_socket_ask(two, WEB.to_wire(), timeout=1)
        except socket.timeout:  # at most the datagram queued on the killed socket
            fresh_socket_ask(two, WEB.to_wire(), timeout=1)

    def restarted():
        status, text = two.http("/metrics")
        return status == 200 and "mcsdns_worker_restarts_total 1.0" in text.replace(" 1\n", " 1.0\n")

    wait_for(restarted, timeout=15, what="the worker was started again")
    wait_for(lambda: two.http("/readyz")[1].startswith("ready: 2 of 2"), timeout=15, what="both ready")
    now = children(two.process.pid)
    assert len(now) == 2 and first[0] in now and first[1] not in now

    def both_answer():
        for _ in range(10):
            fresh_socket_ask(two, WEB.to_wire())
        counts = per_worker_requests(two)
        return len(counts) == 2 and min(counts.values()) > 0

    wait_for(both_answer, timeout=15, what="the new worker answers its share")


def test_sigterm_stops_every_worker(zone_copy):
    server = Server(zone_copy, "--workers", "2").wait_ready()
    pids = children(server.process.pid)
    assert len(pids) == 2
    assert server.stop(signal.SIGTERM) == 0
    time.sleep(0.2)
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((server.host, server.port))  # nobody holds the port any more


def test_address_taken_stops_the_server_with_the_usage_code(zone_copy):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        server = Server(zone_copy, "--workers", "2", port=holder.getsockname()[1])
        try:
            assert server.process.wait(20) == 2
        finally:
            server.stop()
