"""A file or a folder of Kubernetes YAML/JSON, watched for edits while we run.

Made for local use and tests: it emits exactly the events the Kubernetes source
does (a ``Replace`` of every kind per scan), so the zone cannot tell them apart.
A file that stops parsing keeps its last good objects, like CoreDNS's file
plugin keeps serving the old zone when a reload fails: nothing is lost to a
half-saved edit. A deleted file takes its objects with it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from ..model.convert import convert
from ..model.events import Event, Replace
from ..model.records import Kind, Record, Rejected

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")
Stamp = tuple[int, int]  # (mtime_ns, size): cheap to poll, changes on every save


class SourceError(Exception):
    """The source cannot be used at all (missing, unreadable); the text says why."""


@dataclass
class _File:
    stamp: Stamp
    records: list[Record] = field(default_factory=list)


class FolderSource:
    required = frozenset(Kind)

    def __init__(self, path: str, interval: float = 1.0, on_reject: Callable[[Rejected], None] | None = None):
        self.path = Path(path)
        self.interval = interval
        self._files: dict[Path, _File] = {}
        self._on_reject = on_reject or (lambda rejected: None)

    def check(self) -> None:
        """Fail fast, before serving, when the path cannot be read at all."""
        if not self.path.exists():
            raise SourceError(f"source {self.path} does not exist")
        if not os.access(self.path, os.R_OK | (os.X_OK if self.path.is_dir() else 0)):
            raise SourceError(f"source {self.path} is not readable")

    def scan(self) -> list[Event] | None:
        """Events for the current state of the files, or None if nothing changed."""
        stamps = dict(self._stamps())
        if stamps.keys() == self._files.keys() and all(self._files[p].stamp == s for p, s in stamps.items()):
            return None
        self._files = {path: self._load(path, stamp) for path, stamp in sorted(stamps.items())}
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

    def _load(self, path: Path, stamp: Stamp) -> _File:
        old = self._files.get(path)
        if old is not None and old.stamp == stamp:
            return old
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            kept = len(old.records) if old else 0
            log.warning("cannot read %s (keeping its %d previous objects): %s", path, kept, _one_line(error))
            return _File(stamp, old.records if old else [])
        return _File(stamp, self._records(path, documents))

    def _records(self, path: Path, documents: list[Any]) -> list[Record]:
        records = []
        for obj in _flatten(documents):
            converted = convert(obj)
            if isinstance(converted, Rejected):
                log.warning("%s: %s", path, converted)
                self._on_reject(converted)
            elif converted is not None:
                records.append(converted)
        return records


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
