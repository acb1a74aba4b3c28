"""The composition root: the only module that knows every other one.

Start-up order: check the source, bind every socket (a bind failure is a bad
setting: exit 2), then serve while the source fills the zone. Queries get
SERVFAIL until the first full sync. Shutdown, on SIGTERM or SIGINT: not ready
(lameduck), stop listening, drain TCP, stop the source, exit 0.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import platform
import signal
import sys
import time
from collections import Counter
from typing import Callable

from .config import Config
from .heap import LOAD_LIMIT, LoadPhase
from .engine.cache import ResponseCache
from .engine.respond import Responder
from .inspect.explain import ExplainError, explain
from .model.events import Event, Outage
from .model.records import Rejected
from .observe import logs
from .observe.http import HealthServer
from .observe.metrics import Metrics, Observed, version
from .source.files import FolderSource, SourceError
from .engine.transfer import Policy
from .transport.notify import Notifier
from .transport.rrl import RateLimiter
from .transport.tcp import TcpLimits, TcpServer
from .transport.transfer import Transfers, signing
from .transport.udp import UdpServer, bind_udp
from .zone.history import History
from .zone.settings import ZoneSettings
from .zone.snapshot import Snapshot
from .zone.store import ZoneStore
from .zone.zoneset import ZoneSet

log = logging.getLogger("mcsdns")
EXIT_OK, EXIT_USAGE = 0, 2
SOURCE_RESTART = 1.0
MAX_REJECTIONS = 10_000  # rejected objects remembered for /debug/explain


class StartupError(Exception):
    """Serving cannot start (source unusable, address taken); the text says why."""


def make_source(config: Config, rejected: Callable[[Rejected], None]):
    if config.source == "kube":
        from .source.kube import KubeSource  # the kubernetes client is slow to import

        return KubeSource(
            kubeconfig=config.kubeconfig, context=config.context, producer=config.producer, on_reject=rejected
        )
    return FolderSource(config.source, interval=config.poll_interval, on_reject=rejected)


def make_store(
    config: Config, required, on_publish: Callable[[Snapshot], None] | None = None, zone: str | None = None,
    serial: int | None = None,
) -> ZoneStore:
    """The store of one zone (the primary unless ``zone`` names another)."""
    settings = ZoneSettings(
        origin=zone or config.zone,
        ttl=config.ttl,
        dns_version=config.dns_version,
        local_cluster=config.cluster_id if config.local_first else None,
        ns_addresses=config.ns_address,
        ptr=config.ptr,
        reverse_zones=config.reverse_zones,
        lighthouse_names=config.lighthouse_names,
    )
    # Start the serial at the clock so a restart never goes backwards (RFC 1982); workers
    # started together get their parent's clock, so they start at the same serial.
    return ZoneStore(settings, int(time.time()) if serial is None else serial, required, on_publish=on_publish)


def make_limiter(config: Config) -> RateLimiter | None:
    """UDP response rate limiting, or None when every rate is 0."""
    limiter = RateLimiter(
        config.rrl_rate, config.rrl_nxdomain_rate, config.rrl_error_rate, slip=config.rrl_slip,
        window=config.rrl_window, ipv4_prefix=config.rrl_ipv4_prefix, ipv6_prefix=config.rrl_ipv6_prefix,
        exempt=config.rrl_exempt,
    )
    return limiter if limiter.enabled else None


def tcp_limits(config: Config) -> TcpLimits:
    return TcpLimits(
        idle_timeout=config.tcp_idle_timeout, max_connections=config.tcp_max_connections,
        read_timeout=config.tcp_read_timeout, write_timeout=config.tcp_write_timeout,
        max_in_flight=config.tcp_max_in_flight, max_buffered=config.tcp_max_buffered,
    )


class App:
    """``worker``: one of ``--workers N`` (see ``workers``): share the DNS port
    (SO_REUSEPORT); ``join_when_ready``: bind it only after the first full sync,
    so a restarted worker never answers SERVFAIL beside ready ones; ``serial``:
    the first SOA serial (default: the clock)."""

    def __init__(
        self, config: Config, worker: bool = False, join_when_ready: bool = False, serial: int | None = None
    ) -> None:
        self.config = config
        self.worker = worker
        self.join_when_ready = join_when_ready
        self._synced = asyncio.Event()
        self.rejected: Counter = Counter()  # (kind, field) -> objects, for the metrics
        self.partial: Counter = Counter()  # (kind, field) -> objects kept with a part left out
        self.rejections: dict[tuple[str, str, str], Rejected] = {}  # with --debug-explain only
        self.source = make_source(config, self._rejected)
        self.store = make_store(config, self.source.required, on_publish=self._published, serial=serial)
        # Further zones hold the same names under their own apex and serial.
        self.stores = [self.store] + [
            make_store(config, self.source.required, self._published_extra, zone, serial)
            for zone in config.extra_zones
        ]
        self.view: Snapshot | ZoneSet = self._view()  # what the engine reads: every zone at once
        # Zone transfers: the last versions of each zone, by apex, and who may have them.
        self.histories = {store.snapshot.origin: History(store.snapshot, config.ixfr_history) for store in self.stores}
        keys = {key.name: key for key in config.tsig_keys}
        allow = tuple(ipaddress.ip_network(network) for network in config.transfer_allow)
        policy = Policy(allow, keys, config.transfer_require_tsig)
        self.transfers = Transfers(self.histories.get, policy)
        self.handler = signing(self.answer, policy) if keys else self.answer  # what UDP and TCP call
        notify_key = config.tsig_keys[0] if config.tsig_keys else None
        self.notified: Counter = Counter()  # NOTIFY results, every zone together
        self.notifiers = {
            store.snapshot.origin: Notifier(store.snapshot.origin, config.notify, notify_key, counts=self.notified)
            for store in self.stores
        }
        self.responder = ResponseCache(Responder(config.max_udp_payload))
        self.observed = Observed(
            snapshot=lambda: self.store.snapshot,
            outage=lambda: self.store.outage is not None,
            source=self.source.stats,
            rejected=self.rejected,
            partial=self.partial,
            transfers=self.transfers.counts,
            notifies=self.notified,
        )
        self.rrl = make_limiter(config)
        self.observed.rrl = self.rrl
        self.metrics = Metrics(self.observed)
        self.stopping = False
        self._udp: list[UdpServer] = []
        self._tcp: list[TcpServer] = []
        self._http: HealthServer | None = None
        self._outage: str | None = None
        self._last = self.store.snapshot  # the previous publish, to see what changed
        self._load = LoadPhase()

    def answer(self, message: bytes, udp: bool) -> tuple[bytes | None, int]:
        return self.responder.answer(message, self.view, udp)

    def _view(self) -> Snapshot | ZoneSet:
        if len(self.stores) == 1:
            return self.store.snapshot
        return ZoneSet(tuple(store.snapshot for store in self.stores))

    def _published_extra(self, snapshot: Snapshot) -> None:
        self.view = self._view()
        self._remember(snapshot)

    def _remember(self, snapshot: Snapshot) -> None:
        """Keep the version for IXFR; NOTIFY the secondaries when its serial moved."""
        store = next(store for store in self.stores if store.snapshot is snapshot)
        history = self.histories[snapshot.origin]
        moved = snapshot.serial != history.current.serial
        history.add(snapshot, store.changed)
        if moved and snapshot.ready:
            self.notifiers[snapshot.origin].changed()

    def udp_hits(self) -> dict[bytes, tuple[bytes, int]]:
        """The response cache's UDP entries for the zones as they are now (see ``engine.cache``)."""
        return self.responder.udp_hits(self.view)

    def readiness(self) -> tuple[bool, str]:
        """(ready, the /readyz body): not ready while draining or before the first
        full sync; an outage after it keeps serving the last good zone, so ready."""
        outage = self.store.outage
        if self.stopping:
            return False, "draining: shutting down (lameduck), answering until the listeners close"
        if not self.store.ready:
            waiting = ", ".join(self._unsynced()) or "the source"
            detail = f"; source outage: {outage}" if outage else ""
            return False, f"not ready: waiting for the first full sync of {waiting}{detail}"
        serial = self.store.snapshot.serial
        if outage:
            return True, f"ready, serial {serial}; serving the last good zone, source outage: {outage}"
        return True, f"ready, serial {serial}"

    def _unsynced(self) -> list[str]:
        stats = self.source.stats
        return sorted(r for r, feeds in stats.feeds.items() if not feeds <= stats.synced.get(r, {}).keys())

    def _rejected(self, item: Rejected) -> None:
        (self.partial if item.partial else self.rejected)[(item.kind, item.field)] += 1
        if self.config.debug_explain:  # the latest word on each object, for /debug/explain
            key = (item.kind, item.namespace, item.name)
            self.rejections.pop(key, None)
            self.rejections[key] = item
            if len(self.rejections) > MAX_REJECTIONS:
                del self.rejections[next(iter(self.rejections))]

    def explain(self, name: str, qtype: str) -> tuple[bool, str]:
        """(question made sense, text) for /debug/explain."""
        try:
            return True, "\n".join(explain(self.store, name, qtype, self.rejections.values()))
        except ExplainError as error:
            return False, str(error)

    def _published(self, snapshot: Snapshot) -> None:
        if len(self.stores) == 1:  # one zone: answers of the services it did not change stay cached
            self.responder.carry(self._last, snapshot, self.store.changed)
        self.view = self._view()
        self._remember(snapshot)
        old, self._last = self._last, snapshot
        if snapshot.serial != old.serial or self.observed.changed_at is None:
            self.observed.changed_at = time.monotonic()
        if snapshot.ready:
            self._synced.set()
        if snapshot.ready and not old.ready:
            self._load.end()
            log.info(
                "first full sync: serving %d services, serial %d", len(snapshot.services), snapshot.serial,
                extra={"event": "synced", "services": len(snapshot.services), "serial": snapshot.serial},
            )

    def _apply(self, events: list[Event]) -> None:
        events = list(events)  # each store reads them all
        for store in self.stores[1:]:
            store.apply(events)
        self.store.apply(events)  # last: its publish is what the log and the metrics follow
        outage = self.store.outage
        if outage != self._outage:
            if outage is not None:
                log.warning("source outage: %s", outage, extra={"event": "outage", "reason": outage})
            else:
                log.info("source recovered", extra={"event": "recovered"})
            self._outage = outage

    async def start(self) -> None:
        try:
            self.source.check()
        except SourceError as error:
            raise StartupError(str(error)) from None
        if not self.join_when_ready:
            await self.listen()
        await self._serve_http()

    async def listen(self) -> None:
        for host, port in self.config.listen:
            try:
                udp = UdpServer(bind_udp(host, port, self.worker), self.handler, self.udp_hits,
                                self.config.udp_batch, self.rrl)
                tcp = TcpServer(self.handler, tcp_limits(self.config), host, self.transfers)
                await tcp.start(host, port, self.worker)
            except OSError as error:
                raise StartupError(f"cannot listen on {_show(host, port)}: {_reason(error)}") from None
            udp.start()
            self._udp.append(udp)
            self._tcp.append(tcp)
            self.observed.transports += [udp.stats, tcp.stats]
        if self.rrl is not None:
            self.rrl.start()

    async def _serve_http(self) -> None:
        if self.config.http is not None:
            self._http = HealthServer(self.metrics, self.readiness, self.explain if self.config.debug_explain else None)
            try:
                await self._http.start(*self.config.http)
            except OSError as error:
                raise StartupError(f"cannot serve HTTP on {_show(*self.config.http)}: {_reason(error)}") from None
        # Logged once start-up cannot fail any more: a bad setting stays one line on stderr.
        log.info(
            "started mcsdns %s (python %s), source %s", version(), platform.python_version(), self.config.source,
            extra={"event": "start", "version": version(), "source": self.config.source},
        )
        addresses = [_show(host, port) for host, port in self.config.listen]
        http = _show(*self.config.http) if self.config.http else None
        rrl = _rrl_summary(self.config) if self.rrl is not None else "off"
        log.info(
            "answering for %s on %s (udp+tcp)%s; UDP rate limiting %s",
            ", ".join((self.config.zone, *self.config.extra_zones)), ", ".join(addresses),
            f"; http on {http}" if http else "", rrl,
            extra={"event": "listening", "zone": self.config.zone, "addresses": addresses, "http": http, "rrl": rrl},
        )

    async def stop(self) -> None:
        self.stopping = True
        if self.config.lameduck:
            log.info("lameduck: not ready for %.1fs, still answering", self.config.lameduck,
                     extra={"event": "draining", "seconds": self.config.lameduck})
            await asyncio.sleep(self.config.lameduck)
        for udp in self._udp:
            udp.close()
        if self.rrl is not None:
            self.rrl.stop()
        await asyncio.gather(*(tcp.close() for tcp in self._tcp))
        for notifier in self.notifiers.values():
            await notifier.close()
        if self._http is not None:
            self._http.close()

    async def serve(self) -> int:
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        self._load.begin()
        loop.call_later(LOAD_LIMIT, self._load.end)
        feeding = asyncio.create_task(self._feed(), name="source")
        if self.worker:
            orphaned = asyncio.create_task(_parent_gone(stop), name="parent")
        if self.join_when_ready:
            synced = asyncio.create_task(self._synced.wait())
            await asyncio.wait([synced, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
            if synced.done():
                await self.listen()
                log.info("zone ready: joined the port", extra={"event": "joined"})
        await stop.wait()
        log.info("stopping", extra={"event": "stopping"})
        await self.stop()
        feeding.cancel()
        if self.worker:
            orphaned.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
        log.info("stopped", extra={"event": "stopped"})
        return EXIT_OK

    async def _feed(self) -> None:
        """Run the source for ever; a bug in it costs freshness, never the answers."""
        while True:
            try:
                await self.source.run(self._apply)
            except Exception as error:
                log.exception("the source failed; restarting it in %.0fs", SOURCE_RESTART)
                self._apply([Outage(f"source failed: {error}")])
            await asyncio.sleep(SOURCE_RESTART)


async def _parent_gone(stop: asyncio.Event) -> None:
    """A worker stops when its parent is gone (killed outright): no orphan keeps the port."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("the parent process is gone: stopping", extra={"event": "orphaned"})
    stop.set()


async def _serve(config: Config, worker: bool, join_when_ready: bool, serial: int | None) -> int:
    return await App(config, worker, join_when_ready, serial).serve()


def _rrl_summary(config: Config) -> str:
    rates = {config.rrl_rate, config.rrl_nxdomain_rate, config.rrl_error_rate}
    rate = f"{config.rrl_rate}/s" if len(rates) == 1 else (
        f"{config.rrl_rate}/s answers, {config.rrl_nxdomain_rate}/s NXDOMAIN, {config.rrl_error_rate}/s errors")
    exempt = ", ".join(config.rrl_exempt) or "none"
    return (f"over {rate} per source /{config.rrl_ipv4_prefix} or /{config.rrl_ipv6_prefix}, "
            f"slip {config.rrl_slip}, exempt {exempt}")


def _reason(error: OSError) -> str:
    return os.strerror(error.errno) if error.errno else str(error)


def _show(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def run(config: Config, worker: bool = False, join_when_ready: bool = False, serial: int | None = None) -> int:
    logs.setup(config.log_level, config.log_format)
    try:
        return asyncio.run(_serve(config, worker, join_when_ready, serial))
    except StartupError as error:
        print(f"mcsdns: error: {error}", file=sys.stderr)
        return EXIT_USAGE
