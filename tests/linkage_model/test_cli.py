"""`enclave link run` and `enclave link report` end to end: generator, ingest, linkage,
person keys and research store, all real, on a few hundred synthetic people."""
from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from enclave.cli import app

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result


@pytest.mark.slow
def test_link_run_then_report_through_the_cli(enclave_home, tmp_path):
    data = tmp_path / "synth"
    assert invoke("data", "synth", "--people", "300", "--seed", "5", "--out", str(data)).exit_code == 0
    assert invoke("data", "ingest-dir", str(data)).exit_code == 0
    result = invoke("link", "run", "--ground-truth", str(data / "ground_truth.csv"))
    assert result.exit_code == 0, result.output
    run_id = result.output.strip().splitlines()[-1]
    run_dir = enclave_home / "vault" / "linkage" / "runs" / run_id
    quality = json.loads((run_dir / "quality.json").read_text())
    assert quality["ground_truth"]["f1"] >= 0.9
    assert quality["run"]["engine"] == "duckdb" and quality["threshold_match_probability"] == 0.9
    # Handed on: person keys for every record, then the research store.
    assert (enclave_home / "vault" / "linkage" / "crosswalk.parquet").exists()
    assert (enclave_home / "research" / "manifest.json").exists()

    out = tmp_path / "again.html"
    result = invoke("link", "report", "--run", run_id, "--ground-truth", str(data / "ground_truth.csv"), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert len(re.findall(r"data:image/png;base64,", out.read_text())) == 4


def test_link_commands_refuse_bad_options_and_missing_runs(enclave_home):
    result = invoke("link", "run", "--engine", "oracle")
    assert result.exit_code != 0 and "duckdb" in result.output
    result = invoke("link", "run", "--threshold", "0")
    assert result.exit_code != 0
    result = invoke("link", "run")
    assert result.exit_code == 2 and "no identifier partitions" in result.output
    result = invoke("link", "report")
    assert result.exit_code == 2 and "no linkage run" in result.output
