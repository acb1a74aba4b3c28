"""The source read once, up to its first full sync, into a zone store.

``mcsdns zone`` and ``mcsdns explain`` need the zone ``serve`` would have,
not a running server: the same source and store, stopped as soon as the store
is ready. A source that cannot sync in time is an error with its reason.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..app import make_source, make_store
from ..config import Config
from ..model.events import Event
from ..model.records import Rejected
from ..source.files import SourceError
from ..zone.store import ZoneStore

POLL = 0.02


class LoadError(Exception):
    """The zone could not be read; the text says why, in one line."""


@dataclass
class Loaded:
    store: ZoneStore
    rejected: list[Rejected] = field(default_factory=list)  # and objects kept only in part


def load(config: Config, timeout: float) -> Loaded:
    return asyncio.run(_load(config, timeout))


async def _load(config: Config, timeout: float) -> Loaded:
    rejected: list[Rejected] = []
    source = make_source(config, rejected.append)
    try:
        source.check()
    except SourceError as error:
        raise LoadError(str(error)) from None
    loaded = Loaded(make_store(config, source.required), rejected)

    def apply(events: list[Event]) -> None:
        loaded.store.apply(events)

    running = asyncio.create_task(source.run(apply))
    try:
        async with asyncio.timeout(timeout):
            while not loaded.store.ready and not running.done():
                await asyncio.sleep(POLL)
    except TimeoutError:
        outage = f" ({loaded.store.outage})" if loaded.store.outage else ""
        raise LoadError(f"the source did not sync within {timeout:g}s{outage}") from None
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    if not loaded.store.ready:
        error = running.exception() if not running.cancelled() else None
        raise LoadError(f"the source stopped before its first full sync: {error}")
    return loaded
