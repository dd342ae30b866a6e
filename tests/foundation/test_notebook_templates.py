"""Every researcher template runs, top to bottom, in a real kernel against an extract laid out
as provisioning writes it, and leaves its outputs with evidence for the airlock."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

from linkage.sources import load_definitions

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "notebooks" / "templates").glob("*.ipynb"))


def _column(spec, n: int, rng: np.random.Generator) -> pd.Series:
    if spec.type == "category":
        return pd.Series(rng.choice(spec.values, n))
    if spec.type == "boolean":
        return pd.Series(rng.random(n) < 0.3)
    if spec.type in ("integer", "float"):
        return pd.Series(rng.integers(0, 150, n))
    if spec.type == "date":
        return pd.Series(rng.choice(["2019-01", "2020-06", "2021-09"], n))
    return pd.Series(rng.choice([f"value {i}" for i in range(6)], n))


@pytest.fixture(scope="module")
def extract(tmp_path_factory) -> Path:
    """An extract of every source, with the research store's quasi-identifiers and pseudonyms."""
    rng = np.random.default_rng(3)
    root = tmp_path_factory.mktemp("extract")
    pseudonyms = [f"{i:024x}" for i in range(400)]
    tables = {}
    for name, definition in load_definitions().items():
        n = 2000
        frame = pd.DataFrame({"pseudonym": rng.choice(pseudonyms, n)})
        frame["sex"] = rng.choice(["F", "M"], n)
        frame["birth_year"] = rng.integers(1995, 2015, n)
        frame["neighbourhood"] = rng.choice(["Canton", "Hampden", "Sandtown-Winchester"], n)
        frame["race_ethnicity"] = rng.choice(["black_non_hispanic", "white_non_hispanic", "hispanic"], n)
        frame["event_date"] = rng.choice(["2018-03", "2020-06", "2023-09"], n)
        for column, spec in definition.content.items():
            frame[column] = _column(spec, n, rng)
        frame.to_parquet(root / f"{name}.parquet", index=False)
        tables[name] = {"file": f"{name}.parquet", "rows": n,
                        "columns": {c: {"type": str(t)} for c, t in frame.dtypes.items()},
                        "source": {"agency": definition.agency}}
    pairs = pd.DataFrame({"pseudonym_from": rng.choice(pseudonyms, 300), "pseudonym_to": rng.choice(pseudonyms, 300),
                          "relation": rng.choice(["mother_of", "father_of"], 300)})
    pairs.to_parquet(root / "relationships.parquet", index=False)
    tables["relationships"] = {"file": "relationships.parquet", "rows": len(pairs),
                               "columns": {c: {"type": str(t)} for c, t in pairs.dtypes.items()}, "source": None}
    (root / "manifest.json").write_text(json.dumps({"project": "templates", "version": "v1", "tables": tables}))
    return root


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.stem for t in TEMPLATES])
def test_template_runs_and_saves_outputs_with_evidence(template, extract, tmp_path, monkeypatch):
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("ENCLAVE_WORKSPACE_DATA", str(extract))
    monkeypatch.setenv("ENCLAVE_WORKSPACE_OUTPUTS", str(outputs))
    notebook = nbformat.read(template, as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    evidence = sorted(outputs.glob("*.evidence.json"))
    assert evidence, "the template made no checked output"
    for path in evidence:
        record = json.loads(path.read_text())
        assert (outputs / record["output_file"]).exists()
        assert record["table"] in json.loads((extract / "manifest.json").read_text())["tables"]


def test_templates_are_current():
    """The committed templates are what notebooks/build_templates.py writes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_templates", ROOT / "notebooks" / "build_templates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {p.name for p in TEMPLATES} == set(module.TEMPLATES)
