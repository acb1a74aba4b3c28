"""manifests/ as users apply it: rendered by a real kustomize (built by
tests/e2e/peers/build.sh), accepted by a real kube-apiserver, and the
Deployment's pod spec run as rendered against that apiserver.

- Every object of the base, of every overlay and of monitoring/ passes a
  server-side dry-run create (``?dryRun=All&fieldValidation=Strict``), with the
  prometheus-operator CRDs installed.
- The pod template passes Pod Security "restricted", which the manifest's
  Namespace enforces.
- The container runs with exactly the args and environment the rendered
  Deployment gives it (the mcsdns-settings ConfigMap resolved), as the
  manifest's ServiceAccount with the manifest's ClusterRole applied for real,
  and answers for objects created afterwards. There is no kubelet here, so:
  the image's ENTRYPOINT (``mcsdns serve``, read from the Dockerfile) runs as
  ``python -m mcsdns serve``; --listen and --http are moved from 0.0.0.0:5353
  and 0.0.0.0:8080 to free loopback ports, and --kubeconfig is added (no
  in-cluster configuration outside a pod) holding a TokenRequest token of that
  ServiceAccount. Nothing else is changed. The probes are asked at the path and
  port the manifest names.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from mcsdns.source.kube.feeds import FEEDS
from tests.e2e import peers
from tests.e2e.cluster import apply
from tests.helpers import ROOT, addresses, free_port, wait_for
from tests.kube import objects as o

pytestmark = pytest.mark.timeout(300)

MANIFESTS = ROOT / "manifests"
IMAGE = "mcsdns:0.1.0"

# name: (kustomization directory under manifests/, producer, local-first)
VARIANTS = {
    "base": ("", "auto", False),
    "karmada": ("overlays/karmada", "karmada", False),
    "submariner": ("overlays/submariner", "lighthouse", False),
    "mcs-api": ("overlays/mcs-api", "standard", False),
    # The overlays with their commented local-first lines taken in, as their
    # comments tell users to.
    "karmada-local-first": ("overlays/karmada", "karmada", True),
    "submariner-local-first": ("overlays/submariner", "lighthouse", True),
    "mcs-api-local-first": ("overlays/mcs-api", "standard", True),
}
APP_KINDS = sorted(["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment",
                    "PodDisruptionBudget", "Service", "Service"])
MONITORING_KINDS = sorted(["ServiceMonitor", "PrometheusRule"])

# kind -> (plural, namespaced)
RESOURCES = {
    "Namespace": ("namespaces", False),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "ServiceAccount": ("serviceaccounts", True),
    "ConfigMap": ("configmaps", True),
    "Service": ("services", True),
    "Pod": ("pods", True),
    "Deployment": ("deployments", True),
    "PodDisruptionBudget": ("poddisruptionbudgets", True),
    "ServiceMonitor": ("servicemonitors", True),
    "PrometheusRule": ("prometheusrules", True),
}
RBAC_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding")
LOCAL_FIRST_LINE = re.compile(r"^(\s*)# (- MCSDNS_(?:CLUSTER_ID|LOCAL_FIRST)=\S+)\s*$", re.M)


# ---- rendering ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tools(peer_paths) -> peers.DeployTools:
    return peers.deploy_tools(peer_paths)


@pytest.fixture(scope="module")
def local_first_tree(tmp_path_factory) -> Path:
    """A copy of manifests/ whose overlays have their local-first lines uncommented."""
    tree = tmp_path_factory.mktemp("manifests") / "manifests"
    shutil.copytree(MANIFESTS, tree, symlinks=True)
    for overlay in ("karmada", "submariner", "mcs-api"):
        path = tree / "overlays" / overlay / "kustomization.yaml"
        text, count = LOCAL_FIRST_LINE.subn(r"\1\2", path.read_text())
        assert count == 2, f"{path}: expected the two commented local-first lines, found {count}"
        path.write_text(text)
    return tree


@pytest.fixture(scope="module")
def rendered(tools, local_first_tree) -> dict[str, list[dict]]:
    out = {}
    for name, (directory, _, local_first) in VARIANTS.items():
        out[name] = peers.kustomize_build(tools, (local_first_tree if local_first else MANIFESTS) / directory)
    out["monitoring"] = peers.kustomize_build(tools, MANIFESTS / "monitoring")
    return out


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [x for x in objects if x["kind"] == kind and (name is None or x["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


POD_IP = "127.0.0.1"  # status.podIP of the process the tests run


def container(objects: list[dict]) -> dict:
    (only,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return only


def settings(objects: list[dict]) -> dict[str, str]:
    """The container's environment as the kubelet would build it: envFrom
    ConfigMaps first, then env (literal values, or the downward API's pod IP,
    which here is loopback, where the test runs the process)."""
    c = container(objects)
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        assert set(source) == {"configMapRef"}, source
        env.update(one(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in c.get("env", []):
        if "valueFrom" in var:
            assert var["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}, var
            env[var["name"]] = POD_IP
        else:
            assert set(var) == {"name", "value"}, var
            env[var["name"]] = var["value"]
    return env


def flag_value(args: list[str], flag: str) -> str:
    values = [a.split("=", 1)[1] for a in args if a.startswith(flag + "=")]
    values += [args[i + 1] for i, a in enumerate(args) if a == flag]
    assert len(values) == 1, f"{flag} appears {len(values)} times in {args}"
    return values[0]


def with_flags(args: list[str], replace: dict[str, str]) -> list[str]:
    out, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        flag = arg.split("=", 1)[0]
        if flag in replace:
            out.append(f"{flag}={replace[flag]}")
            skip = "=" not in arg
        else:
            out.append(arg)
    return out


@pytest.mark.parametrize("name", list(VARIANTS))
def test_renders_with_least_privilege(rendered, name):
    """Each variant: the same objects, the image to override, its producer, and
    exactly the read rules that producer's watches need."""
    _, producer, local_first = VARIANTS[name]
    objects = rendered[name]
    assert sorted(x["kind"] for x in objects) == APP_KINDS
    assert {x["metadata"].get("namespace", "mcsdns") for x in objects} == {"mcsdns"}
    assert container(objects)["image"] == IMAGE
    env = settings(objects)
    assert env["MCSDNS_PRODUCER"] == producer
    assert (env.get("MCSDNS_LOCAL_FIRST") == "true") == local_first
    assert ("MCSDNS_CLUSTER_ID" in env) == local_first
    rules = one(objects, "ClusterRole")["rules"]
    granted = {(group, plural) for rule in rules for group in rule["apiGroups"] for plural in rule["resources"]}
    assert granted == {(f.resource.group, f.resource.plural) for f in FEEDS[producer]}
    assert all(rule["verbs"] == ["get", "list", "watch"] for rule in rules)


def test_monitoring_renders(rendered):
    objects = rendered["monitoring"]
    assert sorted(x["kind"] for x in objects) == MONITORING_KINDS
    assert {x["metadata"]["namespace"] for x in objects} == {"mcsdns"}


@pytest.mark.parametrize("name", ["base", "karmada", "submariner", "mcs-api"])
def test_wiring(rendered, name):
    """Selectors, port names and numbers agree from Service to container to
    flags; the probes ask what the process serves; the grace period outlasts
    the lameduck; no service links can inject MCSDNS_* variables."""
    objects = rendered[name]
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    c = container(objects)
    assert "command" not in c, "the image's ENTRYPOINT (mcsdns serve) must run"
    ports = {p["name"]: (p["containerPort"], p["protocol"]) for p in c["ports"]}
    listen = int(flag_value(c["args"], "--listen").rsplit(":", 1)[1])
    http = int(flag_value(c["args"], "--http").rsplit(":", 1)[1])
    assert ports == {"dns": (listen, "UDP"), "dns-tcp": (listen, "TCP"), "http": (http, "TCP")}
    for selector in (deployment["spec"]["selector"]["matchLabels"], one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items()
    services = {s["metadata"]["name"]: s for s in objects if s["kind"] == "Service"}
    assert set(services) == {"mcsdns", "mcsdns-metrics"}
    for service in services.values():
        assert service["spec"]["selector"].items() <= labels.items()
    dns_ports = {(p["port"], p["protocol"], ports[p["targetPort"]]) for p in services["mcsdns"]["spec"]["ports"]}
    assert dns_ports == {(53, "UDP", (listen, "UDP")), (53, "TCP", (listen, "TCP"))}
    (metrics_port,) = services["mcsdns-metrics"]["spec"]["ports"]
    assert ports[metrics_port["targetPort"]] == (http, "TCP")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert c[probe]["httpGet"] == {"path": path, "port": "http"}
    lameduck = float(flag_value(c["args"], "--lameduck"))
    assert 0 < lameduck and lameduck + 10 <= pod["spec"]["terminationGracePeriodSeconds"]
    assert pod["spec"]["enableServiceLinks"] is False
    assert deployment["spec"]["replicas"] == 2
    spread = pod["spec"]["topologySpreadConstraints"]
    assert {(s["topologyKey"], s["whenUnsatisfiable"]) for s in spread} >= {("kubernetes.io/hostname", "DoNotSchedule")}
    # The ServiceMonitor scrapes this metrics Service by label and port name.
    monitor = one(rendered["monitoring"], "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= services["mcsdns-metrics"]["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [metrics_port["name"]]


def test_image_override_as_documented(tools, tmp_path):
    """`kustomize edit set image` in manifests/ (the root kustomization's comment)."""
    tree = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, tree, symlinks=True)
    edit = subprocess.run([str(tools.kustomize), "edit", "set", "image", "mcsdns=registry.example.com/team/mcsdns:0.1.1"],
                          cwd=tree, capture_output=True, text=True, timeout=30)
    assert edit.returncode == 0, edit.stderr
    assert container(peers.kustomize_build(tools, tree))["image"] == "registry.example.com/team/mcsdns:0.1.1"


# ---- against the apiserver --------------------------------------------------------


@pytest.fixture(scope="module")
def api(peer_paths, tools):
    with peers.KubeAPIServer(peer_paths) as server:
        server.install_crds(peer_paths)
        server.install_crds(tools.monitoring_crds)
        yield server


def collection(obj: dict) -> str:
    plural, namespaced = RESOURCES[obj["kind"]]
    version = obj["apiVersion"]
    prefix = f"/api/{version}" if "/" not in version else f"/apis/{version}"
    return f"{prefix}/namespaces/{obj['metadata']['namespace']}/{plural}" if namespaced else f"{prefix}/{plural}"


def dry_run(api: peers.KubeAPIServer, obj: dict) -> tuple[int, object]:
    """Server-side dry-run create; for an object that exists already (the
    Namespace, once created for real), a dry-run update of it."""
    status, result = api._request("POST", collection(obj) + "?dryRun=All&fieldValidation=Strict", obj)
    if status == 409:
        name = obj["metadata"]["name"]
        current = api.request("GET", f"{collection(obj)}/{name}")
        body = copy.deepcopy(obj)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        status, result = api._request("PUT", f"{collection(obj)}/{name}?dryRun=All&fieldValidation=Strict", body)
    return status, result


def apply_for_real(api: peers.KubeAPIServer, obj: dict) -> dict:
    """Create, or replace what is there (the ClusterRole differs per variant)."""
    status, result = api._request("POST", collection(obj) + "?fieldValidation=Strict", obj)
    if status == 409:
        name = obj["metadata"]["name"]
        current = api.request("GET", f"{collection(obj)}/{name}")
        body = copy.deepcopy(obj)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return api.request("PUT", f"{collection(obj)}/{name}?fieldValidation=Strict", body)
    if status not in (200, 201):
        raise peers.PeersError(f"creating {obj['kind']} {obj['metadata']['name']} -> {status}: {result}")
    return result


def namespaced(obj: dict) -> bool:
    return RESOURCES[obj["kind"]][1]


def test_server_side_dry_run_accepts_every_object(api, rendered):
    failures = []

    def check(variant: str, obj: dict) -> None:
        status, result = dry_run(api, obj)
        if status not in (200, 201):
            failures.append(f"{variant}: {obj['kind']} {obj['metadata']['name']} -> {status}: {result}")

    # Cluster-scoped objects first (nothing exists yet), then the Namespace for
    # real (a namespaced dry-run needs it), then every namespaced object.
    for variant, objects in rendered.items():
        for obj in objects:
            if not namespaced(obj):
                check(variant, obj)
    apply_for_real(api, one(rendered["base"], "Namespace"))
    for variant, objects in rendered.items():
        for obj in objects:
            if namespaced(obj):
                check(variant, obj)
    assert not failures, "\n".join(failures)
    # A dry run creates nothing.
    assert api._request("GET", "/apis/apps/v1/namespaces/mcsdns/deployments/mcsdns")[0] == 404


@pytest.mark.parametrize(("kind", "mutate", "refusal"), [
    ("Deployment", lambda d: d["spec"].update(replica=2), "unknown field"),
    ("PrometheusRule", lambda r: r["spec"]["groups"][0]["rules"][0].update({"for": "five minutes"}), "rules[0].for"),
    ("ServiceMonitor", lambda m: m["spec"]["endpoints"][0].update(interval="thirty seconds"), "interval"),
])
def test_dry_run_refuses_broken_objects(api, rendered, kind, mutate, refusal):
    """The dry run has teeth: typos and schema violations come back refused."""
    objects = rendered["monitoring"] if kind in MONITORING_KINDS else rendered["base"]
    apply_for_real(api, one(rendered["base"], "Namespace"))
    broken = copy.deepcopy(one(objects, kind))
    mutate(broken)
    status, result = dry_run(api, broken)
    assert status in (400, 422), (status, result)
    assert refusal in json.dumps(result)


def template_pod(objects: list[dict], mutate=None) -> dict:
    template = copy.deepcopy(one(objects, "Deployment")["spec"]["template"])
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "mcsdns-template", "namespace": "mcsdns", "labels": template["metadata"]["labels"]},
           "spec": template["spec"]}
    if mutate:
        mutate(pod["spec"])
    return pod


def _escalate(spec):
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True


def _root(spec):
    for holder in (spec["securityContext"], spec["containers"][0]["securityContext"]):
        holder.pop("runAsNonRoot")
        holder["runAsUser"] = 0


def _unconfined(spec):
    for holder in (spec["securityContext"], spec["containers"][0]["securityContext"]):
        holder["seccompProfile"] = {"type": "Unconfined"}


@pytest.mark.parametrize(("case", "mutate", "admitted"), [
    ("as rendered", None, True),
    ("privilege escalation", _escalate, False),
    ("root", _root, False),
    ("unconfined seccomp", _unconfined, False),
])
def test_pod_meets_restricted_pod_security(api, rendered, case, mutate, admitted):
    """A Pod made of the Deployment's template, dry-run created in the
    manifest's Namespace (which enforces "restricted"): admitted as rendered,
    refused with each hardening undone."""
    for obj in rendered["base"]:
        if obj["kind"] in RBAC_KINDS:
            apply_for_real(api, obj)  # the Namespace's label; the ServiceAccount the pod names
    status, result = dry_run(api, template_pod(rendered["base"], mutate))
    if admitted:
        assert status == 201, result
    else:
        assert status == 403 and "violates PodSecurity" in str(result), (status, result)


# ---- the pod spec, run ----------------------------------------------------------------


def entrypoint() -> list[str]:
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", (ROOT / "Dockerfile").read_text(), re.M)
    assert match, "Dockerfile has no exec-form ENTRYPOINT"
    argv = json.loads(match.group(1))
    assert argv[0] == "mcsdns", argv  # the console script: mcsdns.cli:main, as python -m mcsdns
    return [sys.executable, "-m", "mcsdns", *argv[1:]]


class Pod:
    """The rendered Deployment's container as a local process (see the module
    docstring for the three things changed)."""

    def __init__(self, objects: list[dict], kubeconfig: Path, log: Path):
        c = container(objects)
        self.container = c
        self.dns_port, self.http_port = free_port(), free_port()
        self.container_ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        args = with_flags(c["args"], {"--listen": f"127.0.0.1:{self.dns_port}", "--http": f"127.0.0.1:{self.http_port}"})
        self.argv = [*entrypoint(), *args, "--kubeconfig", str(kubeconfig)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCSDNS_")}
        env.update(settings(objects))
        self.log = log
        self.logfile = open(log, "w")
        self.process = subprocess.Popen(self.argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                        stdout=self.logfile, stderr=subprocess.STDOUT)

    def probe(self, name: str) -> int:
        """The probe as the kubelet would send it, to the port the manifest names."""
        get = self.container[name]["httpGet"]
        assert self.container_ports[get["port"]] == int(flag_value(self.container["args"], "--http").rsplit(":", 1)[1])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{get['path']}", timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0

    def wait_ready(self, timeout: float = 60) -> None:
        def ready():
            assert self.process.poll() is None, f"mcsdns exited with {self.process.returncode}:\n{self.output()}"
            return self.probe("readinessProbe") == 200
        wait_for(ready, timeout=timeout, step=0.1, what=f"readiness probe 200\n{self.output()}")

    def ask(self, name: str, qtype: str = "A") -> dns.message.Message:
        return dns.query.udp(dns.message.make_query(name, qtype), "127.0.0.1", port=self.dns_port, timeout=2)

    def output(self) -> str:
        self.logfile.flush()
        return self.log.read_text()[-3000:]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.logfile.close()


def producer_objects(producer: str, namespace: str, local: str, other: str):
    """What the producer writes for one service `web`: the objects, and (after
    creating them) the plain and the local-first answers."""
    web = f"web.{namespace}.svc.clusterset.local."
    if producer in ("karmada", "auto"):
        derived = o.service(namespace, "derived-web", "")
        derived["spec"] = {k: v for k, v in derived["spec"].items() if not k.startswith("clusterIP")}
        objects = [o.service_import(namespace, "web"), derived,
                   o.karmada_slice(namespace, "web", local, "x1", ["10.1.0.1"]),
                   o.karmada_slice(namespace, "web", other, "x1", ["10.2.0.1"])]
        return web, objects, lambda created: ([created["derived-web"]["spec"]["clusterIP"]], ["10.1.0.1"])
    ips = ["10.99.0.1"] if producer == "standard" else []
    objects = [o.service_import(namespace, "web", ips=ips),
               o.mcs_slice(namespace, f"web-{local}", "web", local, ["10.1.0.1"]),
               o.mcs_slice(namespace, f"web-{other}", "web", other, ["10.2.0.1"])]
    if producer == "lighthouse":  # the agent's per-cluster service-IP slices, by their labels
        for piece in objects[1:]:
            piece["metadata"]["labels"].update({
                "endpointslice.kubernetes.io/managed-by": "lighthouse-agent.submariner.io",
                "lighthouse.submariner.io/is-headless": "false",
                "lighthouse.submariner.io/sourceNamespace": namespace,
            })
    plain = ips or ["10.1.0.1", "10.2.0.1"]
    return web, objects, lambda created: (plain, ["10.1.0.1"])


def start_as_rendered(api, objects: list[dict], tmp_path: Path) -> Pod:
    for obj in objects:
        if obj["kind"] in RBAC_KINDS:
            apply_for_real(api, obj)
    account = one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    kubeconfig = api.service_account_kubeconfig("mcsdns", account, tmp_path / "sa.kubeconfig")
    pod = Pod(objects, kubeconfig, tmp_path / "mcsdns.log")
    try:
        pod.wait_ready()
    except BaseException:
        pod.kill()
        raise
    return pod


@pytest.mark.parametrize("name", list(VARIANTS))
def test_pod_spec_runs_as_rendered(api, rendered, name, tmp_path):
    """Ready on the readiness probe, alive on the liveness probe, answering for
    objects created afterwards, with exactly the RBAC the variant grants."""
    _, producer, local_first = VARIANTS[name]
    objects = rendered[name]
    pod = start_as_rendered(api, objects, tmp_path)
    try:
        assert pod.probe("livenessProbe") == 200
        # Least privilege as applied: Services readable only where the producer reads them.
        token = api.service_account_token("mcsdns", "mcsdns")
        reads_services = any(f.resource.plural == "services" for f in FEEDS[producer])
        assert api._request("GET", "/api/v1/services?limit=1", token=token)[0] == (200 if reads_services else 403)
        local = settings(objects).get("MCSDNS_CLUSTER_ID", "cluster-a")
        namespace = f"t-{name}"
        qname, created_objects, answers = producer_objects(producer, namespace, local, "cluster-z")
        created = {obj["metadata"]["name"]: apply(api, obj) for obj in created_objects}
        plain, local_answer = answers(created)
        want = local_answer if local_first else plain
        wait_for(lambda: addresses(pod.ask(qname)) == sorted(want), timeout=20,
                 what=f"{qname} A -> {want}")
        reply = pod.ask(qname)
        assert dns.rcode.to_text(reply.rcode()) == "NOERROR"
        # The apex NS target is the pod itself (MCSDNS_NS_ADDRESS from status.podIP).
        assert addresses(pod.ask("ns.dns.clusterset.local.")) == [POD_IP]
    finally:
        pod.kill()


def test_sigterm_lameduck_then_exit_within_grace(api, rendered, tmp_path):
    """SIGTERM, as the kubelet sends it: not ready at once while still answering
    for --lameduck seconds, then exit 0 before terminationGracePeriodSeconds."""
    objects = rendered["base"]
    c = container(objects)
    lameduck = float(flag_value(c["args"], "--lameduck"))
    grace = one(objects, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    pod = start_as_rendered(api, objects, tmp_path)
    try:
        signalled = time.monotonic()
        pod.process.send_signal(signal.SIGTERM)
        wait_for(lambda: pod.probe("readinessProbe") == 503, timeout=2, what="not ready after SIGTERM")
        assert pod.probe("livenessProbe") == 200
        reply = pod.ask("clusterset.local.", "SOA")
        assert dns.rcode.to_text(reply.rcode()) == "NOERROR" and reply.answer
        code = pod.process.wait(timeout=grace)
        took = time.monotonic() - signalled
        assert code == 0, pod.output()
        assert lameduck <= took < grace, took
    finally:
        pod.kill()


def test_corefile_stanza_through_stock_coredns(api, rendered, peer_paths, tmp_path):
    """manifests/coredns/Corefile.clusterset, with the ClusterIP filled in as
    its comment says (here: the loopback address of mcsdns) and a free port for
    :53, in a stock CoreDNS in front of the pod."""
    pod = start_as_rendered(api, rendered["base"], tmp_path)
    try:
        qname, objs, answers = producer_objects("auto", "t-coredns", "member1", "member2")
        created = {obj["metadata"]["name"]: apply(api, obj) for obj in objs}
        plain, _ = answers(created)
        stanza = (MANIFESTS / "coredns" / "Corefile.clusterset").read_text()
        assert stanza.count("MCSDNS_CLUSTER_IP") >= 2 and "clusterset.local:53 {" in stanza
        corefile = stanza.replace("forward . MCSDNS_CLUSTER_IP", f"forward . 127.0.0.1:{pod.dns_port}")
        corefile = corefile.replace("clusterset.local:53 {", "clusterset.local:{port} {")
        with peers.CoreDNS(corefile, peer_paths, probe=("clusterset.local.", "SOA"), probe_rcode="NOERROR") as coredns:
            wait_for(lambda: addresses(coredns.query(qname)) == sorted(plain), timeout=20,
                     what=f"{qname} through CoreDNS -> {plain}")
            refused = coredns.query("example.com.", "A")  # outside the stanza's zone: no server block
            assert dns.rcode.to_text(refused.rcode()) == "REFUSED"
    finally:
        pod.kill()
