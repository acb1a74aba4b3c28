"""Each producer's objects, watched in its own mode and in auto mode, answer right;
and each mode watches only what it needs (``required``, requests, memory)."""

from __future__ import annotations

import pytest

from mcsdns.model.records import Kind, Service

from . import objects as o
from .fakeapi import matches
from .harness import harness, run

ALL = frozenset(Kind)
STANDARD_KINDS = frozenset({Kind.SERVICE_IMPORT, Kind.ENDPOINT_SLICE})

# (fixture objects, producer mode, expected answers)
CASES = [
    ("standard", o.STANDARD, "standard", o.STANDARD_ANSWERS),
    ("standard", o.STANDARD, "auto", o.STANDARD_ANSWERS),
    ("karmada", o.KARMADA, "karmada", o.KARMADA_ANSWERS),
    ("karmada", o.KARMADA, "auto", o.KARMADA_ANSWERS),
    ("lighthouse", o.LIGHTHOUSE, "lighthouse", o.LIGHTHOUSE_ANSWERS),
    ("lighthouse", o.LIGHTHOUSE, "auto", o.LIGHTHOUSE_ANSWERS),
    ("karmada-long-names", o.KARMADA_LONG, "karmada", o.KARMADA_LONG_ANSWERS),
    ("mcs-api", o.MCS_API, "standard", o.MCS_API_ANSWERS),
    ("mcs-api", o.MCS_API, "auto", o.MCS_API_ANSWERS),
    ("aws", o.AWS, "standard", o.AWS_ANSWERS),
    ("aws", o.AWS, "auto", o.AWS_ANSWERS),
    # A standard-mode server does not look at Karmada's inputs: the import exists, has no address.
    ("karmada-as-standard", o.KARMADA, "standard", {(o.name("orders.shop"), "A"): ("NOERROR", [])}),
    # Everything at once: auto serves all three producers side by side.
    ("mixed", o.STANDARD + o.KARMADA + o.KARMADA_LONG + o.LIGHTHOUSE + o.MCS_API + o.AWS, "auto",
     {**o.STANDARD_ANSWERS, **o.KARMADA_ANSWERS, **o.KARMADA_LONG_ANSWERS, **o.LIGHTHOUSE_ANSWERS,
      **o.MCS_API_ANSWERS, **o.AWS_ANSWERS}),
]


@pytest.mark.parametrize("label, objects, producer, answers", CASES, ids=[f"{c[0]}-in-{c[2]}" for c in CASES])
def test_producer_answers(fake, kubeconfig, label, objects, producer, answers):
    fake.put(*objects, *o.NOISE)
    fake.start()

    async def scenario():
        async with harness(kubeconfig, producer) as h:
            await h.answers(answers)
            # Only derived-* Services ever reach the zone; other Services never are kept.
            services = [r for r in h.store.objects() if isinstance(r, Service)]
            assert all(s.name.startswith("derived-") for s in services), services
            assert not any(r.name.startswith("frontend") for r in h.store.objects())

    run(scenario())


@pytest.mark.parametrize(
    "producer, required, resources",
    [
        ("standard", STANDARD_KINDS, {"serviceimports", "endpointslices"}),
        ("lighthouse", STANDARD_KINDS, {"serviceimports", "endpointslices"}),
        ("karmada", ALL, {"serviceimports", "endpointslices", "services"}),
        ("auto", ALL, {"serviceimports", "endpointslices", "services"}),
    ],
)
def test_mode_watches_only_what_it_needs(fake, kubeconfig, producer, required, resources):
    fake.put(*o.STANDARD)
    fake.start()

    async def scenario():
        async with harness(kubeconfig, producer) as h:
            assert h.source.required == required
            await h.until(lambda: h.store.ready, "the zone to be ready")
            await h.until(lambda: all(fake.calls(r, watch=True) for r in resources), "every watch to open")
            touched = {r for r in ("serviceimports", "endpointslices", "services") if fake.calls(r)}
            assert touched == resources

    run(scenario())


SELECTORS = {
    "standard": {"multicluster.kubernetes.io/service-name"},
    "karmada": {
        "kubernetes.io/service-name,endpointslice.kubernetes.io/managed-by notin "
        "(endpointslice-controller.k8s.io,endpointslicemirroring-controller.k8s.io)"
    },
}
SELECTORS["auto"] = SELECTORS["standard"] | SELECTORS["karmada"]


@pytest.mark.parametrize("producer", sorted(SELECTORS))
def test_endpointslice_selectors(fake, kubeconfig, producer):
    """The server filters slices: in-tree slices never cross the wire (cheap on big clusters)."""
    fake.put(*o.NOISE, *o.KARMADA, *o.STANDARD)
    fake.start()

    async def scenario():
        async with harness(kubeconfig, producer) as h:
            await h.until(lambda: h.store.ready, "the zone to be ready")
            sent = {r.params.get("labelSelector") for r in fake.calls("endpointslices")}
            assert sent == SELECTORS[producer]
            # What those selectors let through (label selector semantics as the server applies them).
            through = {obj["metadata"]["name"] for obj in fake.objects["endpointslices"].values()
                       if any(matches(selector, obj) for selector in sent)}
            assert "frontend-x1" not in through  # in-tree slices stay on the server
            assert ("imported-member1-orders-x7k2p" in through) == (producer != "standard")
            assert ("db-c1" in through) == (producer != "karmada")

    run(scenario())


def test_partial_badness_stays_partial(fake, kubeconfig, caplog):
    """A slice without its cluster label and a port without a number are kept:
    their addresses answer, only what needs the missing piece is left out, and
    each piece is logged and reported once (not again on a relist)."""
    objects = o.producer_file("60-partial.yaml")
    objects[0]["spec"]["ips"] = ["not-an-ip"]  # ignored on a headless import, with a log line
    fake.put(*objects)
    fake.start()
    answers = {
        (o.name("logs.data"), "A"): ("NOERROR", ["10.9.0.1", "10.9.0.2"]),
        (o.name("10-9-0-2.east.logs.data"), "A"): ("NOERROR", ["10.9.0.2"]),
        (o.name("_http._tcp.logs.data"), "SRV"): ("NOERROR", ["0 100 8080 10-9-0-2.east.logs.data.svc.clusterset.local."]),
        (o.name("_syslog._udp.logs.data"), "SRV"): ("NXDOMAIN", []),
    }

    async def scenario():
        async with harness(kubeconfig, "standard") as h:
            await h.answers(answers)
            fields = sorted((r.kind, r.field, r.partial) for r in h.rejected)
            assert fields == [
                ("EndpointSlice", "multicluster.kubernetes.io/source-cluster", True),
                ("EndpointSlice", "ports.port", True),
                ("ServiceImport", "spec.ips", True),
            ], h.rejected
            fake.mute_watches()
            fake.compact()
            fake.drop_watches()
            await h.until(lambda: fake.lists("endpointslices") == 2, "a relist")
            await h.answers(answers)
            assert len(h.rejected) == 3  # not reported again

    run(scenario())
