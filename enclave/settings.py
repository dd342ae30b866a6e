"""The one settings object. Nothing else in the project reads the environment.

Values come, highest first, from environment variables prefixed ``ENCLAVE_``,
then an optional ``enclave.toml`` (path in ``ENCLAVE_CONFIG``, else ``./enclave.toml``),
then the defaults below, which give an embedded set-up under ``./var``.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


def _toml_path() -> Path:
    # The one sanctioned read of the environment outside pydantic-settings: where the toml file is.
    return Path(os.environ.get("ENCLAVE_CONFIG", "enclave.toml"))


class Settings(BaseSettings):
    """Every configurable value of the enclave, with its zone paths derived from ``home``."""

    model_config = SettingsConfigDict(env_prefix="ENCLAVE_", extra="forbid")

    home: Path = Field(default=Path("var"), description="Data root holding every zone.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL of the registry; default a SQLite file in home.")
    mode: Literal["production", "demo", "test"] = Field(
        default="production",
        description="production: the CLI acts as the operating-system account running it; demo and test also honour "
                    "ENCLAVE_USER (with a warning), and only against a registry marked demo or test.")
    user: str | None = Field(default=None, description="Demo and test mode only: the registry username the CLI acts as.")
    hub_port: int = Field(default=8000, description="Public port of the JupyterHub proxy.")
    oidc_port: int = Field(default=8900, description="Port of the development OIDC provider on loopback.")
    oidc_issuer: str | None = Field(default=None, description="Issuer URL of the city's OIDC provider; unset = local dev provider.")
    oidc_client_id: str = Field(default="enclave-hub")
    oidc_client_secret: str | None = Field(default=None)
    terminals_enabled: bool = Field(default=False, description="Allow terminals in workspaces.")
    workspace_memory_mb: int = Field(default=2048)
    workspace_max_procs: int = Field(default=256)
    workspace_cpu_seconds: int = Field(default=36000)
    idle_cull_seconds: int = Field(default=3600)
    reviewers_required: int = Field(default=2, description="Independent reviews needed before release.")
    board_quorum: int = Field(default=3)
    board_majority: float = Field(default=0.5, description="Share of non-recused votes that must approve (strictly more than).")
    workspace_data: Path = Field(default=Path("/data"), description="Inside a workspace: the project's read-only extract.")
    workspace_outputs: Path = Field(default=Path("~/outputs"), description="Inside a workspace: where outputs and their evidence are saved.")
    dp_socket: str = Field(default="", description="The DP budget service's socket outside a sandbox (inside one: its fixed path).")
    workspace_project: str | None = Field(default=None, description="Inside a workspace: the project (set by the spawner).")
    workspace_extract_version: str | None = Field(default=None, description="Inside a workspace: the extract version (set by the spawner).")
    linkage_engine: str = Field(default="duckdb")
    linkage_threshold: float = Field(default=0.9, description="Match probability at which records are clustered.")

    @field_validator("home", "workspace_outputs", mode="after")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = _toml_path()
        if toml.exists():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    # Zones (ARCHITECTURE.md, "Zones on disk").
    @property
    def vault(self) -> Path:
        return self.home / "vault"

    @property
    def research(self) -> Path:
        return self.home / "research"

    @property
    def extracts(self) -> Path:
        return self.home / "extracts"

    @property
    def workspaces(self) -> Path:
        return self.home / "workspaces"

    @property
    def airlock(self) -> Path:
        return self.home / "airlock"

    @property
    def releases(self) -> Path:
        return self.home / "releases"

    @property
    def hub_dir(self) -> Path:
        return self.home / "hub"

    @property
    def registry_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'registry.db'}"


@lru_cache(maxsize=1)
def get_settings(**overrides: Any) -> Settings:
    """The process-wide settings (tests call ``get_settings.cache_clear()`` after changing the environment)."""
    return Settings(**overrides)
