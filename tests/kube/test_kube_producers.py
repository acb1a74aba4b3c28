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
    # A standard-mode server does not look at Karmada's inputs: the import exists, has no address.
    ("karmada-as-standard", o.KARMADA, "standard", {(o.name("orders.shop"), "A"): ("NOERROR", [])}),
    # Everything at once: auto serves all three producers side by side.
    ("mixed", o.STANDARD + o.KARMADA + o.LIGHTHOUSE, "auto",
     {**o.STANDARD_ANSWERS, **o.KARMADA_ANSWERS, **o.LIGHTHOUSE_ANSWERS}),
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
