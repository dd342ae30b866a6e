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
