from __future__ import annotations

import shutil

import dns.message
import pytest

from mcsdns.engine.respond import Responder
from mcsdns.source.files import FolderSource
from mcsdns.zone.settings import ZoneSettings
from mcsdns.zone.store import ZoneStore
from tests.helpers import DATA, Server


def load_store(path, settings: ZoneSettings = ZoneSettings()) -> ZoneStore:
    source = FolderSource(str(path))
    store = ZoneStore(settings, 1000, source.required)
    store.apply(source.scan())
    return store


class EngineChannel:
    """The engine alone, fed by the same folder the live server reads."""

    def __init__(self, store: ZoneStore, responder: Responder = Responder()):
        self.store = store
        self.responder = responder

    def query(self, message: dns.message.Message, transport: str = "udp") -> dns.message.Message:
        wire = self.responder.respond(message.to_wire(), self.store.snapshot, udp=transport == "udp")
        return dns.message.from_wire(wire)


@pytest.fixture(scope="session")
def zone_store() -> ZoneStore:
    return load_store(DATA / "zone")


@pytest.fixture(scope="session")
def engine(zone_store) -> EngineChannel:
    return EngineChannel(zone_store)


@pytest.fixture(scope="session")
def live_server():
    server = Server(DATA / "zone").wait_ready()
    yield server
    server.stop()


@pytest.fixture
def zone_copy(tmp_path):
    """A private copy of the test zone folder, free to edit."""
    target = tmp_path / "zone"
    shutil.copytree(DATA / "zone", target)
    return target
