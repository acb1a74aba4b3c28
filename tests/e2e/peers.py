"""Real protocol peers for end-to-end tests: kube-apiserver (+ etcd) and CoreDNS.

Both are built from Go modules by ``tests/e2e/peers/build.sh`` (see there),
then run as child processes that listen on 127.0.0.1 only::

    from tests.e2e import peers

    paths = peers.build()                       # PeersUnavailable if Go is missing
    with peers.KubeAPIServer(paths) as api:
        api.install_crds(paths)
        kubeconfig = api.service_account_kubeconfig("mcsdns", "mcsdns", tmp_path / "sa.kubeconfig")
        corefile = f'''
        .:{{port}} {{
            bind 127.0.0.1
            kubernetes cluster.local clusterset.local {{
                kubeconfig {api.kubeconfig_path}
                multicluster clusterset.local
            }}
        }}'''
        with peers.CoreDNS(corefile, paths) as dns:
            reply = dns.query("svc.ns.svc.clusterset.local", "A")

Every child process runs in its own session, has its output appended to a log
file whose tail is included in every error, and is killed when its context
manager exits, when the interpreter exits, and (where possible) when the
Python process dies.

Apiserver interactions use plain HTTPS (stdlib) so this module does not depend
on the generated models of a particular ``kubernetes`` client release;
``KubeAPIServer.api_client()`` returns a ``kubernetes`` client for tests that
want one.
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import ctypes.util
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

__all__ = [
    "CoreDNS",
    "DeployTools",
    "KubeAPIServer",
    "Paths",
    "PeersError",
    "PeersUnavailable",
    "build",
    "deploy_tools",
    "free_port",
    "kustomize_build",
]

PEERS_DIR = Path(__file__).resolve().parent / "peers"
BUILD_SCRIPT = PEERS_DIR / "build.sh"
EXIT_UNAVAILABLE = 3  # build.sh: no usable Go toolchain
LOOPBACK = "127.0.0.1"
READY_LINE = "MCSDNS-APISERVER READY"


class PeersUnavailable(Exception):
    """The peers cannot be built on this machine (no usable Go toolchain)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class PeersError(RuntimeError):
    """A peer failed to build, start, or answer."""


@dataclass(frozen=True)
class Paths:
    kube_apiserver: Path
    coredns: Path
    serviceimport_crd: Path
    serviceexport_crd: Path
    directory: Path

    @property
    def crds(self) -> tuple[Path, Path]:
        return (self.serviceimport_crd, self.serviceexport_crd)


# --------------------------------------------------------------------------
# build

_build_lock = threading.Lock()
_built: Paths | None = None


def build(*, force: bool = False, timeout: float = 7200.0) -> Paths:
    """Run build.sh (once per process) and return the produced paths.

    Raises PeersUnavailable when Go (or bash) is missing or too old, and
    PeersError when the build fails. Set MCSDNS_PEERS_CACHE to change where
    the binaries are kept (default ~/.cache/mcsdns-peers).
    """
    global _built
    with _build_lock:
        if _built is not None and not force:
            return _built
        if shutil.which("bash") is None:
            raise PeersUnavailable("bash is not installed; it is needed to run tests/e2e/peers/build.sh")
        if shutil.which("go") is None:
            raise PeersUnavailable("the 'go' command is not on PATH; Go >= 1.26 is needed to build the e2e peers")
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                ["bash", str(BUILD_SCRIPT)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                code = None
            except BaseException:
                _kill_group(proc)
                raise
            finally:
                out.seek(0)
                err.seek(0)
                stdout = out.read().decode(errors="replace")
                stderr = err.read().decode(errors="replace")
        if code is None:
            raise PeersError(f"{BUILD_SCRIPT} did not finish within {timeout}s:\n{_last_lines(stderr, 40)}")
        if code == EXIT_UNAVAILABLE:
            lines = [ln for ln in stderr.splitlines() if ln.strip()]
            raise PeersUnavailable(lines[-1] if lines else "no usable Go toolchain")
        if code != 0:
            raise PeersError(f"{BUILD_SCRIPT} failed with exit code {code}:\n{_last_lines(stderr, 80)}")
        values = dict(
            line.split("=", 1) for line in stdout.splitlines() if re.match(r"^[A-Z_]+=", line)
        )
        try:
            paths = Paths(
                kube_apiserver=Path(values["KUBE_APISERVER"]),
                coredns=Path(values["COREDNS"]),
                serviceimport_crd=Path(values["SERVICEIMPORT_CRD"]),
                serviceexport_crd=Path(values["SERVICEEXPORT_CRD"]),
                directory=Path(values["PEERS_DIR"]),
            )
        except KeyError as exc:
            raise PeersError(f"{BUILD_SCRIPT} did not report {exc}; stdout was:\n{stdout}") from None
        for p in (paths.kube_apiserver, paths.coredns, *paths.crds):
            if not p.exists():
                raise PeersError(f"{BUILD_SCRIPT} reported {p}, which does not exist")
        _built = paths
        return paths


# --------------------------------------------------------------------------
# process plumbing

_live: set["_Process"] = set()
_live_lock = threading.Lock()

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):  # not Linux / glibc
    _prctl = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the process group led by ``proc`` (its own session). Only while
    ``proc`` is unreaped, so its id cannot have been reused."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _last_lines(text: str, n: int) -> str:
    return "\n".join(text.splitlines()[-n:])


class _Process:
    """A child process in its own session with output appended to a log file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self._log_offset = 0
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} starting {name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._log_offset = log.tell()
            # PDEATHSIG fires when the *thread* that forked exits, so only use it
            # from the main thread, where that means the interpreter is gone.
            preexec = _die_with_parent if threading.current_thread() is threading.main_thread() else None
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
                env=env,
            )
        with _live_lock:
            _live.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def log_text(self) -> str:
        """Log output written since this process was started."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, n: int = 40) -> str:
        return _last_lines(self.log_text(), n)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL the whole group."""
        try:
            if self.proc.poll() is None:
                try:
                    os.kill(self.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    with open(self.log_path, "ab") as log:
                        log.write(f"=== {self.name} ignored SIGTERM for {timeout}s, killing it\n".encode())
            _kill_group(self.proc)  # also reaps anything left in its group
            return self.proc.returncode
        finally:
            with _live_lock:
                _live.discard(self)

    def kill(self) -> None:
        try:
            _kill_group(self.proc)
        finally:
            with _live_lock:
                _live.discard(self)


_owned_dirs: set[Path] = set()  # temp workdirs to remove at exit


@atexit.register
def _kill_all() -> None:
    with _live_lock:
        procs = list(_live)
        dirs = list(_owned_dirs)
    for p in procs:
        p.kill()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def _own_tempdir(prefix: str, keep: bool) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if not keep:
        with _live_lock:
            _owned_dirs.add(path)
    return path


def _remove_tempdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with _live_lock:
        _owned_dirs.discard(path)


def free_port(udp_too: bool = False) -> int:
    """A currently free TCP port on 127.0.0.1 (and UDP too, if asked)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        if not udp_too:
            return port
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((LOOPBACK, port))
            return port
        except OSError:
            continue
    raise PeersError("could not find a free loopback port")


def _keep_default() -> bool:
    """MCSDNS_KEEP_PEER_WORKDIRS=1 keeps temp workdirs (logs, data) for debugging."""
    return os.environ.get("MCSDNS_KEEP_PEER_WORKDIRS", "") not in ("", "0")


def _address_in_use(text: str) -> bool:
    return "address already in use" in text.lower()


# --------------------------------------------------------------------------
# kube-apiserver


class _Peer:
    """The lifecycle both peers share: a child process in a work dir of its own,
    stopped gracefully (SIGKILL on timeout) and cleaned up by close()/``with``.
    Subclasses set ``_proc``, ``stop_timeout``, ``workdir``, ``_own_workdir``,
    ``keep_workdir`` and define ``start()``."""

    _proc: "_Process | None"
    log_lines = 40
    name = "peer"
    udp_port = False  # whether the port must be free for UDP too

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self):
        """Start on the kept port, or on a free one (tried again if another
        process took it meanwhile); wait until ready."""
        if self.running:
            return self
        attempts = 1 if self._port_fixed else 3
        for attempt in range(attempts):
            if self.port is None or (attempt > 0 and not self._port_fixed):
                self.port = free_port(udp_too=self.udp_port)
            self._proc = _Process(self.name, self._argv(), self.log_path)
            try:
                self._wait_ready()
                self._port_fixed = True  # keep the port for restart()
                return self
            except PeersError:
                text = self._proc.log_text()
                self._proc.kill()
                if attempt + 1 < attempts and _address_in_use(text):
                    continue
                raise
        raise AssertionError("unreachable")

    def stop(self, timeout: float | None = None) -> None:
        """Graceful stop (SIGTERM), SIGKILL on timeout."""
        if self._proc is not None:
            self._proc.stop(self.stop_timeout if timeout is None else timeout)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self._own_workdir and not self.keep_workdir:
                _remove_tempdir(self.workdir)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, n: int | None = None) -> str:
        return self._proc.tail(n or self.log_lines) if self._proc is not None else ""


class KubeAPIServer(_Peer):
    """A kube-apiserver with embedded etcd, on 127.0.0.1.

    ``workdir`` (default: a new temp dir, removed by close()/__exit__ unless
    keep_workdir or MCSDNS_KEEP_PEER_WORKDIRS=1) holds the data dir (etcd and
    its etcd.log, certificates, keys), the admin kubeconfig and the log.
    The port is chosen on first start and kept, so restart() comes back on the
    same URL with the same data, CA, and service-account signing key (tokens
    and kubeconfigs issued before a restart stay valid).
    """

    def __init__(
        self,
        paths: Paths | None = None,
        *,
        binary: str | os.PathLike | None = None,
        workdir: str | os.PathLike | None = None,
        port: int | None = None,
        admin_token: str | None = None,
        start_timeout: float = 120.0,
        stop_timeout: float = 30.0,
        verbosity: int = 0,
        extra_args: Sequence[str] = (),
        keep_workdir: bool | None = None,
    ):
        if binary is None:
            binary = (paths or build()).kube_apiserver
        self.binary = Path(binary)
        self.keep_workdir = _keep_default() if keep_workdir is None else keep_workdir
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else _own_tempdir("mcsdns-kube-apiserver-", self.keep_workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "kube-apiserver.log"
        self.kubeconfig_path = self.workdir / "admin.kubeconfig"
        self.ca_path = self.data_dir / "pki" / "ca.crt"
        self.admin_token = admin_token or secrets.token_hex(24)
        self.port: int | None = port
        self._port_fixed = port is not None
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.verbosity = verbosity
        self.extra_args = list(extra_args)
        self._proc: _Process | None = None
        self._ssl: ssl.SSLContext | None = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise PeersError("kube-apiserver has not been started")
        return f"https://{LOOPBACK}:{self.port}"

    def _argv(self) -> list:
        argv = [
            self.binary,
            "-data-dir", self.data_dir,
            "-port", self.port,
            "-admin-token", self.admin_token,
            "-kubeconfig", self.kubeconfig_path,
            "-v", self.verbosity,
        ]
        if self.extra_args:
            argv += ["--", *self.extra_args]
        return argv

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        last = "no answer yet"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise PeersError(
                    f"kube-apiserver exited with code {code} before becoming ready "
                    f"(log {self.log_path}):\n{self._proc.tail(60)}"
                )
            if self.ca_path.exists():
                try:
                    status, body = self._request("GET", "/readyz", timeout=2.0)
                    if status == 200:
                        return
                    last = f"/readyz answered {status}: {_last_lines(str(body), 15)}"
                except (OSError, http.client.HTTPException) as exc:
                    last = f"/readyz: {exc!r}"
            if time.monotonic() > deadline:
                raise PeersError(
                    f"kube-apiserver not ready after {self.start_timeout}s ({last}); "
                    f"log {self.log_path}:\n{self._proc.tail(60)}"
                )
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL, like a crash (etcd recovers its data from the WAL on start)."""
        if self._proc is not None:
            self._proc.kill()

    def restart(self, *, graceful: bool = True) -> "KubeAPIServer":
        """Stop (or kill) and start again on the same port and data dir."""
        if graceful:
            self.stop()
        else:
            self.kill()
        return self.start()

    log_lines = 60  # SIGTERM stops the apiserver, then etcd
    name = "kube-apiserver"

    # -- raw API access ----------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=str(self.ca_path))
        return self._ssl

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.admin_token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._ssl_context(), timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                expect: Iterable[int] = (200, 201), timeout: float = 30.0) -> Any:
        """JSON request as admin (or with ``token``); PeersError unless the status is in ``expect``."""
        status, result = self._request(method, path, body, token=token, timeout=timeout)
        if status not in set(expect):
            raise PeersError(f"{method} {path} -> {status}: {result}")
        return result

    def api_client(self):
        """A ``kubernetes.client.ApiClient`` for the admin user (close it, or use ``with``)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig_path))

    # -- CRDs --------------------------------------------------------------

    def install_crds(self, crds: Paths | Iterable[str | os.PathLike] | None = None, *, timeout: float = 60.0) -> list[str]:
        """Create (or update) the given CRDs and wait until they are Established
        and every served version answers a list request. Default: the MCS API CRDs
        from build(). Returns the CRD names."""
        import yaml

        if crds is None:
            crds = build()
        if isinstance(crds, Paths):
            files = list(crds.crds)
        elif isinstance(crds, (str, os.PathLike)):
            files = [Path(crds)]
        else:
            files = [Path(p) for p in crds]
        docs = []
        for f in files:
            with open(f) as fh:
                docs += [d for d in yaml.safe_load_all(fh) if d and d.get("kind") == "CustomResourceDefinition"]
        if not docs:
            raise PeersError(f"no CustomResourceDefinition found in {files}")
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        for doc in docs:
            name = doc["metadata"]["name"]
            status, result = self._request("POST", base, doc)
            if status == 409:
                current = self.request("GET", f"{base}/{name}")
                doc = dict(doc, metadata=dict(doc["metadata"], resourceVersion=current["metadata"]["resourceVersion"]))
                self.request("PUT", f"{base}/{name}", doc)
            elif status not in (200, 201):
                raise PeersError(f"creating CRD {name} -> {status}: {result}")
        deadline = time.monotonic() + timeout
        for doc in docs:
            name = doc["metadata"]["name"]
            group, plural = doc["spec"]["group"], doc["spec"]["names"]["plural"]
            versions = [v["name"] for v in doc["spec"]["versions"] if v.get("served", True)]

            def established() -> bool:
                status, crd = self._request("GET", f"{base}/{name}")
                conds = {c.get("type"): c.get("status") for c in ((crd or {}).get("status") or {}).get("conditions") or []} if status == 200 else {}
                if conds.get("Established") != "True":
                    return False
                return all(self._request("GET", f"/apis/{group}/{v}/{plural}?limit=1")[0] == 200 for v in versions)

            _wait_until(established, deadline, f"CRD {name} to be Established and served", self.log_tail)
        return [d["metadata"]["name"] for d in docs]

    # -- service accounts ----------------------------------------------------

    def ensure_namespace(self, namespace: str) -> None:
        status, result = self._request("POST", "/api/v1/namespaces",
                                       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        if status not in (200, 201, 409):
            raise PeersError(f"creating namespace {namespace} -> {status}: {result}")

    def service_account_token(self, namespace: str, name: str, *, expiration_seconds: int = 86400,
                              audiences: Sequence[str] = ()) -> str:
        """Create the namespace and ServiceAccount if missing and return a token
        for it from the TokenRequest API (default audience: the apiserver)."""
        self.ensure_namespace(namespace)
        status, result = self._request(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
        )
        if status not in (200, 201, 409):
            raise PeersError(f"creating ServiceAccount {namespace}/{name} -> {status}: {result}")
        tr = self.request(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"audiences": list(audiences), "expirationSeconds": int(expiration_seconds)},
            },
        )
        return tr["status"]["token"]

    def service_account_kubeconfig(self, namespace: str, name: str, path: str | os.PathLike, *,
                                   expiration_seconds: int = 86400) -> Path:
        """Write a kubeconfig for ServiceAccount namespace/name (created if
        missing) with a TokenRequest token and the cluster CA. Returns the path.
        The account has no permissions until RBAC grants some."""
        token = self.service_account_token(namespace, name, expiration_seconds=expiration_seconds)
        user = f"system:serviceaccount:{namespace}:{name}"
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, _kubeconfig_text(self.url, self.ca_path.read_bytes(), user, token))
        return path


def _kubeconfig_text(server: str, ca_pem: bytes, user: str, token: str) -> str:
    ca = base64.b64encode(ca_pem).decode()
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: mcsdns-e2e\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n"
        f"users:\n- name: {json.dumps(user)}\n  user:\n    token: {token}\n"
        f"contexts:\n- name: e2e\n  context:\n    cluster: mcsdns-e2e\n    user: {json.dumps(user)}\n"
        "current-context: e2e\n"
    )


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _wait_until(pred: Callable[[], bool], deadline: float, what: str, tail: Callable[[], str] | None = None) -> None:
    last_exc: Exception | None = None
    while True:
        try:
            if pred():
                return
        except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
            last_exc = exc
        if time.monotonic() > deadline:
            extra = f" (last error: {last_exc})" if last_exc else ""
            log = f"\n{tail()}" if tail else ""
            raise PeersError(f"timed out waiting for {what}{extra}{log}")
        time.sleep(0.2)


# --------------------------------------------------------------------------
# CoreDNS

_BIND_RE = re.compile(r"^\s*bind(\s|$)")


def _force_loopback(corefile: str) -> str:
    """Add ``bind 127.0.0.1`` to server blocks without a bind directive and
    reject bind addresses outside 127.0.0.0/8 (or ::1)."""
    out: list[str] = []
    depth = 0
    insert_at: int | None = None
    has_bind = False
    for line in corefile.splitlines():
        code = line.split("#", 1)[0]
        stripped = code.strip()
        opens, closes = code.count("{"), code.count("}")
        if depth == 1 and _BIND_RE.match(stripped):
            has_bind = True
            for addr in stripped.split()[1:]:
                if addr in ("{", "}"):
                    continue
                if not (addr.startswith("127.") or addr in ("::1", "lo")):
                    raise ValueError(f"Corefile binds to {addr!r}; e2e peers may only listen on loopback")
        new_depth = depth + opens - closes
        if depth == 0 and new_depth > 0:
            out.append(line)
            is_snippet = stripped.startswith("(")
            insert_at = None if is_snippet else len(out)
            has_bind = False
            depth = new_depth
            continue
        if depth > 0 and new_depth == 0 and insert_at is not None and not has_bind:
            out.insert(insert_at, "    bind 127.0.0.1")
        out.append(line)
        depth = new_depth
    return "\n".join(out) + "\n"


class CoreDNS(_Peer):
    """Stock CoreDNS on 127.0.0.1:<free port>.

    ``corefile`` may contain the placeholder ``{port}`` (plain text, not
    str.format); CoreDNS is also started with ``-dns.port <port>``, so server
    blocks without an explicit port use it too. Server blocks without a
    ``bind`` get ``bind 127.0.0.1``. start() waits until a query for
    ``probe`` gets any DNS answer (or an answer with ``probe_rcode``).
    """

    name = "coredns"
    udp_port = True

    def __init__(
        self,
        corefile: str,
        paths: Paths | None = None,
        *,
        binary: str | os.PathLike | None = None,
        port: int | None = None,
        workdir: str | os.PathLike | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        probe: tuple[str, str] = (".", "SOA"),
        probe_rcode: str | None = None,
        extra_args: Sequence[str] = (),
        keep_workdir: bool | None = None,
    ):
        if binary is None:
            binary = (paths or build()).coredns
        self.binary = Path(binary)
        self.corefile_template = corefile
        self.port: int | None = port
        self._port_fixed = port is not None
        self.keep_workdir = _keep_default() if keep_workdir is None else keep_workdir
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else _own_tempdir("mcsdns-coredns-", self.keep_workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.corefile_path = self.workdir / "Corefile"
        self.log_path = self.workdir / "coredns.log"
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.probe = probe
        self.probe_rcode = probe_rcode
        self.extra_args = list(extra_args)
        self._proc: _Process | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self.port is None:
            raise PeersError("CoreDNS has not been started")
        return (LOOPBACK, self.port)

    def _argv(self) -> list:
        text = _force_loopback(self.corefile_template.replace("{port}", str(self.port)))
        self.corefile_path.write_text(text)
        return [self.binary, "-conf", self.corefile_path, "-dns.port", self.port, *self.extra_args]

    def _wait_ready(self) -> None:
        import dns.exception
        import dns.rcode

        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        last = "no answer yet"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise PeersError(
                    f"coredns exited with code {code} before answering (log {self.log_path}):\n{self._proc.tail(40)}"
                )
            try:
                reply = self.query(*self.probe, timeout=0.5)
                rcode = dns.rcode.to_text(reply.rcode())
                if self.probe_rcode is None or rcode == self.probe_rcode:
                    return
                last = f"probe {self.probe} answered {rcode}"
            except (dns.exception.DNSException, OSError) as exc:
                last = f"probe {self.probe}: {exc!r}"
            if time.monotonic() > deadline:
                raise PeersError(
                    f"coredns not answering after {self.start_timeout}s ({last}); "
                    f"log {self.log_path}:\n{self._proc.tail(40)}"
                )
            time.sleep(0.1)

    def query(self, qname: str, rdtype: str = "A", *, tcp: bool = False, timeout: float = 2.0):
        """Send one query and return the ``dns.message.Message`` reply."""
        import dns.message
        import dns.query

        msg = dns.message.make_query(qname, rdtype)
        send = dns.query.tcp if tcp else dns.query.udp
        return send(msg, LOOPBACK, port=self.address[1], timeout=timeout)

    def restart(self) -> "CoreDNS":
        self.stop()
        return self.start()


# --------------------------------------------------------------------------
# deploy tools: kustomize, promtool and the prometheus-operator CRDs (also from build.sh)


@dataclass(frozen=True)
class DeployTools:
    kustomize: Path
    promtool: Path
    servicemonitor_crd: Path
    prometheusrule_crd: Path

    @property
    def monitoring_crds(self) -> tuple[Path, Path]:
        return (self.servicemonitor_crd, self.prometheusrule_crd)


def deploy_tools(paths: Paths | None = None) -> DeployTools:
    """kustomize, promtool and the ServiceMonitor/PrometheusRule CRDs that build.sh puts
    beside the other peers (PeersUnavailable/PeersError as build())."""
    directory = (paths or build()).directory
    tools = DeployTools(
        kustomize=directory / "kustomize",
        promtool=directory / "promtool",
        servicemonitor_crd=directory / "crds" / "monitoring.coreos.com_servicemonitors.yaml",
        prometheusrule_crd=directory / "crds" / "monitoring.coreos.com_prometheusrules.yaml",
    )
    for p in (tools.kustomize, tools.promtool, *tools.monitoring_crds):
        if not p.exists():
            raise PeersError(f"{BUILD_SCRIPT} did not produce {p}")
    return tools


def kustomize_build(tools: DeployTools, directory: str | os.PathLike, *, timeout: float = 60.0) -> list[dict]:
    """``kustomize build DIRECTORY``, as a list of objects."""
    import yaml

    proc = subprocess.run([str(tools.kustomize), "build", str(directory)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise PeersError(f"kustomize build {directory} failed ({proc.returncode}):\n{_last_lines(proc.stderr, 20)}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
