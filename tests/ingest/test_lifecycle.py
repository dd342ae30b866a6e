"""Deposits as a lifecycle: withdraw, supersede, duplicates under a new name, truncated files,
and a really killed ingest at every step of its commit, after which linkage reads only whole
deposits."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from linkage import deposits
from linkage.ingest import ingest_file
from linkage.ingest_read import FileRejected
from linkage.link import LinkageInputError, load_identifiers
from linkage.sources import SourceDefinition


def _rows(kit, n, start=0, **changes):
    return [dict(kit.good_row(i), **changes) for i in range(start, start + n)]


def _link_input(vault) -> list[str]:
    """The subject record keys linkage would read (linkage.link.load_identifiers)."""
    con = duckdb.connect()
    try:
        load_identifiers(con, vault)
    except LinkageInputError:
        return []
    return sorted(r[0] for r in con.execute("SELECT record_key FROM identifiers WHERE role = 'subject'").fetchall())


def test_withdraw_removes_the_deposit_from_linkage_and_keeps_a_tombstone(definition, vault, kit, tmp_path):
    a = ingest_file(definition, kit.write_csv(tmp_path / "a.csv", _rows(kit, 3)), vault, today=kit.TODAY)
    b = ingest_file(definition, kit.write_csv(tmp_path / "b.csv", _rows(kit, 2, start=10)), vault, today=kit.TODAY)
    assert len(_link_input(vault)) == 5
    deposits.withdraw(vault, "clinic", a.deposit_id, "sent for the wrong month", "steward1")
    assert _link_input(vault) == ["clinic:V00010", "clinic:V00011"]
    for zone in ("identifiers", "content", "relationships", "quarantine", "flags"):
        assert not list((vault / zone / "clinic").glob(f"{a.deposit_id}.*"))
    tomb = json.loads((vault / "deposits" / "clinic" / f"{a.deposit_id}.json").read_text())
    assert tomb["state"] == "withdrawn" and tomb["withdrawal_reason"] == "sent for the wrong month" and tomb["withdrawn_by"] == "steward1"
    with pytest.raises(FileRejected, match="since withdrawn"):
        ingest_file(definition, tmp_path / "a.csv", vault, today=kit.TODAY)
    with pytest.raises(deposits.DepositError, match="not live"):
        deposits.withdraw(vault, "clinic", a.deposit_id, "again", "steward1")
    assert deposits.live_deposits(vault, "clinic") == [b.deposit_id]


def test_supersede_replaces_a_deposit_with_its_corrected_file(definition, vault, kit, tmp_path):
    old = ingest_file(definition, kit.write_csv(tmp_path / "a.csv", _rows(kit, 3)), vault, today=kit.TODAY)
    corrected = _rows(kit, 3, first="Mariana")
    p = kit.write_csv(tmp_path / "a_fixed.csv", corrected)
    with pytest.raises(FileRejected, match="supersede clinic"):
        ingest_file(definition, p, vault, today=kit.TODAY)  # same record ids without saying so: refused
    new = ingest_file(definition, p, vault, today=kit.TODAY, supersedes=old.deposit_id)
    assert deposits.live_deposits(vault, "clinic") == [new.deposit_id]
    old_manifest = json.loads((vault / "deposits" / "clinic" / f"{old.deposit_id}.json").read_text())
    assert old_manifest["state"] == "superseded" and old_manifest["superseded_by"] == new.deposit_id
    con = duckdb.connect()
    load_identifiers(con, vault)  # no repeated record keys: the old rows are gone
    assert {r[0] for r in con.execute("SELECT first_name FROM identifiers WHERE role = 'subject'").fetchall()} == {"Mariana"}
    with pytest.raises(FileRejected, match="not a live deposit"):
        ingest_file(definition, kit.write_csv(tmp_path / "c.csv", _rows(kit, 3, first="Ana")), vault, today=kit.TODAY,
                    supersedes=old.deposit_id)


def test_same_rows_under_a_new_name_and_new_bytes_are_a_duplicate(definition, vault, kit, tmp_path):
    first = ingest_file(definition, kit.write_csv(tmp_path / "jan.csv", _rows(kit, 4)), vault, today=kit.TODAY)
    resent = kit.write_csv(tmp_path / "jan_resent.csv", _rows(kit, 4), lineterminator="\r\n")  # re-exported: other bytes
    with pytest.raises(FileRejected, match=f"same 4 records as deposit {first.deposit_id}.*duplicate under another name"):
        ingest_file(definition, resent, vault, today=kit.TODAY)
    assert deposits.live_deposits(vault, "clinic") == [first.deposit_id]


def test_file_cut_inside_a_numeric_last_field_does_not_store_the_cut_number(definition, vault, kit, tmp_path):
    header = [c for c in kit.good_row(0) if c != "visits"] + ["visits"]  # the count is the last column
    rows = _rows(kit, 3)
    rows[-1]["visits"] = "34"
    p = kit.write_csv(tmp_path / "clinic.csv", rows, header=header)
    data = p.read_bytes()
    assert data.endswith(b'"34"\n')
    p.write_bytes(data[:-3] + b'"')  # cut: "34" -> "3" and no line end
    result = ingest_file(definition, p, vault, today=kit.TODAY)
    assert result.rows_accepted == 2 and result.reasons["no_final_newline"] == 1
    content = kit.read_part(vault, "content")
    assert "clinic:V00002" not in set(content["record_key"])
    q = kit.read_quarantine(vault)
    assert q["_reason"][0].startswith("no_final_newline") and q["visits"][0] == "3"  # kept for the steward


def _with(definition, **changes) -> SourceDefinition:
    raw = definition.model_dump(exclude_unset=True)
    raw.update(changes)
    return SourceDefinition.model_validate(raw)


def test_row_count_trailer_is_checked(definition, vault, kit, tmp_path):
    d = _with(definition, trailer_prefix="TRAILER")
    p = kit.write_csv(tmp_path / "clinic.csv", _rows(kit, 3))
    good = p.read_bytes() + b"TRAILER,3\n"
    p.write_bytes(good)
    assert ingest_file(d, p, vault, today=kit.TODAY).rows_accepted == 3
    for body, message in [(good.replace(b"TRAILER,3", b"TRAILER,4"), "declares 4 data rows but the file has 3"),
                          (good[: good.index(b"TRAILER")], "no trailer line")]:
        bad = tmp_path / "bad.csv"
        bad.write_bytes(body)
        with pytest.raises(FileRejected, match=message):
            ingest_file(d, bad, tmp_path / "v2", today=kit.TODAY)


def test_parquet_honours_date_format_for_string_and_typed_dates(vault, kit, tmp_path):
    from linkage.sources import get_definition

    d = get_definition("wages")
    raw = d.model_dump(exclude_unset=True)
    raw.update(format="parquet", date_format="%m/%d/%Y")
    d = SourceDefinition.model_validate(raw)
    cols = {c: [None, None] for c in d.columns}
    ident = {v: k for k, v in d.identifiers.items()}
    for c in d.columns:
        std = ident.get(c)
        cols[c] = {"first_name": ["Ana", "Bo"], "last_name": ["Lee", "Kim"], "ssn": ["212456789", "212456788"]}.get(std, cols[c])
    cols[d.record_id] = ["W1", "W2"]
    table = {}
    for c, v in cols.items():
        spec = d.content.get(c)
        if c == d.event_date or (spec is not None and spec.type == "date"):
            table[c] = pa.array(["03/31/2020", "06/30/2020"]) if c == d.event_date else pa.array([None, None], pa.string())
        elif spec is not None and spec.type in ("integer", "float"):
            low = int(spec.min or 0)
            table[c] = pa.array([low, low], pa.int64()) if spec.type == "integer" else pa.array([float(low)] * 2)
        elif spec is not None and spec.type == "category":
            table[c] = pa.array([spec.values[0]] * 2)
        else:
            table[c] = pa.array(v, pa.string())
    path = tmp_path / "wages.parquet"
    pq.write_table(pa.table(table), path)
    result = ingest_file(d, path, vault, today=kit.TODAY)
    assert result.rows_accepted == 2 and result.rows_quarantined == 0, result.reasons
    # The same file with the dates typed as dates is read by the same rule.
    import datetime as dt
    table[d.event_date] = pa.array([dt.date(2020, 3, 31), dt.date(2020, 6, 30)])
    table[d.record_id] = pa.array(["W3", "W4"])
    pq.write_table(pa.table(table), tmp_path / "wages2.parquet")
    result = ingest_file(d, tmp_path / "wages2.parquet", vault, today=kit.TODAY)
    assert result.rows_accepted == 2 and result.rows_quarantined == 0, result.reasons


def test_definition_refuses_reserved_names_and_undeclared_sex_codes(definition):
    raw = definition.model_dump(exclude_unset=True)
    bad = dict(raw, content=dict(raw["content"], event_date={"type": "date", "description": "the event"}))
    with pytest.raises(ValueError, match="reserved"):
        SourceDefinition.model_validate(bad)
    bad = {k: v for k, v in raw.items() if k != "sex_codes"}
    with pytest.raises(ValueError, match="sex_codes' is not declared"):
        SourceDefinition.model_validate(bad)


# Runs one ingest in a child process that dies (os._exit, like SIGKILL: no clean-up runs) at the
# N-th os.replace of the commit: each staged file moved, the manifest, the supersession.
CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys, datetime as dt
    from linkage.ingest import ingest_file
    from linkage.sources import SourceDefinition
    import json
    definition = SourceDefinition.model_validate(json.loads(sys.argv[1]))
    path, vault, crash_at, supersedes = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] or None
    real, calls = os.replace, [0]
    def dying_replace(a, b):
        calls[0] += 1
        if calls[0] == crash_at:
            os._exit(9)
        return real(a, b)
    os.replace = dying_replace
    ingest_file(definition, path, vault, today=dt.date(2025, 6, 30), supersedes=supersedes)
    print("FINISHED", calls[0])
    """
)


def _ingest_dying_at(definition, path, vault, step, supersedes=""):
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, json.dumps(definition.model_dump(mode="json", exclude_unset=True)),
                           str(path), str(vault), str(step), supersedes], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout


def test_killed_at_every_step_linkage_reads_only_whole_deposits(definition, kit, tmp_path):
    old_rows, new_rows = _rows(kit, 3), _rows(kit, 3, first="Mariana") + _rows(kit, 2, start=3, first="Mariana")
    old_file = kit.write_csv(tmp_path / "old.csv", old_rows)
    new_file = kit.write_csv(tmp_path / "new.csv", new_rows)
    old_keys = [f"clinic:V0000{i}" for i in range(3)]
    new_keys = [f"clinic:V0000{i}" for i in range(5)]
    step, finished = 0, False
    while not finished:
        step += 1
        vault = tmp_path / f"vault{step}"
        old = ingest_file(definition, old_file, vault, today=kit.TODAY)
        code, out = _ingest_dying_at(definition, new_file, vault, step, supersedes=old.deposit_id)
        finished = code == 0
        assert finished or code == 9, out
        keys = _link_input(vault)
        # Either the old deposit whole or the new one whole: never both, never a part.
        assert keys in (old_keys, new_keys), (step, keys)
        con = duckdb.connect()
        load_identifiers(con, vault)  # and no repeated record key (the old and new rows together)
        # The next ingest cleans what the killed one left and completes a committed supersession.
        ingest_file(definition, kit.write_csv(tmp_path / "other.csv", _rows(kit, 1, start=50)), vault, today=kit.TODAY)
        assert not list((vault / ".staging").glob("clinic-*"))
        live = set(deposits.live_deposits(vault, "clinic"))
        for zone in ("identifiers", "content", "relationships", "quarantine", "flags"):
            assert {p.stem for p in (vault / zone / "clinic").glob("*.*")} <= live, (step, zone)
        manifests = deposits.read_manifests(vault, "clinic")
        states = sorted(deposits.state_of(m).value for m in manifests.values())
        assert states in (["complete", "complete"], ["complete", "complete", "superseded"]), (step, states)
        assert len(live) == 2
    assert step >= 7  # five staged files, the manifest, the old deposit's tombstone: every one was a kill point


def test_cli_withdraw_supersede_and_list_are_audited(registry, kit, tmp_path, monkeypatch):
    from enclave import people
    from enclave.board.console import run
    from enclave.cli import app
    from enclave.settings import get_settings

    run(lambda s: people.register_source(s, "admin", "clinic", "City Clinics", stewards=["stew"]))

    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "clinic.yaml").write_text(json.dumps(kit.DEFINITION))
    monkeypatch.setenv("ENCLAVE_SOURCE_DEFINITIONS", str(defs))
    monkeypatch.setenv("ENCLAVE_USER", "stew")
    get_settings.cache_clear()
    runner = CliRunner()
    first = kit.write_csv(tmp_path / "clinic.csv", [dict(r, visit_date="05/06/2024") for r in _rows(kit, 3)])
    out = runner.invoke(app, ["data", "ingest", "clinic", str(first)])
    assert out.exit_code == 0, out.output
    vault = get_settings().vault
    (deposit_id,) = deposits.live_deposits(vault, "clinic")
    fixed = kit.write_csv(tmp_path / "clinic_fixed.csv", [dict(r, visit_date="05/06/2024") for r in _rows(kit, 3, first="Ana")])
    out = runner.invoke(app, ["data", "supersede", "clinic", deposit_id, str(fixed)])
    assert out.exit_code == 0, out.output
    (new_id,) = deposits.live_deposits(vault, "clinic")
    monkeypatch.setenv("ENCLAVE_USER", "alice")  # a researcher is no steward of the clinic's data
    get_settings.cache_clear()
    out = runner.invoke(app, ["data", "withdraw", "clinic", new_id, "--reason", "wrong agency"])
    assert out.exit_code == 1 and "not a steward" in out.output, out.output
    assert deposits.live_deposits(vault, "clinic") == [new_id]
    monkeypatch.setenv("ENCLAVE_USER", "stew")
    get_settings.cache_clear()
    out = runner.invoke(app, ["data", "withdraw", "clinic", new_id, "--reason", "wrong agency"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["data", "deposits", "clinic"])
    assert "withdrawn" in out.output and "superseded" in out.output
    out = runner.invoke(app, ["data", "withdraw", "clinic", "nope", "--reason", "x"])
    assert out.exit_code == 1 and "no deposit 'nope'" in out.output and "Traceback" not in out.output

    from enclave import audit

    events = run(lambda s: [(e.action, e.subject, e.actor) for e in audit.show(s, audit.Filters(action="data.deposit"))], readonly=True)
    assert events == [("data.deposit.superseded", f"clinic/{deposit_id}", "stew"),
                      ("data.deposit.withdrawn", f"clinic/{new_id}", "stew")]


def test_domains_are_data_a_site_adds_its_own(tmp_path, kit):
    from linkage.sources import SourceDefinitionError, load_definition, load_definitions

    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "clinic.yaml").write_text(json.dumps(dict(kit.DEFINITION, domain="nutrition_assistance")))
    with pytest.raises(SourceDefinitionError, match="unknown domain 'nutrition_assistance'.*domains.yaml"):
        load_definition(defs / "clinic.yaml")
    (defs / "domains.yaml").write_text("nutrition_assistance: SNAP and WIC\n")
    assert load_definitions(defs)["clinic"].domain == "nutrition_assistance"


def test_cli_validate_refuses_missing_sex_codes_and_link_run_refuses_an_unknown_folder_before_writing(
        enclave_home, kit, tmp_path, monkeypatch):
    from enclave.cli import app
    from enclave.settings import get_settings

    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "clinic.yaml").write_text(json.dumps({k: v for k, v in kit.DEFINITION.items() if k != "sex_codes"}))
    runner = CliRunner()
    out = runner.invoke(app, ["data", "sources", "validate", str(defs)])
    assert out.exit_code == 1 and "sex_codes' is not declared" in out.output.replace("\n", "")
    (defs / "clinic.yaml").write_text(json.dumps(kit.DEFINITION))
    monkeypatch.setenv("ENCLAVE_SOURCE_DEFINITIONS", str(defs))
    get_settings.cache_clear()
    rows = [dict(r, visit_date="05/06/2024") for r in _rows(kit, 3)]
    assert runner.invoke(app, ["data", "ingest", "clinic", str(kit.write_csv(tmp_path / "c.csv", rows))]).exit_code == 0
    monkeypatch.delenv("ENCLAVE_SOURCE_DEFINITIONS")
    out = runner.invoke(app, ["link", "run"])
    assert out.exit_code == 2 and "no source definition for clinic" in out.output.replace("\n", " ")
    assert "Traceback" not in out.output
    assert not (get_settings().vault / "linkage").exists()  # refused before any key or run was written
