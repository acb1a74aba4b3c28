"""Failures of the Kubernetes API, as values: what went wrong and how to fix it.

Everything the client can raise is turned into a ``Problem`` at the edge of a
request, so the watch loop decides with a ``match`` and the logs get one stable
line per kind of failure (stable across retries, so it can be logged once:
no object addresses, no resourceVersions).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError, MaxRetryError, ProtocolError, ReadTimeoutError

from .feeds import MCS_CRD_URL, SERVICE_IMPORTS, Resource


class Fault(Enum):
    GONE = "gone"  # 410: our resourceVersion is too old; relist (not an outage)
    FORBIDDEN = "forbidden"  # 403: RBAC
    UNAUTHORIZED = "unauthorized"  # 401: credentials
    MISSING = "missing"  # 404 or not in discovery: CRD / API not installed
    UNREACHABLE = "unreachable"  # no TCP/TLS connection, timeout before an answer
    BROKEN = "broken"  # a watch stream that ended mid-way or went silent
    SERVER = "server"  # any other status from the server
    MALFORMED = "malformed"  # an answer we cannot read


@dataclass(frozen=True, slots=True)
class Problem:
    fault: Fault
    text: str

    def __str__(self) -> str:
        return self.text

    @property
    def outage(self) -> bool:
        """Whether this means we lost our view (410 and a broken stream do not:
        we relist or resume and see everything)."""
        return self.fault not in (Fault.GONE, Fault.BROKEN)


class NotServed(Exception):
    """Discovery found no served version of a resource (its CRD is not installed)."""


class Unreadable(Exception):
    """The server answered 2xx with something that is not what the API promises."""


def classify(error: BaseException, resource: Resource, host: str) -> Problem:
    """The Problem behind anything a request for ``resource`` raised."""
    match error:
        case ApiException(status=0):
            return Problem(Fault.UNREACHABLE, f"cannot reach the API server at {host}: {_first_line(error.reason)}")
        case ApiException():
            return from_status(error.status, _status_message(error.body) or str(error.reason or ""), resource)
        case NotServed():
            return missing(resource)
        case Unreadable():
            return Problem(Fault.MALFORMED, f"unreadable answer for {resource.title}: {_first_line(str(error))}")
        case ReadTimeoutError() | ProtocolError():
            return Problem(Fault.BROKEN, f"the {resource.title} stream broke: {_reason(error)}")
        case HTTPError() | OSError():
            return Problem(Fault.UNREACHABLE, f"cannot reach the API server at {host}: {_reason(error)}")
    raise error  # a bug, not a failure of the API: let it show


def from_status(code: int | None, message: str, resource: Resource) -> Problem:
    """A Problem from an HTTP status or the ``code`` of a watch ERROR event's Status."""
    match code:
        case 410:
            return Problem(Fault.GONE, f"{resource.title}: 410 Gone, resourceVersion too old ({message})")
        case 403:
            return Problem(
                Fault.FORBIDDEN,
                f"not allowed to list/watch {resource.title} ({message}); give the service account a ClusterRole "
                f"with the rule {resource.rule} (see manifests/rbac.yaml)",
            )
        case 401:
            return Problem(
                Fault.UNAUTHORIZED,
                f"the API server rejected our credentials ({message}); check the kubeconfig user or the "
                "service account token",
            )
        case 404:
            return missing(resource)
    return Problem(Fault.SERVER, f"the API server answered {code} for {resource.title}: {message}")


def missing(resource: Resource) -> Problem:
    if resource == SERVICE_IMPORTS:
        how = f"install the mcs-api CRDs (kubectl apply -f {MCS_CRD_URL})"
    else:
        how = "this Kubernetes is too old (discovery.k8s.io/v1 needs 1.21 or later)"
    versions = " or ".join(resource.versions)
    return Problem(Fault.MISSING, f"the API server does not serve {resource.title} ({versions}); {how}")


def _status_message(body: object) -> str:
    """The ``message`` of a Kubernetes Status body, if the body is one."""
    try:
        status = json.loads(body) if isinstance(body, (str, bytes)) else None
    except ValueError:
        return ""
    return _first_line(str(status.get("message", ""))) if isinstance(status, dict) else ""


def _reason(error: BaseException) -> str:
    """The root cause in a few stable words: '[Errno 111] Connection refused', 'read timed out'."""
    if isinstance(error, MaxRetryError) and error.reason is not None:
        error = error.reason
    text = str(error)
    errno = re.search(r"\[Errno -?\d+\][^,)'\"]*", text)
    if errno:
        return errno.group(0).strip()
    if isinstance(error, ReadTimeoutError):
        return "read timed out"
    # urllib3 puts "<...Connection object at 0x...>: " in front; drop it.
    return _first_line(re.sub(r"<[^>]* at 0x[0-9a-f]+>:?\s*", "", text)) or type(error).__name__


def _first_line(text: object) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0][:300] if lines else ""
