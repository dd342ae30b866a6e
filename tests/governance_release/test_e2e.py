"""End to end on synthetic data, every part real: synthetic agency files -> ingest -> Splink linkage
-> person keys -> research store -> application -> votes -> approval -> extract (k met, no
identifier, project pseudonyms) -> outputs through the SDC-aware API -> request -> gate verdicts
-> two independent reviews and the agency steward -> release -> ledger and audit chain verified.
The researcher, reviewer and steward steps go through the ``enclave`` CLI."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from enclave.registry.base import session_scope

SOURCES = ["births", "school_enrollment", "prek"]
PROJECT = "school-readiness"


def _pipeline(home):
    """Synthetic files for ~400 people, ingested, linked and turned into the research store."""
    from linkage.ingest import ingest_file
    from linkage.keys import assign_person_keys
    from linkage.link import run_linkage
    from linkage.research_store import build
    from linkage.sources import load_definitions
    from linkage.synth.config import SynthConfig
    from linkage.synth.generate import generate

    definitions = load_definitions()
    synth = home.parent / "synth"
    written = generate(SynthConfig(people=400, seed=11, chunk_people=1000, sources=SOURCES), synth, definitions)
    for file_name in written:
        source = file_name.split(".")[0]
        if source in definitions:
            ingest_file(definitions[source], synth / file_name, home / "vault")
    run = run_linkage(home / "vault", ground_truth=synth / "ground_truth.csv")
    assign_person_keys(run.clusters, home / "vault", run.run_id)
    build(home / "vault", home / "research")
    return definitions


@pytest.fixture
def cli(monkeypatch):
    """Run ``enclave ...`` in-process as a given user (ENCLAVE_USER), returning the result."""
    from enclave.cli import app
    from enclave.settings import get_settings

    runner = CliRunner()

    def _run(user: str, *args: str, ok: bool = True):
        monkeypatch.setenv("ENCLAVE_USER", user)
        get_settings.cache_clear()
        result = runner.invoke(app, list(args))
        if ok:
            assert result.exit_code == 0, (args, result.output, result.exception)
        return result

    return _run


def test_end_to_end_apply_to_release(registry, enclave_home, cli, make_application, approve_application, monkeypatch):
    from disclosure_control.differencing import Ledger
    from disclosure_control.microdata import k_anonymity
    from linkage.pseudonyms import pseudonymise
    from linkage.sources import DEFAULT_DEFINITIONS_DIR

    from enclave import audit, people
    from enclave.airlock import publishing
    from enclave.registry.models import Agency, Source
    from enclave.settings import get_settings

    settings = get_settings()
    _pipeline(enclave_home)
    with session_scope(registry) as session:
        people.register_sources_from_definitions(session, "admin", DEFAULT_DEFINITIONS_DIR, {"vital-records-steward": "stew"})
        births_agency = session.scalars(select(Source).where(Source.name == "births")).one().agency_id
        # Vital Records asks that its steward also approves every output that uses its data.
        session.execute(update(Agency).where(Agency.id == births_agency).values(steward_release_approval=True))
        agency_name = session.get(Agency, births_agency).name

    # apply -> votes -> approval (the board's service), then the extract through the CLI
    approve_application(make_application(
        PROJECT, researchers=["bob"], sources=["births", "school_enrollment"],
        variables={"births": ["event_date", "sex", "birth_weight_grams", "prenatal_visits"],
                   "school_enrollment": ["birth_year", "sex", "neighbourhood", "grade", "days_attended", "homeless_flag"]},
        cohort={}, k=5))
    out = cli("admin", "extract", "build", PROJECT)
    assert "built" in out.output
    extract = (settings.extracts / PROJECT / "current").resolve()
    manifest = json.loads((extract / "manifest.json").read_text())

    # k met on every table, measured again here
    for table, meta in manifest["tables"].items():
        frame = pd.read_parquet(extract / meta["file"])
        assert k_anonymity(frame, meta["k_anonymity"]["quasi_identifiers"]) >= 5, table
    # no identifier from the vault anywhere in the extract
    identifiers = pd.concat(pd.read_parquet(p) for p in (settings.vault / "identifiers").rglob("*.parquet"))
    secrets = set()
    for column in ("first_name", "last_name", "ssn", "street", "dob", "record_key", "source_record_id"):
        secrets |= {str(v) for v in identifiers[column].dropna() if len(str(v)) > 3}
    crosswalk = pd.read_parquet(settings.vault / "linkage" / "crosswalk.parquet")
    secrets |= set(crosswalk.person_key.astype(str))
    for meta in manifest["tables"].values():
        frame = pd.read_parquet(extract / meta["file"])
        for column in frame.columns:
            assert not set(frame[column].astype(str)) & secrets, column
    # pseudonyms are this project's: they equal HMAC(person key, project key) and no other project's
    births = pd.read_parquet(extract / "births.parquet")
    keys = crosswalk.person_key.astype(str).unique().tolist()
    assert set(births.pseudonym) <= set(pseudonymise(keys, PROJECT, settings.vault / "keys"))
    assert not set(births.pseudonym) & set(pseudonymise(keys, "another-project", settings.vault / "keys"))

    # outputs made with the SDC-aware API in alice's workspace, plus a free-form note without evidence
    # (the researcher API of the workspace, pointed where the sandbox mounts the extract and the home)
    outputs = settings.workspaces / PROJECT / "alice" / "outputs"
    monkeypatch.setenv("ENCLAVE_WORKSPACE_DATA", str(extract))
    monkeypatch.setenv("ENCLAVE_WORKSPACE_OUTPUTS", str(outputs))
    get_settings.cache_clear()
    from enclave import notebook

    acro = notebook.session(quiet=True)
    school = acro.load("school_enrollment")
    acro.pivot_table(school, values="days_attended", index="sex", aggfunc="mean")
    acro.crosstab(school.sex, school.homeless_flag.isna())  # pupils by sex (a one-column table)
    (outputs / "notes.txt").write_text("Method: school records of the approved cohort, homelessness by sex.\n")

    out = cli("alice", "release", "create", PROJECT, "-f", "output_0.csv", "-c", "mean days attended by sex",
              "-f", "output_1.csv", "-c", "pupils by sex",
              "-f", "notes.txt", "-c", "method note", "--title", "homelessness by sex")
    rid = int(out.output.split("request ")[1].split()[0])
    out = cli("alice", "release", "submit", str(rid))
    assert "pass" in out.output and "review" in out.output  # the table passes; the note alone is for a human
    from enclave.airlock import views

    described = views.describe("rev1", rid)["files"]
    verdicts = {f["name"]: f["verdict"] for f in described}
    # output_1 groups by ``homeless_flag.isna()``, a value the gate cannot recompute from the extract:
    # a count over it goes to a reviewer (a magnitude over it would fail).
    assert verdicts == {"output_0.csv": "pass", "output_1.csv": "review", "notes.txt": "review"}, described

    # two independent reviewers, then the agency steward (Vital Records asked for it)
    assert "nothing to review" not in cli("rev1", "review", "queue").output
    assert "partially_reviewed" in cli("rev1", "review", "approve", str(rid)).output
    assert "partially_reviewed" in cli("rev2", "review", "approve", str(rid)).output  # still waiting for the steward
    refused = cli("rev1", "review", "release", str(rid), ok=False)
    assert refused.exit_code == 1 and "request_is_approved" in refused.output
    assert PROJECT in cli("stew", "review", "queue").output  # the steward sees it waiting for them
    assert "approved" in cli("stew", "review", "steward", str(rid), "--agency", agency_name).output
    assert "nothing to review" in cli("stew", "review", "queue").output
    out = cli("rev1", "review", "release", str(rid))
    folder = settings.releases / PROJECT / str(rid)
    assert sorted(p.name for p in folder.iterdir()) == ["SHA256SUMS", "notes.txt", "output_0.csv", "output_1.csv"]
    assert publishing.verify_release(folder) == []
    assert (folder / "output_0.csv").read_bytes() == (outputs / "output_0.csv").read_bytes()
    assert views.describe("alice", rid)["state"] == "released"

    # the ledger knows the released table's cells; the audit chain is intact and tells the story
    assert Ledger(publishing.ledger_path()).released_outputs() == [f"{PROJECT}/{rid}/output_0", f"{PROJECT}/{rid}/output_1"]
    with session_scope(registry, readonly=True) as session:
        assert audit.verify(session).ok
        actions = [e.action for e in audit.show(session, audit.Filters(project=PROJECT))]
    expected = ["application.submitted", "application.approved", "extract.built", "release.created",
                "release.submitted", "release.checked", "release.review_approve", "release.review_approve",
                "release.steward_approve", "release.released"]
    assert [a for a in actions if a in set(expected)] == expected
