"""Whole files that must be refused: each raises FileRejected naming the file (and line or
column where there is one) and leaves nothing in the vault."""
from __future__ import annotations

import codecs
import gzip
import io
import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from linkage.ingest import ingest_file
from linkage.ingest_read import MAX_FIELD_BYTES, FileRejected
from linkage.sources import SourceDefinition, UnknownSource, get_definition


def _rejected(definition, path, vault, kit, *, match: str, line: int | None = None, field: str | None = None, chunk_rows: int = 50_000):
    with pytest.raises(FileRejected, match=match) as info:
        ingest_file(definition, path, vault, chunk_rows=chunk_rows, today=kit.TODAY)
    message = str(info.value)
    assert message.startswith(path.name), message  # the message names the file
    if line is not None:
        assert info.value.line == line, message
        assert f"line {line}" in message
    if field is not None:
        assert info.value.field == field and f"'{field}'" in message
    assert kit.vault_files(vault) == [], "a rejected file must leave no state"
    staging = vault / ".staging"
    assert not staging.exists() or not any(staging.iterdir())
    return message


def _csv_text(kit, rows, header=None) -> str:
    buf = io.StringIO()
    import csv

    w = csv.writer(buf, lineterminator="\n")
    header = header or list(kit.good_row(0))
    w.writerow(header)
    for r in rows:
        w.writerow([r.get(h, "") for h in header])
    return buf.getvalue()


def test_empty_file(definition, vault, kit, tmp_path):
    p = tmp_path / "empty.csv"
    p.write_bytes(b"")
    _rejected(definition, p, vault, kit, match="empty file")


def test_header_only(definition, vault, kit, tmp_path):
    p = kit.write_csv(tmp_path / "header.csv", [])
    _rejected(definition, p, vault, kit, match="no data rows")


def test_binary_file_with_nul_bytes(definition, vault, kit, tmp_path):
    p = tmp_path / "blob.csv"
    p.write_bytes(_csv_text(kit, [kit.good_row(1)]).encode() + b"\x00\x01\x02garbage\n")
    _rejected(definition, p, vault, kit, match="NUL bytes", line=3)


def test_gzip_compressed(definition, vault, kit, tmp_path):
    p = tmp_path / "clinic.csv"
    p.write_bytes(gzip.compress(_csv_text(kit, [kit.good_row(1)]).encode()))
    _rejected(definition, p, vault, kit, match="gzip")


def test_wrong_encoding_latin1(definition, vault, kit, tmp_path):
    rows = [kit.good_row(i) for i in range(5)]
    rows[3]["first"] = "José"
    p = tmp_path / "latin1.csv"
    p.write_bytes(_csv_text(kit, rows).encode("latin-1"))
    _rejected(definition, p, vault, kit, match="not valid UTF-8", line=5)  # header is line 1, rows[3] is line 5


def test_utf16_with_bom(definition, vault, kit, tmp_path):
    p = tmp_path / "utf16.csv"
    p.write_bytes(codecs.BOM_UTF16_LE + _csv_text(kit, [kit.good_row(1)]).encode("utf-16-le"))
    _rejected(definition, p, vault, kit, match="UTF-16")


def test_missing_column(definition, vault, kit, tmp_path):
    header = [h for h in kit.good_row(0) if h != "dob"]
    p = kit.write_csv(tmp_path / "m.csv", [kit.good_row(1)], header=header)
    _rejected(definition, p, vault, kit, match=r"missing column\(s\) \['dob'\]", line=1, field="dob")


def test_extra_column_is_refused(definition, vault, kit, tmp_path):
    header = list(kit.good_row(0)) + ["mother_phone"]
    p = kit.write_csv(tmp_path / "x.csv", [kit.good_row(1)], header=header)
    _rejected(definition, p, vault, kit, match=r"unexpected column\(s\) \['mother_phone'\]", field="mother_phone")


def test_duplicated_column(definition, vault, kit, tmp_path):
    header = list(kit.good_row(0)) + ["ssn"]
    p = kit.write_csv(tmp_path / "d.csv", [kit.good_row(1)], header=header)
    _rejected(definition, p, vault, kit, match=r"duplicated column\(s\) \['ssn'\]", field="ssn")


def test_case_changed_column_gets_a_hint(definition, vault, kit, tmp_path):
    header = ["VISIT_ID" if h == "visit_id" else h for h in kit.good_row(0)]
    p = kit.write_csv(tmp_path / "c.csv", [kit.good_row(1)], header=header)
    _rejected(definition, p, vault, kit, match="case-sensitive: 'VISIT_ID' -> 'visit_id'")


def test_semicolon_delimited(definition, vault, kit, tmp_path):
    p = tmp_path / "semi.csv"
    row = kit.good_row(1)
    p.write_text(";".join(row) + "\n" + ";".join(row.values()) + "\n", encoding="utf-8")
    _rejected(definition, p, vault, kit, match="delimited by something other than a comma")


def test_truncated_inside_quoted_field(definition, vault, kit, tmp_path):
    rows = [kit.good_row(i) for i in range(30)]
    rows[-1]["note"] = "a note, with a comma"
    text = _csv_text(kit, rows)
    p = tmp_path / "cut.csv"
    p.write_text(text[: text.rindex("with")], encoding="utf-8")  # cut inside the quoted note
    # Small chunks: earlier chunks are already staged when the cut is found; nothing may remain.
    _rejected(definition, p, vault, kit, match="truncated", line=31, chunk_rows=4)


def test_truncated_last_row(definition, vault, kit, tmp_path):
    text = _csv_text(kit, [kit.good_row(i) for i in range(10)])
    p = tmp_path / "cut.csv"
    p.write_text(text[: text.rindex(",Lopez,")], encoding="utf-8")
    _rejected(definition, p, vault, kit, match="no line end: truncated", line=11, chunk_rows=3)


def test_field_over_one_mebibyte(definition, vault, kit, tmp_path):
    rows = [kit.good_row(1), kit.good_row(2)]
    rows[1]["note"] = "x" * (MAX_FIELD_BYTES + 10)
    p = kit.write_csv(tmp_path / "huge.csv", rows)
    _rejected(definition, p, vault, kit, match="larger than", line=3)


def test_parquet_file_for_csv_source(definition, vault, kit, tmp_path):
    p = tmp_path / "clinic.csv"
    pq.write_table(pa.table({"visit_id": ["V1"]}), p)
    _rejected(definition, p, vault, kit, match="Parquet but the source's format is csv")


def test_csv_file_for_parquet_source(vault, kit, tmp_path):
    wages = get_definition("wages")
    p = tmp_path / "wages.parquet"
    p.write_text("SSN,FIRST_NAME\n212456789,A\n", encoding="utf-8")
    _rejected(wages, p, vault, kit, match="not a Parquet file")


def _wages_table(n=20):
    import datetime as dt

    return pa.table({
        "WAGE_RECORD_ID": [f"W{i}" for i in range(n)], "SSN": ["212456789"] * n, "FIRST_NAME": ["ANA"] * n,
        "MIDDLE_INITIAL": [None] * n, "LAST_NAME": ["LOPEZ"] * n, "YEAR": [2020] * n, "QUARTER": [1] * n,
        "QUARTER_START": [dt.date(2020, 1, 1)] * n, "NAICS_SECTOR": ["62"] * n, "EARNINGS": [1000.5] * n,
    })


def test_truncated_parquet(vault, kit, tmp_path):
    wages = get_definition("wages")
    p = tmp_path / "wages.parquet"
    pq.write_table(_wages_table(), p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    _rejected(wages, p, vault, kit, match="truncated")


def test_corrupted_parquet_body(vault, kit, tmp_path):
    wages = get_definition("wages")
    p = tmp_path / "wages.parquet"
    pq.write_table(_wages_table(), p)
    data = bytearray(p.read_bytes())
    data[4:200] = b"\xff" * 196  # keep both magics, destroy the column data
    p.write_bytes(bytes(data))
    _rejected(wages, p, vault, kit, match="Parquet")


def test_parquet_missing_column(vault, kit, tmp_path):
    wages = get_definition("wages")
    p = tmp_path / "wages.parquet"
    pq.write_table(_wages_table().drop_columns(["SSN"]), p)
    _rejected(wages, p, vault, kit, match=r"missing column\(s\) \['SSN'\]", field="SSN")


def test_unknown_source():
    with pytest.raises(UnknownSource, match="unknown source 'dmv_licences'.*known sources: .*births"):
        get_definition("dmv_licences")


def test_symlink_is_refused(definition, vault, kit, tmp_path):
    real = kit.write_csv(tmp_path / "real.csv", [kit.good_row(1)])
    link = tmp_path / "link.csv"
    os.symlink(real, link)
    _rejected(definition, link, vault, kit, match="not a regular file")


def test_missing_file(definition, vault, kit, tmp_path):
    _rejected(definition, tmp_path / "nope.csv", vault, kit, match="does not exist")


def test_failure_after_staging_leaves_nothing(definition, vault, kit, tmp_path, monkeypatch):
    """A crash while committing (after all rows were staged) must not leave a half deposit."""
    import linkage.ingest as ingest_mod

    p = kit.write_csv(tmp_path / "ok.csv", [kit.good_row(i) for i in range(50)])
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 3:  # identifiers and content moved, then the disk "fails"
            raise OSError("simulated failure")
        return real_replace(src, dst)

    monkeypatch.setattr(ingest_mod.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="simulated"):
        ingest_file(definition, p, vault, chunk_rows=7, today=kit.TODAY)
    monkeypatch.setattr(ingest_mod.os, "replace", real_replace)
    # No manifest: the deposit does not exist for readers, and a retry completes it.
    assert not list((vault / "deposits" / "clinic").glob("*.json"))
    result = ingest_file(definition, p, vault, today=kit.TODAY)
    assert result.rows_accepted == 50 and not result.already_deposited
    assert len(kit.read_part(vault, "identifiers")) == 50 + 50  # subject + mother per row
    assert pd.read_json(result.manifest_path, typ="series")["rows_accepted"] == 50


def test_bad_definition_is_not_a_source(tmp_path):
    from linkage.sources import SourceDefinitionError, load_definition

    bad = tmp_path / "clinic.yaml"
    bad.write_text("name: clinic\ndomain: dentistry\n", encoding="utf-8")
    with pytest.raises(SourceDefinitionError, match="clinic.yaml: key 'domain'"):
        load_definition(bad)
    assert SourceDefinition  # the model stays importable for callers
