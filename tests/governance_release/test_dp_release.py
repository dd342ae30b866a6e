"""DP outputs in the airlock: charged by the DP service when answered, released only with a valid
receipt, never charged (or uncharged) by anything the researcher writes. Each attack is tried."""
from __future__ import annotations

import copy
import json
import secrets

import pytest
from sqlalchemy import select

from enclave.airlock import publishing, requests, reviews, views
from enclave.airlock.errors import Refused
from enclave.airlock.states import RequestState
from enclave.dp_service import receipts, service
from enclave.registry.base import session_scope

MEAN_DAYS = {"statistic": "mean", "table": "school_enrollment", "column": "days_attended", "epsilon": 0.5,
             "bounds": [0, 200], "purpose": "mean days attended"}


def _ids(url, username="alice", project="school-moves"):
    from enclave.registry.models import Person, Project

    with session_scope(url, readonly=True) as session:
        uid = session.scalars(select(Person.posix_uid).where(Person.username == username)).one()
        gid = session.scalars(select(Project.posix_gid).where(Project.slug == project)).one()
    return uid, gid


def _budget(url, project="school-moves"):
    from enclave.registry.models import DPBudget, DPSpend, Project

    with session_scope(url, readonly=True) as session:
        proj = session.scalars(select(Project).where(Project.slug == project)).one()
        budget = session.get(DPBudget, proj.id)
        spends = session.scalars(select(DPSpend).where(DPSpend.project_id == proj.id).order_by(DPSpend.id)).all()
        return budget.epsilon_spent, [(s.epsilon, s.release_request_id) for s in spends]


def _ask(url, query, username="alice"):
    uid, gid = _ids(url, username)
    return service.handle(uid, gid, {"query": query}, url=url)


def _receipt_output(url, folder, name="dp_mean_1.json", query=MEAN_DAYS):
    answer = _ask(url, query)
    assert answer["ok"], answer
    (folder / name).write_text(receipts.render(answer["receipt"]))
    return name, answer["receipt"]


def _submit(project, outputs_by_name, author="alice"):
    rid = requests.create(author, project, outputs_by_name)
    requests.submit(author, rid)
    return rid, {f["name"]: f for f in views.describe("rev1", rid)["files"]}


def test_dp_is_charged_when_answered_and_the_release_charges_nothing_more(approved_project, outputs, registry):
    name, receipt = _receipt_output(registry, outputs("alice"))
    assert receipt["payload"]["project"] == approved_project and receipt["payload"]["epsilon"] == 0.5
    assert receipt["payload"]["query"]["column"] == "days_attended"
    assert 0 <= receipt["payload"]["result"] <= 200
    assert _budget(registry) == (pytest.approx(0.5), [(0.5, None)])
    rid, files = _submit(approved_project, {name: "DP mean of days attended"})
    assert files[name]["verdict"] == "pass", files[name]["reasons"]
    reviews.review("rev1", rid, "approve")
    assert reviews.review("rev2", rid, "approve") == RequestState.approved
    folder = publishing.release("rev1", rid)
    assert json.loads((folder / name).read_text())["dp_receipt"] == receipt
    assert _budget(registry) == (pytest.approx(0.5), [(0.5, rid)])  # tied to the release, not charged again


def _evidence_dp_output(folder, name, epsilon):
    """The old way: a researcher-written file and evidence stating the epsilon spent."""
    from disclosure_control.evidence import Evidence, sha256_file

    (folder / f"{name}.csv").write_text("statistic,value\nnoisy mean days attended,151.2\n")
    Evidence(output_id=name, output_file=f"{name}.csv", method="dp.mean", kind="dp",
             output_sha256=sha256_file(folder / f"{name}.csv"), options={"epsilon": epsilon}).write(folder)
    return f"{name}.csv"


def test_epsilon_written_in_evidence_is_never_charged_nor_released(approved_project, outputs, registry):
    # 0.5 edited to 0 charged nothing; -0.4 cancelled +0.4: neither is even releasable now.
    folder = outputs("alice")
    names = [_evidence_dp_output(folder, f"dp_mean_{i}", eps) for i, eps in enumerate([0.0, 0.4, -0.4])]
    rid, files = _submit(approved_project, {n: "DP mean of days attended" for n in names})
    for n in names:
        assert files[n]["verdict"] == "fail"
        assert any("receipt" in r for r in files[n]["reasons"])
        with pytest.raises(Refused) as no_exception:
            requests.add_exception("alice", rid, n, "it is DP, trust me")
        assert no_exception.value.rule == "failed_output_is_exceptionable"
    with pytest.raises(Refused) as no_override:
        reviews.review("rev1", rid, "approve", overrides=names)
    assert no_override.value.rule == "approval_overrides_every_failed_output"
    with pytest.raises(Refused):
        publishing.release("rev1", rid)
    assert _budget(registry) == (0.0, [])


def _edited(receipt, **changes):
    out = copy.deepcopy(receipt)
    out["payload"].update(changes)
    return out


ATTACKS = ["epsilon_to_zero", "negative_epsilon", "result_changed", "forged_with_another_key", "other_project",
           "other_extract_version", "unknown_charge", "garbage_around_it"]


def test_a_forged_or_edited_receipt_fails_and_cannot_be_overridden(approved_project, outputs, registry):
    folder = outputs("alice")
    _, receipt = _receipt_output(registry, folder, "dp_mean_0.json")
    payload = receipt["payload"]
    texts = {
        "epsilon_to_zero": receipts.render(_edited(receipt, epsilon=0.0)),
        "negative_epsilon": receipts.render(_edited(receipt, epsilon=-0.4)),
        "result_changed": receipts.render(_edited(receipt, result=payload["result"] + 17)),
        "forged_with_another_key": receipts.render(
            receipts.sign({**_unsigned(payload), "epsilon": 0.0}, key=secrets.token_bytes(32))),
        # Signed with the real key (as if by the service) but for another project / version / charge.
        "other_project": receipts.render(receipts.sign({**_unsigned(payload), "project": "other-project"})),
        "other_extract_version": receipts.render(
            receipts.sign({**_unsigned(payload), "extract_version": payload["extract_version"] + 1})),
        "unknown_charge": receipts.render(receipts.sign({**_unsigned(payload), "spend_id": 999})),
        "garbage_around_it": receipts.render(receipt).replace("{", '{"rows": [1, 2, 3], ', 1),
    }
    (folder / "dp_mean_0.json").unlink()
    for attack, text in texts.items():
        (folder / f"{attack}.json").write_text(text)
    names = [f"{attack}.json" for attack in ATTACKS]
    rid, files = _submit(approved_project, {n: "DP mean of days attended" for n in names})
    for name in names:
        assert files[name]["verdict"] == "fail", name
        assert any("receipt" in r for r in files[name]["reasons"]), (name, files[name]["reasons"])
        with pytest.raises(Refused):
            requests.add_exception("alice", rid, name, "the receipt is fine")
    with pytest.raises(Refused):
        reviews.review("rev1", rid, "approve", overrides=names)
    with pytest.raises(Refused):
        publishing.release("rev1", rid)
    assert _budget(registry) == (pytest.approx(0.5), [(0.5, None)])


def _unsigned(payload):
    return {k: v for k, v in payload.items() if k != "format"}


def test_numbers_in_the_purpose_text_go_to_a_reviewer(approved_project, outputs, registry):
    name, _ = _receipt_output(registry, outputs("alice"), query={**MEAN_DAYS, "purpose": "top earner 5000000 at S03"})
    _, files = _submit(approved_project, {name: "DP mean of days attended"})
    assert files[name]["verdict"] == "review"


def test_a_replayed_receipt_fails(approved_project, outputs, registry):
    folder = outputs("alice")
    name, receipt = _receipt_output(registry, folder)
    first, _ = _submit(approved_project, {name: "DP mean of days attended"})
    reviews.review("rev1", first, "approve")
    reviews.review("rev2", first, "approve")
    publishing.release("rev1", first)
    # The same receipt again, in a second request: refused at the check, and at release.
    (folder / "dp_mean_again.json").write_text(receipts.render(receipt))
    second, files = _submit(approved_project, {"dp_mean_again.json": "DP mean again"})
    assert files["dp_mean_again.json"]["verdict"] == "fail"
    assert any("already released" in r for r in files["dp_mean_again.json"]["reasons"])
    # Two copies of one (unreleased) receipt in one request: the second copy fails.
    other, fresh = _receipt_output(registry, folder, "dp_mean_2.json")
    (folder / "dp_mean_3.json").write_text(receipts.render(fresh))
    third, files = _submit(approved_project, {"dp_mean_2.json": "DP mean", "dp_mean_3.json": "DP mean, copy"})
    assert sorted(f["verdict"] for f in files.values()) == ["fail", "pass"]
    assert _budget(registry) == (pytest.approx(1.0), [(0.5, first), (0.5, None)])


def test_the_budget_is_exhausted_and_refused_queries_charge_nothing(approved_project, registry):
    # The board approved epsilon 2.0 for school-moves.
    for _ in range(2):
        assert _ask(registry, {**MEAN_DAYS, "epsilon": 0.9})["ok"]
    over = _ask(registry, {**MEAN_DAYS, "epsilon": 0.9})
    assert not over["ok"] and over["kind"] == "budget_exceeded"
    last = _ask(registry, {"statistic": "count", "table": "school_enrollment", "epsilon": 0.2,
                           "where": {"sex": ["F"], "homeless_flag": [True]}})
    assert last["ok"], last  # what is left can still be used
    assert _budget(registry)[0] == pytest.approx(2.0)
    assert len(_budget(registry)[1]) == 3


BAD_QUERIES = [
    ({**MEAN_DAYS, "bounds": None}, "bounds"),  # diffprivlib would take bounds from the data
    ({**MEAN_DAYS, "epsilon": 0}, "epsilon"),
    ({**MEAN_DAYS, "epsilon": -0.4}, "epsilon"),
    ({**MEAN_DAYS, "epsilon": float("nan")}, "epsilon"),
    ({**MEAN_DAYS, "table": "../research/persons"}, "not in the extract"),
    ({**MEAN_DAYS, "column": "pseudonym"}, "person key"),
    ({**MEAN_DAYS, "project": "other-project"}, "project"),  # a caller cannot name its project
]


def test_bad_queries_are_refused_before_any_charge(approved_project, registry):
    for query, reason in BAD_QUERIES:
        answer = _ask(registry, {k: v for k, v in query.items() if v is not None})
        assert not answer["ok"] and reason in answer["error"], (query, answer)
    assert _budget(registry) == (0.0, [])


def test_callers_are_identified_by_uid_and_gid_only(approved_project, registry):
    uid, gid = _ids(registry, "alice")
    outsider_uid, _ = _ids(registry, "rev1")
    assert not service.handle(0, 0, {"query": MEAN_DAYS}, url=registry)["ok"]  # root is no workspace
    refused = service.handle(outsider_uid, gid, {"query": MEAN_DAYS}, url=registry)
    assert not refused["ok"] and "not a member" in refused["error"]
    assert not service.handle(uid, gid + 1000, {"query": MEAN_DAYS}, url=registry)["ok"]
    assert _budget(registry) == (0.0, [])
