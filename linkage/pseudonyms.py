"""Per-project pseudonyms: HMAC-SHA256 of the person key under a secret that belongs to one project.

Each project has its own 256-bit secret in the vault key store (``vault/keys/<project>.key``,
mode 0600, directory 0700). The same person gets unrelated pseudonyms in two projects, so
two extracts cannot be joined on them, and the same pseudonym in every extract version of
one project, because the secret is created once and never rotated. The secret never leaves
this module: no function returns it, and no message, log line or repr contains it.
Destroying a project's secret (``destroy_project_secret``) makes its pseudonyms unlinkable
for good, which is what a project's closure should do.
"""
from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import stat
import uuid
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

SECRET_BYTES = 32  # 256 bits
PSEUDONYM_HEX_CHARS = 24  # 96 bits of the HMAC: collisions are checked, never silently accepted
_PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class PseudonymError(ValueError):
    """Bad input or an untrustworthy key store. Messages never hold a secret or a person key."""


def _key_path(project_id: str, keystore_dir: Path) -> Path:
    if not isinstance(project_id, str) or not _PROJECT_ID.match(project_id):
        raise PseudonymError("project_id: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return Path(keystore_dir) / f"{project_id}.key"


def _ensure_store(keystore_dir: Path) -> Path:
    store = Path(keystore_dir)
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(store.stat().st_mode)
    if mode & 0o077:
        raise PseudonymError(f"{store}: key store must not be accessible to group or others (mode {mode:o})")
    return store


def _read_secret(path: Path) -> bytes:
    info = path.stat()
    if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != 0o600:
        raise PseudonymError(f"{path}: key file must be a regular file with mode 0600 (found {stat.S_IMODE(info.st_mode):o})")
    text = path.read_text(encoding="ascii").strip()
    if not re.fullmatch(r"[0-9a-f]{%d}" % (SECRET_BYTES * 2), text):
        raise PseudonymError(f"{path}: key file is malformed")  # never echo its content
    return bytes.fromhex(text)


def _load_or_create_secret(project_id: str, keystore_dir: Path) -> bytes:
    """The project's secret, created on first use. Private: only this module may hold it."""
    path = _key_path(project_id, keystore_dir)
    store = _ensure_store(path.parent)
    if path.exists():
        return _read_secret(path)
    # Create-if-absent without a race: write a private temp file, then hard-link it into place.
    # link() fails when another process got there first; then its secret is the one to use.
    temp = store / f".{project_id}.key.tmp-{uuid.uuid4().hex}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(SECRET_BYTES) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temp, path)
            log.info("created the pseudonym secret of project %s", project_id)
        except FileExistsError:
            pass
    finally:
        temp.unlink(missing_ok=True)
    dir_fd = os.open(store, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return _read_secret(path)


def has_project_secret(project_id: str, keystore_dir: Path) -> bool:
    return _key_path(project_id, keystore_dir).exists()


def destroy_project_secret(project_id: str, keystore_dir: Path) -> bool:
    """Delete a project's secret (project closed or revoked). Its pseudonyms can then never be re-derived."""
    path = _key_path(project_id, keystore_dir)
    if not path.exists():
        return False
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # overwrite before unlinking: a best effort against undelete
        fh.write(b"0" * size)
        fh.flush()
        os.fsync(fh.fileno())
    path.unlink()
    log.info("destroyed the pseudonym secret of project %s", project_id)
    return True


def pseudonymise(person_keys: Iterable[str], project_id: str, keystore_dir: Path) -> list[str]:
    """Pseudonyms for ``person_keys`` in ``project_id``, in the same order (equal keys, equal pseudonyms).

    The standard library's HMAC object is keyed once and copied per key (``HMAC.copy`` is
    documented for this: messages sharing a prefix, here the key pads), which measured a few
    per cent less CPU than ``hmac.digest``/``hmac.new`` per key (benchmarks/keys.py prints all
    three): about 4 s of CPU for 1M keys, validation and the uniqueness check included.
    """
    keys = list(person_keys)
    for row, key in enumerate(keys):
        if not isinstance(key, str) or not key:
            raise PseudonymError(f"person_keys row {row}: not a non-empty string")
    secret = _load_or_create_secret(project_id, keystore_dir)
    keyed = hmac.new(secret, digestmod="sha256")
    del secret
    width = PSEUDONYM_HEX_CHARS // 2
    out: list[str] = []
    append = out.append
    for key in keys:
        mac = keyed.copy()
        mac.update(key.encode("utf-8"))
        append(mac.digest()[:width].hex())
    del keyed
    if len(set(out)) != len(set(keys)):
        raise PseudonymError(f"project {project_id}: two person keys share a pseudonym; refusing to build the extract")
    return out
