"""The identity side of the hub: the OIDC client settings and, for development, the local provider's files.

In production ``oidc_issuer`` and the client credentials come from the settings and nothing here
writes files. Without an issuer the hub uses the development provider (``provider.mjs``) on
loopback, whose client secret and account table live under ``<hub_dir>/oidc`` (root only).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from enclave.settings import Settings

PROVIDER_SCRIPT = Path(__file__).resolve().parent / "provider.mjs"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 16384, 8, 1  # provider.mjs verifies with the same parameters


@dataclass(frozen=True)
class Account:
    """One sign-in of the development provider. ``groups`` is informational: roles come from the registry."""

    username: str
    password: str
    name: str = ""
    email: str = ""
    groups: list[str] = field(default_factory=list)


def write_private(path: Path, text: str) -> None:
    """Write a root-only file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """scrypt hash in the ``scrypt$<salt>$<key>`` form that provider.mjs checks."""
    salt = salt or secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def oidc_dir(settings: Settings) -> Path:
    return settings.hub_dir / "oidc"


def issuer(settings: Settings) -> str:
    return (settings.oidc_issuer or f"http://127.0.0.1:{settings.oidc_port}").rstrip("/")


def endpoints(settings: Settings) -> dict[str, str]:
    """authorize, token and userinfo URLs: the development provider's fixed paths, or for the city's
    issuer the ones its discovery document names (read once, when the hub starts)."""
    if not settings.oidc_issuer:
        base = issuer(settings)
        return {"authorize_url": f"{base}/auth", "token_url": f"{base}/token", "userdata_url": f"{base}/me"}
    import requests

    answer = requests.get(f"{issuer(settings)}/.well-known/openid-configuration", timeout=10)
    answer.raise_for_status()
    document = answer.json()
    return {"authorize_url": document["authorization_endpoint"], "token_url": document["token_endpoint"],
            "userdata_url": document["userinfo_endpoint"]}


def public_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.hub_port}"


def callback_url(settings: Settings) -> str:
    return f"{public_url(settings)}/hub/oauth_callback"


def client_secret(settings: Settings) -> str:
    """The configured secret, or for the development provider one generated once and kept root-only."""
    if settings.oidc_client_secret:
        return settings.oidc_client_secret
    if settings.oidc_issuer:
        raise ValueError("ENCLAVE_OIDC_CLIENT_SECRET must be set when ENCLAVE_OIDC_ISSUER is")
    path = oidc_dir(settings) / "client_secret"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32))
    return path.read_text().strip()


def accounts_file(settings: Settings) -> Path:
    return oidc_dir(settings) / "accounts.json"


def write_accounts(settings: Settings, accounts: list[Account]) -> Path:
    """Replace the development provider's account table (passwords stored only as scrypt hashes)."""
    seen: set[str] = set()
    rows = []
    for account in accounts:
        if not account.username or account.username in seen:
            raise ValueError(f"accounts: empty or duplicate username {account.username!r}")
        if len(account.password) < 8:
            raise ValueError(f"accounts: password of {account.username} is shorter than 8 characters")
        seen.add(account.username)
        rows.append({"username": account.username, "name": account.name or account.username,
                     "email": account.email or f"{account.username}@enclave.invalid",
                     "groups": list(account.groups), "password_hash": hash_password(account.password)})
    path = accounts_file(settings)
    write_private(path, json.dumps({"accounts": rows}, indent=1))
    return path


def provider_config(settings: Settings) -> Path:
    """Write the development provider's configuration and return its path."""
    if settings.oidc_issuer:
        raise ValueError("an external OIDC issuer is configured: the development provider is not used")
    config = {
        "host": "127.0.0.1",
        "port": settings.oidc_port,
        "accounts_file": str(accounts_file(settings)),
        "session_ttl_seconds": 8 * 3600,
        "clients": [{
            "client_id": settings.oidc_client_id,
            "client_secret": client_secret(settings),
            "redirect_uris": [callback_url(settings)],
            "post_logout_redirect_uris": [f"{public_url(settings)}/hub/login"],
        }],
    }
    path = oidc_dir(settings) / "provider.json"
    write_private(path, json.dumps(config, indent=1))
    return path
