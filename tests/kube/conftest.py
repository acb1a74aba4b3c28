"""Fixtures: a fake API server per test, a kubeconfig pointing at it, DEBUG logs."""

from __future__ import annotations

import logging

import pytest

from .fakeapi import FakeApi


@pytest.fixture
def fake():
    api = FakeApi()
    yield api
    api.stop()


@pytest.fixture
def kubeconfig(fake, tmp_path):
    return str(fake.kubeconfig(tmp_path / "kubeconfig"))


@pytest.fixture
def debug_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="mcsdns")
    return caplog


