"""The DP service's parts without a registry: receipts (signature, canonical file, host key) and
queries (bounds required, privacy leaks refused, one record per person)."""
from __future__ import annotations

import copy
import stat
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from enclave.dp_service import receipts
from enclave.dp_service.queries import DPQuery, QueryError, answer, select_values


@pytest.fixture
def key(enclave_home):
    return receipts.signing_key()


def _payload():
    return {"spend_id": 1, "project": "p", "extract_version": 1, "epsilon": 0.5, "result": 12.5,
            "query": {"statistic": "count", "table": "t", "epsilon": 0.5}, "issued_at": "2026-12-04T00:00:00+00:00"}


def test_the_host_key_is_root_only_and_stable(key, enclave_home):
    path = receipts.key_path()
    assert path.is_relative_to(enclave_home) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert receipts.signing_key() == key and len(key) == 32


def test_a_signed_receipt_verifies_and_any_edit_fails(key):
    receipt = receipts.sign(_payload())
    assert receipts.verify_signature(receipt)["result"] == 12.5
    for field, value in [("epsilon", 0.0), ("epsilon", -0.4), ("result", 13.0), ("project", "q"), ("spend_id", 2)]:
        edited = copy.deepcopy(receipt)
        edited["payload"][field] = value
        with pytest.raises(receipts.ReceiptError, match="forged or edited"):
            receipts.verify_signature(edited)
    with pytest.raises(receipts.ReceiptError, match="forged or edited"):
        receipts.verify_signature(receipts.sign(_payload(), key=b"k" * 32))
    with pytest.raises(receipts.ReceiptError):
        receipts.verify_signature({"payload": receipt["payload"]})


def test_a_dp_output_file_is_its_receipt_byte_for_byte(key, tmp_path):
    receipt = receipts.sign(_payload())
    path = tmp_path / "dp_count_1.json"
    path.write_text(receipts.render(receipt))
    assert receipts.claims_receipt(path) and receipts.read_output(path) == receipt
    path.write_text(receipts.render(receipt).replace("\n", "\n ", 1))  # same JSON, other bytes
    with pytest.raises(receipts.ReceiptError, match="differs"):
        receipts.read_output(path)


def test_privacy_leak_warning_is_an_error():
    from disclosure_control import dp

    class NoBudget:
        def charge(self, epsilon, purpose=""):
            return 1.0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(dp.DPError):
            dp.mean(np.arange(100.0), epsilon=1.0, bounds=None, budget=NoBudget())
    with pytest.raises(ValueError, match="bounds"):
        DPQuery(statistic="mean", table="t", column="x", epsilon=1.0)


def test_each_person_contributes_one_record():
    frame = pa.Table.from_pandas(pd.DataFrame({"pseudonym": ["a"] * 50 + ["b", "c"], "days": [180.0] * 50 + [10.0, 20.0],
                                               "sex": ["F"] * 50 + ["M", "F"]}), preserve_index=False)
    values = select_values(DPQuery(statistic="sum", table="t", column="days", epsilon=1.0, bounds=(0, 200)), frame)
    assert sorted(values.tolist()) == [10.0, 20.0, 180.0]
    flags = select_values(DPQuery(statistic="count", table="t", epsilon=1.0, where={"sex": ["F"]}), frame)
    assert flags.sum() == 2
    categorical = pa.Table.from_pandas(frame.to_pandas().astype({"sex": "category"}), preserve_index=False)
    assert select_values(DPQuery(statistic="count", table="t", epsilon=1.0, where={"sex": ["M"]}), categorical).sum() == 1
    with pytest.raises(QueryError, match="type"):
        select_values(DPQuery(statistic="count", table="t", epsilon=1.0, where={"days": ["many"]}), frame)
    with pytest.raises(QueryError, match="not numeric"):
        select_values(DPQuery(statistic="mean", table="t", column="sex", epsilon=1.0, bounds=(0, 1)), frame)
    with pytest.raises(QueryError, match="person key"):
        select_values(DPQuery(statistic="count", table="t", column="pseudonym", epsilon=1.0), frame)


def test_the_budget_is_charged_once_before_the_noise():
    calls = []

    class Budget:
        def charge(self, epsilon, purpose=""):
            calls.append(epsilon)
            return 0.0

    query = DPQuery(statistic="mean", table="t", column="x", epsilon=0.7, bounds=(0, 10))
    result = answer(query, np.full(1000, 5.0), Budget())
    assert calls == [0.7] and 0 <= result <= 10
