"""`enclave sdc check DIR` and the reports (JSON verdicts, ACRO results.json layout)."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from enclave.cli import app


def make_release(session, people, tmp_path, small: bool):
    if small:
        people.loc[people.index[:3], "neighbourhood"] = "harbour"
    data = tmp_path / "extract"
    data.mkdir()
    people.to_parquet(data / "people.parquet")
    acro = session(outputs_dir=tmp_path / "outputs")
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood, margins=True)
    acro.describe(df, "age")
    return data, acro


def test_check_passes_a_clean_folder(tmp_path, session, people):
    data, acro = make_release(session, people, tmp_path, small=False)
    # the describe of age shows min/max: make it safe by suppressing, then the folder is clean
    for f in acro.outputs_dir.glob("output_1*"):
        f.unlink()
    reports = tmp_path / "reports"
    result = CliRunner().invoke(app, ["sdc", "check", str(acro.outputs_dir), "--data", str(data), "--report", str(reports)])
    assert result.exit_code == 0, result.output
    assert "pass" in result.output
    report = json.loads((reports / "sdc_report.json").read_text())
    assert report["status"] == "pass" and report["outputs"][0]["output"] == "output_0.csv"
    acro_results = json.loads((reports / "results.json").read_text())
    assert set(acro_results) == {"version", "tool", "results"}
    entry = acro_results["results"]["output_0"]
    assert {"uid", "status", "type", "properties", "files", "outcome", "command", "summary",
            "timestamp", "comments", "exception"} <= set(entry)
    assert entry["files"][0]["name"] == "output_0.csv" and "sdc" in entry["files"][0]


def test_check_fails_with_exit_code_1(tmp_path, session, people):
    data, acro = make_release(session, people, tmp_path, small=True)
    result = CliRunner().invoke(app, ["sdc", "check", str(acro.outputs_dir), "--data", str(data)])
    assert result.exit_code == 1
    assert "fail" in result.output


def test_check_without_data_is_at_best_review(tmp_path, session, people):
    _, acro = make_release(session, people, tmp_path, small=False)
    result = CliRunner().invoke(app, ["sdc", "check", str(acro.outputs_dir)])
    assert result.exit_code == 1
    assert "review" in result.output


def test_bad_rules_file_is_named(tmp_path, session, people):
    _, acro = make_release(session, people, tmp_path, small=False)
    bad = tmp_path / "rules.yaml"
    bad.write_text("defaults:\n  threshold: -3\n")
    result = CliRunner().invoke(app, ["sdc", "check", str(acro.outputs_dir), "--rules", str(bad)])
    assert result.exit_code == 2
    assert "rules.yaml" in result.output and "threshold" in result.output


def test_session_finalise_writes_reports_outside_the_outputs(tmp_path, session):
    acro = session(outputs_dir=tmp_path / "outputs")
    df = acro.load("people")
    acro.crosstab(df.sex, df.service)
    acro.finalise()
    assert (tmp_path / "outputs_reports" / "results.json").exists()
    assert not (tmp_path / "outputs" / "results.json").exists()
