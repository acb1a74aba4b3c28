"""The API server misbehaving under a running mcsdns, against the real kube-apiserver:
hung (accepting, never answering), slow, answering 500, dropping watches every
few seconds, the ServiceImport CRD deleted and re-created, and 10k endpoints
flapping. (Down at start, restarts, RBAC, 410 and missing CRDs at start are in
test_kube_faults_e2e.py and test_kube_e2e.py.)

mcsdns reaches the API through ``FaultProxy``; the test changes objects as the
admin, straight at the apiserver, while a sampler asks DNS and /readyz every
few milliseconds. Every row of the table holds mcsdns to the same promises:
every query answered, and each answer is the object's old state or its new
one, never a mixture and never old again once new was seen (a half-applied
change would show as a mixture); /readyz stays 200 and says "source outage"
exactly when the row says the view is lost, as the metrics do; and once the
fault ends, the zone converges and the outage clears.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.e2e import peers
from tests.e2e.cluster import RBAC, apply, apply_manifest, object_path
from tests.e2e.faultproxy import FaultProxy, Mode
from tests.helpers import Server, addresses, wait_for

NAMESPACE = "chaos"
CRD = "serviceimports.multicluster.x-k8s.io"


@dataclass
class Chaos:
    api: peers.KubeAPIServer
    proxy: FaultProxy
    server: Server
    paths: peers.Paths


@pytest.fixture(scope="module")
def chaos(peer_paths, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("kube-chaos")
    with peers.KubeAPIServer(peer_paths) as api:
        api.install_crds(peer_paths)
        api.ensure_namespace(NAMESPACE)
        apply_manifest(api, RBAC)
        direct = api.service_account_kubeconfig("mcsdns", "mcsdns", workdir / "direct.kubeconfig")
        with FaultProxy(api, delay=3.0, drop_every=2.0) as proxy:
            kubeconfig = proxy.kubeconfig(direct, workdir / "proxied.kubeconfig")
            server = Server("kube", "--kubeconfig", str(kubeconfig)).wait_ready(timeout=60)
            try:
                yield Chaos(api, proxy, server, peer_paths)
            finally:
                server.stop()


# ---- objects: one headless service per row, its endpoints all moving at once ----

def headless(name: str) -> dict:
    return {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"type": "Headless", "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}}


def endpoint_slice(service: str, slice_name: str, ips: list[str], ready: bool = True, cluster: str = "east") -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice_name, "namespace": NAMESPACE,
                         "labels": {"multicluster.kubernetes.io/service-name": service,
                                    "multicluster.kubernetes.io/source-cluster": cluster}},
            "addressType": "IPv4", "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips]}


def block(second: int, third: int, count: int = 8) -> list[str]:
    return [f"10.{second}.{third}.{host}" for host in range(1, count + 1)]


# ---- what the server says, sampled ----------------------------------------------

GONE = ("NXDOMAIN",)


def state(reply: dns.message.Message) -> tuple:
    """An answer as a comparable value: (NOERROR, addresses...) or (NXDOMAIN,)."""
    rcode = dns.rcode.to_text(reply.rcode())
    return (rcode, *addresses(reply)) if rcode == "NOERROR" else (rcode,)


def ask(chaos: Chaos, name: str, transport: str = "udp", timeout: float = 3.0) -> dns.message.Message:
    query = dns.message.make_query(name, "A", use_edns=0, payload=1232)
    if transport == "udp":
        return dns.query.udp(query, "127.0.0.1", port=chaos.server.port, timeout=timeout)
    return dns.query.tcp(query, "127.0.0.1", port=chaos.server.port, timeout=timeout)


def get(chaos: Chaos, path: str) -> tuple[int, str]:
    """An HTTP GET of mcsdns with a timeout a loaded machine meets (Server.http gives up after 2 s)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{chaos.server.http_port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, repr(error)


def readyz(chaos: Chaos) -> tuple[int, str]:
    return get(chaos, "/readyz")


def recovered(chaos: Chaos) -> bool:
    status, body = readyz(chaos)
    return status == 200 and "source outage" not in body


class Sampler:
    """Asks ``name`` every few ms and /readyz every ~100 ms on a thread, until stopped."""

    def __init__(self, chaos: Chaos, name: str) -> None:
        self.chaos, self.name = chaos, name
        self.answers: list[tuple[float, tuple]] = []
        self.readyz: list[tuple[float, int, str]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        next_readyz = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                self.answers.append((now, state(ask(self.chaos, self.name, timeout=5.0))))
            except (dns.exception.DNSException, OSError) as error:
                self.failures.append(f"{now:.2f}: {error!r}")
            if now >= next_readyz:
                self.readyz.append((now, *readyz(self.chaos)))
                next_readyz = now + 0.1
            time.sleep(0.01)

    def first(self, wanted: tuple) -> float | None:
        return next((at for at, got in self.answers if got == wanted), None)

    def outage_seen(self) -> bool:
        return any("source outage" in body for _, _, body in self.readyz)


def metrics(chaos: Chaos) -> dict[str, float]:
    """Every sample of /metrics, by its full text up to the value."""
    status, text = get(chaos, "/metrics")
    assert status == 200, text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def total(samples: dict[str, float], name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(value for key, value in samples.items()
               if key.split("{")[0] == name and all(label in key for label in wanted))


# ---- the table -------------------------------------------------------------------

@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[Chaos], None]
    recover: Callable[[Chaos, list[dict]], None]
    outage: str | None  # what /readyz says while it lasts; None: the view is never lost
    metric: tuple[str, dict] | None  # a counter that must grow while it lasts
    visible: bool  # a change made meanwhile shows before the fault ends
    before_change: float = 0.0  # seconds of fault before the change is made
    proxied: str | None = None  # a FaultProxy count that must grow
    also: tuple = ()  # answers allowed besides old and new
    latency: float = 0.0  # a change shows no sooner than this
    within: float = 30.0  # and no later than this

    def __str__(self) -> str:
        return self.name


def via_proxy(mode: Mode) -> Callable[[Chaos], None]:
    return lambda chaos: chaos.proxy.set(mode)


def proxy_passes(chaos: Chaos, objects: list[dict]) -> None:
    chaos.proxy.set(Mode.PASS)


def delete_crd(chaos: Chaos) -> None:
    chaos.api.request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}")
    wait_for(lambda: chaos.api._request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}")[0]
             == 404, timeout=30, what="the CRD gone")


def recreate_crd(chaos: Chaos, objects: list[dict]) -> None:
    """The CRD back, and its objects, as a producer re-exporting them would."""
    chaos.api.install_crds(chaos.paths)
    for obj in objects:
        if obj["kind"] == "ServiceImport":
            apply(chaos.api, obj)


UNREACHABLE = ("mcsdns_source_errors_total", {"reason": "unreachable"})
SERVER = ("mcsdns_source_errors_total", {"reason": "server"})
MISSING = ("mcsdns_source_errors_total", {"reason": "missing"})
BROKEN = ("mcsdns_source_watch_restarts_total", {"reason": "broken"})

FAULTS = [
    # Accepts, reads, never answers; open watches fall silent. Only the probe of a
    # quiet watch can tell (15 s quiet + 10 s unanswered, at most).
    Fault("hung", via_proxy(Mode.HANG), proxy_passes, "did not answer within 10s", UNREACHABLE, visible=False,
          proxied="held"),
    # Every response 3 s late: slower news, no outage.
    Fault("slow", via_proxy(Mode.SLOW), proxy_passes, None, None, visible=True, latency=2.5, within=8.0),
    # 500 with a Status to every request, open connections cut on the way in.
    Fault("500", via_proxy(Mode.ERROR), proxy_passes, "answered 500", SERVER, visible=False, proxied="errors"),
    # Open watches cut every 2 s: resumed from their resourceVersion, no outage; and
    # after 20 s of it, a change still shows within a few seconds (no backoff
    # growing towards its ceiling: a watch that lived a second was healthy).
    Fault("dropping watches", via_proxy(Mode.DROP), proxy_passes, None, BROKEN, visible=True, before_change=20.0,
          proxied="cut", within=5.0),
    # Deleting a CRD deletes its objects (the API sends DELETED for each, so the
    # names go: that is the API's truth), then the resource is not served.
    Fault("CRD deleted and re-created", delete_crd, recreate_crd, "does not serve serviceimports", MISSING,
          visible=False, also=(GONE,)),
]


@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_fault(chaos, fault):
    service = "svc-" + re.sub(r"[^a-z0-9]+", "-", fault.name.lower()).strip("-")
    name = f"{service}.{NAMESPACE}.svc.clusterset.local."
    row = FAULTS.index(fault)
    old_slice = endpoint_slice(service, f"{service}-east", block(60 + row, 0))
    new_slice = endpoint_slice(service, f"{service}-east", block(60 + row, 1))
    old, new = ("NOERROR", *sorted(block(60 + row, 0))), ("NOERROR", *sorted(block(60 + row, 1)))
    apply(chaos.api, headless(service))
    apply(chaos.api, old_slice)
    wait_for(lambda: state(ask(chaos, name)) == old, timeout=30, what="the old state answered")
    before, counts = metrics(chaos), dict(chaos.proxy.counts)

    with Sampler(chaos, name) as sampler:
        try:
            fault.inject(chaos)
            injected, detected = time.monotonic(), 0.0
            if fault.outage:
                wait_for(lambda: fault.outage in readyz(chaos)[1], timeout=45, step=0.2,
                         what=f"/readyz to report {fault.outage!r}")
                detected = time.monotonic() - injected
            time.sleep(fault.before_change)
            changed_at = time.monotonic()
            apply(chaos.api, new_slice)
            if fault.visible:
                wait_for(lambda: sampler.first(new), timeout=30, what="the change to show during the fault")
                delay = sampler.first(new) - changed_at
                print(f"{fault.name}: the change showed {delay:.1f}s after it was made")
                assert fault.latency <= delay <= fault.within, delay
            else:
                time.sleep(2)
                assert state(ask(chaos, name)) in (old, *fault.also)  # the last good zone, not the change
            during = metrics(chaos)
            assert total(during, "mcsdns_source_outage") == (1 if fault.outage else 0)
            if fault.metric:
                assert total(during, fault.metric[0], **fault.metric[1]) > total(before, fault.metric[0], **fault.metric[1])
            if fault.proxied:
                assert chaos.proxy.counts[fault.proxied] > counts.get(fault.proxied, 0)
        finally:
            fault.recover(chaos, [headless(service), new_slice])
        recovered_at = time.monotonic()
        wait_for(lambda: sampler.first(new) and sampler.answers[-1][1] == new, timeout=45, what="convergence")
        wait_for(lambda: recovered(chaos), timeout=30, what="outage cleared")
        converged = time.monotonic() - recovered_at
    assert total(metrics(chaos), "mcsdns_source_outage") == 0

    assert not sampler.failures, sampler.failures[:5]  # every query answered
    seen = [got for _, got in sampler.answers]
    assert set(seen) <= {old, new, *fault.also}, [got for got in seen if got not in (old, new, *fault.also)][:3]
    first_new = seen.index(new)
    assert old not in seen[first_new:], "old again after new"
    assert {status for _, status, _ in sampler.readyz} == {200}  # serving the last good zone throughout
    assert sampler.outage_seen() == bool(fault.outage)
    shown = f"outage reported {detected:.1f}s after the fault began; " if fault.outage else ""
    print(f"{fault.name}: {shown}converged {converged:.1f}s after recovery; {len(seen)} answers sampled")


# ---- 10k endpoints flapping --------------------------------------------------------

SERVICES, SLICES, ENDPOINTS = 50, 2, 100  # 10,000 endpoints; answers of up to 200 addresses (TCP)
FLAP_SECONDS = 10.0


class Admin:
    """The admin's requests on one kept-alive connection: hundreds of writes in
    seconds, where a TLS handshake per request would take tens."""

    def __init__(self, api: peers.KubeAPIServer) -> None:
        self.api = api
        self.connection = http.client.HTTPSConnection("127.0.0.1", api.port, context=api._ssl_context(), timeout=30)

    def send(self, method: str, path: str, body: dict) -> dict:
        headers = {"Authorization": f"Bearer {self.api.admin_token}", "Content-Type": "application/json",
                   "Accept": "application/json"}
        self.connection.request(method, path, json.dumps(body), headers)
        response = self.connection.getresponse()
        data = response.read()
        assert response.status in (200, 201), f"{method} {path} -> {response.status}: {data[:300]!r}"
        return json.loads(data)

    def create(self, obj: dict) -> dict:
        return self.send("POST", object_path(obj, named=False), obj)

    def replace(self, obj: dict) -> dict:
        return self.send("PUT", object_path(obj), obj)

    def close(self) -> None:
        self.connection.close()


def flapping_slice(service: int, part: int, ready: bool) -> dict:
    ips = [f"10.{100 + service}.{part}.{host}" for host in range(1, ENDPOINTS + 1)]
    return endpoint_slice(f"flap-{service}", f"flap-{service}-{part}", ips, ready, cluster=f"c{part}")


def half_applied(service: int, answer: tuple) -> list[str]:
    """The slices of ``service`` that show only some of their endpoints (one
    write flips all of a slice's endpoints, so any such answer is a mixture)."""
    shown = set(answer[1:])
    mixed = []
    for part in range(SLICES):
        ips = {f"10.{100 + service}.{part}.{host}" for host in range(1, ENDPOINTS + 1)}
        if shown & ips and not ips <= shown:
            mixed.append(f"flap-{service}-{part}: {len(shown & ips)} of {ENDPOINTS}")
    return mixed


def test_ten_thousand_endpoints_flapping(chaos):
    """50 headless services of 2 slices of 100 endpoints; slices flip readiness as
    fast as one admin connection writes them for 10 s, while answers are sampled
    over TCP: each shows every slice whole or not at all; then all ready again,
    and the zone converges."""
    admin = Admin(chaos.api)
    resource_versions: dict[tuple[int, int], str] = {}
    ready = {(s, p): True for s in range(SERVICES) for p in range(SLICES)}
    full = {s: ("NOERROR", *sorted(f"10.{100 + s}.{p}.{h}" for p in range(SLICES) for h in range(1, ENDPOINTS + 1)))
            for s in range(SERVICES)}

    def name(service: int) -> str:
        return f"flap-{service}.{NAMESPACE}.svc.clusterset.local."

    def write(service: int, part: int) -> None:
        body = flapping_slice(service, part, ready[(service, part)])
        body["metadata"]["resourceVersion"] = resource_versions[(service, part)]
        resource_versions[(service, part)] = admin.replace(body)["metadata"]["resourceVersion"]

    def converged() -> bool:
        return all(state(ask(chaos, name(s), "tcp", timeout=10)) == full[s] for s in range(SERVICES))

    try:
        started = time.monotonic()
        for service in range(SERVICES):
            admin.create(headless(f"flap-{service}"))
            for part in range(SLICES):
                created = admin.create(flapping_slice(service, part, True))
                resource_versions[(service, part)] = created["metadata"]["resourceVersion"]
        wait_for(converged, timeout=60, step=0.5, what="10k endpoints answered")
        loaded = time.monotonic() - started

        steady = {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
                  "metadata": {"name": "steady", "namespace": NAMESPACE},
                  "spec": {"type": "ClusterSetIP", "ips": ["10.99.0.1"], "ports": [{"port": 80, "protocol": "TCP"}]}}
        admin.create(steady)
        steady_name = f"steady.{NAMESPACE}.svc.clusterset.local."
        wait_for(lambda: state(ask(chaos, steady_name)) == ("NOERROR", "10.99.0.1"), what="a small name beside")
        mixtures, failures, samples, statuses, latencies = [], [], [0], set(), []
        stop = threading.Event()

        def small() -> None:
            """A small name's answers (UDP) meanwhile: on time, and unchanged."""
            while not stop.is_set():
                begun = time.monotonic()
                try:
                    if state(ask(chaos, steady_name, timeout=5)) != ("NOERROR", "10.99.0.1"):
                        failures.append("the steady name changed")
                except (dns.exception.DNSException, OSError) as error:
                    failures.append(f"{steady_name}: {error!r}")
                latencies.append(time.monotonic() - begun)
                time.sleep(0.02)

        def sample() -> None:
            while not stop.is_set():
                service = random.randrange(SERVICES)
                try:
                    answer = state(ask(chaos, name(service), "tcp", timeout=10))
                except (dns.exception.DNSException, OSError) as error:
                    failures.append(repr(error))
                    continue
                samples[0] += 1
                if answer[0] not in ("NOERROR", "NXDOMAIN"):
                    failures.append(f"{name(service)}: {answer[0]}")
                mixtures.extend(half_applied(service, answer))
                if samples[0] % 20 == 0:
                    statuses.add(readyz(chaos)[0])

        samplers = [threading.Thread(target=sample, daemon=True), threading.Thread(target=small, daemon=True)]
        for sampler in samplers:
            sampler.start()
        flaps, deadline = 0, time.monotonic() + FLAP_SECONDS
        try:
            while time.monotonic() < deadline:
                key = (random.randrange(SERVICES), random.randrange(SLICES))
                ready[key] = not ready[key]
                write(*key)
                flaps += 1
            for key in [key for key, up in ready.items() if not up]:
                ready[key] = True
                write(*key)
            settled = time.monotonic()
            wait_for(converged, timeout=60, step=0.2, what="the zone to converge after the flapping")
            convergence = time.monotonic() - settled
        finally:
            stop.set()
            for sampler in samplers:
                sampler.join(15)
        assert not failures, failures[:5]
        assert not mixtures, mixtures[:5]
        assert samples[0] >= 20, samples  # the sampler did sample
        assert statuses == {200}
        assert recovered(chaos)
        latencies.sort()
        print(f"10k endpoints: loaded in {loaded:.1f}s; {flaps} flaps in {FLAP_SECONDS:.0f}s, {samples[0]} answers "
              f"sampled, none mixed; converged {convergence:.1f}s after the last write; a small name meanwhile: "
              f"{len(latencies)} answers, median {1e3 * latencies[len(latencies) // 2]:.0f} ms, "
              f"p99 {1e3 * latencies[int(len(latencies) * 0.99)]:.0f} ms, max {1e3 * latencies[-1]:.0f} ms")
    finally:
        admin.close()
