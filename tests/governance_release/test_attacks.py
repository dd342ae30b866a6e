"""Attacks on the release airlock, each tried for real and each refused."""
from __future__ import annotations

import datetime as dt
import os
import sqlite3

import pytest
from sqlalchemy import select, update

from enclave.airlock import publishing, requests, reviews, views
from enclave.airlock.errors import Refused, UnsafeFile
from enclave.airlock.states import RequestState
from enclave.registry.base import session_scope


def _submitted(make_outputs, author="alice", kind="safe", context="sex by homeless flag, school records"):
    name = make_outputs(kind, user=author)
    rid = requests.create(author, "school-moves", {name: context})
    requests.submit(author, rid)
    return rid, name


def test_self_review_is_refused(approved_project, make_outputs):
    # revres holds the reviewer role and is on the project: as author of the request they cannot review it.
    rid, _ = _submitted(make_outputs, author="revres")
    with pytest.raises(Refused) as refused:
        reviews.review("revres", rid, "approve")
    assert refused.value.rule == "may_review_request"
    assert views.describe("rev1", rid)["reviews"] == []


def test_review_by_a_project_member_is_refused(approved_project, make_outputs):
    rid, _ = _submitted(make_outputs, author="alice")
    with pytest.raises(Refused) as refused:
        reviews.review("revres", rid, "approve")  # a reviewer, but a member of school-moves
    assert refused.value.rule == "may_review_request"
    with pytest.raises(Refused):
        reviews.review("bob", rid, "approve")  # a member without the reviewer role


def test_a_single_review_does_not_release(approved_project, make_outputs):
    rid, _ = _submitted(make_outputs)
    assert reviews.review("rev1", rid, "approve") == RequestState.partially_reviewed
    with pytest.raises(Refused) as twice:
        reviews.review("rev1", rid, "approve")  # the same reviewer cannot count twice
    assert twice.value.rule == "reviewer_has_not_reviewed"
    with pytest.raises(Refused) as early:
        publishing.release("rev2", rid)
    assert early.value.rule == "request_is_approved"
    assert views.describe("rev1", rid)["state"] == "partially_reviewed"


def test_release_of_a_failed_output_needs_exception_and_override(approved_project, make_outputs, enclave_home):
    rid, name = _submitted(make_outputs, kind="disclosive", context="pupils by days attended and sex")
    info = views.describe("rev1", rid)
    assert info["files"][0]["verdict"] == "fail"
    assert any("threshold" in r or "disclosive" in r for r in info["files"][0]["reasons"])
    with pytest.raises(Refused) as no_override:
        reviews.review("rev1", rid, "approve")
    assert no_override.value.rule == "approval_overrides_every_failed_output"
    with pytest.raises(Refused) as no_exception:
        reviews.review("rev1", rid, "approve", overrides=[name])  # override, but the researcher gave no reason
    assert no_exception.value.rule == "approval_overrides_every_failed_output"
    requests.add_exception("alice", rid, name, "Grade and neighbourhood are public school statistics already")
    assert reviews.review("rev1", rid, "approve", overrides=[name]) == RequestState.partially_reviewed
    with pytest.raises(Refused):
        reviews.review("rev2", rid, "approve")  # the second reviewer must override too
    assert reviews.review("rev2", rid, "approve", overrides=[name]) == RequestState.approved
    folder = publishing.release("rev1", rid)
    assert (folder / name).is_file()


def test_a_file_changed_after_its_snapshot_changes_nothing_or_is_refused(approved_project, make_outputs, outputs, registry):
    from enclave.registry.models import AuditEvent
    from enclave.settings import get_settings

    rid, name = _submitted(make_outputs)
    workspace_file = outputs("alice") / name
    original = workspace_file.read_bytes()
    workspace_file.write_bytes(b"sex,True,False\nF,1,2\n")  # the researcher edits after submitting
    reviews.review("rev1", rid, "approve")
    # Someone with access to the airlock edits the snapshot itself: the checksums catch it.
    snapshot_file = get_settings().airlock / str(rid) / "r1" / name
    os.chmod(snapshot_file, 0o644)
    snapshot_file.write_bytes(original.replace(b"1", b"2", 1))
    with pytest.raises(Refused) as tampered:
        reviews.review("rev2", rid, "approve")
    assert tampered.value.rule == "snapshot_is_intact"
    with session_scope(registry, readonly=True) as session:
        alarms = session.scalars(select(AuditEvent).where(AuditEvent.action == "release.tamper_detected")).all()
        assert len(alarms) == 1 and name in alarms[0].details
    snapshot_file.write_bytes(original)  # restored: the review goes through, and the release is the snapshot
    reviews.review("rev2", rid, "approve")
    folder = publishing.release("rev1", rid)
    assert (folder / name).read_bytes() == original


def test_symlinks_hard_links_and_special_files_are_refused(approved_project, outputs, make_outputs, enclave_home):
    from enclave.settings import get_settings

    folder = outputs("alice")
    extract_file = get_settings().extracts / approved_project / "current" / "school_enrollment.parquet"
    (folder / "extract.csv").symlink_to(extract_file)
    with pytest.raises(UnsafeFile, match="symbolic link"):
        requests.create("alice", approved_project, {"extract.csv": "all of it"})
    os.link(extract_file.resolve(), folder / "hard.csv")
    with pytest.raises(UnsafeFile, match="hard links"):
        requests.create("alice", approved_project, {"hard.csv": "all of it"})
    os.mkfifo(folder / "pipe.csv")
    with pytest.raises(UnsafeFile, match="not a regular file"):
        requests.create("alice", approved_project, {"pipe.csv": "a pipe"})
    # A plain file swapped for a symlink between creation and submission is caught at submission.
    name = make_outputs("safe")
    rid = requests.create("alice", approved_project, {name: "sex by homeless flag"})
    (folder / name).unlink()
    (folder / name).symlink_to(extract_file)
    with pytest.raises(UnsafeFile, match="symbolic link"):
        requests.submit("alice", rid)
    assert not (get_settings().airlock / str(rid)).exists() or not any((get_settings().airlock / str(rid)).iterdir())
    # The outputs folder itself replaced by a symlink to the extract folder.
    bob_home = get_settings().workspaces / approved_project / "bob"
    bob_home.mkdir(parents=True)
    (bob_home / "outputs").symlink_to(extract_file.parent)
    with pytest.raises(UnsafeFile, match="not a real folder"):
        requests.create("bob", approved_project, {"school_enrollment.parquet": "the extract"})


@pytest.mark.parametrize("name", ["../../extracts/school-moves/current/persons.parquet", "/etc/passwd", "sub/x.csv",
                                  ".hidden.csv", "..", "a\x00b.csv", "x" * 300])
def test_path_traversal_in_file_names_is_refused(approved_project, outputs, name):
    outputs("alice")
    with pytest.raises(UnsafeFile, match="not allowed"):
        requests.create("alice", approved_project, {name: "escape"})


def test_release_after_revocation_is_refused(approved_project, make_outputs, registry):
    from enclave.board import service

    rid, _ = _submitted(make_outputs)
    reviews.review("rev1", rid, "approve")
    assert reviews.review("rev2", rid, "approve") == RequestState.approved
    with session_scope(registry) as session:
        service.revoke(session, "board1", approved_project, "consent withdrawn by the agency")
    with pytest.raises(Refused) as refused:
        publishing.release("rev1", rid)
    assert refused.value.rule == "project_is_active"
    from enclave.settings import get_settings

    assert not (get_settings().releases / approved_project / str(rid)).exists()


def test_nothing_moves_after_expiry(approved_project, make_outputs, registry):
    from enclave.registry.models import Approval

    rid, name = _submitted(make_outputs)
    second = make_outputs("safe")
    draft = requests.create("alice", approved_project, {second: "another table"})
    with session_scope(registry) as session:
        session.execute(update(Approval).values(expires_on=dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)))
    with pytest.raises(Refused, match="project_is_active"):
        requests.submit("alice", draft)
    with pytest.raises(Refused, match="project_is_active"):
        reviews.review("rev1", rid, "approve")
    with pytest.raises(Refused, match="project_is_active"):
        requests.create("alice", approved_project, {second: "again"})


def test_an_edited_audit_record_is_detected(approved_project, make_outputs, registry, enclave_home):
    from enclave import audit
    from enclave.registry.base import dispose_engines

    rid, _ = _submitted(make_outputs)
    reviews.review("rev1", rid, "approve")
    with session_scope(registry, readonly=True) as session:
        assert audit.verify(session).ok
        target = session.scalars(select(audit.AuditEvent).where(audit.AuditEvent.action == "release.review_approve")).one()
        seq = target.seq
    dispose_engines()
    db = sqlite3.connect(enclave_home / "registry.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit_events SET actor = 'rev3' WHERE seq = ?", (seq,))
    # An attacker with the file drops the trigger and rewrites who approved: the chain names the event.
    db.execute("DROP TRIGGER audit_events_no_update")
    db.execute("UPDATE audit_events SET actor = 'rev3' WHERE seq = ?", (seq,))
    db.commit()
    db.close()
    with session_scope(registry, readonly=True) as session:
        result = audit.verify(session)
    assert not result.ok
    assert [(p.seq, p.kind) for p in result.problems] == [(seq, "edited")]


@pytest.mark.parametrize("with_exception", [True, False])
def test_microdata_and_identifier_fails_cannot_be_overridden(approved_project, outputs, with_exception):
    """A zip of microdata and a CSV with a pseudonym column: no exception and no overrides release them."""
    import io
    import zipfile

    import pandas as pd

    from enclave.registry.models import ReleaseFile
    from enclave.settings import get_settings

    folder = outputs("alice")
    rows = pd.read_parquet(get_settings().extracts / approved_project / "current" / "school_enrollment.parquet")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("rows.csv", rows.to_csv(index=False))
    (folder / "microdata.zip").write_bytes(buffer.getvalue())
    counts = rows.groupby("pseudonym").size().rename("n").reset_index().head(20)
    counts.to_csv(folder / "by_person.csv", index=False)
    names = ["microdata.zip", "by_person.csv"]
    rid = requests.create("alice", approved_project, {n: "summary" for n in names})
    requests.submit("alice", rid)
    files = {f["name"]: f for f in views.describe("rev1", rid)["files"]}
    assert all(files[n]["verdict"] == "fail" for n in names)
    for n in names:
        if with_exception:  # the researcher's justification is refused outright
            with pytest.raises(Refused) as refused:
                requests.add_exception("alice", rid, n, "needed for the paper")
            assert refused.value.rule == "failed_output_is_exceptionable"
        else:  # or slipped into the registry directly: reviewers still cannot lift the fail
            with session_scope() as session:
                session.execute(update(ReleaseFile).where(ReleaseFile.request_id == rid, ReleaseFile.name == n)
                                .values(exception_text="needed for the paper"))
    with pytest.raises(Refused) as refused:
        reviews.review("rev1", rid, "approve", overrides=names)
    assert refused.value.rule == "approval_overrides_every_failed_output"
    with pytest.raises(Refused):
        reviews.review("rev2", rid, "approve", overrides=names)
    with pytest.raises(Refused):
        publishing.release("rev1", rid)
    assert views.describe("rev1", rid)["state"] == "checked"
    assert not (get_settings().releases / approved_project / str(rid)).exists()
