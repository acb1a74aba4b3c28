"""A test double for kube-apiserver's list/watch protocol, over plain HTTP on 127.0.0.1.

It speaks what the source uses, the way the real server does (API concepts,
https://kubernetes.io/docs/reference/using-api/api-concepts/):

  * discovery: /apis (APIGroupList), /apis/<group>/<version> (APIResourceList);
  * list: items without apiVersion/kind, metadata.resourceVersion, label
    selectors (=, ==, !=, exists, !exists, in, notin), limit/continue pages;
  * watch: a chunked stream of JSON lines, ADDED/MODIFIED/DELETED (with the
    selector transitions a real server makes: an object that stops matching
    is DELETED), BOOKMARK on demand, ERROR with a Status, the end of the
    stream at timeoutSeconds;
  * 410 Gone for a compacted resourceVersion (as an ERROR event in a 200
    stream, like a real server, or as an HTTP 410), 403 Status for denied
    resources, 404 for versions the "CRD" does not serve.

And the faults tests need: not listening at all (down at start, restart on
the same port), open watches dropped mid-stream, muted (silent but open),
or sent arbitrary lines, and the whole server hung (connections accepted,
requests read, nothing answered until it is released).
"""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

MCS = "multicluster.x-k8s.io"
# resource -> (group, kind); the path's version is checked separately.
RESOURCES = {
    "serviceimports": (MCS, "ServiceImport"),
    "endpointslices": ("discovery.k8s.io", "EndpointSlice"),
    "services": ("", "Service"),
}
PATHS = [
    (re.compile(r"^/api/v1/services$"), "services"),
    (re.compile(r"^/apis/discovery\.k8s\.io/v1/endpointslices$"), "endpointslices"),
    (re.compile(r"^/apis/multicluster\.x-k8s\.io/(?P<version>[^/]+)/serviceimports$"), "serviceimports"),
]


@dataclass
class Entry:
    """One change in the history; ``raw`` entries are injected lines, not changes."""

    rv: int
    resource: str
    old: dict | None = None
    new: dict | None = None
    raw: bytes | None = None


@dataclass(eq=False)
class Stream:
    resource: str
    selector: str
    position: int  # next history index to look at
    opened_at: int  # history length when opened: raw lines before it are not ours
    bookmarks: bool
    version: str
    connection: socket.socket
    muted: bool = False
    dropped: bool = False
    pending: list[bytes] = field(default_factory=list)
    end_after_pending: bool = False


@dataclass(frozen=True)
class Request:
    path: str
    params: dict[str, str]

    @property
    def watch(self) -> bool:
        return self.params.get("watch") in ("true", "1")


class FakeApi:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.rv = 1000
        self.objects: dict[str, dict[tuple[str, str], dict]] = {r: {} for r in RESOURCES}
        self.history: list[Entry] = []
        self.compacted = 0  # watches from a resourceVersion older than this get 410
        self.gone_as = "event"  # or "status": how a too-old watch is refused
        self.always_gone = False  # every watch is refused as too old
        self.mcs_versions = ["v1beta1", "v1alpha1"]  # served versions of the ServiceImport CRD
        self.denied: set[str] = set()  # resources answering 403
        self.hung = False  # requests are read and held, open watches say nothing
        self.requests: list[Request] = []
        self.streams: set[Stream] = set()
        self.connections: set[socket.socket] = set()
        self.port = _free_port()
        self._server: ThreadingHTTPServer | None = None

    # -- life cycle -------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeApi":
        server = _Server(("127.0.0.1", self.port), _handler(self))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop listening and cut every connection, like a crashed API server."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        self.drop_watches()
        with self.cond:
            connections = list(self.connections)
        for connection in connections:
            _cut(connection)

    def kubeconfig(self, path: Path, context: str = "fake") -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": "test-token"}}],
                    "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": context,
                }
            )
        )
        return path

    # -- state ------------------------------------------------------------------

    def put(self, *objects: dict) -> None:
        """Create or update objects (a new resourceVersion each, as the server does)."""
        with self.cond:
            for obj in objects:
                resource = _resource_of(obj)
                stored = copy.deepcopy(obj)
                key = _key(stored)
                self.rv += 1
                stored.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
                old = self.objects[resource].get(key)
                self.objects[resource][key] = stored
                self.history.append(Entry(self.rv, resource, old, stored))
            self.cond.notify_all()

    def delete(self, *objects: dict) -> None:
        with self.cond:
            for obj in objects:
                resource = _resource_of(obj)
                old = self.objects[resource].pop(_key(obj), None)
                if old is not None:
                    self.rv += 1
                    self.history.append(Entry(self.rv, resource, old, None))
            self.cond.notify_all()

    def compact(self) -> None:
        """Forget history up to now: a watch from any version seen so far is too old.
        (etcd moves on meanwhile, as other resources change: the version bumps.)"""
        with self.cond:
            self.rv += 1
            self.compacted = self.rv

    # -- faults on open watches -------------------------------------------------

    def drop_watches(self) -> None:
        with self.cond:
            for stream in self.streams:
                stream.dropped = True
                _cut(stream.connection)
            self.cond.notify_all()

    def mute_watches(self) -> None:
        """Open watches stay open and say nothing more (a silently hung watch)."""
        with self.cond:
            for stream in self.streams:
                stream.muted = True

    def hang(self, hung: bool = True) -> None:
        """Hung (or released): new requests are held unanswered, open watches fall silent."""
        with self.cond:
            self.hung = hung
            for stream in self.streams:
                stream.muted = hung
            self.cond.notify_all()

    def expire_watches(self) -> None:
        """Open watches get an ERROR event with a 410 Status and end, as after compaction."""
        with self.cond:
            self.rv += 1
            self.compacted = self.rv
            for stream in self.streams:
                # What happened since is not sent: the stream only says it is too old.
                stream.position, stream.muted = len(self.history), False
                stream.pending.append(_line("ERROR", _status(410, "Expired", "too old resource version")))
                stream.end_after_pending = True
            self.cond.notify_all()

    def bookmark(self) -> None:
        with self.cond:
            for stream in self.streams:
                if stream.bookmarks:
                    meta = {"resourceVersion": str(self.rv)}
                    stream.pending.append(_line("BOOKMARK", {"kind": RESOURCES[stream.resource][1], "metadata": meta}))
            self.cond.notify_all()

    def inject(self, resource: str, line: str) -> None:
        """Send a raw line to the watches of ``resource`` open now."""
        with self.cond:
            self.history.append(Entry(self.rv, resource, raw=line.encode() + b"\n"))
            self.cond.notify_all()

    # -- what clients did -------------------------------------------------------

    def calls(self, resource: str, watch: bool | None = None) -> list[Request]:
        pattern = {p: r for p, r in PATHS}
        return [
            r
            for r in list(self.requests)
            if any(rx.match(r.path) and name == resource for rx, name in pattern.items())
            and (watch is None or r.watch == watch)
        ]

    def lists(self, resource: str) -> int:
        """How many lists of ``resource`` began (first pages; continued pages are the same list)."""
        return sum(1 for r in self.calls(resource, watch=False) if "continue" not in r.params)

    def open_watches(self, resource: str | None = None) -> int:
        with self.cond:
            return sum(1 for s in self.streams if resource in (None, s.resource) and not s.dropped)

    # -- serving ----------------------------------------------------------------

    def handle(self, handler: "_Handler") -> None:
        parts = urlsplit(handler.path)
        path = parts.path.rstrip("/") or "/"
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self.cond:
            self.requests.append(Request(path, params))
            while self.hung:
                self.cond.wait(0.05)
        discovery = self._discovery(path)
        if discovery is not None:
            return handler.reply(*discovery)
        for pattern, resource in PATHS:
            match = pattern.match(path)
            if match:
                return self._collection(handler, resource, match.groupdict().get("version", "v1"), params)
        handler.reply(404, _status(404, "NotFound", f"the server could not find the requested resource ({path})"))

    def _discovery(self, path: str) -> tuple[int, dict] | None:
        groups = [_group("discovery.k8s.io", ["v1"])] + ([_group(MCS, self.mcs_versions)] if self.mcs_versions else [])
        if path == "/apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"]}
        match = re.match(rf"^/apis/{re.escape(MCS)}/([^/]+)$", path)
        if match:
            version = match.group(1)
            if version not in self.mcs_versions:
                return 404, _status(404, "NotFound", "the server could not find the requested resource")
            resources = [
                {"name": name, "namespaced": True, "kind": kind, "verbs": ["get", "list", "watch"]}
                for name, kind in (("serviceimports", "ServiceImport"), ("serviceexports", "ServiceExport"))
            ]
            return 200, {"kind": "APIResourceList", "groupVersion": f"{MCS}/{version}", "resources": resources}
        return None

    def _collection(self, handler: "_Handler", resource: str, version: str, params: dict[str, str]) -> None:
        if resource == "serviceimports" and version not in self.mcs_versions:
            return handler.reply(404, _status(404, "NotFound", "the server could not find the requested resource"))
        if resource in self.denied:
            verb = "watch" if params.get("watch") == "true" else "list"
            group = RESOURCES[resource][0]
            message = (
                f'{resource}{"." + group if group else ""} is forbidden: User "system:serviceaccount:mcsdns:mcsdns" '
                f'cannot {verb} resource "{resource}" in API group "{group}" at the cluster scope'
            )
            return handler.reply(403, _status(403, "Forbidden", message))
        if params.get("watch") == "true":
            return self._watch(handler, resource, version, params)
        handler.reply(200, self._list(resource, version, params))

    def _list(self, resource: str, version: str, params: dict[str, str]) -> dict:
        selector = params.get("labelSelector", "")
        offset, rv = 0, None
        if params.get("continue"):
            offset, rv = (int(x) for x in params["continue"].split(":"))
        with self.cond:
            rv = rv or self.rv
            matching = [
                _item(obj)
                for key, obj in sorted(self.objects[resource].items())
                if matches(selector, obj)
            ]
        limit = int(params.get("limit") or 0) or len(matching) or 1
        page = matching[offset : offset + limit]
        meta = {"resourceVersion": str(rv)}
        if offset + limit < len(matching):
            meta["continue"] = f"{offset + limit}:{rv}"
        group, kind = RESOURCES[resource]
        api_version = f"{group}/{version}" if group else version
        return {"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta, "items": page}

    def _watch(self, handler: "_Handler", resource: str, version: str, params: dict[str, str]) -> None:
        since = int(params.get("resourceVersion") or 0)
        if self.always_gone or since < self.compacted:
            if self.gone_as == "status":
                return handler.reply(410, _status(410, "Expired", f"too old resource version: {since}"))
            handler.start_stream()
            handler.chunk(_line("ERROR", _status(410, "Expired", f"too old resource version: {since}")))
            return handler.end_stream()
        with self.cond:
            position = next((i for i, e in enumerate(self.history) if e.rv > since), len(self.history))
            stream = Stream(
                resource,
                params.get("labelSelector", ""),
                position,
                len(self.history),
                params.get("allowWatchBookmarks") == "true",
                version,
                handler.connection,
            )
            self.streams.add(stream)
        try:
            handler.start_stream()
            self._pump(handler, stream, time.monotonic() + int(params.get("timeoutSeconds") or 3600))
        except OSError:
            pass
        finally:
            with self.cond:
                self.streams.discard(stream)

    def _pump(self, handler: "_Handler", stream: Stream, deadline: float) -> None:
        while True:
            with self.cond:
                while not self._ready(stream) and time.monotonic() < deadline:
                    self.cond.wait(0.05)
                if stream.dropped:
                    handler.close_connection = True
                    return _cut(stream.connection)
                if stream.muted:
                    lines, ending = [], False
                else:
                    lines, ending = self._take(stream)
            for line in lines:
                handler.chunk(line)
            if ending or time.monotonic() >= deadline:
                return handler.end_stream()

    def _ready(self, stream: Stream) -> bool:
        if stream.dropped:
            return True
        return not stream.muted and (bool(stream.pending) or stream.position < len(self.history))

    def _take(self, stream: Stream) -> tuple[list[bytes], bool]:
        lines = []
        for index in range(stream.position, len(self.history)):
            entry = self.history[index]
            if entry.resource != stream.resource:
                continue
            if entry.raw is not None:
                if index >= stream.opened_at:
                    lines.append(entry.raw)
                continue
            event = _transition(stream.selector, entry.old, entry.new)
            if event is not None:
                kind, obj = event
                lines.append(_line(kind, _with_type(obj, stream.resource, stream.version, entry.rv)))
        stream.position = len(self.history)
        lines += stream.pending
        stream.pending = []
        return lines, stream.end_after_pending


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # restart on the same port at once

    def handle_error(self, request, client_address) -> None:  # clients hang up mid-reply in fault tests
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeApi

    def setup(self) -> None:
        super().setup()
        with self.fake.cond:
            self.fake.connections.add(self.connection)

    def finish(self) -> None:
        with self.fake.cond:
            self.fake.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self) -> None:
        self.fake.handle(self)

    def reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def log_message(self, *args) -> None:  # quiet
        pass


def _handler(fake: FakeApi) -> type[_Handler]:
    return type("Handler", (_Handler,), {"fake": fake})


# -- label selectors (k8s.io/apimachinery/pkg/labels, the subset clients send) --

_REQUIREMENT = re.compile(
    r"^\s*(?P<not>!)?\s*(?P<key>[A-Za-z0-9./_-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9._-]*)|\s(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def matches(selector: str, obj: dict | None) -> bool:
    if obj is None:
        return False
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(_requirement(part, labels) for part in _split(selector))


def _split(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p for p in parts + [current] if p.strip()]


def _requirement(text: str, labels: dict) -> bool:
    match = _REQUIREMENT.match(text)
    if not match:
        raise ValueError(f"unparseable selector requirement {text!r}")
    key, present = match.group("key"), match.group("key") in labels
    if match.group("not"):
        return not present
    if match.group("op") in ("=", "=="):
        return labels.get(key) == match.group("value")
    if match.group("op") == "!=":
        return labels.get(key) != match.group("value")
    if match.group("set"):
        values = {v.strip() for v in match.group("values").split(",")}
        return (labels.get(key) in values) if match.group("set") == "in" else (labels.get(key) not in values)
    return present


def _transition(selector: str, old: dict | None, new: dict | None) -> tuple[str, dict] | None:
    """The event a selector-filtered watch sees for one change."""
    before, after = matches(selector, old), matches(selector, new)
    if after:
        return ("MODIFIED" if before else "ADDED"), new
    if before:
        return "DELETED", old
    return None


# -- small helpers --------------------------------------------------------------------


def _resource_of(obj: dict) -> str:
    for resource, (_, kind) in RESOURCES.items():
        if obj.get("kind") == kind:
            return resource
    raise ValueError(f"no resource for kind {obj.get('kind')!r}")


def _key(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "default", meta["name"]


def _item(obj: dict) -> dict:
    """As a list item: a real server leaves apiVersion and kind out of list items."""
    item = copy.deepcopy(obj)
    item.pop("apiVersion", None)
    item.pop("kind", None)
    return item


def _with_type(obj: dict, resource: str, version: str, rv: int) -> dict:
    group, kind = RESOURCES[resource]
    out = copy.deepcopy(obj)
    out["apiVersion"] = f"{group}/{version}" if group else version
    out["kind"] = kind
    out.setdefault("metadata", {})["resourceVersion"] = str(rv)
    return out


def _group(name: str, versions: list[str]) -> dict:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def _line(kind: str, obj: dict) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


def _cut(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
