"""Source definitions: the shipped ones are valid and cover the mission; a bad one fails
with a message that names the file and the key."""
from __future__ import annotations

import copy

import pytest
import yaml
from typer.testing import CliRunner

from linkage.sources import DOMAINS, SourceDefinitionError, load_definition, load_definitions


def test_shipped_definitions_cover_the_ten_domains():
    defs = load_definitions()
    assert {d.domain for d in defs.values()} == set(DOMAINS)
    births = defs["births"]
    assert births.domain == "health_vital_statistics"
    assert set(births.related) == {"mother", "father"}
    assert births.related["mother"].relation == "mother_of" and births.related["father"].relation == "father_of"
    assert {d.ssn_kind for d in defs.values()} == {"full", "last4"}
    assert {d.format for d in defs.values()} == {"csv", "parquet"}
    for d in defs.values():
        assert len(d.columns) == len(set(d.columns))
        assert d.event_date in d.columns and d.record_id == d.columns[0]


def _write(tmp_path, kit, mutate, name="clinic"):
    spec = copy.deepcopy(kit.DEFINITION)
    mutate(spec)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


BAD = [
    ("missing agency", lambda s: s.pop("agency"), "key 'agency': Field required"),
    ("unknown domain", lambda s: s.update(domain="dentistry"), "key 'domain'"),
    ("bad format", lambda s: s.update(format="xlsx"), "key 'format'"),
    ("unknown top-level key", lambda s: s.update(colour="blue"), "key 'colour': Extra inputs are not permitted"),
    ("unknown identifier field", lambda s: s["identifiers"].update(passport="pp"), "key 'identifiers.passport'"),
    ("bad content type", lambda s: s["content"]["visits"].update(type="number"), "key 'content.visits.type'"),
    ("category without values", lambda s: s["content"]["kind"].pop("values"), "key 'content.kind': Value error, a category column needs"),
    ("min above max", lambda s: s["content"]["visits"].update(min=10, max=1), "key 'content.visits'"),
    ("content without description", lambda s: s["content"]["visits"].pop("description"), "key 'content.visits.description'"),
    ("column both identifier and content", lambda s: s["content"].update(first={"type": "string", "description": "dup"}),
     "declared both as identifier and content"),
    ("event date not a date", lambda s: s.update(event_date="kind"), "event_date column 'kind' must have type date"),
    ("event date unknown", lambda s: s.update(event_date="when"), "neither a content date column"),
    ("record id reused", lambda s: s.update(record_id="first"), "record_id column 'first'"),
    ("not linkable", lambda s: s.update(identifiers={"first_name": "first"}), "at least last_name or ssn"),
    ("role without relation", lambda s: s["related"]["mother"].pop("relation"), "key 'related.mother.relation'"),
    ("bad sex code", lambda s: s["sex_codes"].update({"1": "male"}), "key 'sex_codes.1'"),
    ("bad ssn kind", lambda s: s.update(ssn_kind="partial"), "key 'ssn_kind'"),
    ("bad column name", lambda s: s["identifiers"].update(first_name="first name"), "key 'identifiers'"),
]


@pytest.mark.parametrize("mutate,expected", [(m, e) for _, m, e in BAD], ids=[b[0] for b in BAD])
def test_bad_definition_names_the_key(tmp_path, kit, mutate, expected):
    path = _write(tmp_path, kit, mutate)
    with pytest.raises(SourceDefinitionError) as info:
        load_definition(path)
    assert str(info.value).startswith("clinic.yaml: "), str(info.value)
    assert expected in str(info.value)


def test_name_must_match_file(tmp_path, kit):
    path = _write(tmp_path, kit, lambda s: None, name="other")
    with pytest.raises(SourceDefinitionError, match="other.yaml: key 'name': 'clinic' does not match the file name"):
        load_definition(path)


def test_not_yaml_and_not_a_mapping(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(SourceDefinitionError, match="broken.yaml: not valid YAML"):
        load_definition(broken)
    listy = tmp_path / "listy.yaml"
    listy.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(SourceDefinitionError, match="listy.yaml: top level must be a mapping"):
        load_definition(listy)


def test_cli_validate_reports_the_key(tmp_path, kit):
    from enclave.cli import app

    good = _write(tmp_path, kit, lambda s: None)
    bad = tmp_path / "bad"
    bad.mkdir()
    broken = _write(bad, kit, lambda s: s["content"]["kind"].update(type="enum"))
    runner = CliRunner()
    ok = runner.invoke(app, ["data", "sources", "validate", str(good)])
    assert ok.exit_code == 0 and "ok clinic.yaml" in ok.output
    out = runner.invoke(app, ["data", "sources", "validate", str(good), str(broken)])
    assert out.exit_code == 1 and "content.kind.type" in out.output
    shipped = runner.invoke(app, ["data", "sources", "validate"])
    assert shipped.exit_code == 0 and shipped.output.count("ok ") == len(load_definitions())
    listed = runner.invoke(app, ["data", "sources", "list"])
    assert listed.exit_code == 0 and "births" in listed.output
