"""Extract provisioning: an approval builds the project's extract from the research store.

The build reads as its stages, one module each under ``enclave.extract`` (each importing only
the ones before it; the spec and the attacker model are the data they share):
``select`` (approved cohort and columns, pseudonymised) -> ``generalise`` (per-table k, common
levels) -> ``joined`` (person-level k over the join) -> ``measure`` / ``remedy`` (what the
board's attacker model knows: profile + known events, family edges) -> ``shuffle`` (a fresh row
order) -> ``write`` (atomic versions, manifest) and ``register`` (registry rows, audit).

This module keeps the public entry points where callers have always found them.
"""
from __future__ import annotations

from enclave.extract.generalise import _generalise
from enclave.extract.register import cohort_from_approval, provision, spec_for_approval, withdraw
from enclave.extract.spec import (
    AGE,
    CURRENT,
    MANIFEST,
    PERSON_KEY,
    PERSONS_TABLE,
    PSEUDONYM,
    RELATIONSHIPS_TABLE,
    BuildResult,
    Cohort,
    ExtractSpec,
    ProvisioningError,
)
from enclave.extract.write import build_extract, list_versions, read_manifest, verify_extract, withdraw_current

__all__ = [
    "AGE", "CURRENT", "MANIFEST", "PERSON_KEY", "PERSONS_TABLE", "PSEUDONYM", "RELATIONSHIPS_TABLE",
    "BuildResult", "Cohort", "ExtractSpec", "ProvisioningError", "_generalise", "build_extract", "cohort_from_approval",
    "list_versions", "provision", "read_manifest", "spec_for_approval", "verify_extract", "withdraw", "withdraw_current",
]
