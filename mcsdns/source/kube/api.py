"""The blocking half of the Kubernetes source: requests made with the ``kubernetes``
client, and the threads that keep them off the event loop.

Every request asks for the raw response (``_preload_content=False``) and reads
the JSON itself: we want plain dicts for ``convert()`` (as ``kubectl get -o
json`` prints them), not the client's models, and we parse watch lines
ourselves so we see ERROR and BOOKMARK events as the server sent them.

Blocking calls run on daemon threads of their own rather than the default
executor: a watch holds its thread for minutes, the default pool is small
(min(32, CPUs + 4)) and shared with the rest of the process, and
``asyncio.run`` joins that pool on exit, so a read stuck on a dead server
would hold shutdown for the whole read timeout. Our threads are abandoned on
cancellation; a watch's socket is shut down so its thread ends at once.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, AsyncIterator, Callable, Iterator, TypeVar

from kubernetes import client

from .faults import NotServed, Unreadable
from .feeds import Feed, Resource

T = TypeVar("T")


class KubeApi:
    """List, watch and discover with one ApiClient; every method blocks."""

    def __init__(self, api: client.ApiClient, connect_timeout: float, read_timeout: float) -> None:
        self.api = api
        self.timeouts = (connect_timeout, read_timeout)
        self.host = api.configuration.host

    def discover(self, resource: Resource) -> str:
        """The version to use: the first of ours the server serves ``resource`` at
        (API discovery, /apis then /apis/<group>/<version>)."""
        if len(resource.versions) == 1:
            return resource.versions[0]
        groups = self._json(client.ApisApi(self.api).get_api_versions(**self._raw()))
        served = {
            entry.get("version")
            for group in groups.get("groups") or []
            if isinstance(group, dict) and group.get("name") == resource.group
            for entry in group.get("versions") or []
            if isinstance(entry, dict)
        }
        for version in (v for v in resource.versions if v in served):
            found = client.CustomObjectsApi(self.api).get_api_resources(resource.group, version, **self._raw())
            resources = self._json(found).get("resources") or []
            if any(isinstance(r, dict) and r.get("name") == resource.plural for r in resources):
                return version
        raise NotServed(resource.title)

    def list_page(self, feed: Feed, version: str, limit: int, token: str | None) -> dict:
        params = {"limit": limit, "_continue": token} if token else {"limit": limit}
        return self._json(self._call(feed, version, **params))

    def probe(self, feed: Feed, version: str, timeout: float) -> None:
        """A one-object list read within ``timeout``: is the server answering at all?"""
        self._json(self._call(feed, version, limit=1, _request_timeout=(self.timeouts[0], timeout)))

    def watch(self, feed: Feed, version: str, resource_version: str, timeout: int):
        """The open watch response (urllib3), its body a stream of JSON lines."""
        return self._call(
            feed,
            version,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout,
        )

    def _call(self, feed: Feed, version: str, **params: Any):
        resource = feed.resource
        if feed.selector:
            params["label_selector"] = feed.selector
        params = {**self._raw(), **params}
        match (resource.group, resource.plural):
            case ("", "services"):
                return client.CoreV1Api(self.api).list_service_for_all_namespaces(**params)
            case ("discovery.k8s.io", "endpointslices"):
                return client.DiscoveryV1Api(self.api).list_endpoint_slice_for_all_namespaces(**params)
        return client.CustomObjectsApi(self.api).list_cluster_custom_object(
            resource.group, version, resource.plural, **params
        )

    def _raw(self) -> dict:
        return {"_preload_content": False, "_request_timeout": self.timeouts}

    @staticmethod
    def _json(response) -> dict:
        try:
            body = json.loads(response.data)
        except ValueError as error:
            raise Unreadable(f"not JSON: {error}") from None
        finally:
            response.release_conn()
        if not isinstance(body, dict):
            raise Unreadable("not a JSON object")
        return body


async def blocking(function: Callable[..., T], *args: Any, on_abandon: Callable[[T], None] | None = None) -> T:
    """``function(*args)`` on a daemon thread; its result or exception, on the loop.

    A result that arrives after the caller was cancelled goes to ``on_abandon``
    (on the worker thread), e.g. to close a response nobody will read.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def work() -> None:
        try:
            outcome = (True, function(*args))
        except BaseException as error:  # handed to the awaiting coroutine
            outcome = (False, error)
        try:
            loop.call_soon_threadsafe(_settle, future, outcome, on_abandon)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            _abandon(outcome, on_abandon)

    threading.Thread(target=work, name=f"mcsdns-kube-{getattr(function, '__name__', 'call')}", daemon=True).start()
    return await future


def _settle(future: asyncio.Future, outcome: tuple[bool, Any], on_abandon) -> None:
    if future.cancelled():
        threading.Thread(target=_abandon, args=(outcome, on_abandon), daemon=True).start()
    elif outcome[0]:
        future.set_result(outcome[1])
    else:
        future.set_exception(outcome[1])


def _abandon(outcome: tuple[bool, Any], on_abandon) -> None:
    if outcome[0] and on_abandon is not None:
        on_abandon(outcome[1])


class LineStream:
    """Reads a streaming response on its own daemon thread and hands whole lines
    to the loop, in batches of whatever has arrived (one zone update per batch)."""

    _END = object()

    def __init__(self, response, name: str) -> None:
        self._response = response
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._error: BaseException | None = None
        threading.Thread(target=self._pump, name=f"mcsdns-watch-{name}", daemon=True).start()

    async def batches(self) -> AsyncIterator[list[str]]:
        """Batches of lines until the server ends the stream; a broken stream raises."""
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            ended = batch[-1] is self._END
            lines = [line for line in batch if line is not self._END]
            if lines:
                yield lines
            if ended:
                if self._error is not None:
                    raise self._error
                return

    def close(self) -> None:
        """Interrupt a blocked read at once (from the loop thread); the reader closes."""
        try:
            self._response.shutdown()
        except Exception:  # already released or closed: nothing to interrupt
            pass

    def _pump(self) -> None:
        try:
            for line in _lines(self._response):
                self._hand(line)
        except Exception as error:
            self._error = error
        finally:
            if self._error is not None:
                self._response.close()  # half read: the connection must not go back to the pool
            self._response.release_conn()
            self._hand(self._END)

    def _hand(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is gone
            pass


def _lines(response) -> Iterator[str]:
    """Lines of a chunked body as chunks arrive (a watch sends one event a line)."""
    parts: list[bytes] = []
    for chunk in response.stream(amt=None, decode_content=False):
        while (cut := chunk.find(b"\n")) >= 0:
            line, chunk = b"".join((*parts, chunk[:cut])), chunk[cut + 1 :]
            parts = []
            if line.strip():
                yield line.decode("utf-8", errors="replace")
        if chunk:
            parts.append(chunk)
    if b"".join(parts).strip():
        yield b"".join(parts).decode("utf-8", errors="replace")
