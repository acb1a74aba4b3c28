"""The harness: a KubeSource through the real ``kubernetes`` client against FakeApi,
its events fed into a ZoneStore, asserted through DNS answers of the engine."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field

import dns.message
import dns.rcode

from mcsdns.engine.respond import Responder
from mcsdns.model.events import Event
from mcsdns.model.records import Rejected
from mcsdns.source.kube import KubeSource
from mcsdns.zone.settings import ZoneSettings
from mcsdns.zone.store import ZoneStore

# Fast pacing for tests; production defaults are minutes and seconds.
FAST = dict(
    watch_timeout=30,
    read_timeout=5.0,
    connect_timeout=1.0,
    backoff=(0.05, 0.3),
    relist_limit=(100, 1.0),
    reconnect_limit=(100, 1.0),
    page_size=2,
)
RESPONDER = Responder()


@dataclass
class Harness:
    source: KubeSource
    store: ZoneStore = None
    batches: list[list[Event]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = ZoneStore(ZoneSettings(), initial_serial=1, required=self.source.required)
        self._thread = None
        self._task = None

    def emit(self, events: list[Event]) -> None:
        # The interface: emit only ever on the event loop thread.
        assert threading.get_ident() == self._thread, "emit called off the event loop thread"
        self.batches.append(list(events))
        self.store.apply(events)

    async def __aenter__(self) -> "Harness":
        self._thread = threading.get_ident()
        self._task = asyncio.create_task(self.source.run(self.emit))
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def ask(self, qname: str, rtype: str = "A") -> tuple[str, list[str]]:
        wire = RESPONDER.respond(dns.message.make_query(qname, rtype).to_wire(), self.store.snapshot)
        reply = dns.message.from_wire(wire)
        answers = sorted(rdata.to_text() for rrset in reply.answer for rdata in rrset)
        return dns.rcode.to_text(reply.rcode()), answers

    def answers_are(self, expected: dict) -> bool:
        return all(self.ask(qname, rtype) == want for (qname, rtype), want in expected.items())

    def differences(self, expected: dict) -> list[str]:
        return [
            f"{qname} {rtype}: got {self.ask(qname, rtype)}, want {want}"
            for (qname, rtype), want in expected.items()
            if self.ask(qname, rtype) != want
        ]

    async def until(self, predicate, what: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self._task.done():
                self._task.result()  # the source died: show why
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; batches: {self.batches[-5:]}")
            await asyncio.sleep(0.01)

    async def answers(self, expected: dict, timeout: float = 5.0) -> None:
        await self.until(lambda: self.answers_are(expected), f"answers {self.differences(expected)}", timeout)

    @contextlib.asynccontextmanager
    async def steady(self, expected: dict):
        """Check, every few milliseconds while the block runs, that the zone keeps
        giving exactly these answers (the zone never empties on a fault)."""
        stop = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                self.violations += self.differences(expected)
                await asyncio.sleep(0.005)

        checker = asyncio.create_task(watch())
        try:
            yield
        finally:
            stop.set()
            await checker
        assert not self.violations, self.violations[:5]

    def events(self, kind: type) -> list[Event]:
        return [event for batch in self.batches for event in batch if isinstance(event, kind)]

    @property
    def outage(self) -> str | None:
        return self.store.outage

    def count(self, kind: type) -> int:
        return len(self.events(kind))


def run(coroutine, timeout: float = 30.0):
    """Run one scenario, bounded in time."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def harness(kubeconfig: str, producer: str = "standard", **overrides) -> Harness:
    rejected: list[Rejected] = []
    source = KubeSource(kubeconfig=kubeconfig, producer=producer, on_reject=rejected.append, **{**FAST, **overrides})
    return Harness(source, rejected=rejected)


