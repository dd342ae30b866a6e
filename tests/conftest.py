"""Shared fixtures: every test gets its own ENCLAVE_HOME and a fresh settings object; the one
seeded test registry (``registry_world``) for every group that needs people and sources.

Tests run in *test* mode: the CLI honours ENCLAVE_USER (with a warning) against registries
marked test or demo. Set here, at import, so CLI subprocesses the tests start inherit it; a
test of production behaviour sets ENCLAVE_MODE=production itself.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: shared helpers by name

import registry_world  # noqa: E402

os.environ["ENCLAVE_MODE"] = "test"


@pytest.fixture
def enclave_home(tmp_path, monkeypatch):
    """An empty data root; settings re-read so every zone points inside it."""
    from enclave.settings import get_settings

    home = tmp_path / "var"
    monkeypatch.setenv("ENCLAVE_HOME", str(home))
    monkeypatch.delenv("ENCLAVE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory):
    """One migrated and seeded registry file (``registry_world``); each test gets a copy (migrating per test is slow)."""
    return registry_world.build_template(tmp_path_factory.mktemp("registry-template"))


@pytest.fixture
def registry(enclave_home, registry_template, monkeypatch):
    """The URL of a fresh copy of the seeded test registry in this test's ENCLAVE_HOME
    (quorum 3, majority 0.5, two reviews before release)."""
    from enclave.registry.base import dispose_engines
    from enclave.settings import get_settings

    registry_world.install(registry_template, enclave_home)
    for name, value in registry_world.ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield get_settings().registry_url
    dispose_engines()
