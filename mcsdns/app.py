"""The composition root: the only module that knows every other one.

Start-up order: check the source, bind every socket (a bind failure is a bad
setting: exit 2), then serve while the source fills the zone. Queries get
SERVFAIL until the first full sync. Shutdown, on SIGTERM or SIGINT: not ready
(lameduck), stop listening, drain TCP, stop the source, exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time

from .config import Config
from .engine.cache import ResponseCache
from .engine.respond import Responder
from .model.events import Outage
from .model.records import Rejected
from .observe.http import HealthServer
from .observe.metrics import Metrics
from .source.files import FolderSource, SourceError
from .transport.tcp import TcpServer
from .transport.udp import UdpServer, bind_udp
from .zone.settings import ZoneSettings
from .zone.snapshot import Snapshot
from .zone.store import ZoneStore

log = logging.getLogger("mcsdns")
EXIT_OK, EXIT_USAGE = 0, 2
SOURCE_RESTART = 1.0


class StartupError(Exception):
    """Serving cannot start (source unusable, address taken); the text says why."""


def make_source(config: Config, metrics: Metrics):
    def rejected(item: Rejected) -> None:
        metrics.rejected.labels(item.kind).inc()

    if config.source == "kube":
        from .source.kube import KubeSource  # the kubernetes client is slow to import

        return KubeSource(
            kubeconfig=config.kubeconfig, context=config.context, producer=config.producer, on_reject=rejected
        )
    return FolderSource(config.source, interval=config.poll_interval, on_reject=rejected)


class App:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        self.source = make_source(config, self.metrics)
        settings = ZoneSettings(
            origin=config.zone,
            ttl=config.ttl,
            dns_version=config.dns_version,
            local_cluster=config.cluster_id if config.local_first else None,
            ns_addresses=config.ns_address,
        )
        # Start the serial at the clock so a restart never goes backwards (RFC 1982).
        self.store = ZoneStore(settings, int(time.time()), self.source.required, on_publish=self._published)
        self.responder = ResponseCache(Responder(config.max_udp_payload))
        self.stopping = False
        self._udp: list[UdpServer] = []
        self._tcp: list[TcpServer] = []
        self._http: HealthServer | None = None

    def answer(self, message: bytes, udp: bool) -> bytes | None:
        return self.responder.respond(message, self.store.snapshot, udp)

    def readiness(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "shutting down"
        if not self.store.ready:
            return False, "waiting for the first full sync of the source"
        if self.store.outage:
            return True, f"serving the last good zone; source outage: {self.store.outage}"
        return True, f"ready, serial {self.store.snapshot.serial}"

    def _published(self, snapshot: Snapshot) -> None:
        self.metrics.serial.set(snapshot.serial)
        self.metrics.services.set(len(snapshot.services))
        self.metrics.ready.set(1 if snapshot.ready else 0)

    async def start(self) -> None:
        try:
            self.source.check()
        except SourceError as error:
            raise StartupError(str(error)) from None
        for host, port in self.config.listen:
            try:
                udp = UdpServer(bind_udp(host, port), self.answer, self.metrics)
                tcp = TcpServer(self.answer, self.metrics, self.config.tcp_idle_timeout, self.config.tcp_max_connections)
                await tcp.start(host, port)
            except OSError as error:
                raise StartupError(f"cannot listen on {_show(host, port)}: {_reason(error)}") from None
            udp.start()
            self._udp.append(udp)
            self._tcp.append(tcp)
        if self.config.http is not None:
            self._http = HealthServer(self.metrics, self.readiness)
            try:
                await self._http.start(*self.config.http)
            except OSError as error:
                raise StartupError(f"cannot serve HTTP on {_show(*self.config.http)}: {_reason(error)}") from None
        addresses = ", ".join(_show(host, port) for host, port in self.config.listen)
        log.info("answering for %s on %s (udp+tcp)", self.config.zone, addresses)

    async def stop(self) -> None:
        self.stopping = True
        if self.config.lameduck:
            log.info("lameduck for %.1fs", self.config.lameduck)
            await asyncio.sleep(self.config.lameduck)
        for udp in self._udp:
            udp.close()
        await asyncio.gather(*(tcp.close() for tcp in self._tcp))
        if self._http is not None:
            self._http.close()

    async def serve(self) -> int:
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        feeding = asyncio.create_task(self._feed(), name="source")
        await stop.wait()
        log.info("stopping")
        await self.stop()
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
        return EXIT_OK

    async def _feed(self) -> None:
        """Run the source for ever; a bug in it costs freshness, never the answers."""
        while True:
            try:
                await self.source.run(self.store.apply)
            except Exception as error:
                log.exception("the source failed; restarting it in %.0fs", SOURCE_RESTART)
                self.store.apply([Outage(f"source failed: {error}")])
            await asyncio.sleep(SOURCE_RESTART)


def _reason(error: OSError) -> str:
    return os.strerror(error.errno) if error.errno else str(error)


def _show(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def run(config: Config) -> int:
    logging.basicConfig(
        level=config.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(App(config).serve())
    except StartupError as error:
        print(f"mcsdns: error: {error}", file=sys.stderr)
        return EXIT_USAGE
