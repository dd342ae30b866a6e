"""Deposits as a whole: layout, separation of identifiers from content, related roles,
idempotence, streaming with bounded memory, Parquet sources, the CLI."""
from __future__ import annotations

import datetime as dt
import json
import tracemalloc

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from linkage.ingest import ingest_file
from linkage.ingest_read import FileRejected
from linkage.sources import STANDARD_FIELDS, get_definition


def _rows(kit, n):
    rows = [kit.good_row(i) for i in range(n)]
    for i, r in enumerate(rows):
        r["first"] = ["Maria", "Ana", "Jose", "Li"][i % 4]
        r["visits"] = str(i % 50)
        r["zip"] = ["21201", "21217", "99999"][i % 3]
        if i % 5 == 0:
            r["mother_first"] = r["mother_last"] = r["mother_ssn"] = ""
    return rows


def test_layout_and_separation(definition, vault, kit, tmp_path):
    p = kit.write_csv(tmp_path / "clinic.csv", _rows(kit, 20))
    result = ingest_file(definition, p, vault, today=kit.TODAY)
    dep = result.deposit_id
    assert dep == result.sha256[:16]
    for kind, ext in (("identifiers", "parquet"), ("content", "parquet"), ("relationships", "parquet"), ("quarantine", "csv")):
        assert (vault / kind / "clinic" / f"{dep}.{ext}").is_file()
    manifest = json.loads((vault / "deposits" / "clinic" / f"{dep}.json").read_text())
    assert manifest["rows_accepted"] == 20 and manifest["rows_quarantined"] == 0 and manifest["file_name"] == "clinic.csv"

    ids = kit.read_part(vault, "identifiers")
    assert list(ids.columns) == ["record_key", "source", "source_record_id", "role", *STANDARD_FIELDS]
    content = kit.read_part(vault, "content")
    assert list(content.columns) == ["record_key", "event_date", "visit_date", "visits", "charge", "insured", "kind", "note", "neighbourhood"]
    # No identifier column or identifier value reaches the content partition.
    identifier_columns = {"first", "last", "dob", "sex", "ssn", "street", "zip", "mother_first", "mother_last", "mother_ssn"}
    assert not identifier_columns & set(content.columns)
    content_text = content.astype(str).to_string()
    for value in ("Maria", "Lopez", "212456789", "Charles"):
        assert value not in content_text
    assert str(content["event_date"].dtype).startswith(("datetime64", "object"))
    assert content["event_date"].iloc[0] == dt.date(2020, 5, 6) or str(content["event_date"].iloc[0]).startswith("2020-05-06")
    assert content["visits"].dtype.kind == "i" and content["insured"].dtype == bool
    nb = content.set_index("record_key")["neighbourhood"]
    assert nb["clinic:V00000"] == "Downtown/Seton Hill" and nb["clinic:V00001"] == "Sandtown-Winchester/Harlem Park"
    assert pd.isna(nb["clinic:V00002"])  # a zip outside the city has no neighbourhood

    subj = ids[ids.role == "subject"].set_index("record_key")
    assert len(subj) == 20
    assert subj.loc["clinic:V00003", "dob"] == "2012-03-04" and subj.loc["clinic:V00003", "sex"] == "F"
    mothers = ids[ids.role == "mother"]
    assert len(mothers) == 16  # rows 0, 5, 10, 15 name no mother
    assert set(mothers.record_key) == {f"clinic:V{i:05d}/mother" for i in range(20) if i % 5}
    assert mothers[["dob", "sex", "street"]].isna().all().all()  # the mother role declares no such fields
    rel = kit.read_part(vault, "relationships")
    assert len(rel) == 16 and set(rel.relation) == {"mother_of"}
    assert (rel.record_key_from == rel.record_key_to + "/mother").all()


def test_same_file_again_is_a_noop(definition, vault, kit, tmp_path):
    p = kit.write_csv(tmp_path / "clinic.csv", _rows(kit, 5))
    first = ingest_file(definition, p, vault, today=kit.TODAY)
    before = {f: f.stat().st_mtime_ns for f in kit.vault_files(vault)}
    again = ingest_file(definition, p, vault, today=kit.TODAY)
    renamed = tmp_path / "clinic_copy.csv"
    renamed.write_bytes(p.read_bytes())
    copy = ingest_file(definition, renamed, vault, today=kit.TODAY)
    assert not first.already_deposited and again.already_deposited and copy.already_deposited
    assert again.deposit_id == first.deposit_id and again.rows_accepted == 5
    assert {f: f.stat().st_mtime_ns for f in kit.vault_files(vault)} == before
    # One changed byte is other content, but the same records re-sent: refused, pointing at supersede.
    changed = tmp_path / "clinic2.csv"
    changed.write_bytes(p.read_bytes().replace(b"Maria", b"Mario", 1))
    with pytest.raises(FileRejected, match=f"as deposit {first.deposit_id}.*supersede"):
        ingest_file(definition, changed, vault, today=kit.TODAY)
    assert {f: f.stat().st_mtime_ns for f in kit.vault_files(vault)} == before
    assert len(list((vault / "deposits" / "clinic").glob("*.json"))) == 1


def test_streaming_gives_identical_output_with_bounded_chunks(definition, tmp_path, kit):
    rows = _rows(kit, 403)
    rows[100]["dob"] = "02/30/2012"
    rows[350]["visit_id"] = rows[20]["visit_id"]
    p = kit.write_csv(tmp_path / "clinic.csv", rows)
    small = ingest_file(definition, p, tmp_path / "v1", chunk_rows=50, today=kit.TODAY)
    large = ingest_file(definition, p, tmp_path / "v2", chunk_rows=100_000, today=kit.TODAY)
    assert small.largest_chunk_rows <= 50 and large.largest_chunk_rows == 403
    assert (small.rows_accepted, small.rows_quarantined) == (large.rows_accepted, large.rows_quarantined) == (402, 1)
    assert small.flags == large.flags == {"dob": {"impossible_date": 1}}
    for kind in ("identifiers", "content", "relationships"):
        # Row order within a partition follows the chunks; the rows themselves must not differ.
        a, b = (kit.read_part(tmp_path / v, kind).sort_values(list(kit.read_part(tmp_path / v, kind).columns[:1])).reset_index(drop=True)
                for v in ("v1", "v2"))
        pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(kit.read_quarantine(tmp_path / "v1"), kit.read_quarantine(tmp_path / "v2"))


def test_memory_stays_bounded_by_the_chunk_size(definition, tmp_path, kit):
    """A file far larger than the memory we allow is streamed: peak memory with small
    chunks is a fraction of what holding the whole file would take."""
    p = kit.write_csv(tmp_path / "clinic.csv", _rows(kit, 3000))

    def peak(chunk_rows, vault):
        tracemalloc.start()
        ingest_file(definition, p, vault, chunk_rows=chunk_rows, today=kit.TODAY)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    whole = peak(3000, tmp_path / "a")
    streamed = peak(300, tmp_path / "b")
    assert streamed < whole / 3, (streamed, whole)


def test_parquet_source(vault, kit, tmp_path):
    wages = get_definition("wages")
    n = 12
    table = pa.table({
        "WAGE_RECORD_ID": [f"W{i}" for i in range(n)], "SSN": ["212456789"] * (n - 1) + ["12AB56789"],
        "FIRST_NAME": ["ANA"] * n, "MIDDLE_INITIAL": [None] * n, "LAST_NAME": ["LOPEZ"] * (n - 1) + ["=HYPERLINK(1)"],
        "YEAR": [2020] * n, "QUARTER": [1] * (n - 2) + [5, 2],
        "QUARTER_START": [dt.date(2020, 1, 1)] * n, "NAICS_SECTOR": ["62"] * n, "EARNINGS": [1000.5] * n,
    })
    p = tmp_path / "wages.parquet"
    pq.write_table(table, p)
    result = ingest_file(wages, p, vault, chunk_rows=5, today=kit.TODAY)
    assert result.rows_accepted == 10 and result.rows_quarantined == 2  # row 11 has two problems
    assert result.reasons == {"out_of_range": 1, "wrong_type": 1, "formula_injection": 1, "invalid_characters": 1}
    content = kit.read_part(vault, "content", "wages")
    assert content["YEAR"].tolist() == [2020] * 10 and "neighbourhood" not in content  # wages carry no zip
    ids = kit.read_part(vault, "identifiers", "wages")
    assert ids["dob"].isna().all() and (ids["ssn"] == "212456789").all()


def test_parquet_with_a_string_in_a_number_column(vault, kit, tmp_path):
    wages = get_definition("wages")
    table = pa.table({
        "WAGE_RECORD_ID": ["W1", "W2"], "SSN": ["212456789", "212456788"], "FIRST_NAME": ["A", "B"],
        "MIDDLE_INITIAL": [None, None], "LAST_NAME": ["X", "Y"], "YEAR": ["2020", "twenty"], "QUARTER": [1, 2],
        "QUARTER_START": ["2020-01-01", "2020-13-01"], "NAICS_SECTOR": ["62", "62"], "EARNINGS": [1.0, 2.0],
    })
    p = tmp_path / "wages.parquet"
    pq.write_table(table, p)
    result = ingest_file(wages, p, vault, today=kit.TODAY)
    assert result.rows_accepted == 1 and result.reasons == {"wrong_type": 1, "impossible_date": 1}


def test_cli_ingest_and_summary(enclave_home, kit, tmp_path):
    from enclave.cli import app

    p = tmp_path / "prek.csv"
    header = get_definition("prek").columns
    good = {"prek_id": "P1", "child_first": "Ana", "child_last": "Lopez", "child_dob": "2019-05-01", "child_sex": "F",
            "street": "1 Light St", "zip": "21230", "enrollment_date": "2023-09-05", "exit_date": "", "program": "head_start",
            "full_day": "Y", "race_ethnicity": "hispanic"}
    bad = dict(good, prek_id="P2", child_dob="2019-02-30", program="=cmd")
    kit.write_csv(p, [good, bad], header=header)
    runner = CliRunner()
    out = runner.invoke(app, ["data", "ingest", "prek", str(p)])
    assert out.exit_code == 0, out.output
    assert "accepted" in out.output and "impossible_date" in out.output and "formula_injection" in out.output
    assert ("prek.csv row 2 (line 3), field 'program;program;child_dob': formula_injection;not_allowed_value;impossible_date"
            in out.output.replace("\n", ""))  # file, row and field of each problem
    assert "Lopez" not in out.output and "=cmd" not in out.output  # no cell values on the console
    assert list((enclave_home / "vault" / "identifiers" / "prek").glob("*.parquet"))
    again = runner.invoke(app, ["data", "ingest", "prek", str(p)])
    assert again.exit_code == 0 and "already deposited" in again.output
    unknown = runner.invoke(app, ["data", "ingest", "dmv", str(p)])
    assert unknown.exit_code == 1 and "unknown source 'dmv'" in unknown.output
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    rejected = runner.invoke(app, ["data", "ingest", "prek", str(empty)])
    assert rejected.exit_code == 1 and "empty.csv: empty file" in rejected.output


def test_concurrent_deposits_of_one_file_make_one_deposit(definition, vault, kit, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    p = kit.write_csv(tmp_path / "clinic.csv", _rows(kit, 200))
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: ingest_file(definition, p, vault, today=kit.TODAY), range(3)))
    assert sorted(r.already_deposited for r in results) == [False, True, True]
    assert len(kit.read_part(vault, "content")) == 200


def test_file_changed_during_ingest_is_refused(definition, vault, kit, tmp_path, monkeypatch):
    import linkage.ingest as ingest_mod
    from linkage.ingest_read import FileRejected

    p = kit.write_csv(tmp_path / "clinic.csv", _rows(kit, 20))
    real = ingest_mod._ingest_into

    def and_then_append(*args, **kw):
        real(*args, **kw)
        with open(p, "a", encoding="utf-8") as fh:  # the steward's export was still being written
            fh.write('"V99999"\n')

    monkeypatch.setattr(ingest_mod, "_ingest_into", and_then_append)
    with pytest.raises(FileRejected, match="changed while it was being ingested"):
        ingest_file(definition, p, vault, today=kit.TODAY)
    assert kit.vault_files(vault) == []


@pytest.mark.parametrize("command", [["data", "--help"], ["data", "synth", "--help"], ["data", "ingest", "--help"],
                                     ["data", "ingest-dir", "--help"], ["data", "sources", "list", "--help"],
                                     ["data", "sources", "validate", "--help"]])
def test_help(command):
    from enclave.cli import app

    out = CliRunner().invoke(app, command)
    assert out.exit_code == 0 and "Usage" in out.output


def test_cli_ingest_dir_of_a_synth_output(enclave_home, tmp_path):
    from enclave.cli import app

    from linkage.synth import SynthConfig, generate

    generate(SynthConfig(people=300, seed=3, sources=["prek", "wages", "births"]), tmp_path / "s", workers=1)
    (tmp_path / "s" / "notes.txt").write_text("not a source", encoding="utf-8")
    runner = CliRunner()
    out = runner.invoke(app, ["data", "ingest-dir", str(tmp_path / "s")])
    assert out.exit_code == 0, out.output
    assert "skipped: ground_truth.csv, notes.txt" in out.output
    assert sorted(p.name for p in (enclave_home / "vault" / "deposits").iterdir()) == ["births", "prek", "wages"]
    again = runner.invoke(app, ["data", "ingest-dir", str(tmp_path / "s")])
    assert again.exit_code == 0 and again.output.count("already deposited") == 3
