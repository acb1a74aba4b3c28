"""Which API server, with which credentials: the client configuration, found once.

Order, as kubectl and client-go do it: ``--kubeconfig FILE`` (with ``--context``
if given); else, with no ``--context``, the pod's service account when running
in a cluster (KUBERNETES_SERVICE_HOST/PORT set, token mounted); else the default
kubeconfig (``$KUBECONFIG``, a ``:``-separated list, or ``~/.kube/config``).
Everything that can be wrong here is a setting, reported as one ``SourceError``
line before we serve; an unreachable server is not (we retry that for ever).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import yaml
from kubernetes import client
from kubernetes.config import incluster_config, kube_config
from kubernetes.config.config_exception import ConfigException

from ..files import SourceError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
USER_AGENT = "mcsdns"


def connect(
    kubeconfig: str | None,
    context: str | None,
    environ: Mapping[str, str] = os.environ,
    service_account: Path = SERVICE_ACCOUNT,
) -> client.ApiClient:
    """An ApiClient for the configured cluster, or SourceError saying what is wrong."""
    if kubeconfig:
        return _from_kubeconfig(kubeconfig, context, explicit=True)
    if context is None and environ.get(incluster_config.SERVICE_HOST_ENV_NAME):
        try:
            return _in_cluster(environ, service_account)
        except ConfigException as error:
            in_cluster_error = f"in-cluster configuration unusable ({error})"
    else:
        in_cluster_error = "not running in a cluster (KUBERNETES_SERVICE_HOST is not set)"
    default = environ.get("KUBECONFIG") or "~/.kube/config"
    if not any(Path(p).expanduser().is_file() for p in default.split(os.pathsep) if p):
        raise SourceError(f"{in_cluster_error} and no kubeconfig at {default}; pass --kubeconfig or set KUBECONFIG")
    return _from_kubeconfig(default, context, explicit=False)


def _in_cluster(environ: Mapping[str, str], account: Path) -> client.ApiClient:
    configuration = client.Configuration()
    loader = incluster_config.InClusterConfigLoader(
        token_filename=str(account / "token"), cert_filename=str(account / "ca.crt"), environ=environ
    )
    loader.load_and_set(configuration)  # re-reads the token every minute (bound tokens expire)
    return _client(configuration)


def _from_kubeconfig(path: str, context: str | None, explicit: bool) -> client.ApiClient:
    if explicit and not Path(path).expanduser().is_file():
        raise SourceError(f"kubeconfig {path} does not exist")
    try:
        contexts, _ = kube_config.list_kube_config_contexts(config_file=path)
        names = [entry.get("name") for entry in contexts or []]
        if context is not None and context not in names:
            raise SourceError(f"context {context!r} is not in kubeconfig {path} (it has: {', '.join(names) or 'none'})")
        configuration = client.Configuration()
        # persist_config=False: never rewrite the user's file (token refreshes).
        kube_config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration, persist_config=False
        )
    except (ConfigException, yaml.YAMLError, OSError, KeyError, TypeError, AttributeError) as error:
        raise SourceError(f"kubeconfig {path} is unusable: {_one_line(error)}") from None
    return _client(configuration)


def _client(configuration: client.Configuration) -> client.ApiClient:
    # One immediate retry covers a pooled keep-alive connection the server
    # closed; real failures are retried by the watch loop, with backoff.
    configuration.retries = 1
    api = client.ApiClient(configuration)
    api.user_agent = USER_AGENT
    return api


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
