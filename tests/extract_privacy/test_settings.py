"""The attacker model travels as data: application settings -> board's --setting -> approval ->
extract spec -> manifest. Unknown or bad settings are refused with the key named, never ignored."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from enclave.board.errors import InvalidInput
from enclave.board.requests import ApplicationRequest, Conditions, merged_settings, parse, setting_assignments


def _request(**extra):
    data = dict(project="p1", title="Title", purpose="A purpose of ten", use_case="uc", sources=["births"],
                variables={"births": ["birth_year"]}, k=5, dp_epsilon=1.0, start_date=dt.date(2026, 1, 1),
                end_date=dt.date(2026, 6, 1))
    data.update(extra)
    return parse(ApplicationRequest, data, "application.yaml")


def test_application_accepts_settings_and_refuses_unknown_keys():
    assert _request(settings={"attacker_model": {"events_known": 2}}).settings == {"attacker_model": {"events_known": 2}}
    with pytest.raises(InvalidInput, match=r"application.yaml: settings.*attacker_model.events_knwon"):
        _request(settings={"attacker_model": {"events_knwon": 2}})
    with pytest.raises(InvalidInput, match=r"settings.*events_known"):
        _request(settings={"attacker_model": {"events_known": 99}})


def test_setting_option_dotted_keys_typed_and_checked():
    assert setting_assignments(["attacker_model.events_known=2", "attacker_model.family_edges_known=false",
                                "workspace.ingress_allowed=true"]) == {
        "attacker_model": {"events_known": 2, "family_edges_known": False}, "workspace": {"ingress_allowed": True}}
    for bad in ("attacker_model.events_known", "=3", "attacker_model..x=1", "attacker_model.nope=1",
                "attacker_model.events_known=many"):
        with pytest.raises(InvalidInput, match="setting"):
            setting_assignments([bad])


def test_board_settings_laid_over_the_application():
    merged = merged_settings({"attacker_model": {"events_known": 2}, "workspace": {"ingress_allowed": True}},
                             {"attacker_model": {"family_edges_known": False}})
    assert merged == {"attacker_model": {"events_known": 2, "family_edges_known": False}, "workspace": {"ingress_allowed": True}}
    assert Conditions(settings={"attacker_model": {"events_known": 0}}).settings["attacker_model"]["events_known"] == 0


def test_approval_settings_reach_the_extract_spec():
    from enclave.provisioning import ProvisioningError, spec_for_approval

    approval = SimpleNamespace(id=7, sources=["births"], variables={"births": ["birth_year"]}, cohort={}, k=5, dp_epsilon=None,
                               settings={"attacker_model": {"events_known": 2, "family_edges_known": False}})
    spec = spec_for_approval("p1", approval)
    assert spec.conditions.attacker_model.events_known == 2 and not spec.conditions.attacker_model.family_edges_known
    default = spec_for_approval("p1", SimpleNamespace(**{**approval.__dict__, "settings": {}}))
    assert default.conditions.attacker_model.events_known == 1 and default.conditions.attacker_model.family_edges_known
    assert spec.fingerprint_payload() != default.fingerprint_payload()
    with pytest.raises(ProvisioningError, match="approval 7 settings cannot be applied.*shoe_size"):
        spec_for_approval("p1", SimpleNamespace(**{**approval.__dict__, "settings": {"shoe_size": 9}}))


def test_a_direct_identifier_never_enters_an_extract(tmp_path, attack):
    """housing_assistance.household_id is classed direct: approving it refuses the build, writing nothing."""
    import pandas as pd

    from enclave.provisioning import ProvisioningError

    n = 20
    frame = pd.DataFrame({"person_key": [f"K{i}" for i in range(n)], "program": "public_housing",
                          "household_id": [f"H{i // 2}" for i in range(n)]})
    store = attack.write_store(tmp_path / "research", {"housing_assistance": frame})
    with pytest.raises(ProvisioningError, match=r"household_id.*direct identifiers"):
        attack.build(tmp_path, store, "direct", variables={"housing_assistance": ["program", "household_id"]})
    assert [p.name for p in (tmp_path / "extracts" / "direct").iterdir() if p.name != ".build.lock"] == []
