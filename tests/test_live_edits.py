"""Editing the YAML folder while the server runs: answers follow, the serial moves
only when an answer changes, and a half-saved file never loses records."""

from __future__ import annotations

import os
import time

import dns.message
import dns.rcode
import pytest

from tests.helpers import Server, addresses, wait_for, write_atomically

WEB = "web.shop.svc.clusterset.local."
NEW = "fresh.shop.svc.clusterset.local."

FRESH = """
apiVersion: multicluster.x-k8s.io/v1beta1
kind: ServiceImport
metadata: {name: fresh, namespace: shop}
spec: {type: ClusterSetIP, ips: ["%s"]}
"""


@pytest.fixture
def server(zone_copy):
    running = Server(zone_copy).wait_ready()
    yield running
    running.stop()


def ask(server, name, qtype="A") -> dns.message.Message:
    return server.query(dns.message.make_query(name, qtype))


def serial(server) -> int:
    return ask(server, "clusterset.local.", "SOA").answer[0][0].serial


def eventually(condition) -> None:
    """The folder is polled every 0.1 s: 5 s is plenty."""
    wait_for(condition, timeout=5.0)


def test_new_edited_and_deleted_files(server, zone_copy):
    before = serial(server)
    path = zone_copy / "50-fresh.yaml"
    path.write_text(FRESH % "10.50.0.1")

    eventually(lambda: addresses(ask(server, NEW)) == ["10.50.0.1"])
    assert serial(server) > before
    path.write_text(FRESH % "10.50.0.2")

    eventually(lambda: addresses(ask(server, NEW)) == ["10.50.0.2"])
    path.unlink()

    eventually(lambda: ask(server, NEW).rcode() == dns.rcode.NXDOMAIN)
    assert addresses(ask(server, WEB)) == ["10.42.0.10"]  # the rest untouched


def test_broken_file_keeps_its_last_good_objects(server, zone_copy):
    path = zone_copy / "50-fresh.yaml"
    path.write_text(FRESH % "10.50.0.1")
    eventually(lambda: (addresses(ask(server, NEW)) == ["10.50.0.1"]))
    path.write_text("apiVersion: [unclosed\n  kind: : :")
    time.sleep(0.5)  # several polls
    assert addresses(ask(server, NEW)) == ["10.50.0.1"]
    assert "cannot read" in server.output() and "keeping its 1 previous objects" in server.output()
    path.write_text(FRESH % "10.50.0.3")  # fixed: the new content wins
    eventually(lambda: (addresses(ask(server, NEW)) == ["10.50.0.3"]))


def test_invisible_change_keeps_the_serial(server, zone_copy):
    before = serial(server)
    path = zone_copy / "10-examples.yaml"
    # comments, key order and status fields change nothing DNS can see
    text = path.read_text().replace("  ipFamilies: [IPv4, IPv6]\n", "")
    write_atomically(path, "# touched\n" + text + "\n---\n# nothing\n")
    time.sleep(0.6)
    assert serial(server) == before
    write_atomically(path, text.replace("10.42.0.10", "10.42.0.11"))
    eventually(lambda: (serial(server) == before + 1))
    assert addresses(ask(server, WEB)) == ["10.42.0.11"]


def test_rejected_object_is_counted(server, zone_copy):
    (zone_copy / "60-bad.yaml").write_text(FRESH.replace("fresh", "broken") % "not-an-ip")
    eventually(lambda: ("rejected ServiceImport shop/broken" in server.output()))
    _, metrics = server.http("/metrics")
    # in 30-list-and-bad.yaml at start: one bad IP, one bad type; and this one
    assert 'mcsdns_rejected_objects_total{field="spec.ips",kind="ServiceImport"} 2.0' in metrics
    assert 'mcsdns_rejected_objects_total{field="spec.type",kind="ServiceImport"} 1.0' in metrics
    assert ask(server, "broken.shop.svc.clusterset.local.").rcode() == dns.rcode.NXDOMAIN
    # kept with a part left out (60-partial.yaml) is counted apart from rejected
    assert 'mcsdns_partial_objects_total{field="ports.port",kind="EndpointSlice"} 1.0' in metrics
    assert 'mcsdns_rejected_objects_total{field="ports.port"' not in metrics


def test_missing_source_keeps_the_zone(tmp_path):
    folder = tmp_path / "zone"
    folder.mkdir()
    (folder / "fresh.yaml").write_text(FRESH % "10.50.0.1")
    server = Server(folder).wait_ready()
    try:
        folder.rename(tmp_path / "away")
        time.sleep(0.5)
        assert addresses(ask(server, NEW)) == ["10.50.0.1"]
        assert "is missing; keeping the zone" in server.output()
        (tmp_path / "away").rename(folder)
        (folder / "fresh.yaml").write_text(FRESH % "10.50.0.2")
        eventually(lambda: addresses(ask(server, NEW)) == ["10.50.0.2"])
    finally:
        server.stop()


def test_same_size_save_within_one_clock_tick_is_seen(tmp_path):
    """Two saves of equal size can share an mtime (coarse kernel clock)."""
    from mcsdns.source.files import FolderSource

    path = tmp_path / "fresh.yaml"
    path.write_text(FRESH % "10.50.0.1")
    source = FolderSource(str(tmp_path))
    assert source.scan() is not None
    stamp = path.stat().st_mtime_ns
    path.write_text(FRESH % "10.50.0.2")
    os.utime(path, ns=(stamp, stamp))  # as if within the same tick
    events = source.scan()
    assert events is not None
    imports = next(e for e in events if e.kind.value == "ServiceImport")
    assert imports.records[0].ips == ("10.50.0.2",)
    assert source.scan() is None  # nothing new since
