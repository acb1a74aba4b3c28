"""A file or a folder of Kubernetes YAML/JSON, watched for edits while we run.

Made for local use and tests: it emits exactly the events the Kubernetes source
does (a ``Replace`` of every kind per scan), so the zone cannot tell them apart.
A file that stops parsing keeps its last good objects, like CoreDNS's file
plugin keeps serving the old zone when a reload fails: nothing is lost to a
half-saved edit. A deleted file takes its objects with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from ..model.convert import convert
from ..model.events import Event, Replace
from ..model.records import Kind, Record, Rejected
from .stats import SourceStats

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")
RESOURCE = "files"  # the resource label of this source's statistics
Stamp = tuple[int, int]  # (mtime_ns, size): cheap to poll
# File times come from a coarse kernel clock: two saves of the same size within
# one tick keep the same stamp. A file changed this recently is read again (and
# compared by digest) on every scan until its stamp is old enough to trust.
UNSETTLED_NS = 2_000_000_000


class SourceError(Exception):
    """The source cannot be used at all (missing, unreadable); the text says why."""


@dataclass
class _File:
    stamp: Stamp
    digest: bytes  # of the bytes last read: what tells a real change
    records: list[Record] = field(default_factory=list)


class FolderSource:
    required = frozenset(Kind)

    def __init__(self, path: str, interval: float = 1.0, on_reject: Callable[[Rejected], None] | None = None):
        self.path = Path(path)
        self.interval = interval
        self._files: dict[Path, _File] = {}
        self._on_reject = on_reject or (lambda rejected: None)
        self.stats = SourceStats()
        self.stats.expect(RESOURCE)

    def check(self) -> None:
        """Fail fast, before serving, when the path cannot be read at all."""
        if not self.path.exists():
            raise SourceError(f"source {self.path} does not exist")
        if not os.access(self.path, os.R_OK | (os.X_OK if self.path.is_dir() else 0)):
            raise SourceError(f"source {self.path} is not readable")

    def scan(self) -> list[Event] | None:
        """Events for the current state of the files, or None if nothing changed."""
        if not self.path.exists():
            # Gone as a whole (unmounted, mid-rename): keep serving what we have.
            log.warning("source %s is missing; keeping the zone as it is", self.path)
            self.stats.errors[(RESOURCE, "missing")] += 1
            return None
        now = time.time_ns()
        files: dict[Path, _File] = {}
        for path, stamp in sorted(self._stamps()):
            old = self._files.get(path)
            settled = old is not None and old.stamp == stamp and now - stamp[0] > UNSETTLED_NS
            files[path] = old if settled else self._load(path, stamp, old)
        changed = files.keys() != self._files.keys() or any(
            files[path].digest != self._files[path].digest for path in files
        )
        self._files = files
        self.stats.in_sync(RESOURCE)  # every file was looked at: the zone follows the folder
        if not changed:
            return None
        by_kind: dict[Kind, dict[tuple, Record]] = {kind: {} for kind in Kind}
        for loaded in self._files.values():
            for record in loaded.records:
                by_kind[record.kind][(record.namespace, record.name)] = record  # last file wins
        return [Replace(kind, tuple(records.values())) for kind, records in by_kind.items()]

    async def run(self, emit: Callable[[list[Event]], None]) -> None:
        while True:
            try:
                events = await asyncio.to_thread(self.scan)
            except OSError as error:
                log.warning("cannot scan %s (keeping the zone as it is): %s", self.path, error)
                self.stats.errors[(RESOURCE, "unreadable")] += 1
                events = None
            if events is not None:
                emit(events)
            await asyncio.sleep(self.interval)

    def _stamps(self) -> Iterator[tuple[Path, Stamp]]:
        paths = [self.path] if self.path.is_file() else sorted(self.path.rglob("*"))
        for path in paths:
            if path.suffix.lower() in SUFFIXES and path.is_file():
                info = path.stat()
                yield path, (info.st_mtime_ns, info.st_size)

    def _load(self, path: Path, stamp: Stamp, old: _File | None) -> _File:
        kept = old.records if old else []
        try:
            data = path.read_bytes()
        except OSError as error:
            log.warning("cannot read %s (keeping its %d previous objects): %s", path, len(kept), error)
            self.stats.errors[(RESOURCE, "unreadable")] += 1
            return _File(stamp, old.digest if old else b"", kept)
        digest = hashlib.sha256(data).digest()
        if old is not None and old.digest == digest:
            return _File(stamp, digest, kept)
        try:
            documents = _parse(path, data)
        except (UnicodeDecodeError, yaml.YAMLError) as error:
            log.warning("cannot read %s (keeping its %d previous objects): %s", path, len(kept), _one_line(error))
            self.stats.errors[(RESOURCE, "malformed")] += 1
            return _File(stamp, digest, kept)
        return _File(stamp, digest, self._records(path, documents))

    def _records(self, path: Path, documents: list[Any]) -> list[Record]:
        records = []
        for obj in _flatten(documents):
            converted = convert(obj)
            if isinstance(converted, Rejected):
                self._report(path, converted)
            elif converted is not None:
                for note in converted.notes:  # kept, less a part: still logged and counted
                    self._report(path, note)
                records.append(converted)
        return records

    def _report(self, path: Path, item: Rejected) -> None:
        event = "partial" if item.partial else "rejected"
        log.warning("%s: %s", path, item, extra={"event": event, "kind": item.kind, "field": item.field, "file": str(path)})
        self._on_reject(item)


# libyaml's loader where PyYAML was built with it: the pure-Python one spends
# ~40 us per scalar, most of the time of loading a large folder.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(path: Path, data: bytes) -> list[Any]:
    """The documents of one file. JSON goes through the json module (C, ~50x
    faster than any YAML loader); a .json file it cannot read is tried as YAML,
    which accepts what JSON-ish files people write (comments, trailing commas
    aside) and reports errors with a line and column."""
    text = data.decode("utf-8")
    if path.suffix.lower() == ".json":
        try:
            return [json.loads(text)]
        except ValueError:
            pass
    return list(yaml.load_all(text, Loader=_YAML_LOADER))


def _flatten(documents: list[Any]) -> Iterator[Any]:
    """Objects from documents, opening ``kind: List`` (what ``kubectl get -o yaml`` writes)."""
    for document in documents:
        if document is None:
            continue
        if isinstance(document, dict) and str(document.get("kind", "")).endswith("List") and "items" in document:
            yield from _flatten(document.get("items") or [])
        else:
            yield document


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
