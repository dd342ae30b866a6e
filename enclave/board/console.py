"""Moved to ``enclave.cli.common`` (one shared piece for every CLI group); kept so old imports work."""
from __future__ import annotations

from enclave.cli.common import caller, checked, err, fail, out, parse_moment, run, transaction

__all__ = ["caller", "checked", "err", "fail", "out", "parse_moment", "run", "transaction"]
