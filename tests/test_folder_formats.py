"""What the folder source reads: JSON through the json module, YAML through
libyaml, the same objects either way, and a file neither can read keeps its
last good objects (answers checked over UDP against a live server)."""

from __future__ import annotations

import json

import dns.message
import dns.rcode
import pytest

from tests.helpers import Server, addresses, wait_for

IMPORT = {
    "apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"type": "ClusterSetIP", "ips": ["10.9.0.1"], "ports": [{"name": "http", "protocol": "TCP", "port": 80}]},
}

# (file name, text, addresses of web.shop, or None for "not served")
FORMATS = [
    ("plain.json", json.dumps(IMPORT), ["10.9.0.1"]),
    ("list.json", json.dumps({"apiVersion": "v1", "kind": "List", "items": [IMPORT]}), ["10.9.0.1"]),
    ("yaml-flow.json", "{apiVersion: multicluster.x-k8s.io/v1beta1, kind: ServiceImport, metadata: {name: web, "
     "namespace: shop}, spec: {type: ClusterSetIP, ips: [10.9.0.1]}}  # YAML, named .json", ["10.9.0.1"]),
    ("multi.yaml", "---\n" + json.dumps(IMPORT) + "\n---\nkind: Other\n", ["10.9.0.1"]),
    ("broken.json", '{"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": ', None),
]


@pytest.mark.parametrize("name,text,expected", FORMATS, ids=[case[0] for case in FORMATS])
def test_folder_formats(tmp_path, name, text, expected):
    (tmp_path / name).write_text(text)
    server = Server(tmp_path).wait_ready()
    try:
        response = server.query(dns.message.make_query("web.shop.svc.clusterset.local.", "A"))
        if expected is None:
            assert response.rcode() == dns.rcode.NXDOMAIN
            assert "cannot read" in server.output()
        else:
            assert addresses(response) == expected
    finally:
        server.stop()


def test_a_json_file_that_breaks_keeps_its_objects(tmp_path):
    path = tmp_path / "zone.json"
    path.write_text(json.dumps(IMPORT))
    server = Server(tmp_path).wait_ready()
    try:
        ask = lambda: addresses(server.query(dns.message.make_query("web.shop.svc.clusterset.local.", "A")))  # noqa: E731
        assert ask() == ["10.9.0.1"]
        path.write_text(json.dumps(IMPORT)[:40])  # a half-saved edit
        wait_for(lambda: "cannot read" in server.output(), what="the broken file is reported")
        assert ask() == ["10.9.0.1"]
    finally:
        server.stop()
