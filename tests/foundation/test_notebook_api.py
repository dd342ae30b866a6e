"""The researcher API: extract discovery, refusals outside a workspace."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from enclave.settings import get_settings


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"pseudonym": [f"{i:024x}" for i in range(50)], "sex": ["F", "M"] * 25}).to_parquet(data / "school.parquet")
    (data / "manifest.json").write_text(json.dumps({
        "project": "p1", "version": "v1", "dp_epsilon": 1.0,
        "tables": {"school": {"file": "school.parquet", "columns": {"sex": {"type": "object", "description": "Sex"}}}}}))
    monkeypatch.setenv("ENCLAVE_WORKSPACE_DATA", str(data))
    monkeypatch.setenv("ENCLAVE_WORKSPACE_OUTPUTS", str(tmp_path / "home" / "outputs"))
    get_settings.cache_clear()
    from enclave import notebook

    notebook._manifest.cache_clear()
    yield notebook
    get_settings.cache_clear()


def test_tables_and_variables(workspace):
    assert workspace.tables() == ["school"]
    assert list(workspace.variables().variable) == ["sex"]


def test_outside_a_workspace_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCLAVE_WORKSPACE_DATA", str(tmp_path / "nothing"))
    get_settings.cache_clear()
    from enclave import notebook

    with pytest.raises(notebook.ExtractNotFound):
        notebook.tables()


def test_table_names_cannot_escape_the_extract(workspace):
    with pytest.raises(KeyError):
        workspace.read_table("../data/school")


# DP queries are answered by the host's DP service: tests/dp_service.


def test_the_extracts_agencies_set_the_rules(workspace, tmp_path):
    manifest = workspace.manifest()
    manifest["agencies"] = ["Schools"]
    manifest["tables"]["school"]["source"] = {"agency": "Vital Records"}
    assert workspace._agencies() == ["Schools", "Vital Records"]
