"""``enclave people``: the registry's people, roles and linked operating-system accounts (= ``enclave board people``)."""
from __future__ import annotations

from enclave.cli.board import people_app as app

__all__ = ["app"]
