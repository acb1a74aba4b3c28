"""``KubeSource.check()``: which cluster and credentials, and one clear line when unusable."""

from __future__ import annotations

import json

import pytest

from mcsdns.source.files import SourceError
from mcsdns.source.kube import KubeSource
from mcsdns.source.kube.connect import connect

from .fakeapi import FakeApi

GOOD = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "a", "cluster": {"server": "http://127.0.0.1:1"}},
                 {"name": "b", "cluster": {"server": "http://127.0.0.1:2"}}],
    "users": [{"name": "u", "user": {"token": "t"}}],
    "contexts": [{"name": "first", "context": {"cluster": "a", "user": "u"}},
                 {"name": "second", "context": {"cluster": "b", "user": "u"}}],
    "current-context": "first",
}


# (files to write, --kubeconfig, --context, environment, error fragment or expected host)
CASES = [
    ("explicit file", {"k": json.dumps(GOOD)}, "k", None, {}, "http://127.0.0.1:1"),
    ("explicit context", {"k": json.dumps(GOOD)}, "k", "second", {}, "http://127.0.0.1:2"),
    ("missing file", {}, "nope", None, {}, "kubeconfig {dir}/nope does not exist"),
    ("not yaml", {"k": "clusters: [unclosed"}, "k", None, {}, "is unusable"),
    ("empty file", {"k": ""}, "k", None, {}, "is unusable"),
    ("not a mapping", {"k": "- 1\n- 2\n"}, "k", None, {}, "is unusable"),
    ("unknown context", {"k": json.dumps(GOOD)}, "k", "third", {}, "context 'third' is not in kubeconfig"),
    ("default from KUBECONFIG", {"k": json.dumps(GOOD)}, None, None, {"KUBECONFIG": "{dir}/k"}, "http://127.0.0.1:1"),
    ("KUBECONFIG list", {"k": json.dumps(GOOD)}, None, "second", {"KUBECONFIG": "{dir}/none:{dir}/k"},
     "http://127.0.0.1:2"),
    ("nothing at all", {}, None, None, {"KUBECONFIG": "{dir}/none"}, "not running in a cluster"),
    ("in cluster", {"sa/token": "abc", "sa/ca.crt": "CERT"}, None, None,
     {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443", "KUBECONFIG": "{dir}/none"},
     "https://10.0.0.1:443"),
    ("in cluster without token falls back", {"k": json.dumps(GOOD)}, None, None,
     {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443", "KUBECONFIG": "{dir}/k"},
     "http://127.0.0.1:1"),
    ("in cluster without token, no kubeconfig", {}, None, None,
     {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443", "KUBECONFIG": "{dir}/none"},
     "in-cluster configuration unusable"),
]


@pytest.mark.parametrize("label, files, kubeconfig, context, environ, expect", CASES, ids=[c[0] for c in CASES])
def test_connect(tmp_path, label, files, kubeconfig, context, environ, expect):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    env = {key: value.format(dir=tmp_path) for key, value in environ.items()}
    path = str(tmp_path / kubeconfig) if kubeconfig else None
    expect = expect.format(dir=tmp_path)
    if expect.startswith("http"):
        api = connect(path, context, environ=env, service_account=tmp_path / "sa")
        assert api.configuration.host == expect
    else:
        with pytest.raises(SourceError) as raised:
            connect(path, context, environ=env, service_account=tmp_path / "sa")
        assert expect in str(raised.value)
        assert "\n" not in str(raised.value)


def test_check_uses_the_flags(tmp_path):
    fake = FakeApi()
    source = KubeSource(kubeconfig=str(fake.kubeconfig(tmp_path / "k", context="ctx")), context="ctx")
    source.check()  # no server needed: an unreachable API is not a configuration error
    with pytest.raises(SourceError, match="does not exist"):
        KubeSource(kubeconfig=str(tmp_path / "missing")).check()


def test_unknown_producer():
    with pytest.raises(ValueError, match="not one of"):
        KubeSource(producer="istio")
