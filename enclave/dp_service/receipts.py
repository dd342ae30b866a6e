"""Signed receipts of the DP budget service, and their verification by the airlock.

A receipt names the project, the extract version, the query, the epsilon charged and the noisy
result, signed with HMAC-SHA256 under a key that lives only on the host (``<home>/secrets``,
root-only, never bound into a sandbox). The DP output a researcher requests for release *is*
the receipt document, byte for byte as ``render`` writes it, so what is released is exactly
what the service answered. The registry row of the charge (``DPSpend``) is the authority: a
receipt is accepted only when its row exists with the same project and epsilon, and only once
(the release ties the row to its request).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import select

from enclave.settings import get_settings

RECEIPT_KEY = "dp_receipt"
FORMAT = "ids-dp-receipt/1"
_KEY_BYTES = 32
_MAX_RECEIPT_BYTES = 64 * 1024


class ReceiptError(ValueError):
    """A receipt that is forged, edited, malformed, of another project or extract, or already used."""


def key_path() -> Path:
    """The host-only signing key (under the data root, which no sandbox sees)."""
    return get_settings().home / "secrets" / "dp_receipts.key"


def signing_key() -> bytes:
    """The signing key, created (0600, root's) on first use; two processes racing create one key."""
    path = key_path()
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(_KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process created the key first: use theirs
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) != _KEY_BYTES:
        raise ReceiptError(f"the DP receipt key {path} is damaged")
    return data


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def sign(payload: dict[str, Any], key: bytes | None = None) -> dict[str, Any]:
    """The receipt of ``payload``: the payload and its HMAC-SHA256 under the host key."""
    payload = {"format": FORMAT, **payload}
    mac = hmac.new(key or signing_key(), _canonical(payload), hashlib.sha256).hexdigest()
    return {"payload": payload, "signature": mac}


def render(receipt: dict[str, Any]) -> str:
    """The exact text of a DP output file: the receipt document (what is released)."""
    return json.dumps({RECEIPT_KEY: receipt}, sort_keys=True, indent=1, ensure_ascii=True, allow_nan=False) + "\n"


def verify_signature(receipt: Any, key: bytes | None = None) -> dict[str, Any]:
    """The payload of a receipt whose signature holds; ``ReceiptError`` otherwise."""
    if not isinstance(receipt, dict) or set(receipt) != {"payload", "signature"}:
        raise ReceiptError("not a DP receipt (payload and signature expected)")
    payload, signature = receipt["payload"], receipt["signature"]
    if not isinstance(payload, dict) or not isinstance(signature, str) or payload.get("format") != FORMAT:
        raise ReceiptError("not a DP receipt of this enclave")
    try:
        expected = hmac.new(key or signing_key(), _canonical(payload), hashlib.sha256).hexdigest()
    except ValueError as exc:  # NaN or infinity in an edited payload
        raise ReceiptError(f"receipt payload is not canonical: {exc}") from None
    if not hmac.compare_digest(expected, signature):
        raise ReceiptError("receipt signature does not verify: forged or edited")
    return payload


def claims_receipt(path: Path) -> bool:
    """True when an output file presents itself as a DP receipt (it is then judged only as one)."""
    try:
        if path.stat().st_size > _MAX_RECEIPT_BYTES:
            return False
        head = path.read_bytes()
    except OSError:
        return False
    return f'"{RECEIPT_KEY}"'.encode() in head


def read_output(path: Path) -> dict[str, Any]:
    """The receipt a DP output file holds, refusing any byte that ``render`` would not write."""
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReceiptError(f"{path.name}: not a readable receipt ({type(exc).__name__})") from None
    if not isinstance(document, dict) or set(document) != {RECEIPT_KEY}:
        raise ReceiptError(f"{path.name}: a DP output holds its receipt and nothing else")
    receipt = document[RECEIPT_KEY]
    try:
        canonical = render(receipt)
    except (TypeError, ValueError):
        raise ReceiptError(f"{path.name}: the receipt is not canonical") from None
    if canonical != text:
        raise ReceiptError(f"{path.name}: the file differs from its receipt (edited or extra content)")
    return receipt


def verify(session, receipt: Any, project: str, extract_version: int, request_id: int | None = None) -> dict[str, Any]:
    """The payload of a receipt valid for releasing from ``project``'s ``extract_version``.

    Checks the signature, the project and extract version it names, and the registry's row of
    the charge (same project, same epsilon, not released by another request).
    """
    from enclave.registry.models import DPSpend, Project

    payload = verify_signature(receipt)
    if payload.get("project") != project:
        raise ReceiptError(f"receipt is for project {payload.get('project')!r}, not {project!r}")
    if payload.get("extract_version") != extract_version:
        raise ReceiptError(f"receipt is for extract version {payload.get('extract_version')!r}, "
                           f"the request was checked against version {extract_version}")
    spend_id = payload.get("spend_id")
    spend = session.get(DPSpend, spend_id) if isinstance(spend_id, int) else None
    proj = session.scalars(select(Project).where(Project.slug == project)).first()
    if spend is None or proj is None or spend.project_id != proj.id:
        raise ReceiptError("receipt names no charge of this project in the registry")
    if abs(spend.epsilon - float(payload.get("epsilon", -1))) > 1e-12:
        raise ReceiptError("receipt epsilon differs from the registry's charge")
    if spend.release_request_id is not None and spend.release_request_id != request_id:
        raise ReceiptError(f"receipt was already released with request {spend.release_request_id} (replay)")
    return payload


def free_text_has_numbers(path: Path) -> bool:
    """True when the researcher-written text of a DP output (its purpose) holds a digit."""
    try:
        purpose = read_output(path)["payload"]["query"].get("purpose", "")
    except (ReceiptError, KeyError, TypeError, AttributeError):
        return True
    return any(ch.isdigit() for ch in str(purpose))


def check_output(session, path: Path, project: str, extract_version: int, request_id: int | None) -> list[str]:
    """Problems of a DP output file in the airlock (empty when it is a valid, unused receipt)."""
    try:
        verify(session, read_output(path), project, extract_version, request_id)
    except ReceiptError as exc:
        return [f"DP receipt refused: {exc}"]
    return []


def mark_released(session, folder: Path, names: list[str], request_id: int) -> list[int]:
    """Tie every DP receipt among ``names`` to ``request_id`` (inside the release transaction).

    The receipts were verified by the recheck just before; a receipt presented twice in one
    request, or released before, raises ``ReceiptError``. Returns the registry ids of the charges released.
    """
    from enclave.registry.models import DPSpend

    released: list[int] = []
    for name in names:
        path = folder / name
        if not claims_receipt(path):
            continue
        payload = verify_signature(read_output(path))
        spend_id = int(payload["spend_id"])
        if spend_id in released:
            raise ReceiptError(f"{name}: the same DP receipt appears twice in the request")
        spend = session.get(DPSpend, spend_id)
        if spend.release_request_id not in (None, request_id):
            raise ReceiptError(f"{name}: receipt already released with request {spend.release_request_id} (replay)")
        spend.release_request_id = request_id
        released.append(spend_id)
    return released
