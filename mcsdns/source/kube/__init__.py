"""The Kubernetes API source: one package so its parts (API client, feeds,
watchers, per-kind views, fault classes) read as one thing. Importing it
loads the kubernetes client, which is slow, so ``app`` imports it only for
``--source kube``."""

from .source import Health, KubeSource

__all__ = ["Health", "KubeSource"]
