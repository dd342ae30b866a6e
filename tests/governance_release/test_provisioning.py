"""Extract provisioning: only what was approved, per-project pseudonyms, k met, manifest,
read-only atomic versions, idempotence, amendments, revocation and expiry."""
from __future__ import annotations

import datetime as dt
import json
import os
import stat

import pandas as pd
import pytest
from sqlalchemy import select

from enclave.registry.base import session_scope


def test_extract_holds_only_what_was_approved(approved_project, registry, enclave_home):
    from disclosure_control.microdata import k_anonymity
    from enclave.settings import get_settings

    folder = get_settings().extracts / approved_project / "current"
    assert os.readlink(folder) == "v1"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["tables"]) == ["foster_care", "school_enrollment"]
    school = pd.read_parquet(folder / "school_enrollment.parquet")
    foster = pd.read_parquet(folder / "foster_care.parquet")
    assert list(school.columns) == ["pseudonym", "event_date", "birth_year", "sex", "neighbourhood", "grade",
                                    "days_attended", "homeless_flag"]
    assert list(foster.columns) == ["pseudonym", "birth_year", "sex", "placement_type"]
    for frame in (school, foster):
        assert "person_key" not in frame.columns and "race_ethnicity" not in frame.columns
    # k reached on every table, measured by the library, and what the manifest says.
    for name, frame in (("school_enrollment", school), ("foster_care", foster)):
        qis = manifest["tables"][name]["k_anonymity"]["quasi_identifiers"]
        assert k_anonymity(frame, qis) >= 5
        assert manifest["tables"][name]["k_anonymity"]["k_reached"] == k_anonymity(frame, qis)
        assert manifest["tables"][name]["rows"] == len(frame)
    assert manifest["k_required"] == 5 and manifest["k_reached"] >= 5
    assert manifest["tables"]["school_enrollment"]["columns"]["grade"]["description"] == "Grade level"
    assert manifest["linkage_quality"] == {"school_enrollment": {"match_rate": 0.97}, "foster_care": {"match_rate": 0.95}}


def test_files_are_read_only_and_checksummed(approved_project):
    from enclave.provisioning import verify_extract
    from enclave.settings import get_settings

    version = get_settings().extracts / approved_project / "v1"
    assert stat.S_IMODE(version.stat().st_mode) == 0o555
    for p in version.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o444
    assert verify_extract(version) == []
    target = version / "foster_care.parquet"
    os.chmod(target, 0o644)
    target.write_bytes(target.read_bytes() + b"x")
    assert verify_extract(version) == ["foster_care"]


def test_cohort_and_pseudonyms_are_project_specific(approved_project, registry, research_store, make_application,
                                                    approve_application):
    from linkage.pseudonyms import pseudonymise

    from enclave.settings import get_settings

    settings = get_settings()
    persons = pd.read_parquet(research_store / "persons.parquet")
    in_cohort = persons.loc[persons.birth_year.between(2006, 2013), "person_key"].tolist()
    outside = persons.loc[~persons.birth_year.between(2006, 2013), "person_key"].tolist()
    assert outside, "the fixture must have people outside the cohort"
    school = pd.read_parquet(settings.extracts / approved_project / "current" / "school_enrollment.parquet")
    mine = set(pseudonymise(in_cohort, approved_project, settings.vault / "keys"))
    assert set(school.pseudonym) <= mine
    assert not set(school.pseudonym) & set(pseudonymise(outside, approved_project, settings.vault / "keys"))
    assert not set(school.pseudonym) & set(persons.person_key)
    # A second project over the same people gets pseudonyms that cannot be joined with the first.
    approve_application(make_application("attendance-study"))
    from enclave.provisioning import provision

    provision("attendance-study", actor="admin")
    other = pd.read_parquet(settings.extracts / "attendance-study" / "current" / "school_enrollment.parquet")
    assert len(other) and not set(other.pseudonym) & set(school.pseudonym)


def test_idempotent_registered_and_audited(approved_project, registry):
    from enclave import audit
    from enclave.provisioning import provision
    from enclave.registry.models import AuditEvent, Extract
    from enclave.settings import get_settings

    again = provision(approved_project, actor="admin")
    assert not again.created and again.version == "v1"
    project_dir = get_settings().extracts / approved_project
    assert sorted(p.name for p in project_dir.iterdir() if not p.name.startswith(".")) == ["current", "v1"]
    with session_scope(registry, readonly=True) as session:
        rows = session.scalars(select(Extract)).all()
        assert [(r.version, r.path, r.state) for r in rows] == [(1, "school-moves/v1", "ready")]
        assert {f.name for f in rows[0].files} == {"school_enrollment.parquet", "foster_care.parquet"}
        built = session.scalars(select(AuditEvent).where(AuditEvent.action == "extract.built")).all()
        assert len(built) == 1 and built[0].project == approved_project
        assert audit.verify(session).ok


def test_amendment_builds_a_new_version(approved_project, registry):
    from enclave.board import service
    from enclave.board.requests import AmendmentRequest
    from enclave.entitlements import check_workspace
    from enclave.provisioning import provision
    from enclave.settings import get_settings

    with session_scope(registry) as session:
        app_id = service.amend(session, "alice", approved_project, AmendmentRequest(
            reason="We also need attendance to answer the question", add_variables={"foster_care": ["event_date"]})).id
    with session_scope(registry) as session:
        service.open_review(session, "board1", app_id)
        for voter in ("board1", "board2", "board3"):
            service.vote(session, voter, app_id, "approve")
        service.decide(session, "board1", app_id)
    result = provision(approved_project, actor="admin")
    assert result.created and result.version == "v2"
    assert os.readlink(get_settings().extracts / approved_project / "current") == "v2"
    assert "event_date" in pd.read_parquet(result.path / "foster_care.parquet").columns
    assert "event_date" not in pd.read_parquet(result.path.parent / "v1" / "foster_care.parquet").columns
    assert check_workspace("bob", approved_project, record=False).extract_version == 2


def test_revocation_ends_access_at_once(approved_project, registry):
    from enclave.board import service
    from enclave.entitlements import Refused, check_workspace
    from enclave.provisioning import withdraw
    from enclave.settings import get_settings

    assert check_workspace("bob", approved_project, record=False).extract_version == 1
    with session_scope(registry) as session:
        service.revoke(session, "board1", approved_project, "data misuse reported")
    withdraw(approved_project, actor="board1", reason="revoked")
    with pytest.raises(Refused, match="revoked"):
        check_workspace("bob", approved_project, record=False)
    project_dir = get_settings().extracts / approved_project
    assert not (project_dir / "current").is_symlink()
    assert stat.S_IMODE((project_dir / "v1").stat().st_mode) == 0


def test_extract_access_after_expiry_is_refused(approved_project):
    from enclave.entitlements import Refused, check_workspace

    today = dt.datetime.now(dt.UTC).date()
    assert check_workspace("bob", approved_project, record=False, today=today).project == approved_project
    with pytest.raises(Refused, match="expired"):
        check_workspace("bob", approved_project, record=False, today=today + dt.timedelta(days=400))


def test_unapproved_project_and_bad_store_are_refused_without_writing(registry, research_store, make_application,
                                                                     approve_application):
    from enclave.provisioning import ProvisioningError, provision
    from enclave.settings import get_settings

    with pytest.raises(ProvisioningError, match="no project"):
        provision("nope", actor="admin")
    approve_application(make_application(variables={"school_enrollment": ["grade", "shoe_size"], "foster_care": []}))
    with pytest.raises(ProvisioningError, match=r"shoe_size.*school_enrollment"):
        provision("school-moves", actor="admin")
    project_dir = get_settings().extracts / "school-moves"
    assert [p.name for p in project_dir.iterdir() if p.name != ".build.lock"] == []


def test_cohort_bounds_on_ages_and_sources_present(research_store, tmp_path):
    from enclave.provisioning import Cohort, ExtractSpec, ProvisioningError, build_extract, cohort_from_approval

    school = pd.read_parquet(research_store / "school_enrollment.parquet")
    foster_keys = set(pd.read_parquet(research_store / "foster_care.parquet").person_key)
    spec = ExtractSpec(project="ages", approval_id="9", k=1,
                       variables={"school_enrollment": ["age_at_event", "grade"]},
                       cohort=Cohort(age_min=8, age_max=11, sources_present=["foster_care"]))
    result = build_extract(spec, research_store, tmp_path / "keys", tmp_path / "extracts")
    out = pd.read_parquet(result.path / "school_enrollment.parquet")
    expected = school[school.age_at_event.between(8, 11) & school.person_key.isin(foster_keys)]
    assert len(out) == len(expected) > 0
    assert out.age_at_event.between(8, 11).all()
    # An age bound without age among the approved variables still filters, and the column stays out.
    spec2 = spec.model_copy(update={"project": "ages2", "variables": {"school_enrollment": ["grade"]}})
    out2 = pd.read_parquet(build_extract(spec2, research_store, tmp_path / "keys", tmp_path / "extracts").path
                           / "school_enrollment.parquet")
    assert list(out2.columns) == ["pseudonym", "grade"] and len(out2) == len(expected)
    with pytest.raises(ProvisioningError, match="shoe_size"):
        cohort_from_approval({"shoe_size_min": 40})


def test_k_counts_people_not_only_rows():
    """One person's several school years must not make a class of k on their own."""
    from disclosure_control.microdata import k_anonymity

    from enclave.provisioning import _generalise

    # Two people with five rows each share a class of ten rows: 5-anonymous by rows, 2 people.
    few = pd.DataFrame({"pseudonym": ["a"] * 5 + ["b"] * 5, "sex": "F", "neighbourhood": "Canton"})
    many = pd.DataFrame({"pseudonym": [f"p{i}" for i in range(12)], "sex": "M", "neighbourhood": "Hampden"})
    table = pd.concat([few, many], ignore_index=True)
    assert k_anonymity(table, ["sex", "neighbourhood"]) >= 5
    out, report = _generalise(table, "school", ["sex", "neighbourhood"], 5)
    assert set(out.pseudonym) == {f"p{i}" for i in range(12)}
    assert report["rows_suppressed_for_people"] == 10 and report["people_k_reached"] == 12
