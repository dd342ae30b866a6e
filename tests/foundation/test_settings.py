"""The settings object: environment beats enclave.toml beats defaults; zones derive from home."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from enclave.settings import Settings, get_settings


def test_defaults_are_embedded_under_var(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in ("ENCLAVE_HOME", "ENCLAVE_DATABASE_URL", "ENCLAVE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.home == (tmp_path / "var").resolve()
    assert s.registry_url == f"sqlite:///{tmp_path / 'var' / 'registry.db'}"
    assert s.vault == s.home / "vault" and s.extracts == s.home / "extracts"


def test_toml_then_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENCLAVE_HOME", raising=False)
    (tmp_path / "enclave.toml").write_text('home = "/srv/ids"\nreviewers_required = 3\n')
    monkeypatch.setenv("ENCLAVE_CONFIG", str(tmp_path / "enclave.toml"))
    assert Settings().home == Path("/srv/ids")
    assert Settings().reviewers_required == 3
    monkeypatch.setenv("ENCLAVE_REVIEWERS_REQUIRED", "4")
    assert Settings().reviewers_required == 4


def test_unknown_key_in_toml_is_refused(monkeypatch, tmp_path):
    (tmp_path / "enclave.toml").write_text('hoem = "/typo"\n')
    monkeypatch.setenv("ENCLAVE_CONFIG", str(tmp_path / "enclave.toml"))
    with pytest.raises(ValidationError, match="hoem"):
        Settings()


def test_database_url_override(enclave_home, monkeypatch):
    monkeypatch.setenv("ENCLAVE_DATABASE_URL", "postgresql+psycopg://ids@localhost/ids")
    get_settings.cache_clear()
    assert get_settings().registry_url == "postgresql+psycopg://ids@localhost/ids"


def test_nothing_else_reads_the_environment():
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for package in ("enclave", "linkage", "disclosure_control", "hub_config"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text()
            if path.name == "settings.py" and path.parent.name == "enclave":
                continue
            if "single_user" in path.parts:
                continue  # jupyter_server's own config inside the sandbox: reads what the spawner set, no enclave settings
            if "hub_config" in path.parts and ("gateway" in path.parts or "kernels" in path.parts):
                continue  # host-side workspace processes: read what the spawner handed them, no enclave settings
            if path.parts[-2:] == ("console", "app.py"):
                continue  # the console's entry point reads JupyterHub's service protocol (JUPYTERHUB_SERVICE_*), no enclave settings
            if "os.environ[" in text or "os.getenv(" in text or "os.environ.get(" in text:
                offenders.append(str(path.relative_to(root)))
    assert offenders == [], f"read the environment outside enclave.settings: {offenders}"
