"""Invariants of the synthetic IDS generator: files follow the source definitions, the
ground truth agrees with the files, overlaps between agencies exist, error rates are near
the configured ones, output is deterministic per seed, and every file ingests."""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from linkage.sources import DOMAINS, load_definitions
from linkage.synth import ErrorRates, SynthConfig, generate, iter_chunks
from linkage.synth.population import ssn_for

PEOPLE = 6000


@pytest.fixture(scope="module")
def defs():
    return load_definitions()


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(people=PEOPLE, seed=11, chunk_people=2000), out, workers=1)
    return out


@pytest.fixture(scope="module")
def truth(synth_dir):
    return pd.read_csv(synth_dir / "ground_truth.csv", dtype=str)


def _read(synth_dir, d) -> pd.DataFrame:
    path = synth_dir / f"{d.name}.{d.format}"
    if d.format == "parquet":
        return pq.read_table(path).to_pandas().astype(object).where(lambda x: x.notna(), None)
    return pd.read_csv(path, dtype=str, keep_default_na=False).replace("", None)


def test_one_file_per_source_following_its_definition(synth_dir, defs):
    assert {d.domain for d in defs.values()} == set(DOMAINS)
    for d in defs.values():
        path = synth_dir / f"{d.name}.{d.format}"
        assert path.is_file(), path
        if d.format == "csv":
            header = path.open(encoding="utf-8").readline().rstrip("\n").split(",")
        else:
            header = pq.read_schema(path).names
        assert header == d.columns, d.name
        assert len(_read(synth_dir, d)) > 0, d.name
    assert not list(synth_dir.glob(".*partial"))


def test_ground_truth_agrees_with_files(synth_dir, defs, truth):
    assert list(truth.columns) == ["source", "source_record_id", "role", "person_id"]
    assert truth["person_id"].str.fullmatch(r"P\d{10}").all()
    assert set(truth.role) == {"subject", "mother", "father"}
    for d in defs.values():
        df = _read(synth_dir, d)
        t = truth[truth.source == d.name]
        assert df[d.record_id].is_unique
        assert set(t[t.role == "subject"].source_record_id) == set(df[d.record_id]), d.name
        for role, mapping in d.related.items():
            # the residence columns are shared with the subject; the role is present when its own columns are
            own = [c for c in mapping.identifiers.values() if c not in d.identifiers.values()]
            has_role = df[own].notna().any(axis=1)
            assert set(t[t.role == role].source_record_id) == set(df.loc[has_role, d.record_id]), (d.name, role)
    births = truth[truth.source == "births"].pivot(index="source_record_id", columns="role", values="person_id")
    assert (births["mother"] != births["subject"]).all()
    assert births["father"].notna().mean() > 0.3


def test_full_ssn_identifies_a_person(synth_dir, defs, truth):
    """In the wage file (SSN as key, few typos) one SSN is almost always one person."""
    wages = _read(synth_dir, defs["wages"]).merge(
        truth[truth.source == "wages"], left_on="WAGE_RECORD_ID", right_on="source_record_id")
    persons_per_ssn = wages.groupby("SSN")["person_id"].nunique()
    assert (persons_per_ssn == 1).mean() > 0.99
    assert wages.groupby("person_id")["SSN"].nunique().mean() < 1.1


def test_overlaps_between_agencies(truth):
    subj = truth[truth.role == "subject"]
    people = {s: set(g.person_id) for s, g in subj.groupby("source")}
    children = set(truth[(truth.source == "births") & (truth.role == "subject")].person_id)
    foster = people["foster_care"] & children
    juvenile = people["juvenile_justice"]
    p_juv_foster = len(foster & juvenile) / len(foster)
    p_juv_other = len((children - foster) & juvenile) / len(children - foster)
    assert p_juv_foster > 2 * p_juv_other, (p_juv_foster, p_juv_other)
    assert people["prek"] & people["school_enrollment"]
    mothers = set(truth[truth.role == "mother"].person_id)
    assert len(mothers & people["workforce"]) > 10  # young parents in workforce programmes
    assert mothers & people["housing_assistance"] and mothers & people["shelter_stays"]
    assert people["wages"] & people["adult_arrests"]


def test_homeless_students_were_in_shelters(synth_dir, defs, truth):
    school = _read(synth_dir, defs["school_enrollment"]).merge(
        truth[(truth.source == "school_enrollment")], left_on="enrollment_id", right_on="source_record_id")
    sheltered = set(truth[truth.source == "shelter_stays"].person_id)
    flagged = school.homeless_flag == "Y"
    assert flagged.sum() > 0
    share_flagged = school[flagged].person_id.isin(sheltered).mean()
    share_other = school[~flagged].person_id.isin(sheltered).mean()
    assert share_flagged > 3 * share_other, (share_flagged, share_other)


def test_twins_share_birth_day_and_parents(synth_dir, defs, truth):
    births = _read(synth_dir, defs["births"]).merge(
        truth[(truth.source == "births") & (truth.role == "mother")], left_on="certificate_number", right_on="source_record_id")
    twins = births[births.plurality == "2"]
    assert len(twins) >= 4
    pairs = twins.groupby(["person_id", "date_of_birth"]).size()
    assert (pairs >= 2).mean() > 0.9  # each twin has a sibling born the same day to the same mother
    assert (births.plurality == "1").mean() > 0.95


def test_street_spellings_vary(synth_dir, defs):
    streets = _read(synth_dir, defs["school_enrollment"])["street"].dropna()
    spelled = streets.str.contains(r" (?:Street|Avenue|Road|Boulevard|Parkway|Lane)$")
    abbreviated = streets.str.contains(r" (?:St|Ave|Rd|Blvd|Pkwy|Ln)$")
    assert 0.05 < spelled.mean() < 0.3 and abbreviated.mean() > 0.5


def test_people_move_between_neighbourhoods(synth_dir, defs, truth):
    frames = []
    for name in ("school_enrollment", "health_visits", "births", "prek"):
        d = defs[name]
        df = _read(synth_dir, d)
        frames.append(df[[d.record_id, d.identifiers["zip"]]].set_axis(["source_record_id", "zip"], axis=1).assign(source=name))
    z = pd.concat(frames).merge(truth[truth.role == "subject"], on=["source", "source_record_id"]).dropna()
    zips_per_person = z.groupby("person_id")["zip"].nunique()
    assert (zips_per_person > 1).mean() > 0.1
    assert set(z.zip) <= set(pd.read_csv("linkage/data/neighbourhoods.csv", dtype=str).zip)


def test_identifier_quality_per_agency(synth_dir, defs):
    cfg = SynthConfig()
    for name in ("adult_arrests", "workforce", "wages", "shelter_stays"):
        d = defs[name]
        ssn = _read(synth_dir, d)[d.identifiers["ssn"]]
        expected = cfg.quality_of(name).ssn_missing
        sd = math.sqrt(max(expected * (1 - expected), 0.01) / len(ssn))
        assert abs(ssn.isna().mean() - expected) < 5 * sd + 0.01, (name, ssn.isna().mean(), expected)
    births = _read(synth_dir, defs["births"])
    assert 0.04 < births.mother_ssn.isna().mean() < 0.12  # configured 0.08
    fathers = births[births.father_last_name.notna()]
    assert 0.33 < fathers.father_ssn.isna().mean() < 0.47  # fathers' SSNs: 0.4
    assert (_read(synth_dir, defs["school_enrollment"])["street"].notna().mean()) > 0.9
    assert _read(synth_dir, defs["school_enrollment"]).columns.str.contains("ssn").sum() == 0
    last4 = _read(synth_dir, defs["juvenile_justice"])["ssn4"].dropna()
    assert last4.str.fullmatch(r"\d{4}").all()
    upper = _read(synth_dir, defs["adult_arrests"])["last_name"].dropna()
    assert (upper == upper.str.upper()).all()


def _pooled_rates(cfg: SynthConfig):
    """Observed vs expected counts of each error kind over every source and role."""
    obs: dict[str, float] = {}
    exp: dict[str, float] = {}
    var: dict[str, float] = {}
    rates = cfg.errors
    kinds = {"nickname": rates.nickname, "typo.first_name": rates.typo, "typo.last_name": rates.typo,
             "swap_first_last": rates.swap_first_last, "dob_day_month_swap": rates.dob_day_month_swap,
             "dob_typo": rates.dob_typo, "hyphen_part_only": rates.hyphen_part_only, "sex_error": rates.sex_error}
    for chunk in iter_chunks(cfg):
        for source, rows in chunk.rows.items():
            scale = cfg.quality_of(source).error_scale
            for key, mask in rows.error_masks.items():
                role, kind = key.split(".", 1)
                if kind not in kinds:
                    continue
                eligible = rows.error_masks.get(f"{role}.{kind}.eligible")
                n = int(eligible.sum()) if eligible is not None else len(mask)
                p = min(1.0, kinds[kind] * scale)
                obs[kind] = obs.get(kind, 0) + int(mask.sum())
                exp[kind] = exp.get(kind, 0) + n * p
                var[kind] = var.get(kind, 0) + n * p * (1 - p)
    return obs, exp, var


def test_error_rates_near_configured():
    cfg = SynthConfig(people=8000, seed=5, chunk_people=4000,
                      errors=ErrorRates(nickname=0.3, typo=0.05, swap_first_last=0.03, dob_day_month_swap=0.1))
    obs, exp, var = _pooled_rates(cfg)
    for kind in exp:
        assert exp[kind] > 20, kind
        assert abs(obs[kind] - exp[kind]) < 5 * math.sqrt(var[kind]) + 3, (kind, obs[kind], exp[kind])


def test_error_rates_are_configurable_and_zero_means_clean(tmp_path, defs):
    cfg = SynthConfig(people=3000, seed=2, chunk_people=3000, sources=["prek", "workforce"],
                      errors=ErrorRates(typo=0, nickname=0, swap_first_last=0, hyphen_part_only=0, dob_day_month_swap=0,
                                        dob_typo=0, ssn_typo=0, sex_error=0, missing_middle=0, missing_dob=0,
                                        missing_first=0, missing_address=0, duplicate=0.25))
    obs, _, _ = _pooled_rates(cfg)
    assert all(v == 0 for v in obs.values()), obs
    generate(cfg, tmp_path)
    truth = pd.read_csv(tmp_path / "ground_truth.csv", dtype=str)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ground_truth.csv", "prek.csv", "workforce.csv"]
    prek = truth[truth.source == "prek"]  # one enrolment per child, so repeats are the duplicates
    dup_share = len(prek) / prek.person_id.nunique() - 1
    assert 0.17 < dup_share < 0.33, dup_share


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_deterministic_per_seed_whatever_the_workers(tmp_path):
    cfg = SynthConfig(people=2500, seed=7, chunk_people=1000)
    generate(cfg, tmp_path / "a", workers=1)
    generate(cfg, tmp_path / "b", workers=2)  # chunks rendered in two processes, written in order
    generate(cfg.model_copy(update={"seed": 8}), tmp_path / "c", workers=1)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert all(a[k] != c[k] for k in a)


def test_chunks_are_independent_and_ids_unique(truth):
    pids = truth.person_id.str[1:].astype(int)
    assert pids.max() < PEOPLE and pids.min() >= 0
    assert truth.drop_duplicates(["source", "source_record_id", "role"]).shape[0] == len(truth)
    assert (pids >= 4000).any()  # the third chunk produced people


def test_ssns_are_unique_and_valid():
    ssn = ssn_for(np.arange(0, 2_000_000, 7), seed=3)
    assert len(set(ssn)) == len(ssn)
    s = pd.Series(ssn)
    area = s.str[:3].astype(int)
    assert s.str.fullmatch(r"\d{9}").all() and (area > 0).all() and (area < 900).all() and (area != 666).all()
    assert (s.str[3:5] != "00").all() and (s.str[5:] != "0000").all()


def test_bad_configuration_names_the_key(defs):
    with pytest.raises(ValidationError, match="errors.typo"):
        SynthConfig(errors={"typo": 1.5})
    with pytest.raises(ValidationError, match="chunk_people"):
        SynthConfig(chunk_people=5)
    with pytest.raises(ValueError, match="dmv"):
        next(iter_chunks(SynthConfig(sources=["dmv"]), defs))


def test_cli_synth(tmp_path):
    from enclave.cli import app

    out = CliRunner().invoke(app, ["data", "synth", "--people", "400", "--seed", "1", "--out", str(tmp_path / "o")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "o" / "ground_truth.csv").is_file() and (tmp_path / "o" / "wages.parquet").is_file()
    assert "births.csv" in out.output


def test_every_synthetic_file_ingests(synth_dir, defs, truth, tmp_path):
    """The generator's files are valid deposits: nearly every row is accepted, and the
    identifier partition's record keys are exactly the ground truth's records."""
    from linkage.ingest import ingest_file

    vault = tmp_path / "vault"
    for d in defs.values():
        result = ingest_file(d, synth_dir / f"{d.name}.{d.format}", vault)
        assert result.rows_accepted / result.rows_read > 0.98, (d.name, result.reasons)
        # Dirty dates of birth may fall after the event (a realistic error); nothing else.
        assert set(result.reasons) <= {"event_before_birth"}, (d.name, result.reasons)
    ids = pd.concat(pd.read_parquet(p) for p in (vault / "identifiers").rglob("*.parquet"))
    keys = truth.source + ":" + truth.source_record_id + np.where(truth.role == "subject", "", "/" + truth.role)
    accepted_subjects = set(ids.record_key[ids.role == "subject"])
    assert accepted_subjects <= set(keys[truth.role == "subject"])
    assert len(accepted_subjects) >= 0.98 * (truth.role == "subject").sum()
    related_expected = {k for k, r, s in zip(keys, truth.role, truth.source + ":" + truth.source_record_id)
                        if r != "subject" and s in accepted_subjects}
    assert set(ids.record_key[ids.role != "subject"]) == related_expected


def test_cli_synth_config_file(tmp_path):
    from enclave.cli import app

    good = tmp_path / "synth.yaml"
    good.write_text("people: 300\nseed: 4\nsources: [prek, wages]\nerrors: {typo: 0.2}\n", encoding="utf-8")
    out = CliRunner().invoke(app, ["data", "synth", "--config", str(good), "--out", str(tmp_path / "o"), "--workers", "1"])
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["ground_truth.csv", "prek.csv", "wages.parquet"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("errors: {typo: 2}\n", encoding="utf-8")
    out = CliRunner().invoke(app, ["data", "synth", "--config", str(bad), "--out", str(tmp_path / "b")])
    assert out.exit_code == 2 and "errors.typo" in out.output
    assert not (tmp_path / "b").exists()
