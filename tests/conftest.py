"""Shared fixtures: every test gets its own ENCLAVE_HOME and a fresh settings object."""
from __future__ import annotations

import pytest


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
