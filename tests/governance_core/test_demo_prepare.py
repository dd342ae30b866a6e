"""`make demo`'s data path, end to end and for real: synthetic deposits -> ingest -> linkage ->
research store -> board approval -> the demo extracts, k-anonymous and free of identifiers."""
from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = pytest.mark.timeout(600)


def test_demo_prepare_builds_both_extracts_and_is_idempotent(enclave_home):
    from enclave import demo
    from enclave.settings import get_settings

    projects = demo.prepare()
    settings = get_settings()
    assert sorted(projects) == ["school-stability", "young-families", "youth-justice-health"]

    runs = sorted(p for p in (settings.vault / "linkage" / "runs").iterdir() if not p.name.startswith("."))
    quality = json.loads((runs[-1] / "quality.json").read_text())
    assert quality["ground_truth"]["f1"] >= 0.95, quality["ground_truth"]

    identifiers = pd.read_parquet(settings.vault / "identifiers")
    secrets = set()
    for column in ("first_name", "last_name", "ssn", "street"):
        secrets |= {str(v).lower() for v in identifiers[column].dropna() if len(str(v)) >= 6}
    for project in projects:
        current = settings.extracts / project / "current"
        manifest = json.loads((current / "manifest.json").read_text())
        assert manifest["k_reached"] >= manifest["k_required"] == 5
        # the attacker model's figures (profile, profile + one event, family edge, family graph)
        assert all(v is None or v >= 5 for v in manifest["privacy"]["measured"].values()), manifest["privacy"]["measured"]
        for table, meta in manifest["tables"].items():
            frame = pd.read_parquet(current / meta["file"])
            assert len(frame) == meta["rows"] > 0, (project, table)
            keys = {"pseudonym"} if table != "relationships" else {"pseudonym_from", "pseudonym_to"}
            assert keys <= set(frame.columns) and not {"person_key", "person_key_from", "person_key_to"} & set(frame.columns)
            values = {str(v).lower() for c in frame.columns if frame[c].dtype == object for v in frame[c].dropna().unique()}
            assert not values & secrets, (project, table)

    # A second run (make demo again) builds nothing new.
    versions = {p: sorted(x.name for x in (settings.extracts / p).iterdir() if x.name.startswith("v")) for p in projects}
    demo.prepare()
    assert versions == {p: sorted(x.name for x in (settings.extracts / p).iterdir() if x.name.startswith("v")) for p in projects}
